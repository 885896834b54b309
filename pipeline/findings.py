"""The shape of a profile: findings, column and table profiles, the quality score.

Shared by the profiler (which fills it), the cleaner (which acts on it), the pytest
plugin (which turns findings into test items) and the reports. The JSON form is
versioned (``PROFILE_FORMAT``); bump it when a field changes meaning.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PROFILE_FORMAT = "servicedesk-etl/profile/1"

# Finding codes, with what they mean. Severity is decided by the profiler per case.
CODES = {
    "MISSING_TABLE": "a table the contracts require is absent",
    "EMPTY_TABLE": "a table the contracts require has no rows",
    "MISSING_COLUMN": "a column the contract declares is absent",
    "UNKNOWN_COLUMN": "a column the contract does not declare (kept, reported)",
    "TYPE_MISMATCH": "values do not have the form of the column's contract type",
    "INTEGER_AS_REAL": "integers stored as REAL (3652948.0)",
    "NUMBER_AS_TEXT": "numbers stored as text",
    "NOT_A_NUMBER": "values in a numeric column that are no number",
    "INCONSISTENT_DATE_FORMAT": "a date column mixes formats (ISO with day-first, serials...)",
    "AMBIGUOUS_DATE_FORMAT": "slash dates with no deciding value: the locale policy decided",
    "CORRUPT_DATES": "values in a date column that are no date in any format",
    "EXCEL_SERIAL_DATES": "Excel serial numbers in a date column",
    "FUTURE_DATES": "dates further in the future than the contract allows",
    "EMPTY_STRINGS": "'' where a typed column needs a value or NULL",
    "WHITESPACE_STRINGS": "whitespace-only strings",
    "PLACEHOLDERS": "tokens meaning 'missing' (--None--, PendingAssignment, N/A...)",
    "NULL_IN_REQUIRED": "NULL in a column the contract requires",
    "NOT_ALLOWED": "values outside the column's closed set",
    "PATTERN_MISMATCH": "values not matching the column's pattern",
    "OUT_OF_RANGE": "values outside the column's range",
    "DUPLICATE_KEYS": "rows repeating a key already seen",
    "ORPHANS": "references to rows that do not exist",
    "NUL_BYTES": "NUL characters in text",
    "MIXED_LINE_ENDINGS": "CR/LF and LF mixed in text",
    "BLANK_LINE_RUNS": "runs of blank lines in text",
}


@dataclass
class Finding:
    """One issue: what, where, how many, examples, and the fix we recommend."""

    code: str
    severity: str  # critical | error | warning | info
    table: str
    column: str | None
    count: int
    share: float  # count / rows considered
    example_keys: list[Any] = field(default_factory=list)
    fix: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.table}::{self.column or '*'}::{self.code}"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["id"] = self.id
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Finding":
        return cls(**{k: v for k, v in d.items() if k != "id"})


@dataclass
class ColumnProfile:
    name: str
    declared_type: str  # what SQLite's schema (or PostgreSQL's catalog) says
    contract_kind: str | None  # None: no contract for the column
    storage_classes: dict[str, int]  # typeof() -> count (SQLite), data type -> rows (PostgreSQL)
    detected_kind: str | None  # from the sampled values
    confidence: float  # share of sampled non-null values fitting detected_kind
    sampled: int
    null_count: int
    empty_count: int
    whitespace_count: int
    placeholder_counts: dict[str, int]
    distinct_count: int | None
    min: Any = None
    max: Any = None
    date: dict[str, Any] | None = None  # DateFormatDecision.to_json() for date columns
    nonconforming: int = 0  # non-null values not in the form of contract_kind
    distinct_estimated: bool = False  # True: distinct_count is a HyperLogLog estimate (~1%)


@dataclass
class TableProfile:
    name: str
    rows: int
    has_contract: bool
    columns: dict[str, ColumnProfile]
    missing_columns: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    # each contract reference counted: column, target ("table.column"), orphans,
    # references (rows with one) and a sample of orphan values
    references: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class QualityScore:
    """0-100 overall, with its five dimensions (each 0-100) and a letter grade."""

    score: float
    grade: str
    dimensions: dict[str, float]  # completeness, validity, consistency, uniqueness, integrity
    per_table: dict[str, float] = field(default_factory=dict)


@dataclass
class ProfileResult:
    source: str
    source_sha256: str | None
    created: str  # ISO UTC
    full: bool
    sample_size: int
    tables: dict[str, TableProfile]
    findings: list[Finding]
    quality: QualityScore
    verdict: str  # PROCEED | CLEAN | FIX_SOURCE
    reasons: list[str]
    format: str = PROFILE_FORMAT

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["findings"] = [f.to_json() for f in self.findings]
        return d

    def findings_for(self, table: str, column: str | None = None) -> list[Finding]:
        return [f for f in self.findings if f.table == table and (column is None or f.column == column)]

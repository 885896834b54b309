"""The vocabulary the table contracts are written in.

A contract is a ``pandera.DataFrameSchema`` whose columns carry, in ``metadata``, what
pandera itself has no word for: the column's *kind* (which fixes its PostgreSQL type),
the severity and tolerated failure share of each check, and the placeholder tokens
that mean "missing". Table-level facts (key, references, date policy) live in the
schema's ``metadata``. Everything that executes (the executor behind the pytest
plugin, the profiler, the cleaner, the migration) reads these declarations through the
accessors below; nothing else in the project lists column types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import pandera.pandas as pa

SEVERITIES = ("critical", "error", "warning")

# kind -> (PostgreSQL type, pandera dtype of a typed frame)
KINDS: dict[str, tuple[str, str]] = {
    "integer": ("bigint", "Int64"),
    "numeric": ("numeric", "Float64"),
    "timestamp": ("timestamp", "datetime64[ns]"),
    "date": ("date", "datetime64[ns]"),
    "text": ("text", "object"),
    "flag": ("text", "object"),  # yes/no kept as text: dashboards filter on the words
    "month": ("text", "object"),  # YYYY-MM
}

TYPED_KINDS = frozenset({"integer", "numeric", "timestamp", "date"})
DATE_KINDS = frozenset({"timestamp", "date"})


@dataclass(frozen=True)
class Rule:
    """How a check's failures are judged: severity, and the failing share tolerated."""

    severity: str = "error"
    tolerance: float = 0.0

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {self.severity!r}")
        if not 0.0 <= self.tolerance <= 1.0:
            raise ValueError(f"tolerance must be within [0, 1], not {self.tolerance!r}")


@dataclass(frozen=True)
class Reference:
    """``column`` of this table refers to ``target_table.target_column``.

    Values listed in ``ignore`` (e.g. timesheet ticket ``0`` = admin time) are not
    references. ``rule.tolerance`` is the share of orphans accepted.
    """

    column: str
    target_table: str
    target_column: str
    rule: Rule = Rule("error", 0.05)
    ignore: tuple[Any, ...] = ()
    name: str = "references"


@dataclass(frozen=True)
class TableFacts:
    """Table-level declarations kept in ``DataFrameSchema.metadata['contract']``."""

    key: tuple[str, ...]
    key_rule: Rule = Rule("error")
    references: tuple[Reference, ...] = ()
    # Column whose latest value wins when duplicate keys are resolved.
    modified_column: str | None = None
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def column(
    name: str,
    kind: str,
    *,
    nullable: bool = True,
    allowed: Iterable[str] | None = None,
    allowed_rule: Rule = Rule("error"),
    pattern: str | None = None,
    pattern_rule: Rule = Rule("error"),
    min_value: float | None = None,
    max_value: float | None = None,
    include_min: bool = True,
    include_max: bool = True,
    range_rule: Rule = Rule("error"),
    not_future_days: int | None = None,
    not_future_rule: Rule = Rule("error"),
    type_rule: Rule = Rule("error"),
    not_null_rule: Rule = Rule("error"),
    placeholders: Iterable[str] = (),
    long_text: bool = False,
    personal: bool = False,
    description: str = "",
) -> pa.Column:
    """Declare one column of a contract.

    ``placeholders`` are tokens meaning "missing" in this column (beyond the global
    list); ``long_text`` marks free text that gets NUL/CR-LF hygiene; ``personal``
    marks values never shown in failure samples unless asked.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; known: {sorted(KINDS)}")
    checks: list[pa.Check] = []
    rules: dict[str, Rule] = {"type": type_rule}
    if not nullable:
        rules["not_null"] = not_null_rule
    if allowed is not None:
        checks.append(pa.Check.isin(sorted(set(allowed)), name="allowed_values"))
        rules["allowed_values"] = allowed_rule
    if pattern is not None:
        checks.append(pa.Check.str_matches(pattern, name="pattern"))
        rules["pattern"] = pattern_rule
    if min_value is not None or max_value is not None:
        checks.append(
            pa.Check.in_range(
                min_value if min_value is not None else float("-inf"),
                max_value if max_value is not None else float("inf"),
                include_min=include_min,
                include_max=include_max,
                name="in_range",
            )
        )
        rules["in_range"] = range_rule
    if not_future_days is not None:
        rules["not_future"] = not_future_rule
    return pa.Column(
        KINDS[kind][1],
        checks=checks,
        nullable=nullable,
        required=True,
        name=name,
        description=description or None,
        metadata={
            "kind": kind,
            "rules": rules,
            "placeholders": tuple(placeholders),
            "long_text": long_text,
            "personal": personal,
            "not_future_days": not_future_days,
        },
    )


def table(name: str, columns: list[pa.Column], facts: TableFacts) -> pa.DataFrameSchema:
    """Declare one table's contract."""
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        raise ValueError(f"{name}: duplicate column names in the contract")
    for key_column in facts.key:
        if key_column not in names:
            raise ValueError(f"{name}: key column {key_column!r} is not declared")
    return pa.DataFrameSchema(
        {c.name: c for c in columns},
        name=name,
        strict=False,  # unknown extra columns are kept and reported, not rejected
        unique=list(facts.key) or None,
        metadata={"contract": facts},
    )


# --- accessors: the only way executors read a contract ---------------------------------


def facts(schema: pa.DataFrameSchema) -> TableFacts:
    return schema.metadata["contract"]


def kind(col: pa.Column) -> str:
    return col.metadata["kind"]


def pg_type(col: pa.Column) -> str:
    return KINDS[kind(col)][0]


def rules(col: pa.Column) -> dict[str, Rule]:
    return col.metadata["rules"]


def placeholders(col: pa.Column) -> tuple[str, ...]:
    return col.metadata["placeholders"]


def is_long_text(col: pa.Column) -> bool:
    return bool(col.metadata["long_text"])


def is_personal(col: pa.Column) -> bool:
    return bool(col.metadata["personal"])


def not_future_days(col: pa.Column) -> int | None:
    return col.metadata["not_future_days"]


def date_columns(schema: pa.DataFrameSchema) -> list[str]:
    return [n for n, c in schema.columns.items() if kind(c) in DATE_KINDS]

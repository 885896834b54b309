"""The quality score: one pure function over a profile, the same on every database.

``score(tables, findings)`` reads only the profile (``TableProfile``/``ColumnProfile``
counts and the findings) and the contracts' declarations, so the raw SQLite file, the
cleaned file and the PostgreSQL schema are scored by the same algorithm and their
scores compare.

Algorithm (every rate is a share in [0, 1]; a dimension is 100 x the mean of its rates,
or 100 when it has nothing to measure):

- **completeness**: one rate per *required* contract column (``nullable=False``):
  filled cells / rows, where filled means not NULL, not blank, not a placeholder.
  A required column that is missing (or whose table is missing) rates 0.
- **validity**: one rate per contract column that is typed (integer, numeric,
  timestamp, date) or carries a closed set, a pattern or a range:
  1 - (values not in the form of the type + not allowed + pattern mismatches +
  out of range) / values considered (non-NULL, not blank, not a placeholder).
  Blanks and placeholders are judged by consistency, not twice.
- **consistency**: one rate per column with values (every table, contract or not):
  1 - (blank strings + placeholders + date values outside the column's dominant date
  format family) / non-NULL values.
- **uniqueness**: one rate per contract table with a key: 1 - duplicate rows / rows.
- **integrity**: one rate per contract reference checked: 1 when the orphan share is
  within the reference's tolerance, else 1 - (share - tolerance) / (1 - tolerance).
  The timesheet orphans (90% expected, tolerance 99%) therefore cost nothing.

Overall = 0.25 completeness + 0.30 validity + 0.15 consistency + 0.15 uniqueness +
0.15 integrity. Because averages dilute a concentrated disaster (one column of corrupt
dates among ninety), the overall is **capped at 50** when the profile shows what the
circuit breaker stops on (``breaker_reasons``) or a structural critical finding
(MISSING_TABLE, MISSING_COLUMN, EMPTY_TABLE): a source that must be fixed upstream
cannot pass the 80 gate by averaging. Per-table scores use the same formula restricted
to one table. Grades: A >= 90, B >= 80, C >= 70, D >= 60, else F.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from contracts import spec
from contracts.schemas import contract_for
from pipeline.config import ProfileSettings
from pipeline.findings import Finding, QualityScore, TableProfile

WEIGHTS = {"completeness": 0.25, "validity": 0.30, "consistency": 0.15, "uniqueness": 0.15, "integrity": 0.15}
CAP = 50.0
STRUCTURAL = frozenset({"MISSING_TABLE", "MISSING_COLUMN", "EMPTY_TABLE"})
MOSTLY = 0.5  # a typed column is "mismatched" when over half its values cannot be converted


def grade(value: float) -> str:
    for floor, letter in ((90, "A"), (80, "B"), (70, "C"), (60, "D")):
        if value >= floor:
            return letter
    return "F"


def breaker_reasons(
    tables: Mapping[str, TableProfile], findings: Sequence[Finding], settings: ProfileSettings | None = None
) -> list[str]:
    """Why the circuit breaker trips (empty: it does not).

    - a contract date column with more than ``max_corrupt_date_share`` of its non-NULL
      values unparseable (CORRUPT_DATES share);
    - more than ``max_mismatched_column_share`` of the typed contract columns present
      whose values mostly (over half of those considered) do not fit their type even
      after the cleaner's conversions (TYPE_MISMATCH ``unfixable`` / ``considered``).
    """
    ps = settings or ProfileSettings()
    reasons = []
    for f in findings:
        if f.code != "CORRUPT_DATES" or f.table not in tables or not tables[f.table].has_contract:
            continue
        if f.share > ps.max_corrupt_date_share:
            reasons.append(
                f"{f.table}.{f.column}: {f.share:.1%} of its values are corrupt dates "
                f"(over the {ps.max_corrupt_date_share:.0%} limit)"
            )
    typed = [
        (t.name, c.name)
        for t in tables.values()
        if t.has_contract
        for c in t.columns.values()
        if c.contract_kind in spec.TYPED_KINDS
    ]
    mismatched = []
    for f in findings:
        if f.code != "TYPE_MISMATCH" or (f.table, f.column) not in set(typed):
            continue
        considered = f.detail.get("considered") or 0
        if considered and f.detail.get("unfixable", 0) / considered > MOSTLY:
            mismatched.append(f"{f.table}.{f.column}")
    if typed and len(mismatched) / len(typed) > ps.max_mismatched_column_share:
        reasons.append(
            f"{len(mismatched)} of {len(typed)} typed columns ({len(mismatched) / len(typed):.0%}) mostly hold values "
            f"that cannot be converted to their type (over the {ps.max_mismatched_column_share:.0%} limit): "
            + ", ".join(mismatched[:10])
            + (" ..." if len(mismatched) > 10 else "")
        )
    return reasons


def _mean(rates: list[float]) -> float:
    return 100.0 * sum(rates) / len(rates) if rates else 100.0


def _dimensions(
    tables: Mapping[str, TableProfile], findings: Sequence[Finding], present: frozenset[str] | None = None
) -> dict[str, float]:
    present = frozenset(tables) if present is None else present
    by_col: dict[tuple[str, str | None, str], int] = {}
    for f in findings:
        by_col[(f.table, f.column, f.code)] = by_col.get((f.table, f.column, f.code), 0) + f.count
    completeness: list[float] = []
    validity: list[float] = []
    consistency: list[float] = []
    uniqueness: list[float] = []
    integrity: list[float] = []
    # Tables the contracts require but the source lacks: their required columns rate 0.
    for f in findings:
        if f.code == "MISSING_TABLE" and f.table not in tables:
            schema = contract_for(f.table)
            if schema is not None:
                completeness.extend(0.0 for c in schema.columns.values() if not c.nullable)
    for t in tables.values():
        schema = contract_for(t.name) if t.has_contract else None
        for c in t.columns.values():
            nonnull = t.rows - c.null_count
            blanks = c.empty_count + c.whitespace_count
            placeholders = sum(c.placeholder_counts.values())
            if nonnull > 0:
                minority = 0
                if c.date:
                    counts = c.date.get("counts", {})
                    fam = [
                        counts.get("iso", 0),
                        counts.get("day_first", 0) + counts.get("month_first", 0) + counts.get("slash_ambiguous", 0),
                        counts.get("serial", 0),
                    ]
                    minority = sum(fam) - max(fam)
                consistency.append(max(0.0, 1 - (blanks + placeholders + minority) / nonnull))
            if schema is None or c.name not in schema.columns:
                continue
            col = schema.columns[c.name]
            if not col.nullable and t.rows:
                completeness.append(max(0.0, (nonnull - blanks - placeholders) / t.rows))
            has_rule = any(ch.name in ("allowed_values", "pattern", "in_range") for ch in col.checks)
            if c.contract_kind in spec.TYPED_KINDS or has_rule:
                considered = nonnull - blanks - placeholders
                if considered > 0:
                    form = max(0, c.nonconforming - blanks - placeholders) if c.contract_kind in spec.TYPED_KINDS else 0
                    failing = form + sum(by_col.get((t.name, c.name, code), 0) for code in ("NOT_ALLOWED", "PATTERN_MISMATCH", "OUT_OF_RANGE"))
                    validity.append(max(0.0, 1 - min(failing, considered) / considered))
        if schema is None:
            continue
        facts = spec.facts(schema)
        for name in t.missing_columns:
            col = schema.columns.get(name)
            if col is not None and not col.nullable:
                completeness.append(0.0)
        if facts.key and all(k in t.columns for k in facts.key) and t.rows:
            dups = by_col.get((t.name, ",".join(facts.key), "DUPLICATE_KEYS"), 0)
            uniqueness.append(max(0.0, 1 - dups / t.rows))
        for ref in facts.references:
            if ref.column not in t.columns or ref.target_table not in present:
                continue
            orphan = next((f for f in findings if f.code == "ORPHANS" and f.table == t.name and f.column == ref.column), None)
            if orphan is None:
                integrity.append(1.0)
                continue
            tol = float(orphan.detail.get("tolerance", ref.rule.tolerance))
            share = orphan.share
            integrity.append(1.0 if share <= tol else max(0.0, 1 - (share - tol) / (1 - tol)) if tol < 1 else 1.0)
    return {
        "completeness": round(_mean(completeness), 2),
        "validity": round(_mean(validity), 2),
        "consistency": round(_mean(consistency), 2),
        "uniqueness": round(_mean(uniqueness), 2),
        "integrity": round(_mean(integrity), 2),
    }


def _overall(dims: Mapping[str, float], capped: bool) -> float:
    value = sum(WEIGHTS[k] * dims[k] for k in WEIGHTS)
    return round(min(value, CAP) if capped else value, 2)


def score(
    tables: Mapping[str, TableProfile], findings: Sequence[Finding], settings: ProfileSettings | None = None
) -> QualityScore:
    """Score a profile 0-100 with its five dimensions and a grade (see the module doc)."""
    reasons = breaker_reasons(tables, findings, settings)
    structural = [f for f in findings if f.code in STRUCTURAL and f.severity == "critical"]
    dims = _dimensions(tables, findings)
    overall = _overall(dims, bool(reasons or structural))
    per_table = {}
    for name, t in tables.items():
        own = [f for f in findings if f.table == name]
        t_dims = _dimensions({name: t}, own, frozenset(tables))
        t_capped = bool(breaker_reasons({name: t}, own, settings)) or any(f.code in STRUCTURAL and f.severity == "critical" for f in own)
        per_table[name] = _overall(t_dims, t_capped)
    return QualityScore(score=overall, grade=grade(overall), dimensions=dims, per_table=per_table)

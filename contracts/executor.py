"""Run every check the contracts declare against a database, one result per check.

The executor only *executes*: what is checked, how severe a failure is and how much of
it is tolerated all come from the declarations in ``contracts/schemas`` (read through
the accessors of ``contracts.spec``). It talks to a ``pipeline.sources.Source`` only,
so the same code judges the raw SQLite file, the cleaned one and a PostgreSQL schema.

Memory stays bounded: column checks stream each table once, ``chunk_rows`` rows at a
time, keeping only counters and a capped failure sample per check; whole-table checks
(duplicate keys, references) are pushed down to the database by the ``Source``.

Check ids are stable and readable: ``table::column::check``, with ``*`` for table-level
checks (``tickets::*::unique_key``, ``tickets::*::row_count``).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Callable, Collection, Iterable, Sequence

import pandas as pd
import pandera.pandas as pa

from contracts import spec
from contracts.schemas import DATA_TABLES, REGISTRY
from pipeline.config import Settings
from pipeline.dates import is_iso_date, is_iso_timestamp
from pipeline.sources import Source, rising_integers
from pipeline.values import BIGINT_MAX, BIGINT_MIN, conforms, is_blank, is_placeholder, placeholder_set, to_number

PASSED, FAILED, WARNED = "passed", "failed", "warned"

# The type-conformance check of each typed kind, named for what it proves.
TYPE_CHECKS = {
    "timestamp": "timestamp_parseable",
    "date": "date_parseable",
    "integer": "integer",
    "numeric": "numeric",
}
TYPE_EXPECTATIONS = {
    "timestamp": "an ISO 8601 timestamp (YYYY-MM-DD HH:MM:SS)",
    "date": "an ISO 8601 date (YYYY-MM-DD)",
    "integer": "a whole number stored as an integer",
    "numeric": "a finite number stored as a number",
}
# Checks that exist at table level, on the pseudo-column ``*``.
TABLE_COLUMN = "*"
# A column is judged by distinct value when it holds at most this share of distinct values.
_GROUP_SHARE = 0.25
# Failing distinct values per check beyond which their rows are not looked up by value
# (memory, and one array parameter): the column is read row by row instead.
_MAX_FAILING_VALUES = 10_000
# Column types a PostgreSQL source can group by value (``Source.value_counts``): scalar
# types with equality; JSON, arrays and the like are read row by row.
_GROUPABLE_TYPES = frozenset({
    "text", "varchar", "bigint", "integer", "smallint", "numeric", "double precision", "real",
    "timestamp", "timestamptz", "date", "boolean",
})
# Days whose verdict and date are remembered per column (``_judge_of``, ``_as_date_of``).
_DAYS_REMEMBERED = 100_000
_NO_DATE: Any = object()
# Storage types whose equal values are the same value (a batch of them is counted as is);
# other batches are counted by (type, repr): 5 == 5.0 == True, and Decimal 1.0 == 1.00
# or 0.0 == -0.0 are spelt apart by patterns and closed sets.
_PLAIN_TYPES = frozenset((str, int, bytes, type(None)))
# Typed dates (PostgreSQL's): a date equals no value of another type, and naive datetimes
# are equal exactly when their fields are (fold aside, which psycopg never sets), so a batch
# of them is counted as is too; aware ones may be equal in another zone (``_value_counts``).
_DATED_TYPES = _PLAIN_TYPES | {date, datetime}
# Values longer than this are shortened in samples even where they may be shown.
SAMPLE_VALUE_CHARS = 80


@dataclass(frozen=True)
class SampleRow:
    """One failing value, locatable: the row's key, the column, the (masked) value."""

    key: Any
    column: str
    value: Any


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one declared check on one database."""

    table: str
    column: str  # ``*`` for table-level checks
    check: str
    severity: str  # critical | error | warning
    tolerance: float  # failing share accepted
    considered: int  # rows (or values) the check looked at
    failing: int
    status: str  # passed | failed | warned
    message: str  # one line: what failed, or what was checked
    sample: tuple[SampleRow, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.table}::{self.column}::{self.check}"

    @property
    def share(self) -> float:
        return self.failing / self.considered if self.considered else (1.0 if self.failing else 0.0)

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    @property
    def tolerated(self) -> bool:
        """Failures were found but stayed within the declared tolerance."""
        return self.status == PASSED and self.failing > 0

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["id"] = self.id
        d["share"] = self.share
        d["sample"] = [
            {"key": _jsonable(s.key), "column": s.column, "value": _jsonable(s.value)} for s in self.sample
        ]
        return d


@dataclass(frozen=True)
class TableRun:
    """What the executor saw of one table."""

    name: str
    present: bool
    rows: int
    has_contract: bool


@dataclass(frozen=True)
class ContractRun:
    """All check results of one database, in a stable order (table, then column order)."""

    source: str
    tables: dict[str, TableRun]
    results: tuple[CheckResult, ...]
    today: date

    def for_table(self, table: str) -> list[CheckResult]:
        return [r for r in self.results if r.table == table]

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == FAILED]

    @property
    def warned(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == WARNED]

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "today": self.today.isoformat(),
            "tables": {k: asdict(v) for k, v in self.tables.items()},
            "results": [r.to_json() for r in self.results],
        }


def status_of(failing: int, considered: int, rule: spec.Rule) -> str:
    """passed when the failing share is within tolerance; else failed, or warned for warnings."""
    if failing == 0:
        return PASSED
    share = failing / considered if considered else 1.0
    if share <= rule.tolerance:
        return PASSED
    return WARNED if rule.severity == "warning" else FAILED


def execute(
    source: Source,
    settings: Settings | None = None,
    *,
    today: date | None = None,
    registry: dict[str, pa.DataFrameSchema] | None = None,
    required_tables: Sequence[str] = DATA_TABLES,
    only: Collection[str] | None = None,
) -> ContractRun:
    """Run every declared check of ``registry`` (default: all contracts) on ``source``.

    Tables in ``required_tables`` are checked even when absent (their checks then fail);
    other contract tables are checked when present; tables without a contract get no
    contract checks (the profiler still looks at them). ``only``: the run covers these
    tables alone (the others are checked elsewhere, see ``merged_runs``); the references
    of those it covers still look at every table of ``source``.
    """
    settings = settings or Settings()
    registry = REGISTRY if registry is None else registry
    today = today or date.today()
    present = set(source.tables())
    tables: dict[str, TableRun] = {}
    results: list[CheckResult] = []
    for name in sorted(present):
        if name not in registry and (only is None or name in only):
            tables[name] = TableRun(name, True, source.row_count(name), False)
    for name, schema in registry.items():
        if name not in present and name not in required_tables:
            continue
        if only is not None and name not in only:
            continue
        checker = _TableChecker(source, name, schema, settings, today, present)
        results.extend(checker.run())
        tables[name] = TableRun(name, name in present, checker.rows, True)
    return ContractRun(source.label, tables, tuple(results), today)


def merged_runs(source: str, runs: Sequence[ContractRun], registry: dict[str, pa.DataFrameSchema] | None = None) -> ContractRun:
    """One run of ``source`` made of runs that each covered some of its tables
    (``execute(only=...)``), in the order ``execute`` gives a run of them all: the
    tables without a contract by name, then the contract tables in ``registry`` order."""
    registry = REGISTRY if registry is None else registry
    if not runs:
        raise ValueError("no contract run to merge")
    today = runs[0].today
    if any(r.today != today for r in runs):
        raise ValueError("contract runs of different days cannot be merged")
    tables = {name: run_.tables[name] for run_ in runs for name in run_.tables}
    twice = sum(len(r.tables) for r in runs) - len(tables)
    if twice:
        raise ValueError(f"{twice} table(s) were checked by more than one of the contract runs merged")
    uncontracted = sorted(n for n in tables if n not in registry)
    ordered = {n: tables[n] for n in [*uncontracted, *(n for n in registry if n in tables)]}
    by_table: dict[str, list[CheckResult]] = {}
    for run_ in runs:
        for r in run_.results:
            by_table.setdefault(r.table, []).append(r)
    results = tuple(r for n in ordered for r in by_table.pop(n, ()))
    if by_table:
        raise ValueError(f"contract results of tables no run covers: {sorted(by_table)}")
    return ContractRun(source, ordered, results, today)


# --- one table ------------------------------------------------------------------------


@dataclass
class _Tally:
    """Running counts and the capped sample of one column check during the stream."""

    check: str
    rule: spec.Rule
    expectation: str
    considered: int = 0
    failing: int = 0
    sample: list[SampleRow] = field(default_factory=list)

    def fail(self, limit: int, key: Callable[[], Any], column: str, value: Any) -> None:
        self.failing += 1
        if len(self.sample) < limit:
            self.sample.append(SampleRow(key(), column, value))


class _TableChecker:
    def __init__(
        self,
        source: Source,
        table: str,
        schema: pa.DataFrameSchema,
        settings: Settings,
        today: date,
        present_tables: set[str],
    ) -> None:
        self.source = source
        self.table = table
        self.schema = schema
        self.settings = settings
        self.today = today
        self.present_tables = present_tables
        self.limit = settings.gate.sample_rows
        self.show_personal = settings.gate.show_personal
        self.exists = table in present_tables
        self.actual = [c for c, _ in source.columns(table)] if self.exists else []
        # A source that groups by value (PostgreSQL) needs the row count before reading;
        # elsewhere the stream counts the rows it reads (no count(*) scan of its own).
        self._counted = not self.exists or hasattr(source, "value_counts")
        self.rows = source.row_count(table) if self.exists and self._counted else 0
        # The single key column read by the stream rose strictly (integers, no NULL): no key repeats.
        self._key_rises = False
        # (orphan rows, rows with a reference) of each reference the stream judged, by index
        # in ``facts.references`` (``iter_batches_with_orphans``): no scan of its own.
        self._orphan_counts: dict[int, tuple[int, int]] = {}
        self.facts = spec.facts(schema)
        global_tokens = tuple(settings.placeholder_tokens)
        extra = settings.column_placeholders.get(table, {})
        self.tokens = {
            name: placeholder_set(global_tokens + spec.placeholders(col) + tuple(extra.get(name, ())))
            for name, col in schema.columns.items()
        }
        self._days: dict[str, dict[str, bool]] = {}  # per column: day -> conforms (``_judge_of``)
        self._dated: dict[str, dict[str, Any]] = {}  # per column: day -> date (``_as_date_of``)

    # -- assembling results

    def _result(self, column: str, check: str, rule: spec.Rule, considered: int, failing: int, message: str, sample: Iterable[SampleRow] = ()) -> CheckResult:
        return CheckResult(
            table=self.table,
            column=column,
            check=check,
            severity=rule.severity,
            tolerance=rule.tolerance,
            considered=considered,
            failing=failing,
            status=status_of(failing, considered, rule),
            message=message,
            sample=tuple(sample),
        )

    def _cannot_run(self, column: str, check: str, rule: spec.Rule, why: str) -> CheckResult:
        # A check that cannot run fails, whatever its severity: a missing column must
        # never pass silently (the old tools skipped such checks).
        return CheckResult(self.table, column, check, rule.severity, rule.tolerance, self.rows, self.rows, FAILED, why)

    def run(self) -> list[CheckResult]:
        column_plan = self._column_plan()
        tallies = self._stream(column_plan) if self.exists else {}
        if not self._counted:
            self.rows = self.source.row_count(self.table)
            self._counted = True
        results = [self._row_count()]
        for name, col in self.schema.columns.items():
            results.extend(self._column_results(name, col, tallies.get(name)))
        if self.facts.key:  # a table declared without a key has no uniqueness to check
            results.append(self._unique_key())
        results.extend(self._references())
        return results

    def _row_count(self) -> CheckResult:
        rule = spec.Rule("critical")
        if not self.exists:
            return CheckResult(self.table, TABLE_COLUMN, "row_count", "critical", 0.0, 0, 0, FAILED, f"table {self.table} is missing from the database")
        if self.rows == 0:
            return CheckResult(self.table, TABLE_COLUMN, "row_count", "critical", 0.0, 0, 0, FAILED, f"table {self.table} has no rows")
        return self._result(TABLE_COLUMN, "row_count", rule, self.rows, 0, f"{self.rows:,} rows")

    def _column_results(self, name: str, col: pa.Column, tallies: list[_Tally] | None) -> list[CheckResult]:
        planned = self._planned_checks(name, col)
        if not self.exists or name not in self.actual:
            why = f"table {self.table} is missing" if not self.exists else f"column missing: {name!r} is not in table {self.table}"
            out = [self._cannot_run(name, "present", spec.Rule("critical"), why)]
            out.extend(self._cannot_run(name, check, rule, why) for check, rule, _ in planned)
            return out
        out = [self._result(name, "present", spec.Rule("critical"), self.rows, 0, "column present")]
        for tally in tallies or []:
            if tally.failing:
                message = f"{tally.failing:,} of {tally.considered:,} values are not {tally.expectation}"
            else:
                message = f"{tally.considered:,} values are {tally.expectation}"
            out.append(self._result(name, tally.check, tally.rule, tally.considered, tally.failing, message, tally.sample))
        return out

    def _planned_checks(self, name: str, col: pa.Column) -> list[tuple[str, spec.Rule, str]]:
        """(check name, rule, what a passing value is) for every check of a column, in order."""
        rules = spec.rules(col)
        k = spec.kind(col)
        planned: list[tuple[str, spec.Rule, str]] = []
        if k in TYPE_CHECKS:
            planned.append((TYPE_CHECKS[k], rules["type"], TYPE_EXPECTATIONS[k]))
        if "not_null" in rules:
            planned.append(("not_null", rules["not_null"], "filled (not NULL, not empty)"))
        for check in col.checks:
            planned.append((check.name, rules[check.name], _describe_check(check)))
        days = spec.not_future_days(col)
        if days is not None:
            planned.append(("not_future", rules["not_future"], f"at most {days} days after {self.today.isoformat()}"))
        return planned

    def _column_plan(self) -> dict[str, list[_Tally]]:
        return {
            name: [_Tally(check, rule, what) for check, rule, what in self._planned_checks(name, col)]
            for name, col in self.schema.columns.items()
            if name in self.actual
        }

    # -- the one streaming pass over the table

    def _stream(self, plan: dict[str, list[_Tally]]) -> dict[str, list[_Tally]]:
        # Only columns with a value-level check are read: free text with no check (comment
        # bodies average 2 KB) would cost memory and time for nothing.
        checked = [c for c in self.schema.columns if c in self.actual and plan.get(c)]
        key_cols = [c for c in self.facts.key if c in self.actual]
        has_key = len(key_cols) == len(self.facts.key) and key_cols
        if has_key and hasattr(self.source, "value_counts"):
            # A source that groups on the server (PostgreSQL) sends each distinct value
            # once with its row count; every check judges a value on its own, so the
            # counts are the same as row by row, and samples are fetched afterwards.
            types = dict(self.source.columns(self.table))
            by_value = [c for c in checked if types.get(c) in _GROUPABLE_TYPES and self._few_values(c)]
            done = [c for c in by_value if self._check_by_value(c, self.schema.columns[c], plan[c], key_cols)]
            checked = [c for c in checked if c not in done]
            if not checked:
                return plan
        read = list(dict.fromkeys([*checked, *key_cols]))
        if not read:
            return plan
        index = {c: i for i, c in enumerate(read)}
        key_idx = [index[c] for c in key_cols] if has_key else []
        personal_key = [spec.is_personal(self.schema.columns[c]) for c in key_cols] if has_key else []
        offset = 0
        # Whether the key (one integer column) rises strictly row after row: then no key
        # repeats and ``_unique_key`` needs no GROUP BY scan of the table.
        rising = len(key_idx) == 1
        last: Any = None
        with_orphans = getattr(self.source, "iter_batches_with_orphans", None)
        judged = [i for i, ref in enumerate(self.facts.references) if self._reference_problem(ref) is None] if callable(with_orphans) else []
        if judged:
            refs = [self.facts.references[i] for i in judged]
            batches = with_orphans(  # type: ignore[misc]
                self.table, read, [(r.column, r.target_table, r.target_column, r.ignore) for r in refs], self.settings.gate.chunk_rows
            )
        else:
            batches = self.source.iter_batches(self.table, read, self.settings.gate.chunk_rows)
        orphans = [[0, 0] for _ in judged]
        for batch in batches:
            for j, tally in enumerate(orphans):
                flags = [row[len(read) + j] for row in batch]
                tally[0] += flags.count(1)
                tally[1] += len(flags) - flags.count(None)
            if rising:
                keys = [row[key_idx[0]] for row in batch]
                rising = rising_integers(keys, last)
                last = keys[-1]
            def key_of(i: int, _batch=batch, _offset=offset) -> Any:
                if not key_idx:
                    return f"row {_offset + i + 1}"
                parts = [
                    self._mask_key(_batch[i][j]) if personal else _jsonable(_batch[i][j])
                    for j, personal in zip(key_idx, personal_key)
                ]
                return parts[0] if len(parts) == 1 else tuple(parts)

            for name in checked:
                col = self.schema.columns[name]
                values = [row[index[name]] for row in batch]
                self._check_values(name, col, values, plan[name], key_of)
            offset += len(batch)
        if not self._counted:
            self.rows, self._counted = offset, True
        self._key_rises = rising
        self._orphan_counts = {i: (count, total) for i, (count, total) in zip(judged, orphans)}
        return plan

    def _check_values(self, name: str, col: pa.Column, values: list[Any], tallies: list[_Tally], key_of: Callable[[int], Any]) -> None:
        """Every check of one column over one batch: each distinct value judged once and
        weighted by its rows (counted by ``collections.Counter``, in C). Every check
        judges a value on its own, so counts and statuses are the row-by-row ones; the
        sample of a check is the first failing rows of the batch, in row order, looked
        up only while that sample is not full."""
        by_check = {t.check: t for t in tallies}
        k = spec.kind(col)
        limit = self.limit
        type_tally = by_check.get(TYPE_CHECKS.get(k, ""))
        null_tally = by_check.get("not_null")
        tokens = self.tokens[name]
        counts, reps, key = _value_counts(values)
        if null_tally is not None:
            null_tally.considered += len(values)
        if type_tally is not None:
            type_tally.considered += len(values) - counts.get(key(None), 0)
        judge = self._judge_of(name, k, type_tally is not None, tokens)
        if reps is None and _typed_integers(counts, k):
            judge = _usable  # what ``judge`` says of each (``_typed_integers``)
        # Keys of the failing distinct values per check, kept while its sample is not full.
        failing: dict[str, set] = {}

        def failed(tally: _Tally, n: int, value_key: Any) -> None:
            tally.failing += n
            if len(tally.sample) < limit:
                failing.setdefault(tally.check, set()).add(value_key)

        # Distinct values the value-level checks look at: conforming, not NULL, not
        # blank, not a placeholder (those are "missing", judged by not_null and the profiler).
        usable: list[Any] = []
        weights: list[int] = []
        usable_keys: list[Any] = []
        for value_key, n in counts.items():
            v = value_key if reps is None else reps[value_key]
            if v is None:
                if null_tally is not None:
                    failed(null_tally, n, value_key)
                continue
            blank, bad_type, ok = judge(v)
            if blank and null_tally is not None:
                failed(null_tally, n, value_key)
            if bad_type:
                failed(type_tally, n, value_key)  # type: ignore[arg-type]
            elif ok:
                usable.append(v)
                weights.append(n)
                usable_keys.append(value_key)
        if usable:
            everything = list(range(len(usable)))
            for check in col.checks:
                tally = by_check[check.name]
                positions, bad = self._pandera_outcome(check, usable, everything)
                tally.considered += sum(weights[i] for i in positions)
                for i in bad:
                    failed(tally, weights[i], usable_keys[i])
            days = spec.not_future_days(col)
            if days is not None and k in spec.DATE_KINDS:
                tally = by_check["not_future"]
                limit_day = self.today + timedelta(days=days)
                as_date = self._as_date_of(name, type_tally is not None)
                dated = set(map(type, usable))
                if (dated == {date} or dated == {datetime}) and _latest_on_time(usable, limit_day):
                    # Typed dates, the latest not in the future: each is dated and on time.
                    tally.considered += sum(weights)
                    usable = []
                for v, n, value_key in zip(usable, weights, usable_keys):
                    d = as_date(v)
                    if d is None:
                        continue
                    tally.considered += n
                    if d > limit_day:
                        failed(tally, n, value_key)  # rare: future dates
        if failing:
            mask = self._masker(col)
            for check, keys in failing.items():
                tally = by_check[check]
                for i in _first_rows(values, keys, key, limit - len(tally.sample)):
                    tally.sample.append(SampleRow(key_of(i), name, mask(values[i])))

    def _judge_of(self, name: str, k: str, type_checked: bool, tokens: Any) -> Callable[[Any], tuple[bool, bool, bool]]:
        """``_judge`` for one column. In a timestamp column, ``YYYY-MM-DD HH:MM:SS`` text
        (unique per row) is judged by its day, remembered, and a lookup of its time of
        day: the same verdict as ``_judge``, without a regex and a parse per row."""
        if k != "timestamp" or not type_checked:
            return _typed_dates_judged_once(lambda v: _judge(v, k, type_checked, tokens), k)
        from pipeline.profile import iso_clock_times

        clock = iso_clock_times()
        days = self._days.setdefault(name, {})

        def judge(v: Any) -> tuple[bool, bool, bool]:
            if type(v) is str and len(v) == 19 and v[10] in " T" and v[11:] in clock:
                day = v[:10]
                good = days.get(day)
                if good is None:
                    # The day conforms with any valid time of day exactly when it does
                    # at midnight (``_ISO`` and ``fromisoformat`` read the parts apart).
                    good = conforms(k, day + " 00:00:00")
                    if len(days) < _DAYS_REMEMBERED:
                        days[day] = good
                if good:
                    # Digits at both ends: not blank, not padded; a token only if equal.
                    return False, False, v not in tokens
            return _judge(v, k, type_checked, tokens)

        return _typed_dates_judged_once(judge, k)

    def _as_date_of(self, name: str, type_checked: bool) -> Callable[[Any], date | None]:
        """``_as_date`` of usable values: conforming ISO text (``YYYY-MM-DD...``) is dated
        by its first ten characters, remembered."""
        if not type_checked:
            return _as_date
        dated = self._dated.setdefault(name, {})

        def as_date(v: Any) -> date | None:
            if type(v) is not str:
                return _as_date(v)
            day = v[:10]
            d = dated.get(day, _NO_DATE)
            if d is _NO_DATE:
                d = _as_date(v)
                if len(dated) < _DAYS_REMEMBERED:
                    dated[day] = d
            return d  # type: ignore[return-value]

        return as_date

    def _few_values(self, column: str) -> bool:
        """Grouping pays when values repeat: the server hashes every row, and a column of
        unique values would still send (and judge) each one. Unknown: read row by row."""
        estimate = self.source.distinct_estimate(self.table, column)
        return estimate is not None and estimate <= self.rows * _GROUP_SHARE

    def _check_by_value(self, name: str, col: pa.Column, tallies: list[_Tally], key_cols: list[str]) -> bool:
        """``_check_values`` over the distinct values of a column, each weighted by its row
        count (``Source.value_counts``); the failing values' first rows, in the stream's
        order, are the samples (``Source.rows_with_values``). False, with the tallies
        reset, when too many distinct values fail to look their rows up: the column is
        then streamed row by row."""
        by_check = {t.check: t for t in tallies}
        k = spec.kind(col)
        type_tally = by_check.get(TYPE_CHECKS.get(k, ""))
        null_tally = by_check.get("not_null")
        tokens = self.tokens[name]
        days = spec.not_future_days(col)
        limit_day = self.today + timedelta(days=days) if days is not None and k in spec.DATE_KINDS else None
        # Spellings of the failing values per check (NULL as None), for the samples.
        failing: dict[str, set[str | None]] = {t.check: set() for t in tallies}
        # Closed at once when left early: the cursor holds a transaction on the source.
        with contextlib.closing(self.source.value_counts(self.table, name, self.settings.gate.chunk_rows)) as batches:
            for batch in batches:
                values = [v for v, _, _ in batch]
                judge = _usable if _typed_integers(values, k) else functools.partial(_judge, kind=k, type_checked=type_tally is not None, tokens=tokens)
                usable: list[int] = []
                for i, (v, text, n) in enumerate(batch):
                    if null_tally is not None:
                        null_tally.considered += n
                    if v is None:
                        if null_tally is not None:
                            null_tally.failing += n
                            failing["not_null"].add(None)
                        continue
                    if type_tally is not None:
                        type_tally.considered += n
                    blank, bad_type, ok = judge(v)
                    if blank and null_tally is not None:
                        null_tally.failing += n
                        failing["not_null"].add(text)
                    if bad_type:
                        type_tally.failing += n  # type: ignore[union-attr]
                        failing[type_tally.check].add(text)  # type: ignore[union-attr]
                    elif ok:
                        usable.append(i)
                for check in col.checks if usable else ():
                    tally = by_check[check.name]
                    positions, failed = self._pandera_outcome(check, values, usable)
                    tally.considered += sum(batch[i][2] for i in positions)
                    for i in failed:
                        tally.failing += batch[i][2]
                        failing[check.name].add(batch[i][1])
                if limit_day is not None and usable:
                    tally = by_check["not_future"]
                    for i in usable:
                        d = _as_date(values[i])
                        if d is None:
                            continue
                        tally.considered += batch[i][2]
                        if d > limit_day:
                            tally.failing += batch[i][2]
                            failing["not_future"].add(batch[i][1])
                if any(len(spelt) > _MAX_FAILING_VALUES for spelt in failing.values()):
                    break
        if any(len(spelt) > _MAX_FAILING_VALUES for spelt in failing.values()):
            for tally in tallies:
                tally.considered = tally.failing = 0
                tally.sample.clear()
            return False
        mask = self._masker(col)
        personal_key = [spec.is_personal(self.schema.columns[c]) for c in key_cols]
        read = [*key_cols, name]
        for tally in tallies:
            spelt = failing[tally.check]
            if not spelt or self.limit <= 0:
                continue
            texts = sorted(t for t in spelt if t is not None)
            rows = self.source.rows_with_values(self.table, read, name, texts, null=None in spelt, limit=self.limit)
            for row in rows:
                parts = [self._mask_key(v) if p else _jsonable(v) for v, p in zip(row, personal_key)]
                tally.sample.append(SampleRow(parts[0] if len(parts) == 1 else tuple(parts), name, mask(row[-1])))
        return True

    def _pandera_outcome(self, check: pa.Check, values: list[Any], usable: list[int]) -> tuple[list[int], list[int]]:
        """(positions the check looked at, positions that failed it) among ``usable``."""
        if check.name == "in_range":
            picked = [values[i] for i in usable]
            if set(map(type, picked)) == {int}:
                # ``to_number`` of an int (no bool) is the int itself: every one counts.
                positions, data = list(usable), list(map(float, picked))
            else:
                positions, data = [], []
                for i in usable:
                    number = to_number(values[i])
                    if number is not None:
                        positions.append(i)
                        data.append(float(number))
            series = pd.Series(data, dtype="float64")
        else:
            # Closed sets and patterns are about the text PostgreSQL will hold.
            positions = usable
            series = pd.Series([v if isinstance(v, str) else str(v) for v in (values[i] for i in positions)], dtype="object")
        if not positions:
            return positions, []
        outcome = check(series).check_output
        return positions, [positions[int(j)] for j in (~outcome.to_numpy(dtype=bool)).nonzero()[0]]

    def _run_pandera_check(self, check: pa.Check, tally: _Tally, k: str, name: str, values: list[Any], usable: list[int], mask: Callable[[Any], Any], key_of: Callable[[int], Any]) -> None:
        positions, failed = self._pandera_outcome(check, values, usable)
        tally.considered += len(positions)
        tally.failing += len(failed)
        for i in failed[: max(self.limit - len(tally.sample), 0)]:
            tally.sample.append(SampleRow(key_of(i), name, mask(values[i])))

    # -- masking

    def _masker(self, col: pa.Column) -> Callable[[Any], Any]:
        if self.show_personal:
            return _shorten
        if spec.is_personal(col):
            return mask_personal
        if spec.is_long_text(col):
            return _mask_long_text
        return _shorten

    def _mask_key(self, value: Any) -> Any:
        return _jsonable(value) if self.show_personal else mask_personal(value)

    # -- whole-table checks, pushed down to the database

    def _unique_key(self) -> CheckResult:
        rule = self.facts.key_rule
        key = list(self.facts.key)
        missing = [c for c in key if c not in self.actual]
        if not self.exists:
            return self._cannot_run(TABLE_COLUMN, "unique_key", rule, f"table {self.table} is missing")
        if missing:
            return self._cannot_run(TABLE_COLUMN, "unique_key", rule, f"column missing: key column(s) {', '.join(map(repr, missing))} not in table {self.table}")
        if self._key_rises:
            count, keys = 0, []
        else:
            count, keys = self.source.duplicate_keys(self.table, key, limit=self.limit)
        personal = [spec.is_personal(self.schema.columns[c]) for c in key]
        label = ", ".join(key)
        sample = []
        for k in keys:
            parts = [self._mask_key(v) if p else _jsonable(v) for v, p in zip(k, personal)]
            shown = parts[0] if len(parts) == 1 else tuple(parts)
            sample.append(SampleRow(shown, label, "duplicate key"))
        message = f"{count:,} rows repeat a key ({label}) already seen" if count else f"key ({label}) is unique over {self.rows:,} rows"
        return self._result(TABLE_COLUMN, "unique_key", rule, self.rows, count, message, sample)

    def _reference_problem(self, ref: spec.Reference) -> str | None:
        """Why a reference cannot be checked, or None."""
        if not self.exists:
            return f"table {self.table} is missing"
        if ref.column not in self.actual:
            return f"column missing: {ref.column!r} is not in table {self.table}"
        if ref.target_table not in self.present_tables:
            return f"referenced table {ref.target_table} is missing"
        target_cols = [c for c, _ in self.source.columns(ref.target_table)]
        if ref.target_column not in target_cols:
            return f"referenced column {ref.target_table}.{ref.target_column} is missing"
        return None

    def _references(self) -> list[CheckResult]:
        out = []
        for i, ref in enumerate(self.facts.references):
            rule = ref.rule
            problem = self._reference_problem(ref)
            if problem is not None:
                out.append(self._cannot_run(ref.column, ref.name, rule, problem))
                continue
            if i in self._orphan_counts:  # counted by the stream (``iter_batches_with_orphans``)
                count, total = self._orphan_counts[i]
                values = self.source.orphan_sample(  # type: ignore[attr-defined]
                    self.table, ref.column, ref.target_table, ref.target_column, ignore=ref.ignore, limit=self.limit
                ) if count else []
            else:
                count, total, values = self.source.orphans(
                    self.table, ref.column, ref.target_table, ref.target_column, ignore=ref.ignore, limit=self.limit
                )
            target = f"{ref.target_table}.{ref.target_column}"
            sample = [SampleRow(None, ref.column, _jsonable(v)) for v in values]
            share = count / total if total else 0.0
            if count:
                message = f"{count:,} of {total:,} rows refer to no {target} ({share:.2%}; tolerated {rule.tolerance:.0%})"
            else:
                message = f"all {total:,} references to {target} resolve"
            out.append(self._result(ref.column, ref.name, rule, total, count, message, sample))
        return out


# --- small pure helpers ------------------------------------------------------------------


def _judge(value: Any, kind: str, type_checked: bool, tokens: Any) -> tuple[bool, bool, bool]:
    """(blank, fails its type, usable by the value-level checks) of one non-NULL value."""
    blank = is_blank(value)
    bad_type = type_checked and not conforms(kind, value)
    return blank, bad_type, not bad_type and not blank and not is_placeholder(value, tokens)


_USABLE = (False, False, True)


def _usable(value: Any) -> tuple[bool, bool, bool]:
    return _USABLE


def _typed_integers(values: Iterable[Any], kind: str) -> bool:
    """Whether ``_judge`` says "usable" of every non-NULL one of ``values`` at once: in an
    integer or numeric column, values of type ``int`` (a bool is none) are never blank or
    a placeholder, and conform (an integer column: within bigint, as PostgreSQL's and
    SQLite's integers always are). Spares a call per value of unique ids."""
    if kind not in ("integer", "numeric"):
        return False
    ints = [v for v in values if v is not None]
    if not ints or set(map(type, ints)) != {int}:
        return False
    return kind == "numeric" or (BIGINT_MIN <= min(ints) and max(ints) <= BIGINT_MAX)


def _typed_dates_judged_once(judge: Callable[[Any], tuple[bool, bool, bool]], kind: str) -> Callable[[Any], tuple[bool, bool, bool]]:
    """``judge`` (a ``_judge``) with its verdict on a typed date or datetime remembered per
    type: no such value is blank or a placeholder, and whether it conforms depends on its
    type alone, but for a datetime in a date column (midnight or not)."""
    verdicts: dict[type, tuple[bool, bool, bool]] = {}

    def judged(v: Any) -> tuple[bool, bool, bool]:
        t = type(v)
        if t is date or (t is datetime and kind != "date"):
            verdict = verdicts.get(t)
            if verdict is None:
                verdict = verdicts[t] = judge(v)
            return verdict
        return judge(v)

    return judged


def _latest_on_time(dated: list[date], limit_day: date) -> bool:
    """Whether the latest of some dates (or datetimes) is on ``limit_day`` or before."""
    try:
        return _as_date(max(dated)) <= limit_day  # type: ignore[operator]
    except TypeError:  # naive and aware datetimes together: dated one by one
        return False


def _same(value: Any) -> Any:
    return value


def _typed_key(value: Any) -> tuple[type, str]:
    return type(value), repr(value)


def _value_counts(values: list[Any]) -> tuple[collections.Counter, dict | None, Callable[[Any], Any]]:
    """(rows per distinct value key, the value of each key or None where the keys are
    the values, the key of a value): values with one key judge alike."""
    types = set(map(type, values))
    if types <= _PLAIN_TYPES or (
        types <= _DATED_TYPES
        and (datetime not in types or {v.tzinfo for v in values if type(v) is datetime} == {None})
    ):
        return collections.Counter(values), None, _same
    keys = list(map(_typed_key, values))
    return collections.Counter(keys), dict(zip(keys, values)), _typed_key


def _first_rows(values: list[Any], keys: set, key: Callable[[Any], Any], need: int) -> list[int]:
    """The first ``need`` positions of ``values`` whose key is in ``keys``."""
    out: list[int] = []
    if need <= 0:
        return out
    if key is _same:
        for i, v in enumerate(values):
            if v in keys:
                out.append(i)
                if len(out) >= need:
                    break
    else:
        for i, v in enumerate(values):
            if key(v) in keys:
                out.append(i)
                if len(out) >= need:
                    break
    return out


def _describe_check(check: pa.Check) -> str:
    stats = check.statistics or {}
    if check.name == "allowed_values":
        allowed = stats.get("allowed_values", ())
        return "in the closed set {" + ", ".join(map(str, allowed)) + "}"
    if check.name == "pattern":
        return f"matching {stats.get('pattern')}"
    if check.name == "in_range":
        lo, hi = stats.get("min_value"), stats.get("max_value")
        left = "[" if stats.get("include_min", True) else "("
        right = "]" if stats.get("include_max", True) else ")"
        return f"within {left}{lo}, {hi}{right}"
    return f"passing {check.error or check.name}"


def _as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and (is_iso_timestamp(value) or is_iso_date(value)):
        try:
            return datetime.fromisoformat(value).date()
        except ValueError:
            return None
    return None


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    return str(value)


def _shorten(value: Any) -> Any:
    value = _jsonable(value)
    if isinstance(value, str) and len(value) > SAMPLE_VALUE_CHARS:
        return value[:SAMPLE_VALUE_CHARS] + f"... ({len(value):,} chars)"
    return value


def _fingerprint(value: Any) -> str:
    return hashlib.sha256(repr(value).encode("utf-8", "replace")).hexdigest()[:8]


def mask_personal(value: Any) -> Any:
    """Personal data never leaves in a sample: a fingerprint tells equal values apart."""
    if value is None or value == "":
        return value
    return f"<personal #{_fingerprint(value)}>"


def _mask_long_text(value: Any) -> Any:
    if value is None or value == "" or not isinstance(value, str):
        return _shorten(value)
    return f"<text, {len(value):,} chars>"

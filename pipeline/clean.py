"""Gate 2: write a cleaned copy of a raw database, with an audit row for every change.

``servicedesk-etl clean --source raw.db --out clean.db`` reads the raw file read-only,
rewrites what can be fixed without guessing (dates to ISO 8601, blanks and placeholder
tokens to NULL, integers stored as REAL or text to integers, numeric text to numbers,
NUL bytes and CR/LF in long text), moves rows that cannot be fixed to ``_quarantine``
with the reason and the original row, resolves duplicate keys by the configured
strategy, and records every changed cell in ``_audit``.

What gets fixed is decided by the contracts (the kind of each column, its placeholder
tokens, ranges, ``not_future_days``, key and modified column) and the profiler (the
date format of each column, decided over all its values), never by column names.

Safety: the output is built in a temporary file beside ``--out`` in one transaction,
profiled and checked against the contracts, and renamed into place only when all of
that succeeded. On any failure nothing is left at ``--out``; a temporary file left by
a killed run is removed by the next run.

The output holds the source's tables and columns (contract columns in contract order,
no declared types, so each value keeps the storage class it is written with: INTEGER,
REAL, ISO 8601 TEXT) and rows keep their source ``rowid``. Two more tables:

- ``_audit(run_id, table_name, row_key, column_name, old_value, new_value, rule,
  changed_at, source_rowid)``: one row per changed cell of a row in the output;
- ``_quarantine(run_id, table_name, row_key, reason, rule, original_row,
  source_rowid, quarantined_at)``: rows kept out of the main tables, with the source
  row as JSON. Rules: ``unparseable_date``, ``not_an_integer``, ``not_a_number``,
  ``out_of_range``, ``future_date``, ``null_key`` (a key column empty after
  cleaning), ``required_missing`` (another required column empty), ``duplicate_dropped``.

Both keep the history of earlier runs when a cleaned file is cleaned again.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import hashlib
import json
import logging
import math
import os
import shutil
import sqlite3
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import psutil

from contracts import spec
from contracts.schemas import REGISTRY
from pipeline import transforms as tf
from pipeline.config import CleanSettings, Settings
from pipeline.dates import Order
from pipeline.errors import ConfigError, FixYourData, GateFailed, InputFileError, ResourceExhausted, TryAgain
from pipeline.observe import Progress, current_rss_mb, peak_rss_mb, stage_trace
from pipeline.sources import LENIENT_TEXT, SQLiteSource, check_sqlite_file, quote_sqlite, sha256_file
from pipeline.values import BIGINT_MAX, BIGINT_MIN, placeholder_set

log = logging.getLogger(__name__)

AUDIT_TABLE = "_audit"
QUARANTINE_TABLE = "_quarantine"
AUDIT_COLUMNS = ("run_id", "table_name", "row_key", "column_name", "old_value", "new_value", "rule", "changed_at", "source_rowid")
QUARANTINE_COLUMNS = ("run_id", "table_name", "row_key", "reason", "rule", "original_row", "source_rowid", "quarantined_at")
# Tables copied as they are: the provenance of the import is not data to clean.
VERBATIM_TABLES = frozenset({"import_metadata"})
TEMP_MARK = ".clean-tmp-"
GATE_MARK = ".clean-gate-"  # a folder holding the output under its final name while Gate 2 runs
STRATEGIES = ("keep_latest", "keep_first", "fail")
MB = 1024 * 1024
OUTPUT_PAGE_SIZE = 16384  # bytes per page of the output database
# From this many source rows on, the tables to clean after the first are built beside it
# by a second SQLite connection (``_Beside``: a forked process; a thread where the clean
# runs beside a thread that is not fork-safe), into a scratch file then copied into the
# output; below it the process and the copy cost more than they save.
BESIDE_ROWS = 100_000
BESIDE_SUFFIX = "-part"  # the scratch file: the output's temporary file's name + this
# Below this much available memory on the machine the run stops, whatever the setting.
MIN_AVAILABLE_MEMORY_MB = 32

# Quarantine rules (the ``rule`` column of ``_quarantine``).
Q_DATE = "unparseable_date"
Q_INTEGER = "not_an_integer"
Q_NUMBER = "not_a_number"
Q_RANGE = "out_of_range"
Q_FUTURE = "future_date"
Q_NULL_KEY = "null_key"
Q_REQUIRED = "required_missing"
Q_DUPLICATE = "duplicate_dropped"


# --- config and result ------------------------------------------------------------------


@dataclass(frozen=True)
class CleanConfig:
    source: Path
    out: Path
    settings: Settings
    audit_trail: Path | None = None
    quality_threshold: float | None = None  # None: settings.gate.quality_threshold
    today: date | None = None  # the day "not in the future" is judged from (None: today)
    progress: bool = True  # a progress bar when stderr is a terminal
    # Gate 1's profile of this very source, when the caller already has it: a
    # ``ProfileResult``, or the path of its JSON (``servicedesk-etl profile --out``, or a
    # gate report with it under ``profile``). Used only when its SHA-256 is the source's
    # and it has every table and column profile; otherwise the source is profiled again.
    profile: Any = None
    # Gate 2 as part of the clean (``servicedesk-etl run``): when ``gate_report`` or
    # ``gate_junitxml`` is given, the output's contract checks are ``contracts.gate.run_gate``
    # itself, run on the finished file under its final name with the profile made here,
    # and its JSON report, JUnit XML and pytest log are written to these paths exactly as
    # ``run_gate(source=out, settings=settings, ...)`` writes them; its verdict is
    # ``CleanResult.gate``. Nothing is written to them when the clean fails.
    gate_report: Path | None = None
    gate_junitxml: Path | None = None
    gate_log: Path | None = None


@dataclass(frozen=True)
class TableSummary:
    rows_in: int
    rows_out: int
    quarantined: int
    duplicates_dropped: int
    changed_cells: int


@dataclass(frozen=True)
class CleanResult:
    """What a clean did, JSON-able through ``to_json``."""

    run_id: str
    source: str
    out: str
    source_sha256: str
    tables: dict[str, TableSummary]
    changes: list[dict[str, Any]]  # {table, column, rule, count}, one per rule and column
    quarantine: list[dict[str, Any]]  # {table, rule, count}
    audit_rows: int
    date_columns: dict[str, dict[str, Any]]  # "table.column" -> {format, order, ambiguous, ...}
    ambiguous_date_columns: list[str]
    orphans: list[dict[str, Any]]  # {table, column, target, orphans, references}
    quality_before: dict[str, Any]
    quality_after: dict[str, Any]
    threshold: float
    contract_failures: list[dict[str, Any]]  # error-level checks still failing (critical ones stop the run)
    audit_trail: str | None
    seconds: float
    peak_rss_mb: float
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase: profile, build, gate, ...
    # ``contracts.gate.GateVerdict`` of the output when ``CleanConfig.gate_report`` or
    # ``gate_junitxml`` was given (Gate 2, run on the output), else None
    gate: Any = None

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(dataclasses.replace(self, gate=None))
        g = self.gate
        # the verdict without its report (the report is its own file)
        data["gate"] = None if g is None else {
            "passed": g.passed, "exit_code": g.exit_code, "failed": [list(f) for f in g.failed],
            "warned": [list(f) for f in g.warned], "quality": g.quality, "verdict": g.verdict,
        }
        return data

    def rule_totals(self) -> dict[str, int]:
        """Changed cells per single rule (a combined ``a+b`` rule counts for both)."""
        totals: Counter[str] = Counter()
        for row in self.changes:
            for rule in tf.split_rule(row["rule"]):
                totals[rule] += row["count"]
        return dict(totals)


# --- safety: paths and temporary files ----------------------------------------------------


def same_file(a: Path, b: Path) -> bool:
    """True when both paths reach the same file (same path, symlink or hard link)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output_path(out: Path, source: Path, what: str = "--out") -> Path:
    """Refuse an output that is the source itself, or that cannot be written."""
    out = Path(out)
    if out.exists() or out.is_symlink():
        if same_file(out, source):
            raise InputFileError(
                f"{what} {out} is the source database itself (same file)",
                "give a new path for the cleaned copy: the source is never written",
            )
        if out.is_dir():
            raise InputFileError(f"{what} {out} is a folder", "give the path of the new .db file")
    elif out.resolve() == Path(source).resolve():
        raise InputFileError(f"{what} {out} is the source database itself", "give a new path for the cleaned copy")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise InputFileError(f"{what} folder {parent} does not exist", "create the folder first, or give another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputFileError(f"{what} folder {parent} is not writable", "choose a folder you can write to")
    return out


def temp_path_for(target: Path, pid: int | None = None) -> Path:
    """The temporary file a run builds ``target`` in: beside it, named after it and the pid."""
    return target.parent / f".{target.name}{TEMP_MARK}{pid or os.getpid()}"


def remove_stale_temps(target: Path) -> list[Path]:
    """Remove temporary files of runs into ``target`` whose process is gone (e.g. SIGKILLed)."""
    removed = []
    prefixes = (f".{target.name}{TEMP_MARK}", f".{target.name}{GATE_MARK}")
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        prefix = next((p for p in prefixes if entry.name.startswith(p)), None)
        if prefix is None:
            continue
        pid_text = entry.name[len(prefix):].split("-", 1)[0]
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        if pid != os.getpid() and _alive(pid):
            log.warning("temporary file %s belongs to running process %d: left alone", entry, pid)
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)  # the folder of an interrupted Gate 2 run
            else:
                entry.unlink()
            removed.append(entry)
            log.info("removed %s, left by an interrupted run (pid %d)", entry, pid)
        except FileNotFoundError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return psutil.pid_exists(pid)


def _unlink_family(path: Path) -> None:
    for p in (path, Path(f"{path}-journal"), Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            p.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:  # pragma: no cover - a read-only folder after the fact
            log.warning("could not remove %s: %s", p, exc)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Background:
    """``fn(*args)`` in a thread; ``wait`` joins it and returns its result or raises its
    error. For work that needs no Python while it runs (fsync, hashing: both release
    the GIL), done beside the build or the gate instead of before or after them."""

    def __init__(self, fn: Callable[..., Any], *args: Any, fork_safe: bool = False) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn, args), name=f"clean-{fn.__name__}", daemon=True)
        # fork_safe: holds no lock a forked child could need (see contracts.report.ChildExecution)
        self.thread.fork_safe = fork_safe  # type: ignore[attr-defined]
        self.thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            self.result = fn(*args)
        except BaseException as exc:  # raised by ``wait``, in the caller's thread
            self.error = exc

    def wait(self) -> Any:
        self.thread.join()
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return self.result


# --- the column fixers ----------------------------------------------------------------------


@dataclass(frozen=True)
class Fix:
    """The outcome of all rules of one column on one value."""

    value: Any
    rule: str | None = None  # rules that changed it, joined by '+'
    failure: str | None = None  # quarantine rule
    reason: str | None = None


@dataclass
class ColumnPlan:
    """The rules of one column, in the order they apply."""

    name: str
    kind: str
    required: bool
    steps: list[Callable[[Any], tf.Outcome]]
    step_failure: list[str]  # quarantine rule of each step when it fails
    date_only: bool = False
    date_decision: dict[str, Any] | None = None
    # Values a switched-off rule would have fixed: left exactly as they are, not
    # quarantined as unfixable by the rules that follow.
    keep_blank: bool = False
    keep_tokens: frozenset[str] = frozenset()
    tokens: frozenset[str] = frozenset()  # the placeholder tokens its rules turn to NULL
    # A SQL predicate over ``{c}`` (the column) true only for values every rule keeps as
    # they are, and its parameters: such values never reach Python. None: no such test.
    kept_sql: tuple[str, list[Any]] | None = None
    # A SELECT of ``(id, new)`` over a table ``{vals}`` of ``(id, v)``, and its parameters:
    # the values whose rules' outcome SQL can tell exactly (slash dates of the column's
    # decided order, rewritten to ISO by rule ``DATE_REWRITE_RULE``), with that outcome;
    # the other values go to Python. None: no such rewrite.
    rewrite_sql: tuple[str, list[Any]] | None = None

    # Results per distinct short value (dates and ids repeat a lot); None: no memo.
    memo: dict[tuple[type, Any], Fix] | None = None
    # A cheap test that a value is already in its final form (no rule would touch it).
    fast: Callable[[Any], bool] | None = None
    # The same test for a whole batch of the column at once, in C where it can be.
    fast_batch: Callable[[Sequence[Any]], bool] | None = None

    def fix_batch(self, col: Sequence[Any]) -> list[Fix | None] | None:
        """The fix of every value of a batch of the column; None when nothing changes."""
        if self.fast_batch is not None and self.fast_batch(col):
            return None
        if self.memo is None and self.fast is not None:
            fast, slow = self.fast, self._apply_slow
            fixes = [None if v is None or fast(v) else slow(v) for v in col]
        else:
            fixes = list(map(self.apply, col))
        return None if fixes.count(None) == len(fixes) else fixes

    def apply(self, value: Any) -> Fix | None:
        """The fix of one value; None when every rule keeps it as it is."""
        if value is None:
            return None
        memo = self.memo
        if memo is not None:
            t = type(value)
            if t is not str or len(value) <= MEMO_TEXT_CHARS:
                key = (t, value)  # the type too: 5, 5.0 and True are equal keys otherwise
                hit = memo.get(key, _MISS)
                if hit is _MISS:
                    hit = self._apply(value)
                    if len(memo) >= MEMO_ENTRIES:
                        memo.clear()
                    memo[key] = hit
                return hit  # type: ignore[return-value]
        return self._apply(value)

    def _apply(self, value: Any) -> Fix | None:
        if self.fast is not None and self.fast(value):
            return None
        return self._apply_slow(value)

    def _apply_slow(self, value: Any) -> Fix | None:
        if type(value) is str and (self.keep_blank or self.keep_tokens):
            stripped = value.strip()
            if (self.keep_blank and not stripped) or stripped in self.keep_tokens:
                return None
        rules: list[str] = []
        for step, failure in zip(self.steps, self.step_failure):
            out = step(value)
            if out.reason is not None:
                return Fix(value, "+".join(rules) or None, failure, out.reason)
            if out.rule is not None:
                rules.append(out.rule)
                value = out.value
            if value is None:
                break
        return Fix(value, "+".join(rules)) if rules else None


_MISS = object()
MEMO_ENTRIES = 4096  # per column: repeated dates and ids hit, memory stays small
MEMO_TEXT_CHARS = 64


def _range_of(col: Any) -> tuple[float | None, float | None, bool, bool] | None:
    for check in col.checks:
        if check.name == "in_range":
            s = check.statistics
            low, high = s.get("min_value"), s.get("max_value")
            low = None if low is None or low == float("-inf") else low
            high = None if high is None or high == float("inf") else high
            return low, high, bool(s.get("include_min", True)), bool(s.get("include_max", True))
    return None


def _date_order(decision: dict[str, Any] | None, locale: Order) -> tuple[Order | None, bool]:
    """(order slash dates are read in, ambiguous) from the profiler's decision of a column.

    A column where both orders are proven (a day above 12 in first place somewhere and
    in second place elsewhere) has no trustworthy order: its slash dates are quarantined.
    """
    if decision is None:
        return locale, False
    counts = decision.get("counts") or {}
    if counts.get("day_first") and counts.get("month_first"):
        return None, False
    if decision.get("ambiguous"):
        return locale, True
    order = decision.get("order")
    return (Order(order) if order else locale), False


def plan_table(
    table: str,
    schema: Any,
    present: Sequence[str],
    settings: Settings,
    decisions: dict[str, dict[str, Any] | None],
    today: date,
) -> tuple[list[ColumnPlan], list[str]]:
    """The rules of every column of a contract table; also the ambiguous date columns."""
    cs = settings.clean
    locale = Order(settings.date_locale)
    global_tokens = placeholder_set(settings.placeholder_tokens)
    extra_tokens = settings.column_placeholders.get(table, {})
    plans: list[ColumnPlan] = []
    ambiguous: list[str] = []
    for name in present:
        col = schema.columns.get(name)
        if col is None:
            continue
        kind = spec.kind(col)
        own_tokens = placeholder_set([*spec.placeholders(col), *extra_tokens.get(name, ())])
        steps: list[Callable[[Any], tf.Outcome]] = []
        failures: list[str] = []
        typed = kind != "text"
        if cs.null_empty_strings and (typed or cs.text_columns_empty_to_null):
            steps.append(tf.blank_to_null)
            failures.append("")
        tokens = (global_tokens | own_tokens) if typed else own_tokens
        if cs.null_placeholders and tokens:
            steps.append(lambda v, t=tokens: tf.placeholder_to_null(v, t))
            failures.append("")
        plan = ColumnPlan(name, kind, not col.nullable, steps, failures)
        if cs.null_placeholders:
            plan.tokens = tokens
        if typed:
            plan.keep_blank = not cs.null_empty_strings
            plan.keep_tokens = frozenset() if cs.null_placeholders else tokens
        if kind in spec.DATE_KINDS:
            plan.date_only = kind == "date"
            plan.date_decision = decisions.get(name)
            if cs.fix_dates:
                order, is_ambiguous = _date_order(plan.date_decision, locale)
                if is_ambiguous:
                    ambiguous.append(name)
                steps.append(_date_step(order, plan.date_only, cs.null_unparseable_dates))
                failures.append(Q_DATE)
                days = spec.not_future_days(col)
                if days is not None:
                    steps.append(_future_step(tf.future_limit(today, days), plan.date_only, cs.out_of_range))
                    failures.append(Q_FUTURE)
                if order is not None:
                    limit = tf.future_limit(today, days) if days is not None else None
                    plan.rewrite_sql = _slash_rewrite_sql(order, plan.date_only, limit, plan.tokens | plan.keep_tokens)
        elif kind == "integer" and cs.fix_numbers:
            steps.append(tf.normalise_integer)
            failures.append(Q_INTEGER)
        elif kind == "numeric" and cs.fix_numbers:
            steps.append(tf.normalise_number)
            failures.append(Q_NUMBER)
        elif kind == "text" and spec.is_long_text(col) and cs.text_hygiene:
            steps.append(lambda v, n=cs.max_blank_lines: tf.text_hygiene(v, n))
            failures.append("")
        bounds = _range_of(col)
        if bounds is not None and kind in ("integer", "numeric") and cs.fix_numbers:
            steps.append(_range_step(bounds, cs.out_of_range))
            failures.append(Q_RANGE)
        if not (kind == "text" and spec.is_long_text(col)):
            plan.memo = {}
        plan.fast = _fast_check(plan, cs, tokens if cs.null_placeholders else frozenset(), bounds, col, today)
        plan.kept_sql = _kept_sql(plan, cs, bounds, col, today)
        plan.fast_batch = _fast_batch_check(plan, cs, bounds)
        if steps:
            plans.append(plan)
        elif plan.required:
            plans.append(plan)  # no rule, but NULL in it still sends the row to quarantine
    return plans, ambiguous


def _fast_check(
    plan: ColumnPlan,
    cs: CleanSettings,
    tokens: frozenset[str],
    bounds: tuple[float | None, float | None, bool, bool] | None,
    col: Any,
    today: date,
) -> Callable[[Any], bool] | None:
    """A predicate true only for values every rule of the column would keep as they are."""
    kind = plan.kind
    if kind in spec.DATE_KINDS and cs.fix_dates:
        pattern = tf.ISO_DATE_TEXT if plan.date_only else tf.ISO_TIMESTAMP_TEXT
        days = spec.not_future_days(col)
        limit = tf.future_limit(today, days).isoformat() if days is not None else None

        def date_ok(v: Any) -> bool:
            if type(v) is not str or pattern.match(v) is None or v in tokens:
                return False
            if limit is not None and v[:10] > limit:
                return False
            try:
                datetime.fromisoformat(v)
            except ValueError:
                return False
            return True

        return date_ok
    if kind in ("integer", "numeric") and cs.fix_numbers:
        types = (int,) if kind == "integer" else (int, float)
        low, high, inc_low, inc_high = bounds if bounds is not None else (None, None, True, True)

        def number_ok(v: Any) -> bool:
            if type(v) not in types:
                return False
            if type(v) is float and not math.isfinite(v):
                return False
            if type(v) is int and not BIGINT_MIN <= v <= BIGINT_MAX:
                return False
            return tf.check_range(v, low, high, inc_low, inc_high) is None if bounds is not None else True

        return number_ok
    if kind == "text" and spec.is_long_text(col) and cs.text_hygiene:
        blank_rule = cs.null_empty_strings and cs.text_columns_empty_to_null
        most = cs.max_blank_lines

        def text_ok(v: Any) -> bool:
            if type(v) is not str or "\x00" in v or "\r" in v or v.count("\n") > most:
                return False
            if blank_rule and not v.strip():
                return False
            return not tokens or v.strip() not in tokens

        return text_ok
    return None


def _kept_sql(
    plan: ColumnPlan, cs: CleanSettings, bounds: tuple[float | None, float | None, bool, bool] | None, col: Any, today: date
) -> tuple[str, list[Any]] | None:
    """``_fast_check`` in SQL, as far as SQLite can say it exactly (else the value goes
    to Python): numbers of the column's kind within its bounds; ISO dates that are real
    calendar dates (from a julian day back to text unchanged: SQLite keeps 2025-02-30
    as it is when it does not go through the julian day), not past the future
    limit, not a token."""
    kind = plan.kind
    tests: list[str] = []
    args: list[Any] = []
    if kind in ("integer", "numeric") and cs.fix_numbers:
        if kind == "integer":
            tests.append("typeof({c}) = 'integer'")
        else:
            tests.append("typeof({c}) IN ('integer', 'real') AND {c} BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308")
        low, high, inc_low, inc_high = bounds if bounds is not None else (None, None, True, True)
        if low is not None:
            tests.append("{c} >= ?" if inc_low else "{c} > ?")
            args.append(low)
        if high is not None:
            tests.append("{c} <= ?" if inc_high else "{c} < ?")
            args.append(high)
    elif kind in spec.DATE_KINDS and cs.fix_dates:
        if plan.date_only:
            tests.append("typeof({c}) = 'text' AND {c} GLOB ? AND strftime('%Y-%m-%d', julianday({c})) = {c}")
            args.append("[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]")
        else:
            tests.append("typeof({c}) = 'text' AND {c} GLOB ? AND strftime('%Y-%m-%d %H:%M:%S', julianday({c})) = {c}")
            args.append("[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]")
        tests.append("{c} >= '0001'")  # year 0 is no date in Python
        days = spec.not_future_days(col)
        if days is not None:
            tests.append("substr({c}, 1, 10) <= ?")
            args.append(tf.future_limit(today, days).isoformat())
        tokens = sorted(plan.tokens | plan.keep_tokens)
        if tokens:
            tests.append("{c} NOT IN (" + ", ".join("?" for _ in tokens) + ")")
            args.extend(tokens)
    else:
        return None
    # coalesce by the caller: a NULL (strftime of no date) must not count as kept
    return "(" + " AND ".join(f"({t})" for t in tests) + ")", args


DATE_REWRITE_RULE = "date_iso"
# The time of day a slash date may have for SQL to rewrite it: H:MM, HH:MM, H:MM:SS, HH:MM:SS.
_SQL_TIMES = ("[0-9]:[0-9][0-9]", "[0-9][0-9]:[0-9][0-9]", "[0-9]:[0-9][0-9]:[0-9][0-9]", "[0-9][0-9]:[0-9][0-9]:[0-9][0-9]")


def _slash_rewrite_sql(order: Order, date_only: bool, limit: date | None, tokens: frozenset[str]) -> tuple[str, list[Any]]:
    """``ColumnPlan.rewrite_sql`` of a date column whose slash dates are read in ``order``.

    What ``tf.rewrite_date`` does with the bulk of a raw column, in SQL: ``D/M/YYYY``
    (one or two digits for day and month; ``/``, ``.`` or ``-``, the same twice) and, in
    a timestamp column, an optional `` H:MM`` or `` H:MM:SS`` (one or two digits for the
    hour), ASCII digits only, nothing before or after: the parts are cut out by position
    (the value is exactly their concatenation), and the ISO text is kept only when it is
    a real date and time (unchanged through a julian day: 31/02, hour 24, minute 60 are
    not), its year 1000 or later (``strftime`` writes shorter years short), not past the
    future limit, and the value is no token. Everything else (other shapes, AM/PM,
    fractions, a time in a date-only column, a failing value) is left to Python.
    """
    first_is_day = order is Order.DAY_FIRST
    day, month = ("f1", "f2") if first_is_day else ("f2", "f1")
    args: list[Any] = []
    # Two digits for day, month and hour: the last two of the field with a 0 before it.
    ymd = f"y || '-' || substr('0' || {month}, -2) || '-' || substr('0' || {day}, -2)"
    if date_only:
        new = ymd
        time_ok = "sp = '' AND tm = ''"
        proof = "date(julianday(new))"  # strftime('%Y-%m-%d', ...)
    else:
        # H:MM, HH:MM, H:MM:SS, HH:MM:SS -> HH:MM:SS
        clock = "substr('0' || tm, -length(tm) - (length(tm) IN (4, 7)))"
        new = f"{ymd} || ' ' || CASE WHEN tm = '' THEN '00:00:00' WHEN length(tm) < 6 THEN {clock} || ':00' ELSE {clock} END"
        time_ok = "((sp = '' AND tm = '') OR (sp = ' ' AND (" + " OR ".join("tm GLOB ?" for _ in _SQL_TIMES) + ")))"
        args.extend(_SQL_TIMES)
        proof = "datetime(julianday(new))"  # strftime('%Y-%m-%d %H:%M:%S', ...)
    # The parts f1 sep f2 sep2 y sp tm, cut by position: a and b are 1 when the day or
    # month field has two digits. Each step is materialized: SQLite would otherwise copy
    # the expressions of one step into every use of them in the next.
    parts = (
        "WITH pos AS MATERIALIZED (SELECT id, v, a, substr(v, 4 + a, 1) GLOB '[0-9]' AS b FROM ("
        "SELECT id, v, substr(v, 2, 1) GLOB '[0-9]' AS a FROM {vals} "
        "WHERE typeof(v) = 'text' AND v GLOB '[0-9]*[/.-]*[0-9]' AND length(v) BETWEEN 8 AND 19)), "
        "parts AS MATERIALIZED (SELECT id, v, substr(v, 1, 1 + a) AS f1, substr(v, 2 + a, 1) AS sep, "
        "substr(v, 3 + a, 1 + b) AS f2, substr(v, 4 + a + b, 1) AS sep2, substr(v, 5 + a + b, 4) AS y, "
        "substr(v, 9 + a + b, 1) AS sp, substr(v, 10 + a + b) AS tm FROM pos)"
    )
    tests = [
        "sep IN ('/', '.', '-')",
        "sep2 = sep",
        "f2 GLOB '[0-9]*'",
        "y GLOB '[0-9][0-9][0-9][0-9]'",
        "y >= '1000'",
        time_ok,
    ]
    if tokens:
        tests.append("v NOT IN (" + ", ".join("?" for _ in tokens) + ")")
        args.extend(sorted(tokens))
    proven = f"{proof} = new"
    if limit is not None:
        proven += " AND substr(new, 1, 10) <= ?"
        args.append(limit.isoformat())
    sql = (
        f"{parts}, rewritten AS MATERIALIZED (SELECT id, {new} AS new FROM parts WHERE "
        + " AND ".join(f"({t})" for t in tests)
        + f") SELECT id, new FROM rewritten WHERE {proven}"
    )
    return sql, args


def _fast_batch_check(
    plan: ColumnPlan, cs: CleanSettings, bounds: tuple[float | None, float | None, bool, bool] | None
) -> Callable[[Sequence[Any]], bool] | None:
    """A whole-batch form of the number columns' fast check: true only when every
    non-NULL value of the batch passes it (types, finiteness and bounds from min/max)."""
    if plan.kind not in ("integer", "numeric") or not cs.fix_numbers:
        return None
    allowed = {int, type(None)} if plan.kind == "integer" else {int, float, type(None)}
    low, high, inc_low, inc_high = bounds if bounds is not None else (None, None, True, True)

    def numbers_ok(col: Sequence[Any]) -> bool:
        types = set(map(type, col))
        if not types <= allowed:
            return False
        values = [v for v in col if v is not None] if type(None) in types else col
        if not values:
            return True
        if float in types and not all(map(math.isfinite, values)):
            return False
        lo, hi = min(values), max(values)
        if int in types and not (BIGINT_MIN <= lo and hi <= BIGINT_MAX):
            return False
        if bounds is not None:
            return tf.check_range(lo, low, high, inc_low, inc_high) is None and tf.check_range(hi, low, high, inc_low, inc_high) is None
        return True

    return numbers_ok


def _missing_positions(col: Sequence[Any]) -> list[int]:
    """Positions of NULL, empty and whitespace-only values."""
    types = set(map(type, col))
    if types == {str}:
        if all(map(str.strip, col)):
            return []
    elif str not in types and type(None) not in types:
        return []
    return [j for j, v in enumerate(col) if v is None or (type(v) is str and not v.strip())]


def _date_step(order: Order | None, date_only: bool, null_unparseable: bool) -> Callable[[Any], tf.Outcome]:
    def step(value: Any) -> tf.Outcome:
        out = tf.rewrite_date(value, order, date_only)
        if out.reason is not None and null_unparseable:
            return tf.Outcome(None, "unparseable_to_null")
        return out

    return step


def _future_step(limit: date, date_only: bool, policy: str) -> Callable[[Any], tf.Outcome]:
    def step(value: Any) -> tf.Outcome:
        if not isinstance(value, str) or not tf.is_future(value, limit):
            return tf.keep(value)
        if policy == "cap":
            return tf.cap_future(value, limit, date_only)
        return tf.fail(value, f"{value} is later than {limit.isoformat()}")

    return step


def _range_step(bounds: tuple[float | None, float | None, bool, bool], policy: str) -> Callable[[Any], tf.Outcome]:
    low, high, inc_low, inc_high = bounds

    def step(value: Any) -> tf.Outcome:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return tf.keep(value)
        if policy == "cap":
            return tf.cap_range(value, low, high, inc_low, inc_high)
        reason = tf.check_range(value, low, high, inc_low, inc_high)
        return tf.keep(value) if reason is None else tf.fail(value, reason)

    return step


# --- the build -----------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _row_key(values: Sequence[Any]) -> str | None:
    if not values:
        return None
    if len(values) == 1:
        v = values[0]
        if v is None or type(v) is str:
            return v
        return str(v) if type(v) is int else json.dumps(_jsonable(v))
    return "[" + ", ".join(map(_json_part, values)) + "]"


_encode_text = json.encoder.encode_basestring  # the C encoder json.dumps uses for str


def _json_part(v: Any) -> str:
    """``json.dumps(v, ensure_ascii=False)`` for one key part, without its overhead."""
    t = type(v)
    if t is str:
        return _encode_text(v)
    if t is int:
        return str(v)
    return json.dumps(_jsonable(v), ensure_ascii=False)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray)):
        return {"hex": bytes(value).hex()}
    return str(value)


def _row_json(columns: Sequence[str], values: Sequence[Any]) -> str:
    return json.dumps({c: _jsonable(v) for c, v in zip(columns, values)}, ensure_ascii=False)


def _disk_full(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "database or disk is full" in text or "disk i/o error" in text or (
        isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    )


class _Builder:
    """Writes the cleaned copy into the temporary file, in one transaction."""

    def __init__(self, config: CleanConfig, source: SQLiteSource, temp: Path, run_id: str, today: date, profile: Any) -> None:
        self.config = config
        self.settings = config.settings
        self.cs: CleanSettings = config.settings.clean
        self.source = source
        self.temp = temp
        self.run_id = run_id
        self.today = today
        self.profile = profile
        self.conn = sqlite3.connect(Path(temp).resolve().as_uri(), uri=True, isolation_level=None)
        # The source, read-only, beside the output: SQLite copies the rows in C.
        self.conn.execute("ATTACH DATABASE ? AS src", (f"{Path(source.path).resolve().as_uri()}?mode=ro",))
        self.conn.text_factory = LENIENT_TEXT
        self.conn.create_function("sdetl_row_key", 1, lambda v: _row_key([v]), deterministic=True)
        self.conn.create_function("sdetl_json_part", 1, _json_part, deterministic=True)
        # The temporary file is thrown away on any failure: no journal file beside it,
        # no fsync per transaction (the finished file is fsynced once before the rename).
        self.conn.execute("PRAGMA journal_mode = OFF")
        self.conn.execute("PRAGMA synchronous = OFF")
        # 16 KiB pages: the long comment texts take fewer overflow pages; at 260K rows
        # writing the comments costs half the CPU of 4 KiB pages, and reading them back
        # (the output's gate, the migration) a sixth less. Set before the first write.
        self.conn.execute(f"PRAGMA page_size = {OUTPUT_PAGE_SIZE}")
        self.conn.execute("PRAGMA cache_size = -32768")
        self.conn.execute("PRAGMA temp_store = FILE")
        # The working tables (temp.narrow, the stage, the distinct values) spill to a
        # file past this cache, as the output does past its own: bounded either way, but
        # SQLite's 2 MB default made them write and read back most of their pages.
        self.conn.execute("PRAGMA temp.cache_size = -32768")
        self.changes: Counter[tuple[str, str, str]] = Counter()
        self.quarantined: Counter[tuple[str, str]] = Counter()
        self.tables: dict[str, TableSummary] = {}
        self.date_columns: dict[str, dict[str, Any]] = {}
        self.ambiguous: list[str] = []
        self.rows_since_check = 0
        self.progress: Progress | None = None
        self.stopping: threading.Event | None = None  # set: a builder beside the main one stops
        # the clock of the output's profile, for the tables judged beside (``_Beside``);
        # None: the output's gate judges every table itself
        self.gate_now: datetime | None = None
        self.beside: _Beside | None = None  # after a build: the builder beside, still judging its tables

    # -- health

    def health_check(self) -> None:
        """Stop cleanly, naming the resource, when disk, memory or the output run short."""
        folder = self.temp.parent
        free = shutil.disk_usage(folder).free
        if free < self.cs.min_free_disk_mb * MB:
            raise ResourceExhausted(
                f"disk: only {free / MB:.1f} MB free in {folder} for the output (at least {self.cs.min_free_disk_mb} MB needed)",
                "free space there, write --out to a larger disk, or lower clean.min_free_disk_mb",
            )
        rss = current_rss_mb()
        if rss > self.cs.max_memory_mb:
            raise ResourceExhausted(
                f"memory: the clean uses {rss:.0f} MB, over clean.max_memory_mb = {self.cs.max_memory_mb}",
                "lower clean.batch_rows, or raise clean.max_memory_mb if the machine has room",
            )
        available = psutil.virtual_memory().available / MB
        if available < MIN_AVAILABLE_MEMORY_MB:
            raise ResourceExhausted(
                f"memory: only {available:.0f} MB of memory left on this machine",
                "stop other programs or run on a machine with more memory",
            )
        if not self.temp.exists() or not os.access(self.temp, os.W_OK):
            raise ResourceExhausted(
                f"output: the temporary output {self.temp} is gone or no longer writable",
                "check that nothing else removes or locks files in that folder, then run again",
            )
        log.debug("health: %.0f MB free for the output, %.0f MB resident, %.0f MB available", free / MB, rss, available)

    def _advance(self, rows: int) -> None:
        if self.stopping is not None and self.stopping.is_set():
            raise _Stopped()
        self.rows_since_check += rows
        if self.progress is not None:
            self.progress.advance(rows)
        if self.rows_since_check >= self.cs.health_check_rows:
            self.rows_since_check = 0
            self.health_check()

    # -- the whole build

    def build(self) -> None:
        tables = self.source.tables()  # data tables only: a Source leaves out _audit and _quarantine
        # The progress bar's total: the profile of this very source counted the rows
        # (count(*) reads every page of the table again: ~0.7 s at 260K rows).
        profiled = getattr(self.profile, "tables", None) or {}
        total = sum(profiled[t].rows if t in profiled else self.source.row_count(t) for t in tables)
        self.health_check()
        # The tables to clean after the first are built beside it (``_Beside``: a second
        # connection in a forked process) when there are enough rows.
        cleaned = [t for t in tables if REGISTRY.get(t) is not None and t not in VERBATIM_TABLES]
        beside: _Beside | None = None
        if total >= BESIDE_ROWS and len(cleaned) > 1:
            beside = _Beside(self, cleaned[1:], self.gate_now)
        built = False
        try:
            self.conn.execute("BEGIN")
            self._create_bookkeeping()
            with Progress("clean", total=total, stream=sys.stderr if self.config.progress else _NullStream()) as progress:
                self.progress = progress
                for table in tables:
                    schema = REGISTRY.get(table)
                    if beside is not None and table in beside.tables:
                        self._take_beside(beside, table)
                    elif schema is None or table in VERBATIM_TABLES:
                        self._copy_verbatim(table)
                    else:
                        self._clean_table(table, schema)
            self.conn.execute("DROP TABLE IF EXISTS temp.dropped_rows")
            self.conn.execute("CREATE TEMP TABLE dropped_rows (tbl TEXT, rid INTEGER, PRIMARY KEY (tbl, rid)) WITHOUT ROWID")
            for table in tables:
                schema = REGISTRY.get(table)
                if schema is None or table in VERBATIM_TABLES:
                    continue
                if beside is not None and table in beside.tables:
                    if table == beside.tables[0]:
                        # their duplicates were resolved beside: the quarantine rows of the
                        # dropped rows here, where resolving them here would have written them
                        self.conn.execute(f"INSERT INTO main.{QUARANTINE_TABLE} SELECT * FROM part.{QUARANTINE_TABLE} WHERE rowid > ?", (beside.rule_rows,))
                        self.conn.execute("INSERT INTO temp.dropped_rows SELECT tbl, rid FROM part.beside_dropped")
                    if self._strategy(table) != "fail":
                        continue
                self._resolve_duplicates(table, schema)
            self.conn.execute(
                f"DELETE FROM {AUDIT_TABLE} WHERE run_id = ? AND (table_name, source_rowid) IN (SELECT tbl, rid FROM temp.dropped_rows)",
                (self.run_id,),
            )
            self.conn.execute("DROP TABLE temp.dropped_rows")
            self._count_changes()
            self.conn.execute("COMMIT")
            if beside is not None:
                self.conn.execute("DETACH DATABASE part")
            built = True
        finally:
            if beside is not None:
                if built and beside.gated:
                    self.beside = beside  # still judging its tables: stopped by the caller after the gate
                else:
                    beside.stop()  # joined (stopped first if still running), its scratch file removed

    def build_beside(self, tables: Sequence[str]) -> int:
        """In ``_Beside``'s process (or thread), into the scratch file: ``tables`` cleaned and their
        duplicates resolved (strategy ``fail`` aside: the main builder checks those) as
        ``build`` does, the dropped rows listed in ``beside_dropped``; the number of
        quarantine rows written before the duplicates' (those go after every table's)."""
        self.conn.execute("BEGIN")
        for name, columns in ((AUDIT_TABLE, AUDIT_COLUMNS), (QUARANTINE_TABLE, QUARANTINE_COLUMNS)):
            self.conn.execute(f"CREATE TABLE {quote_sqlite(name)} ({', '.join(quote_sqlite(c) for c in columns)})")
        self._advance(0)
        for table in tables:
            self._clean_table(table, REGISTRY[table])
        rule_rows = self.conn.execute(f"SELECT coalesce(max(rowid), 0) FROM {QUARANTINE_TABLE}").fetchone()[0]
        self.conn.execute("CREATE TEMP TABLE dropped_rows (tbl TEXT, rid INTEGER, PRIMARY KEY (tbl, rid)) WITHOUT ROWID")
        for table in tables:
            if self._strategy(table) != "fail":
                self._resolve_duplicates(table, REGISTRY[table])
        # the dropped rows' audit rows are deleted by the main builder, after the copy, as
        # it deletes its own: the audit rows keep the rowids of a build by one connection
        self.conn.execute("CREATE TABLE main.beside_dropped AS SELECT tbl, rid FROM temp.dropped_rows")
        self.conn.execute("COMMIT")
        return int(rule_rows)

    def _take_beside(self, beside: _Beside, table: str) -> None:
        """A table built beside: its rows (same rowids) copied into the output; with the
        first, the audit and quarantine rows of them all, appended where building them
        here would have written them (the tables between write none)."""
        q = quote_sqlite
        if table == beside.tables[0]:
            part = beside.wait()  # its error, if any, raised here: where building these tables would raise it
            self.conn.execute("ATTACH DATABASE ? AS part", (f"{beside.path.resolve().as_uri()}?mode=ro",))
            # same columns in the same order, no index: SQLite copies the records without decoding them
            self.conn.execute(f"INSERT INTO main.{AUDIT_TABLE} SELECT * FROM part.{AUDIT_TABLE}")
            self.conn.execute(f"INSERT INTO main.{QUARANTINE_TABLE} SELECT * FROM part.{QUARANTINE_TABLE} WHERE rowid <= ?", (beside.rule_rows,))
            self.tables.update(part.tables)
            self.date_columns.update(part.date_columns)
            self.ambiguous.extend(part.ambiguous)
            self.quarantined.update(part.quarantined)
        columns = [r[1] for r in self.conn.execute(f"PRAGMA part.table_info({q(table)})")]
        self._create(table, columns)
        listed = ", ".join(q(c) for c in columns)
        self.conn.execute(f"INSERT INTO main.{q(table)} (rowid, {listed}) SELECT rowid, {listed} FROM part.{q(table)} ORDER BY rowid")
        self._advance(self.tables[table].rows_in)

    def _count_changes(self) -> None:
        """Changed cells per table, column and rule, counted from this run's audit rows."""
        rows = self.conn.execute(
            f"SELECT table_name, column_name, rule, count(*) FROM {AUDIT_TABLE} WHERE run_id = ? GROUP BY 1, 2, 3",
            (self.run_id,),
        ).fetchall()
        per_table: Counter[str] = Counter()
        for table, column, rule, n in rows:
            self.changes[(table, column, rule)] = n
            per_table[table] += n
        for table, s in self.tables.items():
            self.tables[table] = dataclasses.replace(s, changed_cells=per_table.get(table, 0))

    def _create_bookkeeping(self) -> None:
        for name, columns in ((AUDIT_TABLE, AUDIT_COLUMNS), (QUARANTINE_TABLE, QUARANTINE_COLUMNS)):
            self.conn.execute(f"CREATE TABLE {quote_sqlite(name)} ({', '.join(quote_sqlite(c) for c in columns)})")
            if self.source.has_table(name):
                # History of earlier runs (cleaning a cleaned file) is kept.
                have = [c for c, _ in self.source.columns(name)]
                shared = [c for c in columns if c in have]
                self._copy_rows(name, name, shared)

    def _copy_verbatim(self, table: str) -> None:
        columns = [c for c, _ in self.source.columns(table)]
        self._create(table, columns)
        self._copy_rows(table, table, columns)
        n = self.source.row_count(table)
        self.tables[table] = TableSummary(n, n, 0, 0, 0)

    def _copy_rows(self, source_table: str, target_table: str, columns: Sequence[str]) -> None:
        cols = ", ".join(quote_sqlite(c) for c in columns)
        marks = ", ".join("?" for _ in columns)
        insert = f"INSERT INTO {quote_sqlite(target_table)} (rowid, {cols}) VALUES (?, {marks})"
        for batch in self._batches(source_table, columns):
            self.conn.executemany(insert, batch)
            if target_table not in (AUDIT_TABLE, QUARANTINE_TABLE):
                self._advance(len(batch))

    def _create(self, table: str, columns: Sequence[str]) -> None:
        # No declared types: every value keeps the storage class it is written with.
        self.conn.execute(f"CREATE TABLE {quote_sqlite(table)} ({', '.join(quote_sqlite(c) for c in columns)})")

    def _batches(self, table: str, columns: Sequence[str]) -> Iterator[list[tuple[Any, ...]]]:
        cols = ", ".join(["rowid", *(quote_sqlite(c) for c in columns)])
        cur = self.source.conn.execute(f"SELECT {cols} FROM {quote_sqlite(table)} ORDER BY rowid")
        while batch := cur.fetchmany(self.cs.batch_rows):
            yield batch

    def _decisions(self, table: str) -> dict[str, dict[str, Any] | None]:
        tables = getattr(self.profile, "tables", {}) or {}
        profile = tables.get(table)
        if profile is None:
            return {}
        return {name: getattr(col, "date", None) for name, col in profile.columns.items()}

    def _clean_table(self, table: str, schema: Any) -> None:
        source_cols = [c for c, _ in self.source.columns(table)]
        contract_cols = [c for c in schema.columns if c in source_cols]
        columns = contract_cols + [c for c in source_cols if c not in schema.columns]
        self._create(table, columns)
        decisions = self._decisions(table)
        plans, ambiguous = plan_table(table, schema, contract_cols, self.settings, decisions, self.today)
        self.ambiguous.extend(f"{table}.{c}" for c in ambiguous)
        for p in plans:
            if p.kind in spec.DATE_KINDS:
                d = p.date_decision or {}
                read_as, _ = _date_order(p.date_decision, Order(self.settings.date_locale))
                self.date_columns[f"{table}.{p.name}"] = {
                    "format": d.get("format"),
                    "order": d.get("order"),
                    "ambiguous": bool(d.get("ambiguous")),
                    "inconsistent": bool(d.get("inconsistent")),
                    # how its slash dates were read (None: both orders proven, quarantined)
                    "read_as": read_as.value if read_as else None,
                    "counts": d.get("counts", {}),
                }
        index = {c: i for i, c in enumerate(columns)}
        work = [(index[p.name], p) for p in plans]
        key = spec.facts(schema).key
        key_idx = [index[k] for k in key if k in index]
        key_present = len(key_idx) == len(key)
        q = quote_sqlite
        src = f"src.{q(table)}"
        cols_sql = ", ".join(q(c) for c in columns)
        insert = f"INSERT INTO main.{q(table)} (rowid, {cols_sql}) VALUES (?, {', '.join('?' for _ in columns)})"
        quarantine_insert = f"INSERT INTO {QUARANTINE_TABLE} VALUES ({', '.join('?' for _ in QUARANTINE_COLUMNS)})"
        # Set-based: each short-valued column's rules run once per distinct value (in
        # Python, as before), their outcomes go to small temporary tables, and SQLite
        # copies the rows, joined to them, in C. Rows with a cell that fails a rule,
        # a missing required value, or long text that may need hygiene take the row
        # path below (the same code as a whole-row clean), in source order.
        # The short-valued columns the rules and the row key read, copied once into
        # temp.narrow (same rowids): every per-column pass below reads that instead of
        # the source rows with their long text (one pass over the source, not one per column).
        short = {p.name for _, p in work if p.memo is not None} | (set(key) if key_present else set())
        narrow_cols = [c for c in columns if c in short]
        self.conn.execute("DROP TABLE IF EXISTS temp.narrow")
        narrow = src
        if narrow_cols:
            narrow = "temp.narrow"
            listed = ", ".join(q(c) for c in narrow_cols)
            self.conn.execute(f"CREATE TEMP TABLE narrow ({listed})")
            self.conn.execute(f"INSERT INTO temp.narrow (rowid, {listed}) SELECT rowid, {listed} FROM {src} ORDER BY rowid")
        changed: list[tuple[int, str]] = []  # (column index, its temporary table of changed values)
        slow_when: list[str] = []  # SQL predicates (on alias s) sending a row to the row path: on temp.narrow
        slow_text: list[str] = []  # the same on the source (long text)
        slow_args: list[Any] = []
        for i, plan in work:
            c = f"s.{q(plan.name)}"
            if plan.required:
                (slow_when if plan.name in narrow_cols else slow_text).append(f"{c} IS NULL")
            if plan.memo is None:  # long text: unique values, judged row by row in SQL first
                when, args = self._text_suspect(plan, c)
                slow_text.append(when)
                slow_args.extend(args)
                continue
            has_changed, has_bad = self._value_outcomes(table, i, plan, narrow)
            if has_changed:
                changed.append((i, f"temp.chg_{i}"))
            if has_bad:
                slow_when.append(f"EXISTS (SELECT 1 FROM temp.bad_{i} b WHERE b.ty = typeof({c}) AND b.v = {c})")
        if narrow == src:
            slow_text, slow_when = slow_when + slow_text, []
        self.conn.execute("DROP TABLE IF EXISTS temp.slow")
        self.conn.execute("CREATE TEMP TABLE slow (rid INTEGER PRIMARY KEY)")
        if slow_when:
            self.conn.execute(f"INSERT INTO temp.slow SELECT s.rowid FROM {narrow} s WHERE {' OR '.join(slow_when)}")
        if slow_text:
            self.conn.execute(f"INSERT OR IGNORE INTO temp.slow SELECT s.rowid FROM {src} s WHERE {' OR '.join(slow_text)}", slow_args)
        # Per chunk, the changed cells of the chunk's rows are found once, into
        # temp.stage (one row per source row with a changed cell: per changed column
        # whether it changed, its old and new value and rule, and the row key of the
        # output row); the copy takes the new values from it and the audit rows are read
        # from it, instead of joining source, output and change tables again per column.
        joins = "".join(
            f" LEFT JOIN {t} m{i} ON m{i}.ty = typeof(s.{q(columns[i])}) AND m{i}.v = s.{q(columns[i])}" for i, t in changed
        )
        after = {i: f"(CASE WHEN m{i}.ty IS NULL THEN s.{q(columns[i])} ELSE m{i}.new END)" for i, _ in changed}
        row_key = self._row_key_sql([after.get(k, f"s.{q(columns[k])}") for k in key_idx]) if key_present else "NULL"
        self.conn.execute("DROP TABLE IF EXISTS temp.stage")
        stage_cols = "".join(f", h{i}, o{i}, n{i}, r{i}" for i, _ in changed)
        self.conn.execute(f"CREATE TEMP TABLE stage (rid INTEGER PRIMARY KEY, rk{stage_cols})")
        stage_insert = (
            f"INSERT INTO temp.stage SELECT s.rowid, {row_key}"
            + "".join(f", m{i}.ty IS NOT NULL, m{i}.v, m{i}.new, m{i}.rule" for i, _ in changed)
            + f" FROM {narrow} s{joins} WHERE s.rowid >= ? AND s.rowid < ? AND s.rowid NOT IN (SELECT rid FROM temp.slow)"
            + f" AND ({' OR '.join(f'm{i}.ty IS NOT NULL' for i, _ in changed) or '0'})"
        )
        exprs = {i: f"CASE WHEN g.h{i} THEN g.n{i} ELSE s.{q(columns[i])} END" for i, _ in changed}
        select = ", ".join(exprs.get(i, f"s.{q(c)}") for i, c in enumerate(columns))
        stage_join = " LEFT JOIN temp.stage g ON g.rid = s.rowid" if changed else ""
        fast_insert = (
            f"INSERT INTO main.{q(table)} (rowid, {cols_sql}) SELECT s.rowid, {select} FROM {src} s{stage_join} "
            f"WHERE s.rowid >= ? AND s.rowid < ? AND s.rowid NOT IN (SELECT rid FROM temp.slow)"
        )
        # The audit rows of a chunk, in the order of the row path: by row, then column.
        parts, part_args = [], []
        for i, _ in changed:
            parts.append(f"SELECT rid, {i} AS ci, rk, ? AS name, o{i} AS old, n{i} AS new, r{i} AS rule FROM temp.stage WHERE h{i}")
            part_args.append(columns[i])
        parts.append("SELECT rid, ci, rk, name, old, new, rule FROM temp.row_audit")
        audit_insert = (
            f"INSERT INTO {AUDIT_TABLE} ({', '.join(AUDIT_COLUMNS)}) SELECT ?, ?, rk, name, old, new, rule, ?, rid "
            f"FROM ({' UNION ALL '.join(parts)}) ORDER BY rid, ci"
        )
        self.conn.execute("DROP TABLE IF EXISTS temp.row_audit")
        self.conn.execute("CREATE TEMP TABLE row_audit (rid, ci, rk, name, old, new, rule)")
        slow_rows = f"SELECT rowid, {cols_sql} FROM {src} WHERE rowid IN (SELECT rid FROM temp.slow WHERE rid >= ? AND rid < ?) ORDER BY rowid"
        rows_in = rows_out = quarantined = 0
        for lo, hi in self._chunks(narrow):
            stamp = _now()
            if changed:
                self.conn.execute(stage_insert, (lo, hi))
            fast = self.conn.execute(fast_insert, (lo, hi)).rowcount
            n = fast
            row_audit: list[tuple[Any, ...]] = []
            cur = self.conn.execute(slow_rows, (lo, hi))
            while batch := cur.fetchmany(self.cs.batch_rows):
                out_rows, audit, quarantine = self._fix_rows(table, columns, work, key, key_idx, key_present, batch, stamp)
                self.conn.executemany(insert, out_rows)
                row_audit.extend(audit)
                if quarantine:
                    self.conn.executemany(quarantine_insert, quarantine)
                quarantined += len(quarantine)
                n += len(batch)
                rows_out += len(out_rows)
            if row_audit:
                self.conn.executemany("INSERT INTO temp.row_audit VALUES (?, ?, ?, ?, ?, ?, ?)", row_audit)
            if changed or row_audit:
                self.conn.execute(audit_insert, [self.run_id, table, stamp, *part_args])
            if row_audit:
                self.conn.execute("DELETE FROM temp.row_audit")
            if changed:
                self.conn.execute("DELETE FROM temp.stage")
            rows_in += n
            rows_out += fast
            self._advance(n)
        for i, _ in changed:
            self.conn.execute(f"DROP TABLE temp.chg_{i}")
        for i, plan in work:
            self.conn.execute(f"DROP TABLE IF EXISTS temp.bad_{i}")
        self.conn.execute("DROP TABLE temp.slow")
        self.conn.execute("DROP TABLE temp.row_audit")
        self.conn.execute("DROP TABLE temp.stage")
        self.conn.execute("DROP TABLE IF EXISTS temp.narrow")
        self.tables[table] = TableSummary(rows_in, rows_out, quarantined, 0, 0)  # changed cells: counted from the audit at the end

    def _chunks(self, src: str) -> Iterator[tuple[int, int]]:
        """Rowid ranges [lo, hi) of about ``batch_rows`` source rows each, in order."""
        step = self.cs.batch_rows
        # two subqueries: min and max of the rowid together would scan the table
        row = self.conn.execute(f"SELECT (SELECT min(rowid) FROM {src}), (SELECT max(rowid) FROM {src})").fetchone()
        if row[0] is None:
            return
        lo, last = row
        while lo <= last:
            nxt = self.conn.execute(f"SELECT rowid FROM {src} WHERE rowid >= ? ORDER BY rowid LIMIT 1 OFFSET ?", (lo, step)).fetchone()
            hi = last + 1 if nxt is None else nxt[0]
            yield lo, hi
            lo = hi

    def _value_outcomes(self, table: str, i: int, plan: ColumnPlan, rows: str | None = None) -> tuple[bool, bool]:
        """The column's rules over each distinct non-NULL value, into ``temp.chg_<i>``
        (values changed: ty, v, new, rule) and ``temp.bad_<i>`` (values sending the row
        to quarantine); whether each has rows. The values stay in SQLite (keys by id):
        Python only reads them to judge. ``rows``: the table holding the column's rows
        (default: the source table)."""
        q = quote_sqlite
        c = q(plan.name)
        conn = self.conn
        for name in ("vals", "outcomes", f"chg_{i}", f"bad_{i}"):
            conn.execute(f"DROP TABLE IF EXISTS temp.{name}")
        conn.execute("CREATE TEMP TABLE vals (id INTEGER PRIMARY KEY, ty TEXT, v)")
        kept, args = plan.kept_sql if plan.kept_sql is not None else ("0", [])
        kept = kept.replace("{c}", c)
        conn.execute(
            f"INSERT INTO temp.vals (ty, v) SELECT DISTINCT typeof({c}), {c} FROM {rows or 'src.' + q(table)} WHERE {c} IS NOT NULL AND NOT coalesce({kept}, 0)", args
        )
        conn.execute("CREATE TEMP TABLE outcomes (id INTEGER PRIMARY KEY, new, rule TEXT, bad INTEGER)")
        any_changed = any_bad = False
        unjudged = "SELECT id, v FROM temp.vals"
        if plan.rewrite_sql is not None:  # e.g. the slash dates of the column: rewritten in SQL
            rewrite, rewrite_args = plan.rewrite_sql
            done = conn.execute(
                f"INSERT INTO temp.outcomes (id, new, rule, bad) SELECT id, new, ?, 0 FROM ({rewrite.replace('{vals}', 'temp.vals')})",
                [DATE_REWRITE_RULE, *rewrite_args],
            ).rowcount
            if done:
                any_changed = True
                unjudged += " WHERE id NOT IN (SELECT id FROM temp.outcomes)"
        required = plan.required
        judge = plan._apply
        read = conn.cursor().execute(unjudged)
        while batch := read.fetchmany(self.cs.batch_rows):
            out = []
            for vid, v in batch:
                fix = judge(v)
                missing = required and type(v) is str and not v.strip()
                if fix is None:
                    if missing:
                        out.append((vid, None, None, 1))
                        any_bad = True
                    continue
                bad = fix.failure is not None or (required and (missing or fix.value is None))
                any_bad = any_bad or bad
                any_changed = any_changed or not bad
                out.append((vid, fix.value, fix.rule, 1 if bad else 0))
            if out:
                conn.executemany("INSERT INTO temp.outcomes VALUES (?, ?, ?, ?)", out)
        if any_changed:
            conn.execute(f"CREATE TEMP TABLE chg_{i} AS SELECT v.ty, v.v, o.new, o.rule FROM temp.vals v JOIN temp.outcomes o ON o.id = v.id WHERE o.bad = 0")
            conn.execute(f"CREATE INDEX temp.chg_{i}_v ON chg_{i} (v, ty)")
        if any_bad:
            conn.execute(f"CREATE TEMP TABLE bad_{i} AS SELECT v.ty, v.v FROM temp.vals v JOIN temp.outcomes o ON o.id = v.id WHERE o.bad = 1")
            conn.execute(f"CREATE INDEX temp.bad_{i}_v ON bad_{i} (v, ty)")
        conn.execute("DROP TABLE temp.vals")
        conn.execute("DROP TABLE temp.outcomes")
        return any_changed, any_bad

    def _text_suspect(self, plan: ColumnPlan, c: str) -> tuple[str, list[Any]]:
        """A SQL predicate true for every long text value a rule of ``plan`` might change
        (and some it will not): NUL, CR, a run of blank lines longer than the cap, no
        letter or digit at all (blank), a placeholder token inside."""
        cs = self.cs
        # GLOB with literal characters is a fast scan in SQLite; instr() a slow one (it
        # counts characters as it goes). A GLOB pattern cannot hold NUL, and GLOB stops
        # at the first NUL of a text: text holding NUL is told by printf('%s'), which
        # also stops there, coming back shorter in bytes (3x faster than instr).
        tests = [f"{c} GLOB ?", f"{c} GLOB ?", f"{c} GLOB ?", f"NOT {c} GLOB '*[0-9A-Za-z]*'"]
        # CR; a run of more than max_blank_lines blank lines: that many + 2 line breaks
        # in a row, or a line break followed by a space or a tab
        args: list[Any] = ["*\r*", "*" + "\n" * (int(cs.max_blank_lines) + 2) + "*", "*\n[ \t]*"]
        for tok in sorted(plan.keep_tokens | plan.tokens):
            tests.append(f"instr({c}, ?) > 0")
            args.append(tok)
        tests.append(f"length(CAST(printf('%s', {c}) AS BLOB)) < length(CAST({c} AS BLOB))")
        return f"(typeof({c}) = 'text' AND ({' OR '.join(tests)}))", args

    @staticmethod
    def _row_key_sql(keys: Sequence[str]) -> str:
        """``_row_key`` of the key columns (SQL expressions) in SQL; values it cannot
        write exactly as JSON in SQL go through ``_row_key`` itself."""
        if len(keys) == 1:
            k = keys[0]
            return f"CASE typeof({k}) WHEN 'text' THEN {k} WHEN 'integer' THEN CAST({k} AS TEXT) WHEN 'null' THEN NULL ELSE sdetl_row_key({k}) END"
        parts = []
        for k in keys:
            parts.append(
                f"CASE typeof({k}) WHEN 'integer' THEN CAST({k} AS TEXT) "
                # text JSON writes without an escape: SQLite's json_quote is then just the
                # quotes (every escape it writes, and a backslash of the text, holds a backslash)
                f"WHEN 'text' THEN iif(instr(json_quote({k}), '\\') = 0, json_quote({k}), sdetl_json_part({k})) "
                f"ELSE sdetl_json_part({k}) END"
            )
        return "'[' || " + " || ', ' || ".join(parts) + " || ']'"

    def _fix_rows(
        self,
        table: str,
        columns: Sequence[str],
        work: Sequence[tuple[int, ColumnPlan]],
        key: Sequence[str],
        key_idx: Sequence[int],
        key_present: bool,
        batch: Sequence[tuple[Any, ...]],
        stamp: str,
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """Every rule on whole rows ``(rowid, *values)``: (rows out, audit rows as
        ``(rowid, column index, row key, column, old, new, rule)``, quarantine rows)."""
        run_id = self.run_id
        cols = list(zip(*batch))  # cols[0]: rowids; cols[i + 1]: column i
        # Column by column: most cells need no change, and most rows none at all.
        row_changes: dict[int, list[tuple[int, str, Any, Any, str]]] = {}
        row_failures: dict[int, list[tuple[str, str]]] = {}
        for i, plan in work:
            col = cols[i + 1]
            fixes = plan.fix_batch(col)
            touched = [] if fixes is None else [j for j, f in enumerate(fixes) if f is not None]
            became_null = set()
            for j in touched:
                fix = fixes[j]  # type: ignore[index]
                if fix.failure is not None:
                    row_failures.setdefault(j, []).append((fix.failure, f"{plan.name}: {fix.reason}"))
                else:
                    row_changes.setdefault(j, []).append((i, plan.name, col[j], fix.value, fix.rule))
                    if fix.value is None:
                        became_null.add(j)
            if plan.required:
                is_key = plan.name in key
                rule = Q_NULL_KEY if is_key else Q_REQUIRED
                why = f"{plan.name}: missing in a required {'key ' if is_key else ''}column"
                missing = _missing_positions(col)
                for j in sorted(became_null.union(missing)) if became_null else missing:
                    row_failures.setdefault(j, []).append((rule, why))
        out_rows: list[tuple[Any, ...]] = []
        audit: list[tuple[Any, ...]] = []
        quarantine: list[tuple[Any, ...]] = []
        for j, row in enumerate(batch):
            failures = row_failures.get(j)
            cell_changes = row_changes.get(j)
            if failures is None and cell_changes is None:
                out_rows.append(row)  # (rowid, *values): unchanged
                continue
            rowid = row[0]
            original = row[1:]
            if failures is not None:
                shown_key = _row_key([original[i] for i in key_idx]) if key_present else None
                rule = failures[0][0]
                reason = "; ".join(r for _, r in failures)
                quarantine.append((run_id, table, shown_key, reason, rule, _row_json(columns, original), rowid, stamp))
                self.quarantined[(table, rule)] += 1
                continue
            values = list(original)
            for i, _, _, new_value, _ in cell_changes:  # type: ignore[union-attr]
                values[i] = new_value
            row_key = _row_key([values[i] for i in key_idx]) if key_present else None
            for i, name, old, new_value, rule in cell_changes:  # type: ignore[union-attr]
                audit.append((rowid, i, row_key, name, old, new_value, rule))
            out_rows.append((rowid, *values))
        return out_rows, audit, quarantine

    # -- duplicates, on the output in SQL (bounded memory)

    def _strategy(self, table: str) -> str:
        return self.cs.duplicates_by_table.get(table, self.cs.duplicates)

    def _resolve_duplicates(self, table: str, schema: Any) -> None:
        facts = spec.facts(schema)
        have = {r[1] for r in self.conn.execute(f"PRAGMA table_info({quote_sqlite(table)})")}
        if not facts.key or any(k not in have for k in facts.key):
            return
        q = quote_sqlite
        t = q(table)
        part = ", ".join(q(k) for k in facts.key)
        not_null = " AND ".join(f"{q(k)} IS NOT NULL" for k in facts.key)
        strategy = self._strategy(table)
        dup_groups = f"SELECT {part} FROM {t} WHERE {not_null} GROUP BY {part} HAVING count(*) > 1"
        if strategy == "fail":
            n = self.conn.execute(f"SELECT count(*) FROM ({dup_groups})").fetchone()[0]
            if n:
                sample = self.conn.execute(f"{dup_groups} LIMIT 5").fetchall()
                shown = ", ".join(_row_key(list(s)) or "?" for s in sample)
                raise FixYourData(
                    f"{table}: {n:,} keys ({', '.join(facts.key)}) appear more than once, e.g. {shown}",
                    f"remove the duplicates in the export, or set clean.duplicates (or clean.duplicates_by_table.{table}) to keep_latest or keep_first",
                )
            return
        if strategy == "keep_latest" and facts.modified_column in have:
            m = q(facts.modified_column)
            order = f"{m} IS NULL, {m} DESC, rowid DESC"
            why = f"kept the row with the latest {facts.modified_column}"
        elif strategy == "keep_latest":
            order = "rowid DESC"
            why = "kept the last row of the export (no modified column)"
        else:
            order = "rowid ASC"
            why = "kept the first row of the export"
        # The key and modified columns copied once (same rowids): the groups and the
        # window below read them twice, not the output rows with their long text.
        ordered = [*facts.key, *([facts.modified_column] if facts.modified_column in have and facts.modified_column not in facts.key else [])]
        listed = ", ".join(q(c) for c in ordered)
        self.conn.execute("DROP TABLE IF EXISTS temp.dupkeys")
        self.conn.execute(f"CREATE TEMP TABLE dupkeys ({listed})")
        self.conn.execute(f"INSERT INTO temp.dupkeys (rowid, {listed}) SELECT rowid, {listed} FROM {t} WHERE {not_null}")
        keys_groups = f"SELECT {part} FROM temp.dupkeys GROUP BY {part} HAVING count(*) > 1"
        self.conn.execute("DROP TABLE IF EXISTS temp.dropped")
        self.conn.execute("CREATE TEMP TABLE dropped (rid INTEGER PRIMARY KEY)")
        self.conn.execute(
            f"INSERT INTO temp.dropped SELECT rid FROM ("
            f"SELECT rowid AS rid, row_number() OVER (PARTITION BY {part} ORDER BY {order}) AS rn "
            f"FROM temp.dupkeys WHERE ({part}) IN ({keys_groups})) WHERE rn > 1"
        )
        self.conn.execute("DROP TABLE temp.dupkeys")
        dropped = self.conn.execute("SELECT count(*) FROM temp.dropped").fetchone()[0]
        if not dropped:
            self.conn.execute("DROP TABLE temp.dropped")
            return
        source_cols = [c for c, _ in self.source.columns(table)]
        key_sql = ", ".join(q(k) for k in facts.key)
        cur = self.conn.execute(f"SELECT d.rid, {', '.join('o.' + q(k) for k in facts.key)} FROM temp.dropped d JOIN {t} o ON o.rowid = d.rid ORDER BY d.rid")
        stamp = _now()
        src_select = f"SELECT rowid, {', '.join(q(c) for c in source_cols)} FROM {t} WHERE rowid IN "
        quarantine_insert = f"INSERT INTO {QUARANTINE_TABLE} VALUES ({', '.join('?' for _ in QUARANTINE_COLUMNS)})"
        while chunk := cur.fetchmany(500):
            keys = {r[0]: _row_key(list(r[1:])) for r in chunk}
            marks = ", ".join("?" for _ in chunk)
            originals = self.source.conn.execute(src_select + f"({marks})", list(keys)).fetchall()
            self.conn.executemany(
                quarantine_insert,
                [
                    (self.run_id, table, keys[r[0]], f"duplicate key ({key_sql}): {why}", Q_DUPLICATE, _row_json(source_cols, r[1:]), r[0], stamp)
                    for r in originals
                ],
            )
        # Audit rows describe cells of the output: the dropped rows' go with them (for
        # all tables at once at the end of the build: one pass over the audit rows).
        self.conn.execute("INSERT INTO temp.dropped_rows SELECT ?, rid FROM temp.dropped", (table,))
        self.conn.execute(f"DELETE FROM {t} WHERE rowid IN (SELECT rid FROM temp.dropped)")
        self.conn.execute("DROP TABLE temp.dropped")
        self.quarantined[(table, Q_DUPLICATE)] += dropped
        s = self.tables[table]
        self.tables[table] = TableSummary(s.rows_in, s.rows_out - dropped, s.quarantined + dropped, dropped, s.changed_cells)

    def close(self) -> None:
        try:
            self.conn.close()
        except sqlite3.Error:  # pragma: no cover
            pass


class _Stopped(Exception):
    """A builder beside the main one was told to stop (the main one failed)."""


@dataclass
class _BuiltBeside:
    """What the main builder takes from a ``_Builder`` that built tables beside it."""

    tables: dict[str, Any]
    date_columns: dict[str, dict[str, Any]]
    ambiguous: list[str]
    quarantined: Counter[tuple[str, str]]


class _Beside:
    """Tables cleaned beside the main build: a ``_Builder`` of its own (its own SQLite
    connections to the source and to a scratch file, its own temporary tables), in a
    forked process where this one runs no thread but fork-safe ones (``pipeline.child.alone``:
    the source's SHA-256, an fsync), else in a thread, while the main builder cleans the tables before them. The main builder
    copies the finished tables and their audit and quarantine rows into the output in
    its one transaction (``_Builder._take_beside``). The scratch file is named after the
    output's temporary file (``remove_stale_temps`` removes it after a SIGKILL) and
    removed by ``stop``, which is called on success and failure alike. A thread has
    ended before the build returns: nothing runs beside the gate (it forks).

    A process, not a thread: both builders run Python for every changed value, and
    under one GIL the thread saved 0.1-0.5 s of the build's 3.8-4.7 s at 260K rows for
    1.5 s more CPU (28 Nov).

    The output's gate beside (``gate_now``: the clock of the output's profile; a forked
    builder only): once built, the process goes on to judge the tables it built whose
    references lead only to tables it built too (``gated``; those the
    output's checker profiles aside), profiling them and running
    their contract checks on the scratch file, while the main builder still cleans and
    copies. The output's rows of these tables are the scratch file's, copied record by
    record with their rowids, and the forked process has this one's string hashes: its
    answer (``table_profiles``, ``contract_run``) is what the output's gate would find,
    and that gate judges only the other tables (``_gate_output``)."""

    def __init__(self, owner: _Builder, tables: Sequence[str], gate_now: datetime | None = None) -> None:
        from pipeline.child import CAN_FORK, alone

        self.owner = owner
        self.tables = list(tables)
        self.rule_rows = 0  # quarantine rows of the rules, before those of the duplicates
        self.path = Path(f"{owner.temp}{BESIDE_SUFFIX}")
        _unlink_family(self.path)
        self.stopping = threading.Event()
        self.lock = threading.Lock()  # guards ``conn`` between the thread's close and ``stop``'s interrupt
        self.conn: sqlite3.Connection | None = None
        self.built: _BuiltBeside | None = None
        self.error: BaseException | None = None
        self.pid: int | None = None  # the forked builder, until it is waited for
        self.thread: threading.Thread | None = None
        self.gate_now: datetime | None = None
        self.gated: frozenset[str] = frozenset()
        self._judged: tuple[Any, Any] | None = None  # (profiles, contract run) of ``gated``
        if CAN_FORK and alone():
            if gate_now is not None:
                from contracts.report import CHILD_PROFILE_TABLES, import_checks

                self.gate_now = gate_now
                # Not those the output's checker profiles anyway (the tickets): it has
                # room beside its checks of the main builder's tables, while this process,
                # from its build on, was the longer of the two with them (the whole clean
                # at 1M rows: 17.2-18.2 s without the tickets here, 18.2-18.8 s with them,
                # alternating runs, 28 Nov; docs/benchmarks.md, sixth session).
                self.gated = frozenset(t for t in _judged_alone(self.tables) if t not in CHILD_PROFILE_TABLES)
                import_checks()  # once, for both processes: the output's gate needs them here too
            self._fork()
        else:
            self.thread = threading.Thread(target=self._run, name="clean-beside", daemon=True)
            self.thread.start()

    def _build(self) -> None:
        owner = self.owner
        with SQLiteSource(owner.source.path) as source:
            builder = _Builder(owner.config, source, self.path, owner.run_id, owner.today, owner.profile)
            builder.stopping = self.stopping
            with self.lock:
                self.conn = builder.conn
            try:
                self.rule_rows = builder.build_beside(self.tables)
            finally:
                with self.lock:
                    self.conn = None
                    builder.close()
        self.built = _BuiltBeside(builder.tables, builder.date_columns, builder.ambiguous, builder.quarantined)

    def _run(self) -> None:
        try:
            self._build()
        except BaseException as exc:  # raised by ``wait`` in the main builder's thread
            self.error = exc

    def _fork(self) -> None:
        import pickle

        from contracts.report import _executed
        from pipeline.child import fork_answers, picklable_error

        def answers(send: Callable[[bytes], None]) -> None:  # in the child, which touches none of the parent's connections
            self._run()
            send(pickle.dumps((self.rule_rows, self.built, picklable_error(self.error))))
            if self.error is None and self.gated:
                names = tuple(t for t in self.tables if t in self.gated)
                owner = self.owner
                send(_executed(str(self.path.resolve()), owner.settings, owner.today, False, (names, self.gate_now), names))

        import tempfile

        self._errors = tempfile.TemporaryFile()  # its traceback, should it fail outside the answers
        self.pid, self._answer = fork_answers(answers, errors=self._errors.fileno())

    def _reaped(self) -> tuple[int, str]:
        """The forked builder waited for (ended, or killed): its exit code and the last
        line it wrote to stderr (where Python's traceback of an error goes); its pipe
        and its stderr file closed."""
        try:
            _, status = os.waitpid(self.pid, 0)  # type: ignore[arg-type]
            code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:  # pragma: no cover - reaped elsewhere
            code = -1
        self.pid = None
        self._answer.close()
        self._errors.seek(0)
        last = (self._errors.read().decode("utf-8", "replace").strip().splitlines() or [""])[-1]
        self._errors.close()
        return code, last

    def _ended(self, what: str, tables: Sequence[str]) -> TryAgain:
        """The forked builder ended without its answer: reaped, its error."""
        code, last = self._reaped()
        if code > 0 and last:
            return TryAgain(
                f"the {what} of {', '.join(tables)} (a process beside the clean) stopped (exit code {code}): {last}",
                "nothing was written to --out; run the clean again, and report the message if it comes back",
            )
        return TryAgain(
            f"the {what} of {', '.join(tables)} (a process beside the clean) ended without an answer (exit code {code})",
            "nothing was written to --out; a process killed by the kernel's out-of-memory killer shows in `dmesg`: free memory, then run the clean again",
        )

    def _reap(self) -> None:
        """The forked builder's answer (a killed one's error); it is waited for unless it
        goes on judging the tables it built."""
        import pickle

        from pipeline.child import read_answer

        data = read_answer(self._answer)
        if data is None:
            self.error = self._ended("builder", self.tables)
            return
        self.rule_rows, self.built, self.error = pickle.loads(data)
        if self.error is not None or not self.gated:
            self.gated = frozenset()
            self._reaped()

    def wait(self) -> _BuiltBeside:
        if self.pid is not None and self.built is None:
            self._reap()
        elif self.thread is not None:
            self.thread.join()
        if self.error is not None:
            raise self.error
        assert self.built is not None
        return self.built

    # -- the gate beside, as ``profile_source(apart=)`` sees it

    def apart_tables(self, path: Any, now: datetime, full: bool) -> frozenset[str]:
        """The tables judged beside (``profile_source``'s ``apart``), with this clock and
        the settings' detection mode only (else none: the caller profiles them). ``path``
        is not compared: the scratch file is by construction the origin of those tables
        of the output (``_gate_output`` is given no other)."""
        if now != self.gate_now or full != self.owner.settings.profile.full:
            return frozenset()
        return self.gated

    def _judgement(self) -> tuple[dict[str, tuple[Any, list[Any]]], Any]:
        """(profiles, contract run) of the tables judged beside: waits for them, and
        raises what stopped them."""
        import pickle

        from pipeline.child import read_answer

        if self._judged is None:
            if self.pid is None:
                raise RuntimeError("the tables built beside were not judged there")
            data = read_answer(self._answer)
            if data is None:
                raise self._ended("gate", sorted(self.gated))
            self._reaped()
            status, payload, profiled = pickle.loads(data)
            if status != "ok":
                raise payload
            if profiled[0] != "ok":
                raise profiled[1]
            self._judged = (profiled[1][0], payload[0])
        return self._judged

    def table_profiles(self) -> dict[str, tuple[Any, list[Any]]]:
        return self._judgement()[0]

    def duplicate_keys(self, table: str, key: tuple[str, ...]) -> None:
        return None  # the key questions of the other tables are the caller's

    def contract_run(self) -> Any:
        """The contract checks of the tables judged beside (``execute(only=gated)``)."""
        return self._judgement()[1]

    def stop(self) -> None:
        self.stopping.set()
        if self.pid is not None:  # still building or judging (the main builder or the gate failed): killed
            import signal

            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:  # pragma: no cover - ended meanwhile
                pass
            self._reaped()
        elif self.thread is not None:
            with self.lock:
                if self.conn is not None:
                    self.conn.interrupt()  # a statement running now ends with "interrupted"
            self.thread.join()
        _unlink_family(self.path)


def _judged_alone(tables: Sequence[str]) -> list[str]:
    """Those of ``tables`` with a contract whose references all lead into ``tables``:
    what a gate on them alone finds of them is what a gate on every table finds."""
    inside = set(tables)
    return [t for t in tables if t in REGISTRY and all(r.target_table in inside for r in spec.facts(REGISTRY[t]).references)]


class _NullStream:
    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:  # pragma: no cover - never called when not a tty
        return len(text)

    def flush(self) -> None:  # pragma: no cover
        pass


# --- profiling and the gate -----------------------------------------------------------------


def _profile(path: Path, settings: Settings, today: date, progress: bool = False, *, now: datetime | None = None, apart: Any = None) -> Any:
    """Gate 1's profile of a database: the same scorer before and after cleaning.

    The profiler counts date evidence over every value of a column (types alone are
    sampled), so its date decisions are safe to clean by. ``now``: the profile's clock
    (default: ``today`` at the current time); ``apart``: a ``ChildExecution`` profiling
    some tables with that clock (``profile_source``'s ``apart``).
    """
    from pipeline.profile import profile_source

    with SQLiteSource(path) as source:
        return profile_source(source, settings, now=now or datetime.combine(today, datetime.now().time()), progress=progress, apart=apart)


def profile_from_json(data: dict[str, Any]) -> Any:
    """A ``ProfileResult`` from its JSON (``ProfileResult.to_json``, or a gate report holding it under ``profile``).

    Raises ``InputFileError`` when the JSON is not a profile with its column profiles
    (a gate report written before it carried them has table summaries only).
    """
    from pipeline.findings import ColumnProfile, Finding, ProfileResult, QualityScore, TableProfile

    if isinstance(data.get("profile"), dict):
        data = data["profile"]
    try:
        tables = {}
        for name, t in data["tables"].items():
            columns = {c: ColumnProfile(**col) for c, col in t["columns"].items()}
            tables[name] = TableProfile(
                name=t.get("name", name), rows=t["rows"], has_contract=t["has_contract"], columns=columns,
                missing_columns=list(t.get("missing_columns", [])), extra_columns=list(t.get("extra_columns", [])),
                references=list(t.get("references", [])),
            )
        q = data["quality"]
        return ProfileResult(
            source=data.get("source", ""),
            source_sha256=data.get("source_sha256"),
            created=data.get("created", ""),
            full=bool(data.get("full", False)),
            sample_size=int(data.get("sample_size", 0)),
            tables=tables,
            findings=[Finding.from_json(f) for f in data["findings"]],
            quality=QualityScore(q["score"], q["grade"], dict(q["dimensions"]), dict(q.get("per_table", {}))),
            verdict=data["verdict"],
            reasons=list(data.get("reasons", [])),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise InputFileError(
            f"the given profile is not a complete Gate 1 profile (missing {exc})",
            "pass the JSON written by `servicedesk-etl profile --out`, or leave it out to profile the source again",
        ) from None


def _given_profile(config: CleanConfig, source_path: Path, source_sha: str | None) -> Any:
    """The caller's Gate 1 profile of the source, or None when it cannot stand for one made now.

    ``source_sha`` None: the source's SHA-256 is not known yet; the caller compares it
    with the profile's ``source_sha256`` once it is (``_profile_made_of_another_file``).
    """
    given = config.profile
    if given is None:
        return None
    if isinstance(given, (str, Path)):
        path = Path(given)
        try:
            given = profile_from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, InputFileError) as exc:
            log.warning("the given profile %s is not used (%s): profiling %s again", path, exc, source_path)
            return None
    why = None
    if not given.source_sha256:
        why = "it does not record the source's SHA-256"
    elif source_sha is not None and given.source_sha256 != source_sha:
        why = "it was made of another file (SHA-256 differs)"
    else:
        with SQLiteSource(source_path) as source:
            present = source.tables()
            if set(given.tables) != set(present):
                why = "its tables are not the source's"
            elif any(set(given.tables[t].columns) != {c for c, _ in source.columns(t)} for t in present):
                why = "its columns are not the source's"
    if why is not None:
        log.warning("the given profile is not used, %s: profiling %s again", why, source_path)
        return None
    return given


def _profile_made_of_another_file(profile: Any, source_path: Path, source_sha: str) -> bool:
    """True (with the warning) when a given profile, used before the source's SHA-256 was known, is of another file."""
    if profile.source_sha256 == source_sha:
        return False
    log.warning("the given profile is not used, it was made of another file (SHA-256 differs): profiling %s again", source_path)
    return True


def _refuse_broken_source(profile: Any, settings: Settings) -> None:
    """Stop before writing when Gate 1's circuit breaker trips on the source.

    Cleaning a column that is mostly corrupt would quarantine most of its rows and hand
    a thin but "valid" table to the next gate: the source (or the header mapping) is
    what needs fixing.
    """
    from pipeline.quality import breaker_reasons

    reasons = breaker_reasons(profile.tables, profile.findings, settings.profile)
    if reasons:
        raise GateFailed(
            "Gate 2",
            "the source trips the circuit breaker, cleaning would only hide it: " + "; ".join(reasons[:5]),
            "fix the export or the header mapping (see `servicedesk-etl profile`), or raise "
            "profile.max_corrupt_date_share / profile.max_mismatched_column_share if this is expected",
        )


def _score_json(profile: Any) -> dict[str, Any]:
    q = profile.quality
    return {"score": q.score, "grade": q.grade, "dimensions": dict(q.dimensions), "per_table": dict(q.per_table), "verdict": profile.verdict}


def _contract_run(path: Path, settings: Settings, today: date, only: Sequence[str] | None = None) -> Any:
    from contracts.executor import execute

    with SQLiteSource(path) as source:
        return execute(source, settings, today=today, only=only)


# From this many rows on, the output's contract checks run in a second process while this
# one profiles the output (the two read the same finished file; the results are the same
# as one after the other). Below it, starting a process costs more than it saves.
PARALLEL_GATE_ROWS = 100_000


def _gate_output(
    temp: Path,
    settings: Settings,
    today: date,
    progress: bool,
    rows: int,
    phases: dict[str, float],
    *,
    now: datetime | None = None,
    beside: _Beside | None = None,
) -> tuple[Any, Any]:
    """(profile, contract run) of the finished temporary output.

    From ``PARALLEL_GATE_ROWS`` rows on, the contract checks run in a child Python
    process (started as a command, so the caller's ``__main__`` is never imported
    again) while this one profiles the output. ``beside``: the builder beside the build,
    which judges the tables it built (``_Beside.gated``); this gate judges the others,
    and takes its profiles and contract checks of those. ``now``: the profile's clock
    (``run`` fixes it when the run starts; default: now).
    """
    import contextlib

    from contracts.executor import merged_runs

    now = now or datetime.combine(today, datetime.now().time())
    elsewhere = beside.gated if beside is not None else frozenset()
    only = None
    if elsewhere:
        with SQLiteSource(temp) as source:
            only = tuple(sorted((set(source.tables()) | set(REGISTRY)) - elsewhere))
    mark = time.monotonic()
    if rows < PARALLEL_GATE_ROWS:
        after = _profile(temp, settings, today, progress, now=now, apart=beside if elsewhere else None)
        phases["profile_output"] = time.monotonic() - mark
        mark = time.monotonic()
        contract = _contract_run(temp, settings, today, only=only)
        phases["contract_checks"] = time.monotonic() - mark
    else:
        from contracts.report import CHILD_PROFILE_TABLES, PROFILE_ONLY_TABLES, Apart, ChildExecution

        # The child checks the contracts and profiles CHILD_PROFILE_TABLES, a second child
        # profiles PROFILE_ONLY_TABLES (forked only: a new Python profiles nothing); this
        # process profiles the other tables and takes the children's (and those judged beside).
        with contextlib.ExitStack() as stack:
            mine = tuple(t for t in CHILD_PROFILE_TABLES if t not in elsewhere)
            child = stack.enter_context(ChildExecution(temp, settings, today, with_sha256=False, profile_tables=mine, now=now, only=only))
            apart: list[Any] = [child]
            second_tables = tuple(t for t in PROFILE_ONLY_TABLES if t not in elsewhere)
            if second_tables:
                apart.append(
                    stack.enter_context(
                        ChildExecution(temp, settings, today, with_sha256=False, profile_tables=second_tables, now=now, checks=False)
                    )
                )
            if elsewhere:
                apart.append(beside)
            after = _profile(temp, settings, today, progress, now=now, apart=Apart(*apart))
            phases["profile_output"] = time.monotonic() - mark
            contract, _ = child.result()
            phases["contract_checks"] = time.monotonic() - mark  # wall time from the start, beside the profile
    if elsewhere:
        assert beside is not None
        contract = merged_runs(contract.source, [contract, beside.contract_run()])
    return after, contract


def _gate_folder_for(target: Path) -> Path:
    return target.parent / f".{target.name}{GATE_MARK}{os.getpid()}"


def _run_gate2(
    config: CleanConfig, temp: Path, out: Path, today: date, threshold: float, phases: dict[str, float]
) -> tuple[Any, Any, Any, dict[Path, Path]]:
    """Gate 2 on the finished temporary output: (profile, contract failures, verdict,
    {written file: final path}).

    ``contracts.gate.run_gate`` runs on a hard link to the output named as the output
    (the gate names its items after the file), in a folder of its own beside it, with
    the profile made here handed over (not profiled twice). Its report, JUnit XML and log
    then name the link's path where they name the file: those mentions are rewritten to
    the final path, so the files are what ``run_gate(source=out)`` writes.
    """
    from contracts.executor import CheckResult
    from contracts.gate import run_gate
    from pipeline.profile import profile_source

    folder = _gate_folder_for(out)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    link = (folder / out.name).resolve()
    os.link(temp, link)
    mark = time.monotonic()
    hashing = _Background(sha256_file, link)  # beside the profile: hashing needs no Python
    with SQLiteSource(link) as source:
        now = None if config.today is None else datetime.combine(today, datetime.now().time())
        after = profile_source(source, config.settings, now=now, progress=config.progress)
    after = dataclasses.replace(after, source_sha256=hashing.wait())
    phases["profile_output"] = time.monotonic() - mark
    if after.quality.score < threshold:  # the clean fails on the score alone: no gate run
        return after, [], None, {}
    mark = time.monotonic()
    written = {
        folder / "gate-report.json": config.gate_report,
        folder / "gate-junit.xml": config.gate_junitxml,
        folder / "gate.log": config.gate_log,
    }
    verdict = run_gate(
        source=link,
        settings=config.settings,
        junitxml=folder / "gate-junit.xml" if config.gate_junitxml else None,
        report=folder / "gate-report.json",
        output=folder / "gate.log",
        quality_threshold=config.quality_threshold,
        profile=after,
    )
    phases["gate2"] = time.monotonic() - mark
    renames = {str(src.resolve()): str(Path(dst).resolve()) for src, dst in written.items() if dst is not None}
    renames[str(link)] = final = str(out.resolve())
    for path in written:
        if path.exists():
            text = path.read_text(encoding="utf-8")
            for old, new in renames.items():
                text = text.replace(old, new)
            path.write_text(text, encoding="utf-8")
    report = json.loads((folder / "gate-report.json").read_text(encoding="utf-8"))
    verdict = dataclasses.replace(verdict, report=report)
    fields = ("table", "column", "check", "severity", "tolerance", "considered", "failing", "status", "message")
    failed = [CheckResult(**{k: r[k] for k in fields}) for r in report.get("results", []) if r.get("status") == "failed"]
    after = dataclasses.replace(after, source=final)
    return after, failed, verdict, {src: dst for src, dst in written.items() if dst is not None and src.exists()}


def _publish_gate_files(files: dict[Path, Path]) -> list[Path]:
    """Gate 2's files to their final paths, each in one rename; the paths written."""
    done = []
    for src, dst in files.items():
        dst = Path(dst)
        temp = temp_path_for(dst)
        shutil.copyfile(src, temp)
        os.replace(temp, dst)
        done.append(dst)
    return done


ORPHAN_SAMPLE = 5  # orphan values shown per reference in the result


def _orphans(path: Path, profile: Any = None, limit: int = 0) -> list[dict[str, Any]]:
    """Orphans per contract reference of the output. ``profile``: the output's, whose
    counts (``TableProfile.references``) are taken where it made them all, with a sample
    at least as long as the one shown (``limit``: its samples' length at most,
    ``settings.profile.example_keys``), instead of counting again."""
    if profile is not None and profile.tables:
        counted = _orphans_of_profile(path, profile, limit)
        if counted is not None:
            return counted
    from pipeline.profile import _key_json

    def count(source: SQLiteSource, table: str, ref: Any) -> tuple[int, int, list[Any]]:
        n, total, sample = source.orphans(table, ref.column, ref.target_table, ref.target_column, ignore=ref.ignore, limit=ORPHAN_SAMPLE)
        return n, total, [_key_json(v) for v in sample]  # as the profile writes them

    return _reference_orphans(path, count)  # type: ignore[return-value]


def _orphans_of_profile(path: Path, profile: Any, limit: int) -> list[dict[str, Any]] | None:
    """``_orphans`` from the output's profile (its samples ``limit`` values long at most),
    or None where it lacks a count or a long enough sample."""

    def counted(source: SQLiteSource, table: str, ref: Any) -> tuple[int, int, list[Any]] | None:
        target = f"{ref.target_table}.{ref.target_column}"
        made = getattr(profile.tables.get(table), "references", None) or []
        r = next((r for r in made if (r["column"], r["target"]) == (ref.column, target)), None)
        if r is None or (len(r["sample"]) < ORPHAN_SAMPLE and len(r["sample"]) >= limit):
            return None
        return r["orphans"], r["references"], r["sample"]

    return _reference_orphans(path, counted)


def _reference_orphans(
    path: Path, count: Callable[[SQLiteSource, str, Any], tuple[int, int, list[Any]] | None]
) -> list[dict[str, Any]] | None:
    """The result's orphans of each contract reference the output can answer (its
    column and its target present), ``count(source, table, reference)`` giving
    (orphans, references, JSON-ready sample); None as soon as ``count`` has no answer."""
    out = []
    with SQLiteSource(path) as source:
        present = set(source.tables())
        for table, schema in REGISTRY.items():
            if table not in present:
                continue
            cols = {c for c, _ in source.columns(table)}
            for ref in spec.facts(schema).references:
                if ref.column not in cols or ref.target_table not in present:
                    continue
                if ref.target_column not in {c for c, _ in source.columns(ref.target_table)}:
                    continue
                answer = count(source, table, ref)
                if answer is None:
                    return None
                n, total, sample = answer
                out.append(
                    {
                        "table": table,
                        "column": ref.column,
                        "target": f"{ref.target_table}.{ref.target_column}",
                        "orphans": n,
                        "references": total,
                        "share": round(n / total, 4) if total else 0.0,
                        "sample": list(sample[:ORPHAN_SAMPLE]),
                    }
                )
    return out


def _export_audit(db: Path, run_id: str, target: Path) -> int:
    """Write this run's audit rows as JSON lines to ``target`` (a temporary path)."""
    conn = sqlite3.connect(f"file:{db.resolve().as_posix()}?mode=ro", uri=True)
    conn.text_factory = LENIENT_TEXT
    n = 0
    try:
        with open(target, "w", encoding="utf-8") as fh:
            cur = conn.execute(
                f"SELECT {', '.join(AUDIT_COLUMNS)} FROM {AUDIT_TABLE} WHERE run_id = ? ORDER BY rowid", (run_id,)
            )
            while batch := cur.fetchmany(5000):
                for row in batch:
                    fh.write(json.dumps({c: _jsonable(v) for c, v in zip(AUDIT_COLUMNS, row)}, ensure_ascii=False) + "\n")
                    n += 1
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        conn.close()
    return n


# --- the stage ----------------------------------------------------------------------------------


def _abandon(*work: _Background | None) -> None:
    """Wait for background work on an output that is thrown away; its errors no longer matter."""
    for job in work:
        if job is not None:
            try:
                job.wait()
            except Exception:  # noqa: BLE001 - the run fails for its own reason already
                pass


def _stop_beside(builder: _Builder | None) -> None:
    """The builder beside, still judging its tables after the build: stopped (killed if
    still running), its scratch file removed."""
    if builder is not None and builder.beside is not None:
        beside, builder.beside = builder.beside, None
        beside.stop()


def _check_strategies(cs: CleanSettings) -> None:
    for table, strategy in cs.duplicates_by_table.items():
        if strategy not in STRATEGIES:
            raise ConfigError(
                f"config key clean.duplicates_by_table.{table} = {strategy!r} is not one of {', '.join(STRATEGIES)}",
                "use one of the values listed",
            )
    if cs.health_check_rows < 1 or cs.batch_rows < 1:
        raise ConfigError("clean.batch_rows and clean.health_check_rows must be at least 1", "write a positive whole number")


def run(config: CleanConfig) -> CleanResult:
    """Clean ``config.source`` into ``config.out``: all or nothing.

    Raises ``InputFileError`` (bad paths, out == source), ``FixYourData`` (duplicates
    with strategy ``fail``), ``GateFailed`` (score below the threshold or a critical
    contract check failing on the output), ``ResourceExhausted`` (disk, memory). In
    every failing case nothing is left at ``config.out`` and no temporary file stays.
    """
    started = time.monotonic()
    settings = config.settings
    _check_strategies(settings.clean)
    threshold = settings.gate.quality_threshold if config.quality_threshold is None else float(config.quality_threshold)
    source_path = check_sqlite_file(config.source)
    out = check_output_path(Path(config.out), source_path)
    audit_path = Path(config.audit_trail) if config.audit_trail else None
    if audit_path is not None:
        check_output_path(audit_path, source_path, "--audit-trail")
        if audit_path.resolve() == out.resolve() or same_file(audit_path, out):
            raise InputFileError("--audit-trail and --out are the same file", "give the audit trail its own path, e.g. audit.jsonl")
    today = config.today or datetime.now(timezone.utc).date()
    run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]
    remove_stale_temps(out)
    if audit_path is not None:
        remove_stale_temps(audit_path)
    temp = temp_path_for(out)
    audit_temp = temp_path_for(audit_path) if audit_path is not None else None
    # The source's SHA-256 (for the result, and to tell that a given profile is of this
    # very file) is computed beside the build: hashing 350 MB takes ~1 s at 260K rows.
    # Fork-safe (its digest made here): unmarked, it kept the builder beside from
    # forking (``_Beside``), which then ran as a thread under the build's GIL.
    # An absolute path: a gate may change the working folder.
    hashing = _Background(sha256_file, source_path.resolve(), 1 << 20, hashlib.sha256(), fork_safe=True)
    source_sha: str | None = None
    phases: dict[str, float] = {}
    gate2 = config.gate_report is not None or config.gate_junitxml is not None
    verdict = None
    gate_files: dict[Path, Path] = {}
    for path in (config.gate_report, config.gate_junitxml, config.gate_log):
        if path is not None:
            check_output_path(Path(path), source_path, "the Gate 2 file")
            remove_stale_temps(Path(path))
    # The clock of the output's profile (its future-date checks), fixed at the start of
    # the run as ``today`` is: the tables judged beside the build are profiled with it
    # before the output's gate starts, and the gate's own profile must use the same.
    gate_now = datetime.combine(today, datetime.now().time())
    with stage_trace("clean", log) as trace:
        builder: _Builder | None = None
        durable: _Background | None = None
        try:
            mark = time.monotonic()
            before = _given_profile(config, source_path, None)
            unconfirmed = before is not None  # a given profile whose SHA-256 is compared once the hash is ready
            if before is None:
                log.info("profiling %s (run %s)", source_path, run_id)
                before = _profile(source_path, settings, today, config.progress)
            else:
                log.info("using the given Gate 1 profile of %s (run %s)", source_path, run_id)
            phases["profile_source"] = time.monotonic() - mark
            while True:
                refused: GateFailed | None = None
                try:
                    _refuse_broken_source(before, settings)
                except GateFailed as exc:
                    refused = exc
                mark = time.monotonic()
                if refused is None:
                    with SQLiteSource(source_path) as source:
                        builder = _Builder(config, source, temp, run_id, today, before)
                        # the tables built beside are judged there (not for the pytest gate of ``run``)
                        builder.gate_now = None if gate2 else gate_now
                        try:
                            builder.build()
                        finally:
                            builder.close()
                phases["build"] = time.monotonic() - mark
                source_sha = hashing.wait()
                if unconfirmed:
                    unconfirmed = False
                    if _profile_made_of_another_file(before, source_path, source_sha):
                        # cleaned by the profile of another file: thrown away, done again
                        _stop_beside(builder)
                        _unlink_family(temp)
                        mark = time.monotonic()
                        before = _profile(source_path, settings, today, config.progress)
                        phases["profile_source"] = time.monotonic() - mark
                        continue
                if refused is not None:
                    raise refused
                break
            assert builder is not None
            # The output must be on disk before its rename; the fsync runs while the gate
            # reads the file, and is waited for (its error raised) before the rename.
            # No SQLite work in a thread from here on: the gate may fork its contract
            # checker (contracts.report.ChildExecution), and a child forked while another
            # thread holds one of SQLite's mutexes hangs on it. An fsync holds none.
            # An absolute path: the in-process gate (pytest) changes the working folder meanwhile.
            durable = _Background(_fsync_path, temp.resolve(), fork_safe=True)  # an fsync takes no lock of ours or SQLite's
            log.info("profiling the cleaned copy and checking it against the contracts")
            rows_out = sum(t.rows_out for t in builder.tables.values())
            if gate2:
                after, failed, verdict, gate_files = _run_gate2(config, temp, out, today, threshold, phases)
            else:
                after, contract = _gate_output(temp, settings, today, config.progress, rows_out, phases, now=gate_now, beside=builder.beside)
                failed = contract.failed
            _stop_beside(builder)
            critical = [r for r in failed if r.severity == "critical"]
            others = [
                {"id": r.id, "severity": r.severity, "failing": r.failing, "considered": r.considered, "message": r.message}
                for r in failed
                if r.severity != "critical"
            ]
            score_after = after.quality.score
            if critical or score_after < threshold:
                why = []
                if score_after < threshold:
                    why.append(f"quality score {score_after:.1f} is below the threshold {threshold:g}")
                if critical:
                    why.append("critical contract checks fail: " + "; ".join(f"{r.id} ({r.message})" for r in critical[:5]))
                raise GateFailed(
                    "Gate 2",
                    " and ".join(why) + f" (score before cleaning {before.quality.score:.1f}); nothing written to {out}",
                    "run `servicedesk-etl profile` on the source and fix what cleaning cannot (see the findings), "
                    "or lower --quality-threshold if the score is acceptable",
                )
            orphans = _orphans(temp, after, settings.profile.example_keys)
            audit_rows = sum(builder.changes.values())
            if audit_temp is not None:
                _export_audit(temp, run_id, audit_temp)
            # The output is durable before anything is published (an fsync error leaves
            # no audit trail of an output that never appears).
            mark = time.monotonic()
            durable.wait()
            durable = None
            phases["fsync_wait"] = time.monotonic() - mark
            # Everything succeeded: the output appears at its final path in one step.
            if audit_temp is not None and audit_path is not None:
                os.replace(audit_temp, audit_path)
            published = _publish_gate_files(gate_files) if gate2 else []
            try:
                os.replace(temp, out)
            except OSError:
                if audit_path is not None:  # no trail of an output that does not exist
                    _unlink_family(audit_path)
                for path in published:  # nor a gate report
                    _unlink_family(path)
                raise
            _fsync_path(out.parent)
        except (sqlite3.OperationalError, sqlite3.DatabaseError, OSError) as exc:
            _abandon(durable)
            _stop_beside(builder)
            shutil.rmtree(_gate_folder_for(out), ignore_errors=True)
            _unlink_family(temp)
            if audit_temp is not None:
                _unlink_family(audit_temp)
            if _disk_full(exc):
                raise ResourceExhausted(
                    f"disk: the disk holding {out.parent} is full ({exc})",
                    "free space there or write --out to a larger disk, then run again",
                ) from None
            text = str(exc).lower()
            if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
                raise TryAgain(f"a database is locked by another program ({exc})", "close the program holding it, then run again") from None
            if isinstance(exc, sqlite3.DatabaseError) and ("malformed" in text or "not a database" in text):
                raise InputFileError(f"--source {source_path} is damaged: {exc}", "ingest the workbooks again to rebuild it") from None
            raise
        except BaseException:
            _abandon(durable)
            _stop_beside(builder)
            shutil.rmtree(_gate_folder_for(out), ignore_errors=True)
            _unlink_family(temp)
            if audit_temp is not None:
                _unlink_family(audit_temp)
            raise
        shutil.rmtree(_gate_folder_for(out), ignore_errors=True)
        trace.rows = sum(t.rows_in for t in builder.tables.values())
        trace.fields.update(
            run_id=run_id,
            audit_rows=audit_rows,
            quarantined=sum(builder.quarantined.values()),
            score_before=before.quality.score,
            score_after=after.quality.score,
        )
    changes = [
        {"table": t, "column": c, "rule": r, "count": n}
        for (t, c, r), n in sorted(builder.changes.items())
    ]
    quarantine = [{"table": t, "rule": r, "count": n} for (t, r), n in sorted(builder.quarantined.items())]
    return CleanResult(
        run_id=run_id,
        source=str(source_path),
        out=str(out),
        source_sha256=source_sha,  # type: ignore[arg-type]
        tables=dict(builder.tables),
        changes=changes,
        quarantine=quarantine,
        audit_rows=audit_rows,
        date_columns=builder.date_columns,
        ambiguous_date_columns=builder.ambiguous,
        orphans=orphans,
        quality_before=_score_json(before),
        quality_after=_score_json(after),
        threshold=threshold,
        contract_failures=others,
        audit_trail=str(audit_path) if audit_path else None,
        seconds=round(time.monotonic() - started, 3),
        peak_rss_mb=round(peak_rss_mb(), 1),
        phases={k: round(v, 3) for k, v in phases.items()},
        gate=verdict,
    )


# --- CLI ----------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, type=Path, help="the raw SQLite database (opened read-only)")
    parser.add_argument("--out", required=True, type=Path, help="the cleaned database to write (never the source)")
    parser.add_argument("--audit-trail", type=Path, metavar="FILE", help="also write every changed cell as JSON lines")
    parser.add_argument(
        "--quality-threshold", type=float, metavar="SCORE", help="lowest quality score (0-100) the output may have (default: gate.quality_threshold, 80)"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the result (summary, scores) as JSON")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="Gate 1's profile of this source (`servicedesk-etl profile --out`, or a gate report): not profiled again when it matches the file",
    )


def command(args: argparse.Namespace, settings: Settings) -> int:
    result = run(
        CleanConfig(
            source=args.source,
            out=args.out,
            settings=settings,
            audit_trail=args.audit_trail,
            quality_threshold=args.quality_threshold,
            profile=getattr(args, "profile", None),
        )
    )
    if getattr(args, "json", None):
        Path(args.json).write_text(json.dumps(result.to_json(), indent=2, default=str) + "\n", encoding="utf-8")
    print(format_summary(result))
    return 0


def format_summary(result: CleanResult) -> str:
    """The terminal summary: tables, changes per rule and column, quarantine, scores."""
    lines = [f"cleaned {result.source} -> {result.out}  (run {result.run_id}, {result.seconds:.1f}s)"]
    lines.append(f"{'table':<20} {'rows in':>10} {'rows out':>10} {'quarantined':>12} {'duplicates':>11} {'changed cells':>14}")
    for name, t in result.tables.items():
        lines.append(f"{name:<20} {t.rows_in:>10,} {t.rows_out:>10,} {t.quarantined:>12,} {t.duplicates_dropped:>11,} {t.changed_cells:>14,}")
    if result.changes:
        lines.append("changes (rule, table.column, cells):")
        for c in result.changes:
            lines.append(f"  {c['rule']:<28} {c['table'] + '.' + c['column']:<44} {c['count']:>8,}")
    else:
        lines.append("changes: none")
    if result.quarantine:
        lines.append("quarantined rows (_quarantine):")
        for q in result.quarantine:
            lines.append(f"  {q['rule']:<28} {q['table']:<44} {q['count']:>8,}")
    if result.ambiguous_date_columns:
        lines.append("ambiguous date columns (read by the date_locale policy): " + ", ".join(result.ambiguous_date_columns))
    for o in result.orphans:
        if o["orphans"]:
            lines.append(f"orphans (kept): {o['table']}.{o['column']} -> {o['target']}: {o['orphans']:,} of {o['references']:,}")
    for f in result.contract_failures:
        lines.append(f"still failing ({f['severity']}): {f['id']}: {f['message']}")
    b, a = result.quality_before, result.quality_after
    lines.append(f"quality score {b['score']:.1f} ({b['grade']}) -> {a['score']:.1f} ({a['grade']}), threshold {result.threshold:g}")
    for dim in a["dimensions"]:
        lines.append(f"  {dim:<14} {b['dimensions'].get(dim, 0):6.1f} -> {a['dimensions'][dim]:6.1f}")
    lines.append(f"audit rows: {result.audit_rows:,}" + (f" (also in {result.audit_trail})" if result.audit_trail else ""))
    return "\n".join(lines)

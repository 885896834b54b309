"""Gate 1: profile a database, score its quality, decide PROCEED / CLEAN / FIX_SOURCE.

``profile_source`` works on any ``pipeline.sources.Source`` (the raw SQLite file, the
cleaned file, a PostgreSQL schema): it uses the protocol's methods only, so the same
code judges all three and their profiles and scores compare.

How it reads the data (bounded memory, one pass per table):

- every table is read once, all its columns together, through ``Source.iter_batches``;
  batches are sized from a 200-row probe to hold about 8 MB of values;
- each batch is transposed to columns; each column's values are counted
  (``collections.Counter``, in C) and every *distinct* value of the batch is judged once
  (a bounded cache remembers the verdicts on short values across batches), so a status
  column of a million rows costs a few dozen judgements per batch;
- every defect count is exact, over all rows; the sample (``--sample-size``, evenly
  spread rows, every ``ceil(rows / size)``-th) only feeds the type *detection*;
- storage classes come from the values themselves (SQLite hands out ``int``, ``float``,
  ``str``, ``bytes``, ``None`` per storage class), so no extra ``typeof`` scan is needed;
- distinct counts are exact up to ``DISTINCT_EXACT`` values per column, then a
  HyperLogLog estimate (2^14 registers, about 0.8% standard error; Python's string
  hashes are salted per process, so an estimate may move by about 1% between runs);
  ``ColumnProfile.distinct_estimated`` says which. No ``count(DISTINCT)`` query: it
  would be one more full scan (and sort) per column;
- clean values take fast paths (text without rules, integers within range, long text
  without NUL/CR/blank runs); timestamps are read with their day and time-of-day parts
  memoised;
- whole-table questions go to SQL through the protocol: ``duplicate_keys`` and
  ``orphans`` (asked before the pass, so that the pass can find the keys of the rows
  holding the sampled orphan values).

Severity policy (what the gate does with it): a defect the cleaner can fix is
``error`` (the gate fails on the raw file and passes after cleaning); what cannot be
fixed is ``critical``; informational things are ``warning``. Where a contract rule
declares a severity, the contract wins; a failing share within the rule's tolerance is
reported as ``warning``.

Verdict: FIX_SOURCE when the circuit breaker trips (``pipeline.quality.breaker_reasons``)
or any critical finding exists; else CLEAN when any error finding exists; else PROCEED.
CLI exit codes: 0 PROCEED, 1 CLEAN (the data needs the cleaner: a script running
``profile && migrate`` must not go on), 4 FIX_SOURCE. With ``--dry-run-postgres``
(``pipeline.dryrun``), a value the server refuses or misreads turns a PROCEED into 1.
"""

from __future__ import annotations

import argparse
import collections
import functools
import itertools
import json
import logging
import math
import operator
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Sequence

from contracts import spec
from contracts.schemas import DATA_TABLES, REGISTRY, contract_for
from pipeline.config import Settings
from pipeline.dates import DateFormatDecision, DateFormatVote, DateParseError, Order, date_readings, decide_format
from pipeline.errors import ConfigError, InputFileError
from pipeline.findings import CODES, ColumnProfile, Finding, ProfileResult, TableProfile
from pipeline.observe import Progress, cyclic_gc_off, stage_trace
from pipeline.sources import Source, SQLiteSource, rising_integers, sha256_file
from pipeline.values import conforms, detect_kind, placeholder_set, to_integer, to_number

log = logging.getLogger(__name__)

VERDICT_EXIT = {"PROCEED": 0, "CLEAN": 1, "FIX_SOURCE": 4}

BATCH_TARGET_BYTES = 8 << 20  # values held per batch, roughly
PROBE_ROWS = 200
MIN_BATCH_ROWS, MAX_BATCH_ROWS = 16, 50_000
CACHE_MAX = 4096  # distinct short values whose judgement is remembered, per column
CACHE_MAX_LEN = 64  # longer strings are judged every time (they rarely repeat)
DISTINCT_EXACT = 4096  # exact distinct count up to here, HyperLogLog beyond
HLL_P = 14
TEXT_MINMAX_LEN = 80  # min/max of text columns are cut to this length

FIXES = {
    "MISSING_TABLE": "export and ingest the missing workbook; the cleaner cannot invent a table",
    "EMPTY_TABLE": "re-export the workbook: its first sheet has no data rows",
    "MISSING_COLUMN": "re-export with the column, or add its header mapping to headers.toml / [headers] in the config",
    "UNKNOWN_COLUMN": "none needed (kept and reported); declare it in the contract if it matters",
    "TYPE_MISMATCH": "clean: the cleaner converts the values to the contract type; the target type comes from the contract, not the stored label",
    "INTEGER_AS_REAL": "clean: integers stored as REAL are rewritten as INTEGER",
    "NUMBER_AS_TEXT": "clean: numbers stored as text are rewritten as numbers",
    "NOT_A_NUMBER": "clean: rows with values that are no number go to quarantine; correct them at the source",
    "INCONSISTENT_DATE_FORMAT": "clean: every date is rewritten as ISO 8601 in the column's decided format",
    "AMBIGUOUS_DATE_FORMAT": "check the locale policy (date_locale); no value in the column decides day-first vs month-first",
    "CORRUPT_DATES": "clean: rows with values that are no date go to quarantine (or NULL with clean.null_unparseable_dates)",
    "EXCEL_SERIAL_DATES": "clean: Excel serial numbers are converted to ISO dates",
    "FUTURE_DATES": "clean: future-dated rows go to quarantine; correct the typo at the source",
    "EMPTY_STRINGS": "clean: '' becomes NULL in typed columns",
    "WHITESPACE_STRINGS": "clean: whitespace-only values become NULL in typed columns",
    "PLACEHOLDERS": "clean: placeholder tokens become NULL",
    "NULL_IN_REQUIRED": "fill the value at the source, or let the cleaner quarantine the rows",
    "NOT_ALLOWED": "map the values to the closed set in the cleaner, or extend the contract if the value is legitimate",
    "PATTERN_MISMATCH": "clean: rewrite the values to the column's pattern, or quarantine them",
    "OUT_OF_RANGE": "clean: out-of-range rows go to quarantine (clean.out_of_range)",
    "DUPLICATE_KEYS": "clean: one row per key is kept (clean.duplicates)",
    "ORPHANS": "check the scoping of the referenced table; orphans within the tolerance are expected",
    "NUL_BYTES": "clean: NUL characters are removed (PostgreSQL text cannot hold them)",
    "MIXED_LINE_ENDINGS": "clean: line endings are normalised to LF",
    "BLANK_LINE_RUNS": "clean: runs of blank lines are shortened (clean.max_blank_lines)",
}

CODES_SHORT = {code: text for code, text in CODES.items()}

SEVERITY_RANK = {"warning": 1, "error": 2, "critical": 3}

_LABEL_FAMILY = (
    ("INT", "integer"),
    ("CHAR", "text"),
    ("CLOB", "text"),
    ("TEXT", "text"),
    ("BOOL", "flag"),
    ("REAL", "numeric"),
    ("FLOA", "numeric"),
    ("DOUB", "numeric"),
    ("DATE", "timestamp"),
    ("TIME", "timestamp"),
    ("NUM", "numeric"),
    ("DEC", "numeric"),
)
# label family -> kinds of values the label can hold honestly
_LABEL_HOLDS = {
    "integer": {"integer"},
    "numeric": {"integer", "numeric"},
    "timestamp": {"timestamp", "date"},
    "text": {"text", "flag", "month"},
    "flag": {"flag", "integer"},
}
_STORAGE_NAMES = {type(None): "null", int: "integer", float: "real", str: "text", bytes: "blob", bool: "boolean"}
_M64 = (1 << 64) - 1
_UNSET: Any = object()  # a kind not detected yet
# The Python type PostgreSQL gives the values of a date column of each kind (``_typed_dates``).
_TYPED_DATES: dict[str | None, type] = {"timestamp": datetime, "date": date}
_ISO_HITS = ("date:iso",)
_FUTURE_HITS = ("date:iso", "future@df", "future@mf")
# ``detect_kind`` of a typed date or datetime: it reads the content of text only, so the
# answer is the type's (filled on first use).
_KIND_OF_TYPE: dict[type, str | None] = {}


# --- configuration and result of the stage -------------------------------------------------


@dataclass(frozen=True)
class ProfileConfig:
    source: Path
    out: Path | None
    settings: Settings
    full: bool = False


def run(config: ProfileConfig) -> ProfileResult:
    """Profile a SQLite file read-only; write the JSON profile to ``config.out`` if given."""
    if config.out is not None and config.out.resolve() == Path(config.source).resolve():
        raise InputFileError(f"--out {config.out} is the source database itself", "write the profile to a .json file of its own")
    with stage_trace("profile", log) as trace:
        with SQLiteSource(config.source) as source:
            digest = sha256_file(source.path)
            result = profile_source(source, config.settings, full=config.full, source_sha256=digest, progress=True)
        trace.rows = sum(t.rows for t in result.tables.values())
        trace.fields.update(verdict=result.verdict, score=result.quality.score, findings=len(result.findings))
        if config.out is not None:
            write_profile(result, config.out)
    return result


def write_profile(result: ProfileResult, out: Path, extra: dict[str, Any] | None = None) -> None:
    """Write the JSON profile next to its final place, then rename it into place.

    ``extra``: more top-level parts (e.g. ``dry_run_postgres``) written with the profile.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({**result.to_json(), **(extra or {})}, fh, indent=2, ensure_ascii=False, default=_json_safe)
            fh.write("\n")
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_profile(path: Path) -> dict[str, Any]:
    """Load a profile JSON written by ``write_profile`` (the plain dict; see docs/profile-format.md)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


# --- the core -------------------------------------------------------------------------------


def profile_source(
    source: Source,
    settings: Settings,
    *,
    full: bool | None = None,
    source_sha256: str | None = None,
    now: datetime | None = None,
    progress: bool = False,
    apart: Any = None,
) -> ProfileResult:
    """Profile every table of ``source``; contract checks where a contract exists.

    ``full`` (default ``settings.profile.full``) detects types on every value instead of
    the evenly spread sample; ``now`` fixes the clock of the future-date checks.
    ``apart``: another process profiling some of the tables of this very database beside
    this one (``contracts.report.ChildExecution`` with ``profile_tables``): its
    ``apart_tables(origin, now, full)`` (``source_origin``) names the tables it profiles with this clock and
    mode (none when they differ), ``table_profiles()`` waits for them
    (``profile_tables``' answer), and ``duplicate_keys(table, key)`` answers the
    multi-column key questions of the other tables (``keys_asked_ahead``; None where it
    has no answer). The result is the same as without it.
    """
    from pipeline import quality

    full = settings.profile.full if full is None else full
    now = now or datetime.now()
    present = source.tables()
    findings: list[Finding] = []
    tables: dict[str, TableProfile] = {}
    for name in DATA_TABLES:
        if name not in present:
            findings.append(_table_finding("MISSING_TABLE", name, "critical"))
    elsewhere: frozenset[str] = frozenset()
    if apart is not None:
        elsewhere = frozenset(apart.apart_tables(source_origin(source), now, full))
    answered = apart.duplicate_keys if elsewhere else None
    done = profile_tables(source, [n for n in present if n not in elsewhere], settings, full=full, now=now, progress=progress, answered=answered)
    if elsewhere & set(present):
        done.update(apart.table_profiles())
    for name in present:  # the tables and their findings in table order, wherever profiled
        if name not in done:  # pragma: no cover - the other process answers for every table it names
            done.update(profile_tables(source, [name], settings, full=full, now=now, progress=progress))
        profile, table_findings = done[name]
        tables[name] = profile
        findings.extend(table_findings)
    findings.sort(key=lambda f: (-SEVERITY_RANK.get(f.severity, 0), f.table, f.column or "", f.code))
    score = quality.score(tables, findings, settings.profile)
    reasons = quality.breaker_reasons(tables, findings, settings.profile)
    criticals = [f for f in findings if f.severity == "critical"]
    errors = [f for f in findings if f.severity == "error"]
    if reasons or criticals:
        verdict = "FIX_SOURCE"
        grouped: dict[str, list[Finding]] = {}
        for f in criticals:
            grouped.setdefault(f.code, []).append(f)
        for code, group in grouped.items():
            where = ", ".join(f"{f.table}.{f.column}" if f.column else f.table for f in group[:5])
            more = f" and {len(group) - 5} more" if len(group) > 5 else ""
            reasons.append(f"critical {code} ({CODES_SHORT.get(code, code)}): {where}{more}")
    elif errors:
        verdict = "CLEAN"
        by_code = collections.Counter(f.code for f in errors)
        listed = ", ".join(f"{code} x{n}" for code, n in sorted(by_code.items(), key=lambda kv: (-kv[1], kv[0])))
        reasons = [f"{len(errors)} error finding{'s' if len(errors) > 1 else ''} the cleaner fixes: {listed}"]
    else:
        verdict = "PROCEED"
        reasons = ["no critical or error finding"]
    return ProfileResult(
        source=source.label,
        source_sha256=source_sha256,
        created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        full=full,
        sample_size=settings.profile.sample_size,
        tables=tables,
        findings=findings,
        quality=score,
        verdict=verdict,
        reasons=reasons,
    )


def source_origin(source: Source) -> Any:
    """Where ``source`` reads (``ChildExecution``'s first argument): a SQLite file's path,
    or ("postgres", conninfo, schema)."""
    if isinstance(source, SQLiteSource):
        return source.path
    return ("postgres", getattr(source, "conninfo", None), getattr(source, "schema", None))


def profile_tables(
    source: Source,
    names: Sequence[str],
    settings: Settings,
    *,
    full: bool | None = None,
    now: datetime,
    progress: bool = False,
    answered: Callable[[str, tuple[str, ...]], tuple[int, list[tuple]] | None] | None = None,
) -> dict[str, tuple[TableProfile, list[Finding]]]:
    """(table profile, findings) of each named table of ``source`` as ``profile_source``
    makes them: the share of the profile another process makes (``profile_source``'s
    ``apart``). Tables not in ``source`` are left out. ``answered(table, key)``: the
    ``duplicate_keys`` answer (``settings.profile.example_keys`` sampled) of a
    multi-column key another process asks, waited for only when the pass needs it;
    None where it has none (then asked here)."""
    full = settings.profile.full if full is None else full
    present = source.tables()
    names = [n for n in names if n in present]
    done: dict[str, tuple[TableProfile, list[Finding]]] = {}
    ahead = _DuplicatesAhead(source, names, settings.profile.example_keys, answered)
    try:
        with cyclic_gc_off():  # ~15% of the pass's CPU at 260K rows (2.36-2.39 -> 1.98-2.04 s)
            for name in names:
                done[name] = _profile_table(source, name, present, settings, full, now, progress, ahead)
    finally:
        ahead.close()
    return done


def _table_finding(code: str, table: str, severity: str, column: str | None = None, **kw: Any) -> Finding:
    return Finding(code=code, severity=severity, table=table, column=column, count=kw.pop("count", 1), share=kw.pop("share", 1.0), fix=FIXES[code], **kw)


class _Spec:
    """What one column is checked for: read once from the contract and the settings."""

    def __init__(self, table: str, name: str, declared: str, col: Any, settings: Settings, now: datetime) -> None:
        self.name = name
        self.declared = declared
        self.col = col
        self.kind: str | None = spec.kind(col) if col is not None else None
        self.rules = spec.rules(col) if col is not None else {}
        extra = tuple(settings.column_placeholders.get(table, {}).get(name, ()))
        own = (spec.placeholders(col) if col is not None else ()) + extra
        self.declared_tokens = placeholder_set(own)
        self.tokens = placeholder_set(tuple(settings.placeholder_tokens) + own)
        self.typed = self.kind in spec.TYPED_KINDS
        self.date_kind = self.kind in spec.DATE_KINDS
        # Without a contract any column may turn out to hold dates: label every value.
        self.maybe_date = self.date_kind or col is None
        self.long_text = spec.is_long_text(col) if col is not None else True
        self.personal = spec.is_personal(col) if col is not None else False
        self.allowed: frozenset | None = None
        self.pattern: re.Pattern | None = None
        self.range: tuple | None = None
        if col is not None:
            for check in col.checks:
                stats = check.statistics or {}
                if check.name == "allowed_values":
                    self.allowed = frozenset(stats["allowed_values"])
                elif check.name == "pattern":
                    self.pattern = re.compile(stats["pattern"])
                elif check.name == "in_range":
                    self.range = (stats["min_value"], stats["max_value"], stats["include_min"], stats["include_max"])
        days = spec.not_future_days(col) if col is not None else None
        self.future_limit = None if days is None else now + timedelta(days=days)
        # More than max_blank_lines blank lines in a row; a literal "\n" first lets the
        # regex engine skip ahead fast on 2,000-character comments.
        self.blank_run = re.compile(r"\n(?:[ \t\r]*\n){%d}" % (settings.clean.max_blank_lines + 1))
        self.orphan_values: frozenset = frozenset()

    @property
    def plain_text(self) -> bool:
        """A contract text column with no rule on its values: clean text needs no judging."""
        return self.kind in ("text", "flag", "month") and self.allowed is None and self.pattern is None and not self.long_text

    @property
    def simple_date(self) -> bool:
        """A typed date column whose values meet no rule but their date (``judge_date_text``)."""
        return (
            self.date_kind and self.typed and not self.long_text and self.allowed is None
            and self.pattern is None and self.range is None and not self.orphan_values
        )

    @property
    def plain_integer(self) -> bool:
        """An integer column: an in-range integer that is no sampled orphan needs no judging."""
        return self.kind == "integer"

    @property
    def plain_long_text(self) -> bool:
        return self.kind == "text" and self.long_text and self.allowed is None and self.pattern is None

    def integer_bounds(self) -> tuple[float, float]:
        """The contract range as inclusive bounds on integers (infinite when open)."""
        if self.range is None:
            return -math.inf, math.inf
        lo, hi, inc_lo, inc_hi = self.range
        lo_i = -math.inf if lo == -math.inf else (math.ceil(lo) if inc_lo else math.floor(lo) + 1)
        hi_i = math.inf if hi == math.inf else (math.floor(hi) if inc_hi else math.ceil(hi) - 1)
        return lo_i, hi_i


class _Info:
    """The judgement of one distinct value: which counters it increments, and its
    contribution to the detected kind, min/max and the distinct count."""

    __slots__ = ("hits", "kind", "num", "text", "dt", "hash")

    def __init__(self, hits: tuple, kind: str | None, num: Any, text: str | None, dt: tuple, h: int) -> None:
        self.hits = hits
        self.kind = kind
        self.num = num
        self.text = text
        self.dt = dt  # (datetime read day-first, datetime read month-first); None where it is no date
        self.hash = h


def _hash64(value: Any) -> int:
    """A 64-bit hash for the distinct count. Python's own: strings already carry it (the
    Counter computed it), numbers are scrambled (``hash(5) == 5`` would skew HyperLogLog).
    String hashes are salted per process, so estimates above ``DISTINCT_EXACT`` may
    differ by about 1% between runs (``PYTHONHASHSEED`` fixes them)."""
    return hash(value)


def _mix64(h: int) -> int:
    """Scramble a hash (``hash(5) == 5``) so that its bits suit HyperLogLog."""
    x = h & _M64
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & _M64
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & _M64
    return x ^ (x >> 33)


class _Distinct:
    """Exact distinct count up to ``DISTINCT_EXACT`` hashes, HyperLogLog beyond."""

    def __init__(self) -> None:
        self.exact: set[int] | None = set()
        self.registers: bytearray | None = None

    def add(self, h: int) -> None:
        if self.exact is not None:
            self.exact.add(h)
            if len(self.exact) > DISTINCT_EXACT:
                self.registers = bytearray(1 << HLL_P)
                exact, self.exact = self.exact, None
                self.add_many(list(exact))
        else:
            self._hll(h)

    def _hll(self, h: int) -> None:
        h = _mix64(h)
        width = 64 - HLL_P
        idx = h >> width
        rank = width - (h & ((1 << width) - 1)).bit_length() + 1
        regs = self.registers
        if rank > regs[idx]:  # type: ignore[index]
            regs[idx] = rank  # type: ignore[index]

    def add_many(self, hashes: list[int]) -> None:
        """Add a batch of hashes; in HyperLogLog mode vectorised with numpy."""
        if self.exact is not None or len(hashes) < 64:
            for h in hashes:
                self.add(h)
            return
        import numpy as np

        # Python hashes are C ``Py_hash_t`` (signed 64-bit): as int64 viewed as uint64
        # they are ``h & _M64``, without a Python loop.
        x = np.array(hashes, dtype=np.int64).view(np.uint64)
        with np.errstate(over="ignore"):
            x ^= x >> np.uint64(33)
            x *= np.uint64(0xFF51AFD7ED558CCD)
            x ^= x >> np.uint64(33)
            x *= np.uint64(0xC4CEB9FE1A85EC53)
            x ^= x >> np.uint64(33)
        width = 64 - HLL_P
        idx = (x >> np.uint64(width)).astype(np.int64)
        rest = (x & np.uint64((1 << width) - 1)).astype(np.float64)  # < 2**50: exact
        _, exponent = np.frexp(rest)  # bit length of rest (0 for 0)
        rank = (width - exponent + 1).astype(np.uint8)
        regs = np.frombuffer(self.registers, dtype=np.uint8)  # type: ignore[arg-type]
        np.maximum.at(regs, idx, rank)

    @property
    def estimated(self) -> bool:
        return self.exact is None

    def count(self) -> int:
        if self.exact is not None:
            return len(self.exact)
        regs = self.registers
        assert regs is not None
        m = len(regs)
        alpha = 0.7213 / (1 + 1.079 / m)
        raw = alpha * m * m / sum(2.0**-r for r in regs)
        zeros = regs.count(0)
        if raw <= 2.5 * m and zeros:
            raw = m * math.log(m / zeros)
        return int(round(raw))


_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_WHOLE: Any = object()  # ``judge_date_text``: the whole text is read at once
_TO_10, _AT_10, _FROM_11 = operator.itemgetter(slice(0, 10)), operator.itemgetter(slice(10, 11)), operator.itemgetter(slice(11, None))
_TIME_BASED = ("iso", "day_first", "month_first", "slash_ambiguous")
_SLASH_LABELS = frozenset(("day_first", "month_first", "slash_ambiguous"))
_NUL = re.compile("\x00")
_TEXT_TYPES = frozenset((str, bytes))


class _DateReader:
    """``dates.date_readings`` with the date part and the time part of ``date time`` text
    remembered: a column of a million unique timestamps holds a few hundred days and at
    most 86,400 times of day. Anything else goes to ``date_readings`` whole."""

    def __init__(self) -> None:
        self.days: dict[str, tuple] = {}
        self.times: dict[str, tuple | None] = {}

    def __call__(self, value: Any) -> tuple:
        if type(value) is str:
            text = value.strip()
            day, sep, tm = text.partition(" ")
            if sep:
                hms = self.times.get(tm, _UNSET)
                if hms is _UNSET:
                    m = _TIME.match(tm)
                    hms = None
                    if m:
                        h, mi, se = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
                        if h <= 23 and mi <= 59 and se <= 59:
                            hms = (h, mi, se, len(m.group(1)) == 2)
                    if len(self.times) < 2 * CACHE_MAX:
                        self.times[tm] = hms
                if hms is not None:
                    base = self.days.get(day)
                    if base is None:
                        base = date_readings(day)
                        if len(self.days) < 2 * CACHE_MAX:
                            self.days[day] = base
                    label, df, mf = base
                    if label in _TIME_BASED and (label != "iso" or hms[3]):  # ISO wants HH
                        h, mi, se = hms[0], hms[1], hms[2]
                        return (
                            label,
                            None if df is None else df.replace(hour=h, minute=mi, second=se),
                            None if mf is None else mf.replace(hour=h, minute=mi, second=se),
                        )
        return date_readings(value)


@functools.cache
def iso_clock_times() -> frozenset[str]:
    """Every valid ``HH:MM:SS`` time of day (86,400 strings): ISO text of a day and one
    of these is an ISO timestamp exactly when the day is an ISO date."""
    hours = [f"{h:02d}:" for h in range(24)]
    sixty = [f"{m:02d}" for m in range(60)]
    minutes = [m + ":" for m in sixty]
    return frozenset([h + m + s for h in hours for m in minutes for s in sixty])


def _order_key(order: Order | None) -> int:
    return 1 if order is Order.MONTH_FIRST else 0


class _ColumnScan:
    """Everything counted about one column over the whole table."""

    def __init__(self, spec_: _Spec, examples: int) -> None:
        self.spec = spec_
        self.max_examples = examples
        self.nulls = 0
        self.storage: collections.Counter = collections.Counter()
        self.counts: collections.Counter = collections.Counter()
        self.examples: dict[str, list] = {}
        self.settled: set[tuple] = set()  # hit tuples whose example buckets are all full
        self.kinds: collections.Counter = collections.Counter()
        self.sampled = 0
        self.caches: dict[type, dict] = {}
        self.kind_cache: dict[Any, str | None] = {}
        self.iso_days: dict[str, bool] = {}  # ``_iso_day``
        self.read_date = _DateReader()
        self.slash_days: dict[str, tuple | bool] = {}  # judgements of slash days (``_slash_day``)
        self.slash_times: dict[str, timedelta] = {}  # ``HH:MM[:SS]`` read as a time of day
        self.unique_heavy: bool | None = None  # decided on the first full batch
        self.distinct = _Distinct()
        self.num_min: Any = None
        self.num_max: Any = None
        self.text_min: str | None = None
        self.text_max: str | None = None
        self.dt_min: list = [None, None]
        self.dt_max: list = [None, None]

    # -- judging one distinct value

    def judge(self, value: Any) -> _Info:
        s = self.spec
        t = type(value)
        hits: list[str] = []
        kind: str | None = None
        num: Any = None
        text: str | None = None
        dt: tuple | None = None
        missing = False
        if t is str:
            stripped = value.strip()
            if not stripped:
                hits.append("empty" if value == "" else "whitespace")
                missing = True
            elif stripped in s.tokens:
                hits.append("ph:" + stripped)
                hits.append("placeholder_declared" if stripped in s.declared_tokens else "placeholder_global")
                if value != stripped:
                    hits.append("placeholder_padded")
                missing = True
            if "\x00" in value:
                hits.append("nul")
            if s.long_text and "\n" in value:
                if "\r" in value:
                    crlf = value.count("\r\n")
                    lf = value.count("\n") - crlf
                    cr = value.count("\r") - crlf
                    if (crlf > 0) + (lf > 0) + (cr > 0) >= 2:
                        hits.append("crlf_mix")
                if s.blank_run.search(value):
                    hits.append("blank_run")
        if s.typed and not conforms(s.kind, value):  # type: ignore[arg-type]
            hits.append("nonconforming")
        if not missing:
            kind = _UNSET  # detected lazily: only sampled values need it
            if s.kind in ("integer", "numeric") or (s.kind is None and t is not str):
                num = to_number(value) if t is not bool else None
            elif t is str and not s.date_kind:
                text = value
            if s.typed and not s.date_kind and "nonconforming" in hits:
                if s.kind == "integer" and to_integer(value) is not None:
                    hits.append("integer_as_real" if t is float else "number_as_text" if t is str else "convertible")
                elif s.kind == "numeric" and to_number(value) is not None:
                    hits.append("number_as_text" if t is str else "convertible")
                elif s.kind == "integer" and to_number(value) is not None:
                    hits.extend(("not_integer", "unfixable"))
                else:
                    hits.extend(("not_a_number", "unfixable"))
            elif s.kind is None and t is float and value.is_integer():
                hits.append("integer_as_real")
            if s.maybe_date:
                dt = self._judge_date(value, hits)
            if s.allowed is not None and value not in s.allowed:
                hits.append("not_allowed")
            if s.pattern is not None and not s.pattern.match(value if t is str else str(value)):
                hits.append("pattern")
            if s.range is not None:
                n = to_number(value)
                if n is not None:
                    lo, hi, inc_lo, inc_hi = s.range
                    if (n < lo if inc_lo else n <= lo) or (n > hi if inc_hi else n >= hi):
                        hits.append("range")
            if s.orphan_values and value in s.orphan_values:
                hits.append("orphan")
        return _Info(tuple(hits), kind, num, text, dt, _hash64(value))

    def judge_date_text(self, value: str) -> _Info:
        """``judge`` of a text value in a date column with no other rule on its values
        (``_Spec.simple_date``), minus the branches that cannot apply: a column of
        unique timestamps is judged value by value."""
        s = self.spec
        if not value or value.strip() is not value or value in s.tokens or "\x00" in value:
            return self.judge(value)  # blanks, placeholders, padding, NUL: the whole judgement
        day, sep, tm = value.partition(" ")
        if sep:
            # ``d/mm/yyyy HH:MM`` or ``YYYY-MM-DD HH:MM:SS`` whose day and time of day
            # were read before: the judgement of the day, remembered, and its time put
            # in (``_slash_day``).
            entry = self.slash_days.get(day)
            if entry is None and day in self.read_date.days:
                entry = self._slash_day(day)
            # An ISO day conforms with ``HH:MM`` or ``HH:MM:SS`` only (``_ISO``).
            if entry and (not entry[4] or (tm[2:3] == ":" and len(tm) in (5, 8) and tm.isascii())):
                clock = self.slash_times.get(tm)
                if clock is None:
                    hms = self.read_date.times.get(tm)
                    if hms is not None and len(self.slash_times) < 2 * CACHE_MAX:
                        clock = self.slash_times[tm] = timedelta(hours=hms[0], minutes=hms[1], seconds=hms[2])
                    elif entry[4] and tm in iso_clock_times():
                        # An ISO day with an ``HH:MM:SS`` time not remembered (a column
                        # of unique timestamps holds most of the 86,400): the whole text
                        # is the reading, as midnight plus the time would give.
                        clock = _WHOLE
                if clock is not None:
                    label_hits, df, mf, hits_all, _ = entry
                    if clock is _WHOLE:
                        df = mf = datetime.fromisoformat(value)  # an ISO day reads alike both ways
                    else:
                        # The day at midnight plus the time: ``replace(hour=, minute=, second=)``.
                        if df is not None:
                            df = df + clock
                        if mf is not None:
                            mf = mf + clock
                    if hits_all is None:  # the day straddles the future limit: per value
                        limit = s.future_limit
                        more = list(label_hits)
                        if df is None:
                            more.append("invalid@df")
                        elif df > limit:
                            more.append("future@df")
                        if mf is None:
                            more.append("invalid@mf")
                        elif mf > limit:
                            more.append("future@mf")
                        hits_all = tuple(more)
                    return _Info(hits_all, _UNSET, None, None, (df, mf), hash(value))
        hits: list[str] = [] if conforms(s.kind, value) else ["nonconforming"]  # type: ignore[arg-type]
        dt = self._judge_date(value, hits)
        return _Info(tuple(hits), _UNSET, None, None, dt, hash(value))

    def _slash_day(self, day: str) -> tuple | bool:
        """The judgement shared by every ``day time`` text of one slash day (``day``
        holds a "/", so no such text is ISO: ``nonconforming`` for both date kinds) or
        ISO day (``YYYY-MM-DD``: with an ``HH:MM[:SS]`` time an ISO timestamp):
        (hits up to the date label, the day read day-first and month-first, all hits or
        None where the future limit falls within the day, whether the day is ISO).
        False where the day is neither, or not read as midnight; ``judge_date_text``
        then judges in full."""
        base = self.read_date.days.get(day)
        entry: tuple | bool = False
        if base is None:
            label = None
        elif base[0] in _SLASH_LABELS and "/" in day:
            label = base[0]
            label_hits: tuple = ("nonconforming", "date:" + label)
        elif base[0] == "iso" and len(day) == 10 and day.isascii():
            # ``YYYY-MM-DD``: with an ``HH:MM[:SS]`` time it is an ISO timestamp, no ISO date.
            label = base[0]
            label_hits = ("date:iso",) if self.spec.kind == "timestamp" else ("nonconforming", "date:iso")
        else:
            label = None
        if label is not None and all(
            d is None or (d.hour == d.minute == d.second == d.fold == 0 and d.tzinfo is None) for d in base[1:]  # type: ignore[index]
        ):
            _, df, mf = base  # type: ignore[misc]
            hits = list(label_hits)
            limit = self.spec.future_limit
            decided = True
            for d, tag in ((df, "df"), (mf, "mf")):
                if d is None:
                    hits.append("invalid@" + tag)
                elif limit is not None:
                    # ``replace`` of the time keeps the date and the microseconds:
                    # every reading of the day lies between these two.
                    if d.replace(hour=0, minute=0, second=0) > limit:
                        hits.append("future@" + tag)
                    elif d.replace(hour=23, minute=59, second=59) > limit:
                        decided = False
            entry = (label_hits, df, mf, tuple(hits) if decided else None, label == "iso")
        if len(self.slash_days) < 2 * CACHE_MAX:
            self.slash_days[day] = entry
        return entry

    def _judge_date(self, value: Any, hits: list[str]) -> tuple | None:
        s = self.spec
        if s.kind is None and type(value) is not str:
            return None  # numbers in a column without contract are numbers, not serials
        try:
            label, df, mf = self.read_date(value)
        except (DateParseError, ValueError, OverflowError):
            label, df, mf = "unparseable", None, None
        hits.append("date:" + label)
        if label in ("unparseable", "null", "empty"):
            if label == "unparseable":
                hits.append("corrupt")
            return None
        limit = s.future_limit
        if df is None:
            hits.append("invalid@df")
        elif limit is not None and df > limit:
            hits.append("future@df")
        if mf is None:
            hits.append("invalid@mf")
        elif limit is not None and mf > limit:
            hits.append("future@mf")
        return (df, mf)

    def kind_of(self, value: Any) -> str | None:
        """The detected kind of one value (None for blanks and placeholders), remembered
        for short values: a status column is detected once per distinct status."""
        t = type(value)
        if t is int:
            return "integer"  # ``detect_kind`` of any int but a bool
        if t is datetime or t is date:
            kind = _KIND_OF_TYPE.get(t, _UNSET)
            if kind is _UNSET:
                kind = _KIND_OF_TYPE[t] = _detect(value, self.spec.tokens)
            return kind
        if t is str and len(value) == 19 and value[10] == " " and value[11:] in iso_clock_times():
            # Unique timestamps: ISO text of a day and a valid ``HH:MM:SS`` is a timestamp
            # exactly when the day at midnight is one (``_iso_day``); a token is none.
            if self._iso_day(value[:10]) and value not in self.spec.tokens:
                return "timestamp"
        cache = self.kind_cache
        kind = cache.get(value, _UNSET)
        if kind is _UNSET or type(value) is bool:
            kind = _detect(value, self.spec.tokens)
            if len(cache) < CACHE_MAX and (type(value) is not str or len(value) <= CACHE_MAX_LEN) and type(value) is not bool:
                cache[value] = kind
        return kind

    def _iso_day(self, day: str) -> bool:
        """Whether ``day`` followed by any valid ``HH:MM:SS`` is detected as a timestamp."""
        known = self.iso_days.get(day)
        if known is None:
            known = _detect(day + " 00:00:00", frozenset()) == "timestamp"
            if len(self.iso_days) < 2 * CACHE_MAX:
                self.iso_days[day] = known
        return known

    # -- one batch of the column

    def feed(self, col: tuple, key_at: Callable[[int], Any], sample_first: int, stride: int) -> None:
        counter: collections.Counter | None = None
        if not self.unique_heavy:
            try:
                counter = collections.Counter(col)
            except TypeError:  # unhashable values: see below
                pass
        if counter is not None:
            # NULLs and storage classes from the distinct values, not from every value:
            # a text value equals no value of another type. Numbers do (5 == 5.0 ==
            # True share one key), so their types are taken from every value.
            nulls = counter.get(None, 0)
            types = set(map(type, counter))
            types.discard(type(None))
            if not types <= _TEXT_TYPES:
                types = set(map(type, col))
                types.discard(type(None))
        else:
            nulls = col.count(None)
            types = set(map(type, col))
            if nulls:
                types.discard(type(None))
        self.nulls += nulls
        if len(types) == 1:  # the usual case: one storage class besides NULL
            self.storage[next(iter(types))] += len(col) - nulls
        elif types:
            self.storage.update(v for v in map(type, col) if v is not type(None))
        if nulls:
            self.storage[type(None)] += nulls
        # 5 == 5.0 in Python: with both storages present, count (type, value) pairs.
        pairs = (int in types and float in types) or bool in types
        items: Any
        streamed = False
        try:
            if pairs:
                items = collections.Counter(zip(map(type, col), col)).items()
            elif self.unique_heavy:
                # Nearly every value differs: counting them first costs more than it saves.
                items = zip(col, itertools.repeat(1))
                streamed = True
            else:
                if counter is None:
                    counter = collections.Counter(col)  # unhashable: TypeError again
                items = counter.items()
                if self.unique_heavy is None and len(col) >= 256:
                    self.unique_heavy = len(counter) > 0.5 * len(col)
        except TypeError:  # unhashable values (arrays, JSON from PostgreSQL): judge their text form
            col = tuple(v if v is None else repr(v) for v in col)
            items = collections.Counter(col).items()
        counts = self.counts
        examples = self.examples
        full_detect = stride == 1
        max_examples = self.max_examples
        caches = self.caches
        judge = self.judge
        exact = self.distinct.exact
        hashes: list[int] = []
        nums: list = []
        texts: list = []
        dts: list = []
        kinds = self.kinds
        # Fast paths for the bulk of unique values: clean text in a text column without
        # rules, integers in an integer column without a range; everything else is judged.
        spec_ = self.spec
        plain_text = spec_.plain_text and not full_detect
        plain_long = spec_.plain_long_text and not full_detect
        plain_integer = spec_.plain_integer and not full_detect
        lo_i, hi_i = spec_.integer_bounds()
        orphan_values = spec_.orphan_values
        judge_text = self.judge_date_text if spec_.simple_date else judge
        tokens = spec_.tokens
        blank_run = spec_.blank_run
        settled = self.settled
        tally: dict[tuple, int] = {}
        if spec_.simple_date and not full_detect and not pairs and types == {_TYPED_DATES.get(spec_.kind)}:
            typed_rest = self._typed_dates(col, None if streamed else counter, nulls, tally, hashes, dts)
            if typed_rest is not None:
                items = typed_rest
        elif streamed and spec_.simple_date and spec_.kind == "timestamp" and not full_detect:
            rest = self._iso_timestamps(col, tally, hashes, dts)
            if rest is not None:
                items = zip(rest, itertools.repeat(1))
        for value, n in items:
            if pairs:
                t, value = value
            else:
                t = type(value)
            if value is None:
                continue
            if t is str:
                if plain_text and value and value.strip() is value and value not in tokens and "\x00" not in value:
                    hashes.append(hash(value))
                    texts.append(value)
                    continue
                if (
                    plain_long
                    and value
                    and "\r" not in value
                    # ``in`` looks for "\x00" with memchr on the low byte: in 2-byte text
                    # every ASCII character stops it; the regex loop does not care.
                    and ("\x00" not in value if value.isascii() else _NUL.search(value) is None)
                    and value.strip() is value
                    and value not in tokens
                    # No count of "\n" first: most comments have 4 or more; the regex
                    # skips to each "\n" itself.
                    and blank_run.search(value) is None
                ):
                    hashes.append(hash(value))
                    continue
            elif t is int and plain_integer and lo_i <= value <= hi_i and value not in orphan_values:
                hashes.append(hash(value))
                nums.append(value)
                continue
            cache = caches.get(t)
            if cache is None:
                cache = caches[t] = {}
            info = cache.get(value)
            if info is None:
                info = judge_text(value) if t is str else judge(value)
                if len(cache) < CACHE_MAX and (t is not str or len(value) <= CACHE_MAX_LEN):
                    cache[value] = info
            hashes.append(info.hash)
            if full_detect:
                kind = self.kind_of(value)
                if kind is not None:
                    kinds[kind] += n
                    self.sampled += n
            hits = info.hits
            if hits:
                if hits in settled:  # every example bucket of these hits is full: count only
                    tally[hits] = tally.get(hits, 0) + n
                else:
                    need = None
                    for h in hits:
                        counts[h] += n
                        bucket = examples.get(h)
                        if bucket is None:
                            bucket = examples[h] = []
                        if len(bucket) < max_examples:
                            if need is None:
                                need = _positions(col, value, t, max_examples)
                            for p in need:
                                if len(bucket) >= max_examples:
                                    break
                                key = key_at(p)
                                if key not in bucket:  # a value met twice in one batch
                                    bucket.append(key)
                    if all(len(examples[h]) >= max_examples for h in hits):
                        settled.add(hits)
            if info.num is not None:
                nums.append(info.num)
            elif info.text is not None:
                texts.append(info.text)
            if info.dt is not None:
                dts.append(info.dt)
        for hits, n in tally.items():
            for h in hits:
                counts[h] += n
        # Distinct hashes, min and max: whole-batch operations, in C.
        if exact is not None:
            exact.update(hashes)
            if len(exact) > DISTINCT_EXACT:
                self.distinct.add(next(iter(exact)))  # switches to HyperLogLog
        else:
            self.distinct.add_many(hashes)
        if nums:
            lo, hi = min(nums), max(nums)
            if self.num_min is None or lo < self.num_min:
                self.num_min = lo
            if self.num_max is None or hi > self.num_max:
                self.num_max = hi
        if texts:
            lo, hi = min(texts), max(texts)
            if self.text_min is None or lo < self.text_min:
                self.text_min = lo[:TEXT_MINMAX_LEN]
            if self.text_max is None or hi > self.text_max:
                self.text_max = hi[:TEXT_MINMAX_LEN]
        for i in (0, 1):
            column = [d[i] for d in dts if d[i] is not None]
            if column:
                lo, hi = min(column), max(column)
                if self.dt_min[i] is None or lo < self.dt_min[i]:
                    self.dt_min[i] = lo
                if self.dt_max[i] is None or hi > self.dt_max[i]:
                    self.dt_max[i] = hi
        if not full_detect:
            kind_of = self.kind_of
            sample = col[sample_first::stride]
            if types <= _TEXT_TYPES:
                # Text equals no value of another type: each distinct sampled value once.
                for value, n in collections.Counter(sample).items():
                    if value is None:
                        continue
                    kind = kind_of(value)
                    if kind is not None:
                        self.kinds[kind] += n
                        self.sampled += n
                return
            for value in sample:
                if value is None:
                    continue
                kind = kind_of(value)
                if kind is not None:
                    self.kinds[kind] += 1
                    self.sampled += 1


    def _typed_dates(
        self, col: tuple, counter: collections.Counter | None, nulls: int, tally: dict[tuple, int], hashes: list[int], dts: list
    ) -> list | None:
        """``feed``'s pass over typed values of a date column (``datetime`` in a timestamp
        column, ``date`` in a date column: what PostgreSQL gives). ``judge`` of each reads
        it as ISO (``date_readings``: ``("iso", d, d)``, a ``date`` at midnight), so its
        hits are ``date:iso`` and, past the future limit, ``future@df`` and ``future@mf``;
        no text is parsed. Values whose hits are settled are only counted (to ``tally``),
        hashed and their earliest and latest readings put in ``dts``; returns the others as
        ``(value, rows)`` pairs for the whole judgement, in column order, or None (judge
        the batch whole) before ``date:iso`` is settled. ``counter``: the batch's counted
        values, None when it is streamed."""
        settled = self.settled
        if _ISO_HITS not in settled:
            return None
        if counter is not None:
            vals: Sequence = [v for v in counter if v is not None]
        else:
            vals = [v for v in col if v is not None] if nulls else col
        if not vals:
            return []
        lo, hi = min(vals), max(vals)
        typed_date = type(lo) is not datetime
        if not typed_date and (lo.tzinfo is not None or hi.tzinfo is not None):
            return None  # timestamptz: the naive future limit does not compare; judged whole
        limit = self.spec.future_limit
        # ``datetime(d.year, d.month, d.day) > limit`` exactly when ``d > limit.date()``.
        cut = None if limit is None else limit.date() if typed_date else limit
        rest: list = []
        if cut is not None and hi > cut:
            late = [v for v in vals if v > cut]
            late_rows = len(late) if counter is None else sum(counter[v] for v in late)
            if _FUTURE_HITS in settled:
                tally[_FUTURE_HITS] = tally.get(_FUTURE_HITS, 0) + late_rows
            else:
                rest = [(v, 1 if counter is None else counter[v]) for v in late]
                vals = [v for v in vals if not v > cut]
                if not vals:
                    return rest
                lo, hi = min(vals), max(vals)
            on_time = len(vals) if counter is None else sum(counter[v] for v in vals)
            if not rest:
                on_time -= late_rows
        else:
            on_time = len(vals) if counter is None else sum(counter.values()) - nulls
        if on_time:
            tally[_ISO_HITS] = tally.get(_ISO_HITS, 0) + on_time
        hashes.extend(map(hash, vals))
        if typed_date:
            lo, hi = datetime(lo.year, lo.month, lo.day), datetime(hi.year, hi.month, hi.day)
        dts.append((lo, lo))
        dts.append((hi, hi))
        return rest

    def _iso_timestamps(self, col: tuple, tally: dict[tuple, int], hashes: list[int], dts: list) -> list | None:
        """``feed``'s pass over a column of unique timestamps, for ``YYYY-MM-DD HH:MM:SS``
        text of a day judged before whose hits are settled (their examples are full, so
        they are only counted) and the same for every time of that day (the future limit
        is not within it): what ``judge_date_text`` gives each, by the day alone. Their
        counts go to ``tally``, their hashes to ``hashes``, their earliest and latest
        readings to ``dts`` (fixed-width ISO text sorts as its time). Returns the other
        values, for the whole judgement, or None when no day qualifies."""
        settled = self.settled
        day_hits = {
            day: entry[3]
            for day, entry in self.slash_days.items()
            if entry and entry[4] and entry[3] is not None and entry[3] in settled
        }
        if not day_hits:
            return None
        clock = iso_clock_times()
        tokens = self.spec.tokens
        # The usual batch, every value such a text (sorted out in C, map by map): no per-value Python.
        try:
            whole = (
                set(map(len, col)) == {19}
                and set(map(_AT_10, col)) == {" "}
                and all(map(clock.__contains__, map(_FROM_11, col)))
                and tokens.isdisjoint(col)
            )
        except TypeError:  # a NULL or a number among them
            whole = False
        if whole:
            hits_of = list(map(day_hits.get, map(_TO_10, col)))
            if None not in hits_of:
                for hits, n in collections.Counter(hits_of).items():
                    tally[hits] = tally.get(hits, 0) + n
                hashes.extend(map(hash, col))
                lo, hi = datetime.fromisoformat(min(col)), datetime.fromisoformat(max(col))
                dts.append((lo, lo))
                dts.append((hi, hi))
                return []
        fast: list[str] = []
        rest: list = []
        get = day_hits.get
        for value in col:
            if type(value) is str and len(value) == 19 and value[10] == " " and value[11:] in clock:
                hits = get(value[:10])
                if hits is not None and value not in tokens:
                    tally[hits] = tally.get(hits, 0) + 1
                    fast.append(value)
                    continue
            rest.append(value)
        if fast:
            hashes.extend(map(hash, fast))
            lo, hi = datetime.fromisoformat(min(fast)), datetime.fromisoformat(max(fast))
            dts.append((lo, lo))
            dts.append((hi, hi))
        return rest


def _detect(value: Any, tokens: frozenset[str]) -> str | None:
    if isinstance(value, str) and value.strip() in tokens:
        return None
    return detect_kind(value)


def _positions(col: tuple, value: Any, t: type, need: int) -> list[int]:
    """Up to ``need`` row positions holding ``value`` (of type ``t``: 5 == 5.0 in Python)."""
    out: list[int] = []
    i = -1
    while len(out) < need:
        try:
            i = col.index(value, i + 1)
        except ValueError:
            break
        if type(col[i]) is t:
            out.append(i)
    return out


def _batch_rows(source: Source, table: str, columns: Sequence[str]) -> int:
    """Rows per batch so that a batch holds about ``BATCH_TARGET_BYTES`` of values."""
    probe = next(iter(source.iter_batches(table, columns, PROBE_ROWS, limit=PROBE_ROWS)), [])
    if not probe:
        return MAX_BATCH_ROWS
    size = 0
    for row in probe:
        for v in row:
            size += 56 + (len(v) if isinstance(v, (str, bytes)) else 8)
    per_row = max(size / len(probe), 1.0)
    return int(min(MAX_BATCH_ROWS, max(MIN_BATCH_ROWS, BATCH_TARGET_BYTES // per_row)))


def _label_family(declared: str) -> str | None:
    upper = declared.upper()
    if not upper or "BLOB" in upper or upper == "ANY":
        return None
    for needle, family in _LABEL_FAMILY:
        if needle in upper:
            return family
    return None


def _detected(kinds: collections.Counter, sampled: int, threshold: float) -> tuple[str | None, float]:
    """The narrowest kind at least ``threshold`` of the sampled values fit; failing that,
    the typed kind most of them fit, or text."""
    if not sampled:
        return None, 0.0
    fits = {
        "integer": kinds["integer"],
        "numeric": kinds["integer"] + kinds["numeric"],
        "date": kinds["date"],
        "timestamp": kinds["date"] + kinds["timestamp"],
    }
    for k in ("integer", "numeric", "date", "timestamp"):
        if fits[k] / sampled >= threshold:
            return k, round(fits[k] / sampled, 4)
    best = max(("numeric", "timestamp"), key=lambda k: fits[k])
    if fits[best] / sampled > 0.5:
        narrow = {"numeric": "integer", "timestamp": "date"}[best]
        chosen = narrow if fits[narrow] == fits[best] else best
        return chosen, round(fits[chosen] / sampled, 4)
    return "text", 1.0


def keys_asked_ahead(source: Source, tables: Sequence[str]) -> list[tuple[str, tuple[str, ...]]]:
    """(table, contract key) of each named table whose key columns are all present:
    the duplicate-key questions ``profile_tables`` asks (a single integer key only
    when the pass reads it not rising)."""
    jobs = []
    for name in tables:
        schema = contract_for(name)
        if schema is None:
            continue
        key = tuple(spec.facts(schema).key)
        names = {c for c, _ in source.columns(name)}
        if key and all(c in names for c in key):
            jobs.append((name, key))
    return jobs


class _DuplicatesAhead:
    """``duplicate_keys`` of every table with a contract key, asked at the start on a
    second connection to the same read-only SQLite file, in a thread: the GROUP BY runs
    in SQLite's C code (the GIL released) beside the Python pass over the values, on the
    second core (about 2 s of 22 s at 1M rows). Other sources (PostgreSQL) are asked in turn."""

    def __init__(self, source: Source, tables: list[str], limit: int, answered: Callable[[str, tuple[str, ...]], Any] | None = None) -> None:
        self.source = source
        self.limit = limit
        self.answered = answered
        self.futures: dict[tuple[str, tuple[str, ...]], Any] = {}
        self.deferred: set[tuple[str, tuple[str, ...]]] = set()
        self.pool: Any = None
        if not isinstance(source, SQLiteSource):  # subclasses too (the checker child's profile source)
            return
        jobs = keys_asked_ahead(source, tables)
        if not jobs:
            return
        from concurrent.futures import ThreadPoolExecutor

        path = source.path
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="profile-duplicates")

        def ask(table: str, key: tuple[str, ...]) -> tuple[int, list[tuple]]:
            with SQLiteSource(path) as own:  # a connection of the thread's own
                return own.duplicate_keys(table, list(key), limit=limit)

        self.ask = ask
        for table, key in jobs:
            if len(key) > 1 and answered is not None:
                self.deferred.add((table, key))  # another process asks it (``duplicate_keys``)
            elif len(key) == 1:
                # Asked only once the pass finds the key not rising (``start``): a key
                # column of integers rising row after row repeats no key.
                self.deferred.add((table, key))
            else:
                self.futures[(table, key)] = self.pool.submit(ask, table, key)

    def start(self, table: str, key: Sequence[str]) -> None:
        """Ask a deferred question now (the key did not rise): beside the rest of the pass."""
        job = (table, tuple(key))
        if job in self.deferred:
            self.deferred.discard(job)
            self.futures[job] = self.pool.submit(self.ask, *job)

    def duplicate_keys(self, table: str, key: Sequence[str], rose: bool = False) -> tuple[int, list[tuple]]:
        """``rose``: the pass read the single key column rising (``rising_integers``) throughout."""
        job = (table, tuple(key))
        if job in self.deferred:
            self.deferred.discard(job)
            if rose:
                return 0, []
            if len(job[1]) > 1 and self.answered is not None:
                answer = self.answered(*job)
                if answer is not None:
                    return answer
            return self.source.duplicate_keys(table, key, limit=self.limit)
        future = self.futures.pop(job, None)
        if future is not None:
            return future.result()
        if rose:
            return 0, []  # any source (PostgreSQL): a single key column rising row after row repeats no key
        return self.source.duplicate_keys(table, key, limit=self.limit)

    def close(self) -> None:
        if self.pool is not None:
            for future in self.futures.values():
                future.cancel()
            self.pool.shutdown(wait=True)


def _profile_table(
    source: Source,
    name: str,
    present: list[str],
    settings: Settings,
    full: bool,
    now: datetime,
    progress: bool,
    ahead: _DuplicatesAhead | None = None,
) -> tuple[TableProfile, list[Finding]]:
    schema = contract_for(name)
    facts = spec.facts(schema) if schema is not None else None
    declared = source.columns(name)
    names = [c for c, _ in declared]
    # Rows and each column's non-NULL values in one scan where the source can (SQLite):
    # columns holding nothing but NULL are then not read (40 of the 60 ticket columns).
    # The references checked for orphans: their counts come in the same scan there.
    references = [
        ref for ref in (facts.references if facts is not None else ())
        if ref.column in names and ref.target_table in present
        and ref.target_column in [c for c, _ in source.columns(ref.target_table)]
    ]
    filled_of = getattr(source, "non_null_counts", None)
    orphan_counts: list | None = None
    if callable(filled_of):
        rows, filled, orphan_counts = filled_of(
            name, names, [(r.column, r.target_table, r.target_column, r.ignore) for r in references]
        )
    else:
        rows, filled = source.row_count(name), None
    findings: list[Finding] = []
    ps = settings.profile
    k = ps.example_keys
    contract_cols = dict(schema.columns) if schema is not None else {}
    missing = [c for c in contract_cols if c not in names]
    extra = [c for c in names if schema is not None and c not in contract_cols]
    for c in missing:
        findings.append(_table_finding("MISSING_COLUMN", name, "critical", c, count=rows, detail={"columns_found": names[:80]}))
    if schema is not None and rows == 0:
        severity = "critical" if name in DATA_TABLES else "warning"
        findings.append(_table_finding("EMPTY_TABLE", name, severity, count=0, share=0.0))

    specs = [_Spec(name, c, d, contract_cols.get(c), settings, now) for c, d in declared]
    scans = [_ColumnScan(sp, k) for sp in specs]
    by_name = {sc.spec.name: sc for sc in scans}

    # Whole-table checks first: their sampled values let the pass find example rows.
    key_cols = list(facts.key) if facts is not None and all(c in names for c in facts.key) else []
    # Its finding goes here in the list; the answer may still be on its way (``_DuplicatesAhead``).
    duplicates_at = len(findings)
    orphan_results = []
    if facts is not None and rows:
        for i, ref in enumerate(references):
            if orphan_counts is None:
                count, total, sample = source.orphans(name, ref.column, ref.target_table, ref.target_column, ref.ignore, limit=k)
            else:
                count, total = orphan_counts[i]
                sample = source.orphan_sample(name, ref.column, ref.target_table, ref.target_column, ref.ignore, limit=k) if count else []  # type: ignore[attr-defined]
            orphan_results.append((ref, count, total, sample))
            by_name[ref.column].spec.orphan_values = frozenset(v for v in sample if _hashable(v))

    rowid = getattr(source, "row_id_column", None)
    rowid_col = rowid(name) if (callable(rowid) and not key_cols) else None
    select = names + ([rowid_col] if rowid_col else [])
    stride = 1 if full else max(1, math.ceil(rows / max(ps.sample_size, 1)))
    # Batches are sized on every column: their bounds decide which example rows are found first.
    batch_rows = _batch_rows(source, name, select) if rows else MAX_BATCH_ROWS
    # A column of NULLs only is counted, not read: ``feed`` of NULLs counts them and their storage.
    nothing = {c for c in names if filled is not None and not filled[c] and c not in key_cols}
    read_scans = [sc for sc in scans if sc.spec.name not in nothing]
    names_read = [c for c in names if c not in nothing]
    select = names_read + ([rowid_col] if rowid_col else [])
    key_idx = [names_read.index(c) for c in key_cols]
    start = 0
    # A single key column rising row after row (``rising_integers``) repeats no key.
    rising, last_key = len(key_idx) == 1, None
    with Progress(f"profile {name}", rows, stream=sys.stderr if progress else _Silent()) as bar:
        for batch in source.iter_batches(name, select, batch_rows):
            cols = list(zip(*batch))
            if rising:
                rising = rising_integers(cols[key_idx[0]], last_key)
                last_key = cols[key_idx[0]][-1]
                if not rising and ahead is not None:
                    ahead.start(name, key_cols)
            if key_idx:
                kc = [cols[i] for i in key_idx]
                if len(kc) == 1:
                    only = kc[0]
                    key_at = lambda i, only=only: _key_json(only[i])  # noqa: E731
                else:
                    key_at = lambda i, kc=kc: [_key_json(c[i]) for c in kc]  # noqa: E731
            elif rowid_col:
                rid = cols[-1]
                key_at = lambda i, rid=rid: rid[i]  # noqa: E731
            else:
                key_at = lambda i, start=start: start + i + 1  # noqa: E731
            first = (-start) % stride
            for scan, col in zip(read_scans, cols):
                scan.feed(col, key_at, first, stride)
            start += len(batch)
            bar.advance(len(batch))
            del cols, batch
    for scan in scans:
        if scan.spec.name in nothing and rows:
            scan.nulls += rows
            scan.storage[type(None)] += rows

    if key_cols and rows:
        dup_count, dup_sample = ahead.duplicate_keys(name, key_cols, rose=rising) if ahead is not None else source.duplicate_keys(name, key_cols, limit=k)
        if dup_count:
            rule = facts.key_rule  # type: ignore[union-attr]
            findings.insert(
                duplicates_at,
                Finding(
                    "DUPLICATE_KEYS", _within(rule, dup_count / rows), name, ",".join(key_cols), dup_count,
                    round(dup_count / rows, 6), [_key_json(s if len(key_cols) > 1 else s[0]) for s in dup_sample],
                    FIXES["DUPLICATE_KEYS"], {"key": key_cols, "tolerance": rule.tolerance},
                ),
            )

    columns: dict[str, ColumnProfile] = {}
    for scan in scans:
        profile, col_findings = _finish_column(name, rows, scan, settings)
        columns[scan.spec.name] = profile
        findings.extend(col_findings)
    for ref, count, total, sample in orphan_results:
        if not count:
            continue
        share = count / total if total else 0.0
        examples = by_name[ref.column].examples.get("orphan", [])[:k]
        findings.append(
            Finding(
                "ORPHANS", _within(ref.rule, share), name, ref.column, count, round(share, 6), examples, FIXES["ORPHANS"],
                {
                    "target": f"{ref.target_table}.{ref.target_column}",
                    "references": total,
                    "tolerance": ref.rule.tolerance,
                    "orphan_values": [_key_json(v) for v in sample],
                    "ignored_values": [_key_json(v) for v in ref.ignore],
                },
            )
        )
    if schema is not None:
        for c in extra:
            nn = rows - columns[c].null_count
            findings.append(
                Finding("UNKNOWN_COLUMN", "warning", name, c, nn, round(nn / rows, 6) if rows else 0.0, [], FIXES["UNKNOWN_COLUMN"])
            )
    return (
        TableProfile(
            name=name, rows=rows, has_contract=schema is not None, columns=columns, missing_columns=missing, extra_columns=extra,
            references=[
                {
                    "column": ref.column,
                    "target": f"{ref.target_table}.{ref.target_column}",
                    "orphans": int(count),
                    "references": int(total),
                    "sample": [_key_json(v) for v in sample],
                }
                # an empty table: no orphan, no reference
                for ref, count, total, sample in (orphan_results if rows else [(ref, 0, 0, []) for ref in references])
            ],
        ),
        findings,
    )


class _Silent:
    def write(self, _: str) -> None: ...

    def flush(self) -> None: ...

    def isatty(self) -> bool:
        return False


def _hashable(v: Any) -> bool:
    try:
        hash(v)
    except TypeError:
        return False
    return True


def _within(rule: spec.Rule, share: float) -> str:
    """The rule's severity, or warning when the failing share is within its tolerance."""
    return "warning" if share <= rule.tolerance else rule.severity


def _key_json(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    return _json_safe(v)


def _json_safe(v: Any) -> Any:
    if isinstance(v, (datetime, date)):
        return v.isoformat(sep=" ") if isinstance(v, datetime) else v.isoformat()
    if isinstance(v, Decimal):
        return float(v) if v.is_finite() else str(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, (set, frozenset, tuple)):
        return list(v)
    return str(v)


def _finish_column(table: str, rows: int, scan: _ColumnScan, settings: Settings) -> tuple[ColumnProfile, list[Finding]]:
    s = scan.spec
    c = scan.counts
    ex = scan.examples
    k = settings.profile.example_keys
    nonnull = rows - scan.nulls
    findings: list[Finding] = []
    contract = s.col is not None

    def add(code: str, severity: str, count: int, base: int, examples: list | None = None, **detail: Any) -> None:
        if count <= 0:
            return
        findings.append(
            Finding(code, severity, table, s.name, count, round(count / base, 6) if base else 0.0, list(examples or [])[:k], FIXES[code], detail)
        )

    def rule_sev(name: str, share: float, default: str = "error") -> str:
        rule = s.rules.get(name)
        return _within(rule, share) if rule is not None else default

    detected, confidence = _detected(scan.kinds, scan.sampled, settings.profile.type_confidence)

    # Dates: decided over all values of the column.
    decision: DateFormatDecision | None = None
    is_date = s.date_kind or (not contract and (detected in ("date", "timestamp") or _label_family(s.declared) == "timestamp"))
    if is_date:
        vote = DateFormatVote(max_examples=k)
        for label in ("iso", "day_first", "month_first", "slash_ambiguous", "serial", "unparseable"):
            n = c["date:" + label]
            if n:
                vote.add_label(label, n, ex.get("date:" + label, []))
        locale = Order.DAY_FIRST if settings.date_locale == "day-first" else Order.MONTH_FIRST
        decision = decide_format(vote, locale)
    order_tag = "mf" if decision is not None and decision.order is Order.MONTH_FIRST else "df"
    oi = _order_key(decision.order if decision else None)

    # Blanks and placeholders.
    empty, ws = c["empty"], c["whitespace"]
    tokens = {h[3:]: n for h, n in c.items() if h.startswith("ph:")}
    placeholder_total = sum(tokens.values())
    typed_or_date = s.typed or is_date
    blank_sev = "error" if contract and s.typed else "warning"
    add("EMPTY_STRINGS", blank_sev, empty, rows, ex.get("empty"), typed=typed_or_date)
    add("WHITESPACE_STRINGS", blank_sev, ws, rows, ex.get("whitespace"), typed=typed_or_date)
    if placeholder_total:
        declared_hit = c["placeholder_declared"] > 0
        sev = "error" if contract and (s.typed or declared_hit) else "warning"
        keys: list = []
        for h in ("placeholder_declared", "placeholder_global"):
            keys.extend(ex.get(h, []))
        add("PLACEHOLDERS", sev, placeholder_total, rows, keys, tokens=dict(sorted(tokens.items())), padded=c["placeholder_padded"])

    # Contract type.
    nonconforming = c["nonconforming"] if s.typed else 0
    label_family = _label_family(s.declared)
    declared_mismatch = False
    if label_family is not None and nonnull:
        if contract:
            declared_mismatch = s.kind not in _LABEL_HOLDS.get(label_family, set()) and not (
                label_family == "text" and s.kind in ("text", "flag", "month")
            )
        elif detected is not None and confidence >= settings.profile.type_confidence:
            declared_mismatch = detected not in _LABEL_HOLDS.get(label_family, {detected})
    corrupt = 0
    if is_date and decision is not None:
        corrupt = c["corrupt"] + (c["invalid@" + order_tag] if decision.order is not None else 0)
    unfixable = corrupt if s.date_kind else c["unfixable"]
    considered = nonnull - empty - ws - placeholder_total
    if nonconforming or declared_mismatch:
        sev = rule_sev("type", nonconforming / nonnull if nonnull else 0.0) if nonconforming else "warning"
        count = nonconforming if nonconforming else nonnull
        keys = ex.get("nonconforming") if nonconforming else []
        reasons = {
            r: c[r]
            for r in ("empty", "whitespace", "integer_as_real", "number_as_text", "not_integer", "not_a_number", "convertible")
            if c[r] and (s.typed or r in ("integer_as_real",))
        }
        if placeholder_total and s.typed:
            reasons["placeholder"] = placeholder_total
        if s.date_kind and decision is not None:
            for label in ("day_first", "month_first", "slash_ambiguous", "serial"):
                if c["date:" + label]:
                    reasons[label] = c["date:" + label]
            if corrupt:
                reasons["corrupt"] = corrupt
        add(
            "TYPE_MISMATCH", sev, count, nonnull, keys,
            declared_type=s.declared, contract_kind=s.kind, detected_kind=detected,
            declared_mismatch=declared_mismatch, nonconforming=nonconforming, reasons=reasons,
            unfixable=unfixable, considered=considered,
        )
    if contract and s.kind in ("integer", "numeric"):
        add("INTEGER_AS_REAL", rule_sev("type", c["integer_as_real"] / max(nonnull, 1)), c["integer_as_real"], nonnull, ex.get("integer_as_real"))
        add("NUMBER_AS_TEXT", rule_sev("type", c["number_as_text"] / max(nonnull, 1)), c["number_as_text"], nonnull, ex.get("number_as_text"))
        bad = c["not_a_number"] + c["not_integer"]
        add(
            "NOT_A_NUMBER", rule_sev("type", bad / max(nonnull, 1)), bad, nonnull,
            ex.get("not_a_number", []) + ex.get("not_integer", []), not_a_number=c["not_a_number"], not_integer=c["not_integer"],
        )
    elif not contract and detected == "integer" and c["integer_as_real"]:
        add("INTEGER_AS_REAL", "warning", c["integer_as_real"], nonnull, ex.get("integer_as_real"))

    # Date findings.
    date_json = None
    if decision is not None:
        date_json = decision.to_json()
        date_sev = "error" if s.date_kind else "warning"
        fam = {"iso": c["date:iso"], "slash": c["date:day_first"] + c["date:month_first"] + c["date:slash_ambiguous"], "serial": c["date:serial"]}
        if decision.inconsistent:
            dominant = max(fam, key=lambda f: fam[f])
            minority = sum(n for f, n in fam.items() if f != dominant)
            conflict = bool(c["date:day_first"] and c["date:month_first"])
            keys = []
            for f in fam:
                if f == dominant:
                    continue
                labels = {"iso": ["iso"], "slash": ["day_first", "month_first", "slash_ambiguous"], "serial": ["serial"]}[f]
                for label in labels:
                    keys.extend(ex.get("date:" + label, []))
            add(
                "INCONSISTENT_DATE_FORMAT", "critical" if conflict and s.date_kind else date_sev,
                minority + (min(c["date:day_first"], c["date:month_first"]) if conflict else 0), nonnull, keys, families=fam, dominant=dominant,
                decided_order=decision.order.value if decision.order else None, conflicting_orders=conflict, format=decision.format.value,
            )
        if decision.ambiguous:
            add("AMBIGUOUS_DATE_FORMAT", "warning", c["date:slash_ambiguous"], nonnull, ex.get("date:slash_ambiguous"),
                decided_order=decision.order.value if decision.order else None, locale=settings.date_locale)
        corrupt_keys = ex.get("corrupt", []) + (ex.get("invalid@" + order_tag, []) if decision.order is not None else [])
        add("CORRUPT_DATES", date_sev, corrupt, nonnull, corrupt_keys, unparseable=c["corrupt"],
            invalid_in_decided_order=corrupt - c["corrupt"])
        if s.date_kind or not contract:
            add("EXCEL_SERIAL_DATES", date_sev, c["date:serial"], nonnull, ex.get("date:serial"))
        if s.future_limit is not None:
            add("FUTURE_DATES", rule_sev("not_future", c["future@" + order_tag] / max(nonnull, 1)), c["future@" + order_tag], nonnull,
                ex.get("future@" + order_tag), after=s.future_limit.strftime("%Y-%m-%d %H:%M:%S"))

    # Contract value checks.
    if contract:
        if "not_null" in s.rules:
            add("NULL_IN_REQUIRED", rule_sev("not_null", scan.nulls / rows if rows else 0.0), scan.nulls, rows, [])
        if s.allowed is not None:
            add("NOT_ALLOWED", rule_sev("allowed_values", c["not_allowed"] / max(considered, 1)), c["not_allowed"], considered,
                ex.get("not_allowed"), allowed=sorted(s.allowed))
        if s.pattern is not None:
            add("PATTERN_MISMATCH", rule_sev("pattern", c["pattern"] / max(considered, 1)), c["pattern"], considered,
                ex.get("pattern"), pattern=s.pattern.pattern)
        if s.range is not None:
            lo, hi, inc_lo, inc_hi = s.range
            add("OUT_OF_RANGE", rule_sev("in_range", c["range"] / max(considered, 1)), c["range"], considered, ex.get("range"),
                range=f"{'[' if inc_lo else '('}{_key_json(lo)}, {_key_json(hi)}{']' if inc_hi else ')'}")
    hygiene_sev = "error" if contract else "warning"
    add("NUL_BYTES", hygiene_sev, c["nul"], nonnull, ex.get("nul"))
    if s.long_text:
        add("MIXED_LINE_ENDINGS", hygiene_sev, c["crlf_mix"], nonnull, ex.get("crlf_mix"))
        add("BLANK_LINE_RUNS", hygiene_sev, c["blank_run"], nonnull, ex.get("blank_run"), max_blank_lines=settings.clean.max_blank_lines)

    # Min / max: in the column's own terms; never for personal or long free text.
    lo: Any = None
    hi: Any = None
    if decision is not None and scan.dt_min[oi] is not None:
        fmt = "%Y-%m-%d" if s.kind == "date" else "%Y-%m-%d %H:%M:%S"
        lo, hi = scan.dt_min[oi].strftime(fmt), scan.dt_max[oi].strftime(fmt)
    elif scan.num_min is not None and (s.kind in ("integer", "numeric") or not contract):
        lo, hi = _key_json(scan.num_min), _key_json(scan.num_max)
    elif scan.text_min is not None and not s.personal and not (contract and s.long_text):
        lo, hi = scan.text_min, scan.text_max
    storage = {_STORAGE_NAMES.get(t, t.__name__.lower()): n for t, n in sorted(scan.storage.items(), key=lambda kv: -kv[1])}
    profile = ColumnProfile(
        name=s.name,
        declared_type=s.declared,
        contract_kind=s.kind,
        storage_classes=storage,
        detected_kind=detected,
        confidence=confidence,
        sampled=scan.sampled,
        null_count=scan.nulls,
        empty_count=empty,
        whitespace_count=ws,
        placeholder_counts=dict(sorted(tokens.items())),
        distinct_count=scan.distinct.count(),
        min=lo,
        max=hi,
        date=date_json,
        nonconforming=nonconforming,
        distinct_estimated=scan.distinct.estimated,
    )
    return profile, findings


# --- CLI --------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, type=Path, metavar="DB", help="the SQLite database to profile (opened read-only)")
    parser.add_argument("--out", type=Path, metavar="FILE", help="write the profile as JSON here (format: docs/profile-format.md)")
    parser.add_argument("--full", action="store_true", help="detect types on every value instead of the evenly spread sample")
    parser.add_argument("--sample-size", type=int, metavar="N", help="values per column sampled for type detection (default 5000)")
    parser.add_argument(
        "--dry-run-postgres",
        action="store_true",
        help="after profiling, cast a sample of every typed column on the PostgreSQL server (pipeline.dryrun); "
        "refused and silently misread values fail the command",
    )
    parser.add_argument("--target", metavar="URI", help="server for --dry-run-postgres (default: config file, SERVICEDESK_TARGET, PG*, else the embedded server)")
    parser.add_argument("--dry-run-sample", type=int, metavar="N", help="rows per table tried by --dry-run-postgres (default: --sample-size)")


def command(args: argparse.Namespace, settings: Settings) -> int:
    if args.sample_size is not None:
        if args.sample_size < 1:
            raise ConfigError(f"--sample-size must be a positive number, not {args.sample_size}", "give e.g. --sample-size 5000, or --full")
        settings = settings.with_overrides(**{"profile.sample_size": args.sample_size})
    if not getattr(args, "dry_run_postgres", False):
        result = run(ProfileConfig(source=args.source, out=args.out, settings=settings, full=bool(args.full)))
        print(summary(result, args.out))
        return VERDICT_EXIT[result.verdict]
    from pipeline import dryrun
    from pipeline.pgserver import resolve_target

    if args.dry_run_sample is not None and args.dry_run_sample < 1:
        raise ConfigError(f"--dry-run-sample must be a positive number, not {args.dry_run_sample}", "give e.g. --dry-run-sample 5000")
    target = resolve_target(settings.target, args.target, env=dict(os.environ))
    dryrun.check_reachable(target)
    # The profile is written once, with the dry run in it.
    result = run(ProfileConfig(source=args.source, out=None, settings=settings, full=bool(args.full)))
    trial = dryrun.run(dryrun.DryRunConfig(source=args.source, profile=result, target=target, settings=settings, sample_size=args.dry_run_sample))
    if args.out is not None:
        write_profile(result, args.out, extra={"dry_run_postgres": trial.to_json()})
    print(summary(result, args.out))
    print(dryrun.summary(trial))
    code = VERDICT_EXIT[result.verdict]
    return code or (0 if trial.ok else 1)


def summary(result: ProfileResult, out: Path | None = None, limit: int = 15) -> str:
    """A short human summary: tables, score, the worst findings, the verdict and its reasons."""
    lines = [f"profile of {result.source}"]
    for t in result.tables.values():
        mark = "" if t.has_contract else "  (no contract)"
        lines.append(f"  {t.name:<20} {t.rows:>10,} rows {len(t.columns):>4} columns{mark}")
    q = result.quality
    dims = "  ".join(f"{k} {v:.1f}" for k, v in q.dimensions.items())
    lines.append(f"quality {q.score:.1f} ({q.grade}): {dims}")
    counts = collections.Counter(f.severity for f in result.findings)
    lines.append(
        f"findings: {counts['critical']} critical, {counts['error']} error, {counts['warning']} warning"
    )
    for f in result.findings[:limit]:
        where = f"{f.table}.{f.column}" if f.column else f.table
        lines.append(f"  {f.severity:<8} {f.code:<24} {where}: {f.count:,} ({f.share:.2%})")
    if len(result.findings) > limit:
        lines.append(f"  ... {len(result.findings) - limit} more" + (f" in {out}" if out else " (--out FILE for all)"))
    lines.append(f"verdict: {result.verdict}")
    for r in result.reasons:
        lines.append(f"  - {r}")
    return "\n".join(lines)


__all__ = [
    "ProfileConfig",
    "profile_source",
    "run",
    "write_profile",
    "read_profile",
    "summary",
    "add_arguments",
    "command",
    "VERDICT_EXIT",
    "REGISTRY",
]

"""Gate 1 option: try a sample of every typed column on the real PostgreSQL server.

``servicedesk-etl profile --dry-run-postgres [--target URI]`` runs after the profile.
For every contract table it takes a deterministic sample of rows, spread evenly over
the table (``--dry-run-sample``, default the profile's ``sample_size``), plus every row
whose key the profiler gave as an example in a finding (so the known problems are
always tried), and loads the values of its typed columns (``timestamp``, ``date``,
``bigint``, ``numeric``: the types ``contracts.spec.pg_type`` gives the target schema)
*as text* into a temporary table on the server. The server then casts each distinct
value to its contract type, capturing the error of each value on its own:
``pg_input_error_info(text, type)`` on PostgreSQL 16 and later, else a PL/pgSQL
function with an ``EXCEPTION`` block created in ``pg_temp``.

This is what a naive load would do (``COPY`` of text into typed columns, as pgloader
or ``psql \\copy`` do), under the server's own ``DateStyle``: the session does *not*
keep the ``ISO, YMD`` setting ``pipeline.pgserver.connect`` makes. Two kinds of
problems come back, each with the row's key, table, column, value (masked in personal
columns) and what the server said:

- ``REFUSED``: the server rejects the value (``''`` as a timestamp, ``28/02/2022``
  under ``MDY``, ``3652948.0`` as a bigint), with its message and SQLSTATE;
- ``SILENT_MISREAD``: the server accepts the value but reads something other than
  what this pipeline reads (``05/07/2025`` becomes 7 May under ``ISO, MDY`` when the
  profiler decided the column is day-first; ``now`` becomes today; ``0x1F`` becomes
  31). The most dangerous kind: nothing fails, the dashboards are wrong.

What "this pipeline reads" comes from the same functions the cleaner uses: the
column's decided order from the profile and ``pipeline.dates.parse_date`` for dates,
``pipeline.values.to_integer`` / ``to_number`` for numbers. The text of a value is
what SQLite's ``CAST(x AS TEXT)`` gives (the form any text export of the file has),
read as bytes through the migration's own SQLite opener and decoded as it decodes
refused bytes; text that PostgreSQL's ``text`` type cannot hold at all (NUL, bad
UTF-8) is reported as refused with the server's wording without being sent.

Nothing is left on the server: the temporary table is ``ON COMMIT DROP`` and the one
transaction that holds it (and the fallback function) is rolled back.
"""

from __future__ import annotations

import collections
import logging
import math
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from contracts.schemas import DATA_TABLES, REGISTRY, contract_for
from contracts.spec import facts, is_personal, pg_type
from pipeline.config import Settings
from pipeline.dates import DateParseError, Order, parse_date
from pipeline.errors import InputFileError, TargetUnavailable
from pipeline.findings import ProfileResult
from pipeline.migrate import _decode_leniently, _open_sqlite, _q
from pipeline.observe import stage_trace
from pipeline.pgserver import Target, connect, redact, server_version
from pipeline.values import to_integer, to_number

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

# Every contract table, the data tables first (roster and import_metadata when present).
CONTRACT_TABLES = tuple(DATA_TABLES) + tuple(t for t in REGISTRY if t not in DATA_TABLES)

REFUSED = "REFUSED"
SILENT_MISREAD = "SILENT_MISREAD"
TRIED_TYPES = ("timestamp", "date", "bigint", "numeric")  # pg types a naive text load casts to
TEMP_TABLE = "servicedesk_dry_run"
CAST_FUNCTION = "servicedesk_dry_run_cast"
BUILTIN_CAPTURE_VERSION = 160000  # pg_input_error_info / pg_input_is_valid: PostgreSQL 16
DEFAULT_EXAMPLES = 20  # per (table, column, kind) in the JSON, beyond the flagged rows
KEY_CHUNK = 500  # flagged rows fetched per SQLite query
MASK = "<personal: {n} characters>"

# The server's own reading of an accepted value, as text we can compare exactly
# (to_char does not depend on DateStyle; infinity has no to_char, hence the COALESCE).
_READ_AS = """CASE {t}
    WHEN 'timestamp' THEN COALESCE(to_char({v}::timestamp, 'YYYY-MM-DD HH24:MI:SS.US'), {v}::timestamp::text)
    WHEN 'date' THEN COALESCE(to_char({v}::date, 'YYYY-MM-DD'), {v}::date::text)
    WHEN 'bigint' THEN {v}::bigint::text
    WHEN 'numeric' THEN {v}::numeric::text
END"""

_BUILTIN_QUERY = f"""
SELECT d.id, e.message, e.detail, e.hint, e.sql_error_code,
       CASE WHEN e.message IS NULL THEN {_READ_AS.format(t="d.pgtype", v="d.value")} END
FROM {TEMP_TABLE} d CROSS JOIN LATERAL pg_input_error_info(d.value, d.pgtype) e
"""

# For servers before 16: the same answer from a function that catches the cast's error.
_FALLBACK_FUNCTION = f"""
CREATE FUNCTION pg_temp.{CAST_FUNCTION}(value text, pgtype text,
    OUT message text, OUT detail text, OUT hint text, OUT sql_error_code text, OUT read_as text)
LANGUAGE plpgsql AS $fn$
BEGIN
    read_as := {_READ_AS.format(t="pgtype", v="value")};
    IF read_as IS NULL THEN
        RAISE EXCEPTION 'servicedesk-etl: no cast to %', pgtype;
    END IF;
EXCEPTION WHEN others THEN
    GET STACKED DIAGNOSTICS message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL,
        hint = PG_EXCEPTION_HINT, sql_error_code = RETURNED_SQLSTATE;
    read_as := NULL;
END
$fn$
"""

_FALLBACK_QUERY = f"""
SELECT d.id, e.message, NULLIF(e.detail, ''), NULLIF(e.hint, ''), e.sql_error_code, e.read_as
FROM {TEMP_TABLE} d CROSS JOIN LATERAL pg_temp.{CAST_FUNCTION}(d.value, d.pgtype) e
"""


# --- configuration and result ------------------------------------------------------------


@dataclass(frozen=True)
class DryRunConfig:
    """One dry run: the profiled file, its profile, the server, how many rows per table."""

    source: Path
    profile: ProfileResult
    target: Target
    settings: Settings = field(default_factory=Settings)
    sample_size: int | None = None  # rows per table; None: the profile's sample_size
    capture: str = "auto"  # auto | builtin | function: how per-value errors are caught
    examples: int = DEFAULT_EXAMPLES


@dataclass(frozen=True)
class Problem:
    """One value of one row that a naive load would refuse or read wrong."""

    kind: str  # REFUSED | SILENT_MISREAD
    table: str
    column: str
    pg_type: str
    key: Any  # the row's key as the profiler writes it (a value, or a list for composite keys)
    value: str  # masked in personal columns
    message: str  # the server's (REFUSED), or what it read against ours (SILENT_MISREAD)
    sqlstate: str | None = None
    hint: str | None = None
    read_as: str | None = None  # what the server made of the value (SILENT_MISREAD)
    expected: str | None = None  # what this pipeline reads (SILENT_MISREAD)
    flagged: bool = False  # the row is an example of a profiler finding

    def to_json(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if v is not None}
        return d


@dataclass(frozen=True)
class ColumnTrial:
    table: str
    column: str
    pg_type: str
    tried: int  # non-null values cast
    refused: int
    misread: int


@dataclass(frozen=True)
class DryRunResult:
    target: str  # redacted label
    server_version: str
    datestyle: str
    capture: str  # pg_input_error_info | plpgsql function
    sample_size: int
    rows: dict[str, int]  # table -> rows tried
    columns: tuple[ColumnTrial, ...]
    problems: tuple[Problem, ...]
    examples: int = DEFAULT_EXAMPLES

    @property
    def tried(self) -> int:
        return sum(c.tried for c in self.columns)

    @property
    def refused(self) -> int:
        return sum(1 for p in self.problems if p.kind == REFUSED)

    @property
    def misread(self) -> int:
        return sum(1 for p in self.problems if p.kind == SILENT_MISREAD)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        """The ``dry_run_postgres`` part of the profile JSON: counts, then capped examples.

        Per (table, column, kind): the count, the server's messages with their counts,
        and examples: every flagged row, plus up to ``examples`` others.
        """
        groups: dict[tuple[str, str, str], list[Problem]] = collections.defaultdict(list)
        for p in self.problems:
            groups[(p.table, p.column, p.kind)].append(p)
        problems = []
        for (table, column, kind), items in groups.items():
            flagged = [p for p in items if p.flagged]
            others = [p for p in items if not p.flagged][: self.examples]
            messages = collections.Counter(_message_class(p) for p in items)
            problems.append(
                {
                    "kind": kind,
                    "table": table,
                    "column": column,
                    "pg_type": items[0].pg_type,
                    "count": len(items),
                    "messages": dict(messages.most_common(10)),
                    "examples": [_example(p) for p in flagged + others],
                }
            )
        problems.sort(key=lambda g: (g["kind"] != SILENT_MISREAD, g["table"], g["column"]))
        return {
            "target": self.target,
            "server_version": self.server_version,
            "datestyle": self.datestyle,
            "capture": self.capture,
            "sample_size": self.sample_size,
            "rows": dict(self.rows),
            "tried": self.tried,
            "refused": self.refused,
            "misread": self.misread,
            "verdict": "PASS" if self.ok else "FAIL",
            "columns": [c.__dict__ for c in self.columns if c.tried],
            "problems": problems,
        }


def _example(p: Problem) -> dict[str, Any]:
    # The group already says which table, column, type and kind.
    return {k: v for k, v in p.to_json().items() if k not in ("kind", "table", "column", "pg_type")}


def _message_class(p: Problem) -> str:
    """A message without the value it quotes, so equal errors count together."""
    if p.kind == SILENT_MISREAD:
        return "accepted, read differently"
    text = p.message
    cut = text.find(': "')
    return text[:cut] if cut > 0 else text


# --- the stage ------------------------------------------------------------------------------


@dataclass
class _Value:
    table: str
    column: str
    pg_type: str
    key: Any
    text: str
    personal: bool
    flagged: bool
    order: Order | None
    pair_id: int = -1  # the row of the distinct (type, text) pair on the server


def run(config: DryRunConfig) -> DryRunResult:
    """Sample the typed columns of ``config.source``, cast them on the server, report.

    Raises ``TargetUnavailable`` (with the redacted target) when the server cannot be
    reached, ``InputFileError`` when the file cannot be read.
    """
    size = config.sample_size or config.profile.sample_size
    with stage_trace("dry_run_postgres", log) as trace:
        values, rows, local = _sample(config, size)
        trace.rows = sum(rows.values())
        version, datestyle, capture, answers = _on_server(config.target, values, config.capture)
        problems = local + _judge(values, answers)
        problems.sort(key=lambda p: (p.table, p.column, p.kind, str(p.key)))
        columns = _column_trials(config, values, local, problems)
        result = DryRunResult(
            target=config.target.label,
            server_version=version,
            datestyle=datestyle,
            capture=capture,
            sample_size=size,
            rows=rows,
            columns=columns,
            problems=tuple(problems),
            examples=config.examples,
        )
        trace.fields.update(tried=result.tried, refused=result.refused, misread=result.misread)
    return result


def check_reachable(target: Target) -> str:
    """Connect once and return the server version, or ``TargetUnavailable`` (redacted).

    The CLI calls it before profiling: a wrong ``--target`` should not cost a profile.
    """
    with connect(target.conninfo(), target=target, autocommit=True) as conn:
        return server_version(conn)


def _typed_columns(schema: Any) -> list[tuple[str, str, bool]]:
    return [(name, pg_type(col), is_personal(col)) for name, col in schema.columns.items() if pg_type(col) in TRIED_TYPES]


def _decided_order(config: DryRunConfig, table: str, column: str) -> Order | None:
    profile = config.profile.tables.get(table)
    col = profile.columns.get(column) if profile else None
    date_json = col.date if col is not None else None
    if date_json and date_json.get("order"):
        return Order(date_json["order"])
    return Order(config.settings.date_locale)


def _flagged_keys(profile: ProfileResult, table: str) -> list[Any]:
    seen: set[Any] = set()
    keys = []
    for f in profile.findings:
        if f.table != table:
            continue
        for k in f.example_keys:
            h = tuple(k) if isinstance(k, list) else k
            if h not in seen:
                seen.add(h)
                keys.append(k)
    return keys


def _sample(config: DryRunConfig, size: int) -> tuple[list[_Value], dict[str, int], list[Problem]]:
    """The values to try: evenly spread rows plus the flagged rows, per table."""
    values: list[_Value] = []
    local: list[Problem] = []
    rows: dict[str, int] = {}
    try:
        lite = _open_sqlite(Path(config.source), text_as_bytes=True)
    except sqlite3.Error as exc:
        raise InputFileError(f"--source {config.source} cannot be opened: {exc}", "check the path and that it is a SQLite file") from None
    try:
        present = {r[0].decode() for r in lite.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table in CONTRACT_TABLES:
            schema = contract_for(table)
            if schema is None or table not in present:
                continue  # the profile reports MISSING_TABLE
            have = {r[1].decode() for r in lite.execute(f"PRAGMA table_info({_q(table)})")}
            key = [k for k in facts(schema).key]
            typed = [c for c in _typed_columns(schema) if c[0] in have]
            if not typed:
                continue
            if any(k not in have for k in key):
                log.warning("table without its key columns: not tried", extra={"table": table, "key": key})
                continue
            orders = {name: _decided_order(config, table, name) for name, t, _ in typed if t in ("timestamp", "date")}
            select = ", ".join(["rowid"] + [_q(k) for k in key] + [f"CAST({_q(name)} AS TEXT)" for name, _, _ in typed])
            picked: dict[int, tuple[tuple, bool]] = {}
            for row in _evenly_spread(lite, table, select, size):
                picked[row[0]] = (row, False)
            for row in _rows_by_keys(lite, table, select, key, _flagged_keys(config.profile, table)):
                picked[row[0]] = (row, True)
            rows[table] = len(picked)
            for rowid in sorted(picked):
                row, flagged = picked[rowid]
                key_values = [_key_value(v) for v in row[1 : 1 + len(key)]]
                key_json = key_values[0] if len(key) == 1 else key_values
                for (name, pgtype, personal), raw in zip(typed, row[1 + len(key) :]):
                    if raw is None:
                        continue
                    text, refusal = _as_text(raw)
                    if refusal is not None:
                        sqlstate, message = refusal
                        local.append(
                            Problem(REFUSED, table, name, pgtype, key_json, _mask(_decode_leniently(raw), personal), message, sqlstate, flagged=flagged)
                        )
                        continue
                    values.append(_Value(table, name, pgtype, key_json, text, personal, flagged, orders.get(name)))
    except sqlite3.DatabaseError as exc:
        raise InputFileError(f"--source {config.source} cannot be read: {exc}", "check that the file is a complete SQLite database") from None
    finally:
        lite.close()
    return values, rows, local


def _key_value(v: Any) -> Any:
    # Keys as the profiler writes them: text decoded, numbers as they are.
    return _decode_leniently(v) if isinstance(v, bytes) else v


def _as_text(raw: bytes) -> tuple[str, tuple[str, str] | None]:
    """The text a naive load sends, or the refusal PostgreSQL's text type gives it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start : exc.start + 1].hex()
        return "", ("22021", f'invalid byte sequence for encoding "UTF8": 0x{bad}')
    if "\x00" in text:
        return "", ("22021", 'invalid byte sequence for encoding "UTF8": 0x00')
    return text, None


def _evenly_spread(lite: sqlite3.Connection, table: str, select: str, size: int) -> Iterable[tuple]:
    """About ``size`` rows spread evenly over the table by rowid (all when it is smaller).

    One index lookup per point (``rowid >= ?``) instead of a window over the table: a
    million-row table of long comments is not read to pick five thousand rows.
    """
    count, low, high = lite.execute(f"SELECT count(*), min(rowid), max(rowid) FROM {_q(table)}").fetchone()
    if not count:
        return []
    if count <= size:
        return lite.execute(f"SELECT {select} FROM {_q(table)} ORDER BY rowid").fetchall()
    out = []
    step = (high - low) / max(size - 1, 1)
    query = f"SELECT {select} FROM {_q(table)} WHERE rowid >= ? ORDER BY rowid LIMIT 1"
    last = None
    for i in range(size):
        row = lite.execute(query, (low + round(i * step),)).fetchone()
        if row is not None and row[0] != last:
            out.append(row)
            last = row[0]
    return out


def _rows_by_keys(lite: sqlite3.Connection, table: str, select: str, key: Sequence[str], keys: list[Any]) -> list[tuple]:
    """Every row whose key equals one of ``keys`` (NULL parts included).

    One pass over the key columns only (SQLite does not read a row's long text to hand
    out its first columns), matched in a set; then the rows themselves by rowid. An
    ``OR`` of ``IS`` terms would cost every row one comparison per key.
    """
    wanted = set()
    for k in keys:
        parts = tuple(k) if isinstance(k, (list, tuple)) else (k,)
        if len(parts) == len(key):  # another shape (a table-level example): nothing to look up
            wanted.add(parts)
    if not wanted:
        return []
    rowids = []
    cursor = lite.execute(f"SELECT rowid, {', '.join(_q(k) for k in key)} FROM {_q(table)}")
    while batch := cursor.fetchmany(10_000):
        for row in batch:
            if tuple(_key_value(v) for v in row[1:]) in wanted:
                rowids.append(row[0])
    out: list[tuple] = []
    for start in range(0, len(rowids), KEY_CHUNK):
        chunk = rowids[start : start + KEY_CHUNK]
        out += lite.execute(f"SELECT {select} FROM {_q(table)} WHERE rowid IN ({', '.join('?' * len(chunk))})", chunk).fetchall()
    return out


def _mask(text: str, personal: bool) -> str:
    return MASK.format(n=len(text)) if personal else text


# --- the server -------------------------------------------------------------------------


def _on_server(target: Target, values: list[_Value], capture: str) -> tuple[str, str, str, dict[int, tuple]]:
    """``_cast_on_server`` in one transaction that is always rolled back."""
    import psycopg

    conn = connect(target.conninfo(), target=target)
    try:
        return _cast_on_server(conn, values, capture)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise TargetUnavailable(
            f"PostgreSQL at {target.label} refused the dry run: {redact(_first_line(exc))}",
            "the dry run needs the TEMPORARY privilege on the database: GRANT TEMPORARY ON DATABASE <db> TO <role>, "
            "or point --target at a database where the role has it",
        ) from None
    except psycopg.Error as exc:
        raise TargetUnavailable(f"the dry run on PostgreSQL at {target.label} failed: {redact(_first_line(exc))}", target.remedy()) from None
    finally:
        try:
            conn.rollback()
        except psycopg.Error:  # the connection is gone: so is the transaction
            pass
        conn.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _cast_on_server(
    conn: "psycopg.Connection", values: list[_Value], capture: str
) -> tuple[str, str, str, dict[int, tuple[str | None, str | None, str | None, str | None, str | None]]]:
    """Load the distinct (type, text) pairs into a temporary table and cast each one.

    Returns the server version, its DateStyle, the capture used, and per distinct pair
    id (message, detail, hint, sqlstate, read_as). Runs in the caller's transaction,
    which the caller rolls back.
    """
    # The session default, not the ISO setting `connect` makes: a naive load gets this.
    conn.execute("RESET DateStyle")
    datestyle = conn.execute("SHOW DateStyle").fetchone()[0]
    version = server_version(conn)
    version_num = int(conn.execute("SHOW server_version_num").fetchone()[0])
    builtin = {"auto": version_num >= BUILTIN_CAPTURE_VERSION, "builtin": True, "function": False}[capture]
    conn.execute(f"CREATE TEMP TABLE {TEMP_TABLE} (id integer PRIMARY KEY, pgtype text NOT NULL, value text NOT NULL) ON COMMIT DROP")
    ids: dict[tuple[str, str], int] = {}
    with conn.cursor().copy(f"COPY {TEMP_TABLE} (id, pgtype, value) FROM STDIN") as copy:
        for v in values:
            pair = (v.pg_type, v.text)
            if pair not in ids:
                ids[pair] = len(ids)
                copy.write_row((ids[pair], v.pg_type, v.text))
    for v in values:
        v.pair_id = ids[(v.pg_type, v.text)]
    if builtin:
        query = _BUILTIN_QUERY
        capture_name = "pg_input_error_info"
    else:
        conn.execute(_FALLBACK_FUNCTION)
        query = _FALLBACK_QUERY
        capture_name = "plpgsql function"
    answers = {row[0]: tuple(row[1:]) for row in conn.execute(query)}
    return version, datestyle, capture_name, answers


def _judge(values: list[_Value], answers: dict[int, tuple]) -> list[Problem]:
    problems = []
    readings: dict[tuple[int, Order | None], str | None] = {}  # a status column repeats its values
    for v in values:
        message, detail, hint, sqlstate, read_as = answers[v.pair_id]
        read_as = _no_zero_fraction(read_as)
        shown = _mask(v.text, v.personal)
        if message is not None:
            text = message + (f" ({detail})" if detail else "")
            if v.personal and v.text:
                text = text.replace(v.text, shown)
            problems.append(Problem(REFUSED, v.table, v.column, v.pg_type, v.key, shown, text, sqlstate, hint, flagged=v.flagged))
            continue
        reading_key = (v.pair_id, v.order)
        if reading_key not in readings:
            readings[reading_key] = _our_reading(v)
        expected = readings[reading_key]
        if not _same(v.pg_type, read_as, expected):
            ours = expected if expected is not None else "no value (the cleaner does not read it as one)"
            problems.append(
                Problem(
                    SILENT_MISREAD,
                    v.table,
                    v.column,
                    v.pg_type,
                    v.key,
                    shown,
                    f"PostgreSQL accepts {shown!r} as {v.pg_type} {read_as}; the pipeline reads {ours}",
                    read_as=read_as,
                    expected=expected,
                    flagged=v.flagged,
                )
            )
    return problems


def _our_reading(v: _Value) -> str | None:
    """What the cleaner makes of the text, in the server's output form; None: nothing."""
    if v.pg_type in ("timestamp", "date"):
        try:
            dt = parse_date(v.text, v.order)
        except (DateParseError, ValueError, OverflowError):
            return None
        if isinstance(dt, datetime) and dt.tzinfo is not None:
            dt = dt.replace(tzinfo=None)
        return dt.strftime("%Y-%m-%d") if v.pg_type == "date" else _no_zero_fraction(dt.strftime("%Y-%m-%d %H:%M:%S.%f"))
    if v.pg_type == "bigint":
        n = to_integer(v.text)
        return None if n is None else str(n)
    n = to_number(v.text)
    return None if n is None else repr(n)


def _no_zero_fraction(text: str | None) -> str | None:
    return text[:-7] if text is not None and text.endswith(".000000") else text


def _same(pgtype: str, read_as: str | None, expected: str | None) -> bool:
    if read_as is None or expected is None:
        return False
    if pgtype == "numeric":
        try:
            ours, theirs = float(Decimal(expected)), float(Decimal(read_as))
        except (InvalidOperation, ValueError):
            return False
        return math.isfinite(theirs) and math.isclose(ours, theirs, rel_tol=1e-12, abs_tol=0.0)
    return read_as == expected


def _column_trials(config: DryRunConfig, values: list[_Value], local: list[Problem], problems: list[Problem]) -> tuple[ColumnTrial, ...]:
    tried = collections.Counter((v.table, v.column) for v in values) + collections.Counter((p.table, p.column) for p in local)
    refused = collections.Counter((p.table, p.column) for p in problems if p.kind == REFUSED)
    misread = collections.Counter((p.table, p.column) for p in problems if p.kind == SILENT_MISREAD)
    out = []
    for table in CONTRACT_TABLES:
        schema = contract_for(table)
        if schema is None:
            continue
        for name, pgtype, _ in _typed_columns(schema):
            k = (table, name)
            out.append(ColumnTrial(table, name, pgtype, tried[k], refused[k], misread[k]))
    return tuple(out)


# --- output ---------------------------------------------------------------------------------


def summary(result: DryRunResult, limit: int = 12) -> str:
    """The dry run for people: where, how much was tried, then the problems by column."""
    lines = [
        f"dry run on PostgreSQL {result.server_version} ({result.target}), DateStyle '{result.datestyle}', "
        f"errors caught with {result.capture}",
        f"  tried {result.tried:,} values of {sum(result.rows.values()):,} rows "
        + ", ".join(f"{t} {n:,}" for t, n in result.rows.items()),
        f"  refused {result.refused:,}, silently misread {result.misread:,}",
    ]
    groups = result.to_json()["problems"]
    for g in groups[:limit]:
        first = g["examples"][0] if g["examples"] else {}
        what = first.get("message", "")
        lines.append(
            f"  {g['kind']:<15} {g['table']}.{g['column']} ({g['pg_type']}): {g['count']:,}"
            + (f", e.g. key {first.get('key')!r} {first.get('value')!r}: {what}" if first else "")
        )
    if len(groups) > limit:
        lines.append(f"  ... {len(groups) - limit} more columns (--out FILE for all)")
    lines.append(f"dry run: {'PASS' if result.ok else 'FAIL'}")
    return "\n".join(lines)


__all__ = [
    "DryRunConfig",
    "DryRunResult",
    "ColumnTrial",
    "Problem",
    "REFUSED",
    "SILENT_MISREAD",
    "run",
    "check_reachable",
    "summary",
]

"""Gate 3: a cleaned SQLite file into a new, typed PostgreSQL schema, then a safe cut-over.

One run, in order (each step recorded in the ledger ``<schema>_meta.migrations``):

1. preflight (when ``pipeline.preflight`` is present) and an advisory lock per live
   schema, so two migrations of the same schema never interleave;
2. recovery: ledger rows of dead runs (still ``running``/``loaded``/``validated``) have
   their half-built schemas dropped; a source already migrated (same SHA-256) is not
   loaded again unless forced;
3. canary (default on): a deterministic 10% of tickets (by a hash of the ticket id)
   with their comments and timesheets, loaded into ``<schema>_canary_<ts>``, validated
   and checked by the contracts, then dropped; a failing canary stops the run here;
4. the full load into ``<schema>_v<UTC timestamp>``: tables from the contracts
   (``pipeline.pgschema``), rows streamed from SQLite into CSV ``COPY ... FROM STDIN``
   in batches (each table cut into rowid ranges, loaded by one worker per core, each
   range by one COPY transaction on the worker's own connection). SQLite builds
   each row's COPY line in its SELECT (``copy_line_sql``): an id stored as
   ``3652948.0`` becomes the integer, a REAL number keeps 15 significant digits (as
   PostgreSQL's own float8 -> numeric cast does), text goes through as the bytes SQLite
   holds (the server checks UTF-8), dates as the ISO text they are; Python only checks,
   hashes and joins the lines (a row SQLite cannot print, rare, is rendered by Python
   from its values). Date text that is not ISO 8601 never reaches the server (its
   ``DateStyle`` would guess ``05/07/2025``) and ids that are not whole numbers are
   refused too, the column named. A batch the server refuses is bisected down to the
   refused rows; every refused row goes to ``<schema>_meta.rejects`` with the message
   (the server's own for dates that do not exist, NOT NULL, keys, encodings), unless
   ``--on-error stop``. Rejects fail the gate unless ``migrate.tolerated_rejects``
   allows them. Every 10,000 rows a health check: the connection answers, the embedded
   server's disk and the machine's memory have room;
5. validation before cut-over: per-table row counts and content checksums equal on
   both sides, the contracts run on PostgreSQL (``contracts.gate.run_gate``) with a
   quality score at least the source's, and every dashboard query runs;
6. the read-only role gets USAGE and SELECT on the new version; a ``pg_dump`` of the
   live schema is taken (when ``pipeline.backup`` is present);
7. cut-over in ONE transaction: ``servicedesk`` -> its version name, the new version ->
   ``servicedesk``; readers never see the tables missing. Old versions beyond
   ``migrate.keep_versions`` are dropped.

Content checksums are computed independently on both sides from one text form of a
row, its COPY line: the source side hashes the line SQLite built for the load (in the
same read), the target side has PostgreSQL render the same line from the typed values
it stored (``copy_line_pg_sql``: ids and numbers ``::text``, timestamps and dates in
ISO form, text quoted). Values are joined with commas, text is quoted with U+0001 (a
quote inside doubled), NULL is an empty field; timestamps read as
``YYYY-MM-DD HH:MM:SS[.ffffff]`` without trailing zeros. A table's checksum is (row
count, sum of each row's hash): independent of row order, sensitive to any changed, lost
or duplicated row, and to a value the server read differently from the text it was
sent. The row hash is CRC-32 on PostgreSQL 18 and later (the server's ``crc32()`` is
zlib's CRC-32, which Python computes at memory speed) and the first 60 bits of the MD5
on older servers; the checksum text names it (``crc32:<rows>:<sum>``).

Privileges: the migration's role needs CREATE on the database (to create schemas) and
ownership of the schemas it renames; creating the read-only role needs CREATEROLE once
(or an administrator creates it beforehand: ``CREATE ROLE servicedesk_reader NOLOGIN``).
No superuser rights are needed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import queue
import shutil
import socket
import sqlite3
import threading
import time
import zlib
from decimal import Decimal, InvalidOperation
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from contracts.schemas import contract_for
from contracts.spec import facts
from pipeline.child import SpawnedCall
from pipeline.config import Settings
from pipeline.errors import ConfigError, EtlError, GateFailed, InputFileError, ResourceExhausted, TargetUnavailable, TryAgain
from pipeline.observe import Progress, current_rss_mb, cyclic_gc_off, stage_trace
from pipeline.pgschema import TablePlan, add_key, create_indexes, create_table, data_table_plans, qualified
from pipeline.pgserver import Target, connect, redact, resolve_target
from pipeline.sources import check_sqlite_file, quote_sqlite, sha256_file

if TYPE_CHECKING:
    import psycopg

    from contracts.gate import GateVerdict

log = logging.getLogger(__name__)

GATE = "Gate 3"
HEALTH_EVERY_ROWS = 10_000
MIN_FREE_DISK_MB = 256  # under this on the embedded server's disk: stop before it fills
MIN_AVAILABLE_MEMORY_MB = 64
LOCK_WAIT_SECONDS = 15.0  # a killed run's backend may take a moment to notice and release
CANARY_BUCKETS = 1000
REJECT_TEXT_CHARS = 4000

# Ledger statuses. Unfinished ones belong to a running (locked) or dead run.
RUNNING, LOADED, VALIDATED = "running", "loaded", "validated"
LIVE, RETAINED, ROLLED_BACK = "live", "retained", "rolled_back"
FAILED, ABANDONED, DROPPED, SKIPPED = "failed", "abandoned", "dropped", "skipped"
UNFINISHED = (RUNNING, LOADED, VALIDATED)
KEPT = (LIVE, RETAINED, ROLLED_BACK)


# --- configuration and results ---------------------------------------------------------


@dataclass(frozen=True)
class MigrateConfig:
    """One migration: which cleaned file, where to, and how strict."""

    source: Path
    target: str | None  # conninfo; None: the config file's target, else the embedded server
    schema: str = "servicedesk"
    canary: bool = True
    quality_gate: float = 80.0
    settings: Settings = field(default_factory=Settings)
    force: bool = False
    on_error: str | None = None  # reject | stop; None: settings.migrate.on_error
    contracts: bool = True  # run the contract gate on PostgreSQL (canary and full load)
    preflight: bool = True
    backup: bool = True  # pg_dump of the live schema before cut-over
    backups_dir: Path | None = None  # default: pipeline.backup's (.servicedesk/backups)
    data_dir: Path | None = None  # the embedded server's data folder
    parallel: int = 0  # load workers, each with its own connections; 0: one per core (2 to 4)
    # The source's quality score when the caller knows it already (the pipeline's Gate 2
    # on this cleaned file): used only when ``source_score_sha256`` is the SHA-256 of
    # ``source``, otherwise the contracts run on the source again to compute it.
    source_score: float | None = None
    source_score_sha256: str | None = None
    # Where the validation's contract run on the new version (before cut-over) writes its
    # JUnit XML and JSON report (``run_gate(junitxml=, report=)``), for a caller that keeps
    # that run as its Gate 3 result; None: a temporary file, dropped.
    gate_junitxml: Path | None = None
    gate_report: Path | None = None


@dataclass(frozen=True)
class TableResult:
    name: str
    source_rows: int
    loaded_rows: int
    rejected_rows: int
    checksum_source: str
    checksum_target: str
    seconds: float

    @property
    def matches(self) -> bool:
        return self.source_rows - self.rejected_rows == self.loaded_rows and self.checksum_source == self.checksum_target


@dataclass(frozen=True)
class MigrateResult:
    run_id: int
    status: str  # live | skipped
    live_schema: str
    version_schema: str
    source_sha256: str
    tables: tuple[TableResult, ...] = ()
    rejects: int = 0
    canary: tuple[TableResult, ...] = ()
    previous_version: str | None = None
    scores: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    backup_id: str | None = None
    message: str = ""
    # The validation's contract run on the new version (None: contracts off, or skipped).
    gate: "GateVerdict | None" = field(default=None, compare=False)

    @property
    def rows(self) -> int:
        return sum(t.loaded_rows for t in self.tables)

    def as_dict(self) -> dict[str, Any]:
        gate = self.gate
        data = asdict(replace(self, gate=None))
        data["gate"] = (
            None
            if gate is None
            else {
                "passed": gate.passed,
                "exit_code": gate.exit_code,
                "failed": [list(f) for f in gate.failed],
                "warned": [list(w) for w in gate.warned],
                "quality": gate.quality,
                "verdict": gate.verdict,
            }
        )
        data["rows"] = self.rows
        return data


# --- names -----------------------------------------------------------------------------


def meta_schema(schema: str) -> str:
    return f"{schema}_meta"


def _stamp(now: datetime) -> str:
    return now.strftime("%Y%m%d_%H%M%S_") + f"{now.microsecond // 1000:03d}"


def version_name(schema: str, now: datetime) -> str:
    """``servicedesk_v20261127_161500_123`` (UTC, milliseconds keep fast runs apart)."""
    return f"{schema}_v{_stamp(now)}"


def canary_name(schema: str, now: datetime) -> str:
    return f"{schema}_canary_{_stamp(now)}"


def _check_schema_name(schema: str) -> None:
    if not schema or len(schema.encode()) > 36:
        raise ConfigError(
            f"schema name {schema!r} must be 1 to 36 bytes (versions append _v<timestamp>, 63 at most)",
            "pass a shorter --schema",
        )


# --- SQL built from the contracts: COPY lines, canonical text, filters -------------------


def _q(name: str) -> str:
    return quote_sqlite(name)


_DIGIT = "[0-9]"
_DATE_GLOB = f"{_DIGIT * 4}-{_DIGIT * 2}-{_DIGIT * 2}"
_MINUTE_GLOB = f"{_DATE_GLOB}[ T]{_DIGIT * 2}:{_DIGIT * 2}"


def _iso_shape(column: str, pgtype: str) -> str:
    """SQLite condition: the value is ISO 8601 text PostgreSQL reads the same under any DateStyle.

    ``length`` and ``GLOB`` stop at a NUL byte, so text holding one is refused here by
    name (the server would refuse the line anyway, naming no column).
    """
    c = _q(column)
    date_ok = f"(length({c}) = 10 AND {c} GLOB '{_DATE_GLOB}')"
    text = f"typeof({c}) = 'text' AND instr({c}, char(0)) = 0"
    if pgtype == "date":
        return f"({text} AND {date_ok})"
    seconds = f"(length({c}) = 19 AND {c} GLOB '{_MINUTE_GLOB}:{_DIGIT * 2}')"
    fraction = (
        f"(length({c}) BETWEEN 21 AND 26 AND substr({c}, 1, 19) GLOB '{_MINUTE_GLOB}:{_DIGIT * 2}' "
        f"AND substr({c}, 20, 1) = '.' AND substr({c}, 21) NOT GLOB '*[^0-9]*')"
    )
    minutes = f"(length({c}) = 16 AND {c} GLOB '{_MINUTE_GLOB}')"
    return f"({text} AND ({date_ok} OR {minutes} OR {seconds} OR {fraction}))"


def _is_integer_sql(column: str) -> str:
    c = _q(column)
    return f"(typeof({c}) = 'integer' OR (typeof({c}) = 'real' AND {c} = CAST({c} AS INTEGER)))"


def _bad_value_checks(plan: TablePlan) -> list[tuple[str, str, str]]:
    """(column, SQLite condition for a value the column cannot take, what it must be)."""
    checks = []
    for name, pgtype, _ in plan.columns:
        c = _q(name)
        if pgtype in ("timestamp", "date"):
            shape = _iso_shape(name, pgtype)
            if pgtype == "timestamp":
                # The server reads 24:00:00 and a 60th second as the next day/minute.
                shape = f"({shape} AND (length({c}) = 10 OR (substr({c}, 12, 2) < '24' AND substr({c}, 15, 2) < '60' AND (length({c}) = 16 OR substr({c}, 18, 2) < '60'))))"
            checks.append((name, f"({c} IS NOT NULL AND NOT {shape})", "ISO 8601 text (YYYY-MM-DD[ HH:MM[:SS[.ffffff]]], a time of day before 24:00); refused rather than read by the server's DateStyle"))
        elif pgtype == "bigint":
            checks.append((name, f"({c} IS NOT NULL AND NOT {_is_integer_sql(name)})", "a whole number"))
    return checks


def bad_value_condition(plan: TablePlan) -> str | None:
    """SQLite condition true for rows holding a value that must not reach the server.

    Dates that are not ISO text (the server's ``DateStyle`` would guess ``05/07/2025``)
    and ids that are not whole numbers (binary COPY sends typed values).
    """
    parts = [cond for _, cond, _ in _bad_value_checks(plan)]
    return " OR ".join(parts) if parts else None


def bad_value_reason_sql(plan: TablePlan) -> str:
    """SQLite expression naming the first column of a row that fails ``bad_value_condition``."""
    whens = " ".join(f"WHEN {cond} THEN {_sqlite_text(name)}" for name, cond, _ in _bad_value_checks(plan))
    return f"CASE {whens} END" if whens else "NULL"


def _sqlite_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def copy_values_sql(plan: TablePlan) -> str:
    """SQLite select list: each value as the Python type binary COPY needs (dates still text)."""
    parts = []
    for name, pgtype, _ in plan.columns:
        c = _q(name)
        if pgtype == "bigint":
            # 3652948.0 (an id stored as REAL) is the integer it stands for.
            parts.append(f"CASE WHEN typeof({c}) = 'real' THEN CAST({c} AS INTEGER) ELSE {c} END")
        elif pgtype == "numeric":
            # 15 significant digits: what PostgreSQL's own float8 -> numeric cast keeps.
            parts.append(f"CASE WHEN typeof({c}) = 'real' THEN printf('%!.15g', {c}) ELSE CAST({c} AS TEXT) END")
        elif pgtype in ("timestamp", "date"):
            parts.append(c)
        else:
            parts.append(f"CAST({c} AS TEXT)")
    return ", ".join(parts)


def _shown(value: Any) -> Any:
    """A value for a message: bytes decoded leniently, anything else as it is."""
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


# --- the COPY text line: built by SQLite, hashed for the source checksum ------------------
#
# Each row reaches the server as one line of CSV COPY, built by SQLite in the scan:
# values joined by commas, NULL as an empty field, text quoted with QUOTE (U+0001), and
# every typed value already in the form PostgreSQL prints it back (ids as digits,
# numbers as written, timestamps as ``YYYY-MM-DD HH:MM:SS[.ffffff]`` without trailing
# zeros, dates as ``YYYY-MM-DD``). Python only checks, hashes and joins the lines, and
# the line's hash is the row's source checksum: PostgreSQL renders the same line from
# the typed values it stored (``copy_line_pg_sql``), so both sides hash one text form.
# A row whose line has not the expected number of QUOTEs (a value holding QUOTE, a
# number SQLite cannot print in that form: ``1e20``, ``.5``, ``-0``, text with spaces)
# is rendered by Python instead (``_render_line``). Text holding NUL goes through as it
# is: the server refuses it, and the row goes to the rejects with the server's message.

QUOTE = "\x01"  # the CSV quote of the COPY lines: a control character text does not hold


def _quoted_sql(c: str, lead: str = "") -> str:
    """SQLite: a value as a quoted CSV field after ``lead`` (a comma or nothing), NULL as
    an empty field.

    No function call (a function call per value cost more than the scan itself): the
    value is not searched for the quote character; the quotes of each line are counted
    instead (``quotes_sql``) and a line with a quote inside a value goes to Python.
    """
    return f"coalesce('{lead}{QUOTE}' || {c} || '{QUOTE}', '{lead}')"


def quotes_sql(plan: TablePlan) -> str:
    """SQLite expression: how many QUOTEs the row's line has when no value holds one
    (two per text value that is not NULL)."""
    texts = " + ".join(f"({_q(name)} IS NOT NULL)" for name, pgtype, _ in plan.columns if pgtype == "text")
    return f"2 * ({texts})" if texts else "0"


def _canonical_number_sql(c: str) -> str:
    """SQLite condition: text ``c`` is a decimal PostgreSQL's numeric prints unchanged."""
    return (
        f"(({c} GLOB '[0-9]*' OR {c} GLOB '-[0-9]*') AND NOT {c} GLOB '?*[^0-9.]*' AND NOT {c} GLOB '*.*.*' "
        f"AND NOT {c} GLOB '*.' AND NOT {c} GLOB '0[0-9]*' AND NOT {c} GLOB '-0[0-9]*' "
        f"AND NOT ({c} GLOB '-*' AND NOT {c} GLOB '*[1-9]*') AND instr({c}, char(0)) = 0)"
    )


def _line_field_sql(name: str, pgtype: str, lead: str = "") -> str:
    """SQLite: the field of one value in the COPY line, after ``lead`` (a comma or nothing)."""
    c = _q(name)
    if pgtype == "text":
        return _quoted_sql(c, lead)  # the comma inside the literals: one concatenation fewer
    field = _typed_field_sql(c, pgtype)
    return f"'{lead}' || {field}" if lead else field


def _typed_field_sql(c: str, pgtype: str) -> str:
    if pgtype == "bigint":
        # 3652948.0 (an id stored as REAL) is the integer it stands for.
        value = f"CASE typeof({c}) WHEN 'real' THEN CAST(CAST({c} AS INTEGER) AS TEXT) ELSE CAST({c} AS TEXT) END"
    elif pgtype == "numeric":
        # A lone QUOTE when SQLite cannot print it as PostgreSQL will: the line's quote
        # count is then wrong and Python renders the row. A REAL keeps 15 significant
        # digits, what PostgreSQL's own float8 -> numeric cast keeps.
        return (
            f"coalesce(CASE typeof({c}) WHEN 'null' THEN '' WHEN 'integer' THEN CAST({c} AS TEXT) "
            f"WHEN 'real' THEN CASE WHEN {c} = 0 THEN '0.0' WHEN abs({c}) < 1e15 AND abs({c}) >= 1e-4 THEN printf('%!.15g', {c}) END "
            f"WHEN 'text' THEN CASE WHEN {_canonical_number_sql(c)} THEN {c} END END, '{QUOTE}')"
        )
    elif pgtype == "timestamp":
        # ISO text (checked by the guard) in PostgreSQL's output form; the server parses it.
        fraction = f"rtrim(substr({c}, 20), '0')"
        value = (
            f"CASE WHEN length({c}) = 19 AND substr({c}, 11, 1) = ' ' THEN {c} "
            f"WHEN length({c}) = 10 THEN {c} || ' 00:00:00' ELSE substr({c}, 1, 10) || ' ' || substr({c}, 12, 5) || "
            f"CASE WHEN length({c}) = 16 THEN ':00' ELSE substr({c}, 17, 3) END || "
            f"CASE WHEN length({c}) > 20 AND {fraction} <> '.' THEN {fraction} ELSE '' END END"
        )
    else:  # date
        value = c
    return f"coalesce({value}, '')"


CONCAT_FIELDS = 50  # fields per concat_ws() call on the server (PostgreSQL takes at most 100 arguments)


def copy_line_sql(plan: TablePlan) -> str:
    """SQLite expression: the row as one line of CSV COPY (no newline), its fields in
    ``plan.line_columns`` order (the long text last, so that it is copied once).

    A chain of ``||``, which keeps a NUL byte inside a text value (the line then reaches
    the server, which refuses it): ``printf('%s,...')`` was 22% cheaper but cuts a value
    at a NUL, and a cut text value (one QUOTE fewer) beside a value holding QUOTE (one
    more) kept the quote count right while the line said something else (review, 28 Nov).
    """
    return " || ".join(_line_field_sql(name, pgtype, "," if i else "") for i, (name, pgtype, _) in enumerate(plan.line_columns))


def copy_line_pg_sql(plan: TablePlan) -> "psycopg.sql.Composed":
    """The same line, rendered by PostgreSQL from the typed values (needs ``DateStyle = ISO``)."""
    from psycopg import sql

    parts = []
    for name, pgtype, _ in plan.line_columns:
        c = sql.Identifier(name)
        if pgtype == "text":
            value = sql.SQL("chr(1) || replace({}, chr(1), chr(1) || chr(1)) || chr(1)").format(c)
        else:
            value = sql.SQL("{}::text").format(c)
        parts.append(sql.SQL("coalesce({}, '')").format(value))
    # concat_ws, not a chain of || (which copies the growing line once per field): the
    # server's checksum of the comments 40% faster. No field is NULL (coalesce), so none
    # is skipped; one call per 50 fields (PostgreSQL takes at most 100 arguments).
    calls = [
        sql.SQL("concat_ws(',', {})").format(sql.SQL(", ").join(parts[start : start + CONCAT_FIELDS]))
        for start in range(0, len(parts), CONCAT_FIELDS)
    ]
    return sql.SQL(" || ',' || ").join(calls)


_Q = QUOTE.encode()


def _usable(line: bytes | None, quotes: int) -> bytes | None:
    """SQLite's line, or None when Python must render the row (see ``quotes_sql``)."""
    return line if line is not None and line.count(_Q) == quotes else None


class _Refused(Exception):
    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message


def _number_field(value: Any, column: str) -> bytes:
    """A number as PostgreSQL's numeric reads and prints it (digits, no exponent)."""
    try:
        number = Decimal(value.decode() if isinstance(value, bytes) else str(value))
        if not number.is_finite():
            raise ValueError(f"{value!r} is not a finite number")
    except (ValueError, InvalidOperation, UnicodeDecodeError):
        raise _Refused("22P02", f'invalid input syntax for type numeric: "{_shown(value)}" (column {column})') from None
    text = format(number, "f")
    return (text.lstrip("-") if number == 0 else text).encode()


def _timestamp_field(value: bytes) -> bytes:
    if len(value) == 10:
        return value + b" 00:00:00"
    fraction = value[19:].rstrip(b"0")
    return value[:10] + b" " + value[11:16] + (b":00" if len(value) == 16 else value[16:19]) + (b"" if fraction == b"." else fraction)


def _render_line(plan: TablePlan, values: Sequence[Any]) -> bytes:
    """The COPY line of one row, by Python, from ``copy_values_sql``'s values (in the
    table's column order; the line's fields are in ``plan.line_columns`` order) (rare rows)."""
    fields = []
    by_name = dict(zip(plan.column_names, values))
    for name, pgtype, _ in plan.line_columns:
        value = by_name[name]
        if value is None:
            fields.append(b"")
        elif pgtype == "numeric":
            fields.append(_number_field(value, name))
        elif pgtype == "bigint":
            fields.append(str(int(value)).encode())
        elif pgtype == "timestamp":
            fields.append(_timestamp_field(value))
        elif pgtype == "date":
            fields.append(value)
        else:
            text = value if isinstance(value, bytes) else str(value).encode()
            fields.append(_Q + text.replace(_Q, _Q + _Q) + _Q)
    return b",".join(fields)


def _md5_60(line: bytes) -> int:
    """The first 60 bits of the line's MD5, as PostgreSQL computes them in SQL."""
    return int.from_bytes(hashlib.md5(line).digest()[:8], "big") >> 4


def _crc32c() -> Callable[[bytes], int] | None:
    """google-crc32c's CRC-32C when it runs in C (SSE4.2 or ARM CRC instructions), else None."""
    try:
        import google_crc32c
    except ImportError:  # pragma: no cover - a dependency; an install without it falls back to CRC-32
        return None
    return google_crc32c.value if google_crc32c.implementation == "c" else None


# Row hashes: name -> (Python function of the line's bytes, PostgreSQL expression of the
# line ``{row}``). CRC-32C and CRC-32 need PostgreSQL 18 (``crc32c()``, ``crc32()``).
# CRC-32C runs on the CPU's CRC instructions on both sides: the server's checksum of the
# comments (870 MB of text at 1M rows) took 0.2 s of its CPU against 2.1 s for ``crc32()``,
# which PostgreSQL computes in software. CRC-32 (zlib's polynomial) is the fallback where
# google-crc32c has no C build; MD5 where the server is older (about 4x the client's time
# of CRC-32, more on the server). Each runs without Python code per row (``map``). A
# per-row CRC changes with any change of the row (all changes up to 32 bits long, others
# but for 1 in 2**32).
ROW_HASHES: dict[str, tuple[Callable[[bytes], int], str]] = {
    "crc32": (zlib.crc32, "crc32(convert_to({row}, 'UTF8'))"),
    "md5": (_md5_60, "('x' || substr(md5({row}), 1, 15))::bit(60)::bigint"),
}
_CRC32C = _crc32c()
if _CRC32C is not None:
    ROW_HASHES["crc32c"] = (_CRC32C, "crc32c(convert_to({row}, 'UTF8'))")
CRC32_SINCE = 180000  # server_version_num of PostgreSQL 18
DEFAULT_ROW_HASH = "crc32c" if "crc32c" in ROW_HASHES else "crc32"


def row_hash_for(conn: "psycopg.Connection") -> str:
    """The row hash both sides use with this server: CRC-32C (or CRC-32) where it has ``crc32c()``."""
    return DEFAULT_ROW_HASH if conn.info.server_version >= CRC32_SINCE else "md5"


def _checksum_text(row_hash: str, rows: int, total: int) -> str:
    return f"{row_hash}:{rows}:{total:x}"


def _ticket_reference(plan: TablePlan) -> str | None:
    """The column of ``plan`` that refers to a ticket id (None for tickets itself)."""
    contract = contract_for(plan.name)
    if contract is None:
        return None
    for ref in facts(contract).references:
        if ref.target_table == "tickets":
            return ref.column
    return None


def _ticket_bucket(column: str, fraction: float) -> str:
    limit = max(1, round(fraction * CANARY_BUCKETS))
    c = _q(column)
    return f"(((abs(CAST({c} AS INTEGER)) % 1000003) * 2654435761) % {CANARY_BUCKETS}) < {limit}"


def canary_condition(plan: TablePlan, fraction: float) -> str:
    """SQLite condition choosing a deterministic ``fraction`` of tickets with their rows.

    A multiplicative hash of the ticket id picks the tickets, so the same ones are
    chosen on every run; comments and timesheets come along when they refer to a chosen
    ticket (rows referring to no ticket are left out: the canary checks the tickets'
    own families, whose references all resolve).
    """
    if plan.name == "tickets":
        return _ticket_bucket(plan.key[0], fraction)
    column = _ticket_reference(plan)
    if column is None:
        limit = max(1, round(fraction * CANARY_BUCKETS))
        return f"((rowid * 2654435761) % {CANARY_BUCKETS}) < {limit}"
    key = _q(data_ticket_key())
    return (
        f"CAST({_q(column)} AS INTEGER) IN (SELECT CAST({key} AS INTEGER) FROM {_q('tickets')} "
        f"WHERE {_ticket_bucket(data_ticket_key(), fraction)})"
    )


def data_ticket_key() -> str:
    contract = contract_for("tickets")
    assert contract is not None
    return facts(contract).key[0]


# --- the source --------------------------------------------------------------------------


def _open_sqlite(path: Path, *, text_as_bytes: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path.resolve().as_posix()}?mode=ro", uri=True, check_same_thread=False)
    # Checksums hash the bytes SQLite holds; the loader hands str to psycopg (C fast path).
    conn.text_factory = bytes if text_as_bytes else str
    return conn


def _decode_leniently(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def check_source_tables(conn: sqlite3.Connection, plans: list[TablePlan], source: Path) -> None:
    """Every data table with every contract column, or a FixYourData error naming them."""
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        problems = []
        for plan in plans:
            if plan.name not in tables:
                problems.append(f"table {plan.name} is missing")
                continue
            have = {r[1] for r in conn.execute(f"PRAGMA table_info({_q(plan.name)})")}
            missing = [c for c in plan.column_names if c not in have]
            if missing:
                problems.append(f"{plan.name} lacks {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
            extra = sorted(have - set(plan.column_names))
            if extra:
                log.warning("columns without a contract are not migrated", extra={"table": plan.name, "columns": extra[:20]})
    except sqlite3.DatabaseError as exc:
        raise InputFileError(f"--source {source} cannot be read: {exc}", "check that the file is a complete SQLite database") from None
    if problems:
        raise InputFileError(
            f"--source {source} does not match the contracts: {'; '.join(problems)}",
            "migrate the database written by `servicedesk-etl clean` (Gate 2), not a raw or foreign file",
        )


# --- health ------------------------------------------------------------------------------


class Health:
    """Every ``every`` rows: the connection answers, the disk and the memory have room."""

    def __init__(self, conn: "psycopg.Connection", data_dir: Path | None, every: int = HEALTH_EVERY_ROWS) -> None:
        self.conn = conn
        self.data_dir = data_dir
        self.every = every
        self.rows = 0
        self.next_check = every
        self.checks = 0

    def advance(self, rows: int) -> None:
        self.rows += rows
        while self.rows >= self.next_check:
            self.next_check += self.every
            self.check()

    def check(self) -> None:
        import psutil

        self.checks += 1
        self.conn.execute("SELECT 1")  # a dead connection raises OperationalError here
        if self.data_dir is not None and self.data_dir.exists():
            free_mb = shutil.disk_usage(self.data_dir).free / (1024 * 1024)
            if free_mb < MIN_FREE_DISK_MB:
                raise ResourceExhausted(
                    f"only {free_mb:.0f} MB left on the disk of {self.data_dir} after {self.rows:,} rows",
                    "free disk space (old versions: `servicedesk-etl versions`), then run migrate again",
                )
        available_mb = psutil.virtual_memory().available / (1024 * 1024)
        if available_mb < MIN_AVAILABLE_MEMORY_MB:
            raise ResourceExhausted(
                f"only {available_mb:.0f} MB of memory available after {self.rows:,} rows (this process: {current_rss_mb():.0f} MB)",
                "lower migrate.batch_rows in the config, or free memory, then run migrate again",
            )


# --- loading one table -------------------------------------------------------------------


@dataclass
class LoadOutcome:
    source_rows: int = 0
    loaded_rows: int = 0
    rejected_rowids: set[int] = field(default_factory=set)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # copy, key, indexes, vacuum (with ANALYZE)
    # The source side's checksum, computed from the rows as they were read for the load
    # (SQLite's canonical text of the raw values; refused rows taken out again).
    checksum_rows: int = 0
    checksum_sum: int = 0
    row_hash: str = DEFAULT_ROW_HASH  # see ROW_HASHES; chosen by the server's version

    @property
    def source_checksum(self) -> str:
        return _checksum_text(self.row_hash, self.checksum_rows, self.checksum_sum)


class Rejects:
    """Rows PostgreSQL (or the DateStyle guard) refused, written to ``<schema>_meta.rejects``."""

    def __init__(self, conninfo: str, meta: str, run_id: int, on_error: str) -> None:
        self.conninfo = conninfo
        self.meta = meta
        self.run_id = run_id
        self.on_error = on_error
        self.count = 0
        self.first_message: str | None = None
        self._lock = threading.Lock()

    @property
    def arguments(self) -> tuple[str, str, int, str]:
        """What a load worker process makes its own ``Rejects`` of."""
        return (self.conninfo, self.meta, self.run_id, self.on_error)

    def merge(self, part: "_Part") -> None:
        """Count in the rows a load worker process recorded for one part."""
        with self._lock:
            self.count += part.rejected
            if self.first_message is None:
                self.first_message = part.first_message

    def record(self, schema: str, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]], sqlstate: str, message: str) -> None:
        """``rows`` are (source rowid, *values); each goes in with the server's message."""
        from psycopg import sql

        message = message.replace("\x00", "\\x00")  # a refused value may hold NUL, which text cannot

        with self._lock:
            self.count += len(rows)
            if self.first_message is None:
                self.first_message = f"{table}: {message}"
        if self.on_error == "stop":
            raise GateFailed(
                GATE,
                f"PostgreSQL refused a row of {table} (source rowid {rows[0][0]}): {message}",
                "fix the row in the cleaned database, or run with --on-error reject to collect every refused row",
            )
        with connect(self.conninfo, autocommit=True) as conn:
            with conn.cursor() as cur:
                cur.executemany(
                    sql.SQL(
                        "INSERT INTO {} (run_id, version_schema, table_name, source_rowid, sqlstate, message, row_text) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s)"
                    ).format(qualified(self.meta, "rejects")),
                    [
                        (self.run_id, schema, table, row[0], sqlstate, message, _row_text(columns, row[1:]))
                        for row in rows
                    ],
                )
        log.warning("rows rejected", extra={"table": table, "rows": len(rows), "sqlstate": sqlstate, "reason": message[:200]})


def _row_text(columns: Sequence[str], values: Sequence[Any]) -> str:
    """The refused row as JSON (column -> value), NUL shown as \\u0000, capped."""
    shown = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values]
    text = json.dumps(dict(zip(columns, shown)), default=str, ensure_ascii=False)
    return text[:REJECT_TEXT_CHARS]


def _server_message(exc: Exception) -> tuple[str, str]:
    diag = getattr(exc, "diag", None)
    sqlstate = getattr(exc, "sqlstate", None) or (diag.sqlstate if diag else None) or "XX000"
    primary = (diag.message_primary if diag else None) or str(exc).splitlines()[0]
    detail = diag.message_detail if diag else None
    context = diag.context if diag else None
    text = primary
    if detail:
        text += f" ({detail})"
    if context:
        text += f" [{context.splitlines()[0]}]"
    return sqlstate, text


# Errors that belong to the rows of a batch (the server's 22xxx/23xxx, or a value the
# binary dumper cannot write), as opposed to a lost connection or a bug.
def _row_errors() -> tuple[type[BaseException], ...]:
    import psycopg

    return (psycopg.errors.DataError, psycopg.errors.IntegrityError, psycopg.errors.ProgramLimitExceeded, TypeError, ValueError, OverflowError)


def _copy_lines(
    conn: "psycopg.Connection",
    copy_sql: Any,
    lines: Sequence[tuple[Any, ...]],
    refused: Callable[[list[int], str, str], None],
    data: bytes | None = None,
) -> int:
    """CSV COPY of ``lines`` ((rowid, line, ...); ``data``: the lines joined already) in
    a savepoint; a refused batch is bisected to the refused rows."""
    from psycopg.copy import QueuedLibpqWriter

    if not lines:
        return 0
    try:
        with conn.transaction():
            cursor = conn.cursor()
            # The writer's own thread sends to the server while this one goes on.
            with cursor.copy(copy_sql, writer=QueuedLibpqWriter(cursor)) as copy:
                copy.write(memoryview(data if data is not None else _joined(row[1] for row in lines)))
                copy.write(b"\n")
        return len(lines)
    except _row_errors() as exc:
        if len(lines) == 1:
            sqlstate, message = _server_message(exc)
            refused([lines[0][0]], sqlstate, message)
            return 0
    middle = len(lines) // 2
    return _copy_lines(conn, copy_sql, lines[:middle], refused) + _copy_lines(conn, copy_sql, lines[middle:], refused)


def _joined(lines: Any) -> bytes:
    """The COPY data of ``lines`` but the last newline (written on its own: adding it
    would copy the whole batch again)."""
    return b"\n".join(lines)


HASH_SLICE_ROWS = 500  # lines per C call of the hashing stage (see _hashed)
COUNT_SLICE_BYTES = 1 << 21  # bytes per C call counting the quotes of a batch (see _hashed)


def _quotes_in(data: bytes) -> int:
    """The QUOTEs in ``data``, counted in slices (the GIL is released between them)."""
    return sum(data.count(_Q, start, start + COUNT_SLICE_BYTES) for start in range(0, len(data), COUNT_SLICE_BYTES))


def _hashed(batches: Any, row_hash: Callable[[bytes], int]) -> Any:
    """(rows, rowid -> hash of the line, COPY data) per batch of (rowid, line, quotes, bad column).

    Run in a thread of its own, between the SQLite reader and the loader, so that the
    checks, the hashing and the joining overlap both the scan of the next batch and the
    COPY of the previous one. A batch whose every line is usable is checked and hashed
    without Python code per row: each line holds at least its expected QUOTEs (two per
    text value, more when a value holds one, one more for a number SQLite cannot print),
    so the batch's QUOTEs equal the sum expected exactly when every line is usable, which
    one count over the joined batch tells. C calls work on slices (``HASH_SLICE_ROWS``
    lines, ``COUNT_SLICE_BYTES`` bytes): one call over a whole batch of comments (23 MB)
    held the GIL for tens of milliseconds, long enough to starve the threads that feed
    the server. The COPY data is None when a row needs the loader (a line Python renders,
    a value the guard refuses); its rows then come back as (rowid, line or None, bad column).
    """
    for batch in batches:
        rowids, lines, quotes, bad = zip(*batch)
        if bad.count(None) == len(bad) and None not in lines:
            data = _joined(lines)
            if _quotes_in(data) == sum(quotes):
                hashed: list[int] = []
                for start in range(0, len(lines), HASH_SLICE_ROWS):
                    hashed.extend(map(row_hash, lines[start : start + HASH_SLICE_ROWS]))
                yield batch, dict(zip(rowids, hashed)), data
                continue
        rows = []
        hashes = {}
        for rowid, line, count, bad_column in batch:
            line = _usable(line, count)
            if line is not None:
                hashes[rowid] = row_hash(line)
            rows.append((rowid, line, bad_column))
        yield rows, hashes, None


class _SourceRows:
    """Rows of one SQLite table fetched by rowid, as ``copy_values_sql`` gives them (rare rows)."""

    def __init__(self, source: Path, plan: TablePlan) -> None:
        self._source = source
        self._select = f"SELECT {copy_values_sql(plan)} FROM {_q(plan.name)} WHERE rowid = ?"
        self._lite: sqlite3.Connection | None = None

    def values(self, rowid: int) -> tuple[Any, ...]:
        if self._lite is None:
            self._lite = _open_sqlite(self._source, text_as_bytes=True)
        return self._lite.execute(self._select, (rowid,)).fetchone()

    def close(self) -> None:
        if self._lite is not None:
            self._lite.close()


def _rows_by_rowid(lite: sqlite3.Connection, select: str, batch_rows: int, after: int | None = None) -> Any:
    """Batches of ``select`` (which starts with rowid and ends ``ORDER BY rowid``), resumable.

    Text that is not valid UTF-8 stops SQLite's fast decoding ("Could not decode to
    UTF-8"); the rest of the table is then read with U+FFFD replacements, and the
    checksums (over the bytes SQLite holds) report those rows as changed.
    """
    head, order = select.rsplit(" ORDER BY rowid", 1)
    joiner = " AND " if " WHERE " in head else " WHERE "
    last = after
    while True:
        query = head + (f"{joiner}rowid > {int(last)}" if last is not None else "") + " ORDER BY rowid" + order
        try:
            cursor = lite.execute(query)
            while batch := cursor.fetchmany(batch_rows):
                last = batch[-1][0]
                yield batch
            return
        except sqlite3.OperationalError as exc:
            if "decode" not in str(exc) or lite.text_factory is not str:
                raise
            log.warning("text that is not UTF-8 in the source: read with replacement characters", extra={"after_rowid": last})
            lite.text_factory = _decode_leniently


class _ReadAhead:
    """Batches of ``batches`` produced by a reader thread, at most ``depth`` waiting.

    SQLite computes each batch (values, canonical text, the bad-value column) without
    the GIL, so reading the next batch overlaps the COPY of this one: the load takes
    about the longer of the two instead of their sum. Memory stays bounded by ``depth``
    batches. An error in the reader is raised in the consumer; a consumer that stops
    early (an error, ``--on-error stop``) stops the reader before closing SQLite.
    """

    _END = object()

    def __init__(self, batches: Any, depth: int = 2) -> None:
        self._batches = batches
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, name="sqlite-read", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        try:
            for batch in self._batches:
                if not self._put(batch):
                    return
        except BaseException as exc:  # handed to the consumer
            self._error = exc
        finally:
            self._put(self._END)

    def __iter__(self) -> Any:
        try:
            while True:
                item = self._queue.get()
                if item is self._END:
                    if self._error is not None:
                        raise self._error
                    return
                yield item
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class _Table:
    """A table loaded in parts (rowid ranges, one COPY transaction each, by the workers
    at once): their outcomes add up; the part that completes it hands it to finishing."""

    plan: TablePlan
    filters: list[str]  # SQLite conditions of the rows to load (the canary's sample), or none
    parts: int
    outcome: LoadOutcome
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def keep(self) -> list[str]:
        """SQLite conditions of the rows loaded (for the duplicate search)."""
        bad = bad_value_condition(self.plan)
        return [*self.filters, f"NOT ({bad})"] if bad else list(self.filters)

    def add(self, part: LoadOutcome) -> bool:
        """Count a finished part in; True when it was the last one."""
        with self.lock:
            out = self.outcome
            out.source_rows += part.source_rows
            out.loaded_rows += part.loaded_rows
            out.rejected_rowids |= part.rejected_rowids
            out.checksum_rows += part.checksum_rows
            out.checksum_sum += part.checksum_sum
            self.parts -= 1
            if self.parts == 0:
                out.phases["copy"] = round(time.monotonic() - self.started, 3)
            return self.parts == 0


PART_ROWS = 50_000  # rowids per part: small enough to keep every worker busy to the end


MAX_PARTS = 64  # per table: sparse rowids (an INTEGER PRIMARY KEY of large ids) widen the parts instead


def _rowid_parts(lite: sqlite3.Connection, plan: TablePlan, rows: int | None = None) -> list[str]:
    """SQLite conditions splitting the table into rowid ranges of about ``rows`` rows
    (default ``PART_ROWS``; rowids as the cleaner writes them: dense), at most ``MAX_PARTS``."""
    rows = PART_ROWS if rows is None else rows
    table = _q(plan.name)
    # Two queries: SQLite reads one end of the rowid tree for a lone min() or max(), but
    # scans the whole table for both in one SELECT (0.8 s of CPU for the 1M bench source).
    low = lite.execute(f"SELECT min(rowid) FROM {table}").fetchone()[0]
    high = lite.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0]
    if low is None or high - low < rows:
        return ["1"]  # empty or small: one part, every row
    step = max(rows, -(-(high - low + 1) // MAX_PARTS))
    bounds = list(range(low, high + 1, step))
    parts = [f"rowid < {bounds[1]}"]
    parts += [f"rowid >= {a} AND rowid < {b}" for a, b in zip(bounds[1:], bounds[2:])]
    parts.append(f"rowid >= {bounds[-1]}")
    return parts


class _Loader:
    """One load worker: a PostgreSQL connection and a SQLite one, loading part after part."""

    def __init__(self, conninfo: str, source: Path, schema: str, rejects: Rejects, row_hash: str, data_dir: Path | None) -> None:
        self.schema = schema
        self.source = source
        self.rejects = rejects
        self.row_hash = row_hash
        self.lite = _open_sqlite(source, text_as_bytes=True)
        self.rare: dict[str, _SourceRows] = {}
        try:
            self.conn = connect(conninfo, application_name="servicedesk-etl load")
            self.conn.execute("SET client_encoding = 'UTF8'")
            self.conn.commit()
        except BaseException:
            self.lite.close()
            raise
        self.health = Health(self.conn, data_dir)

    def close(self) -> None:
        self.conn.close()
        self.lite.close()
        for rare in self.rare.values():
            rare.close()

    def copy(self, table: _Table, condition: str, batch_rows: int, progress: Progress | None, stop: threading.Event) -> LoadOutcome:
        """Stream the rows of ``table`` meeting ``condition`` by COPY and commit them."""
        from psycopg import sql

        plan, conn, rejects, schema = table.plan, self.conn, self.rejects, self.schema
        outcome = LoadOutcome(row_hash=self.row_hash)
        rare = self.rare.get(plan.name) or self.rare.setdefault(plan.name, _SourceRows(self.source, plan))
        columns = plan.column_names
        reasons = {name: what for name, _, what in _bad_value_checks(plan)}
        select = f"SELECT rowid, {copy_line_sql(plan)}, {quotes_sql(plan)}, {bad_value_reason_sql(plan)} FROM {_q(plan.name)}"
        select += " WHERE " + " AND ".join([*table.filters, f"({condition})"]) + " ORDER BY rowid"
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, QUOTE {})").format(
            qualified(schema, plan.name), sql.SQL(", ").join(sql.Identifier(c[0]) for c in plan.line_columns), sql.Literal(QUOTE)
        )
        row_hash = ROW_HASHES[self.row_hash][0]
        hashes: dict[int, int] = {}  # rowid -> row hash, of the batch being loaded

        def reject(rowid: int, sqlstate: str, message: str) -> None:
            outcome.rejected_rowids.add(rowid)
            rejects.record(schema, plan.name, columns, [(rowid, *rare.values(rowid))], sqlstate, message)

        def refused(rowids: list[int], sqlstate: str, message: str) -> None:
            """Rows the server refused: taken out of the source checksum again."""
            for rowid in rowids:
                outcome.checksum_rows -= 1
                outcome.checksum_sum -= hashes[rowid]
                reject(rowid, sqlstate, message)

        scan = _ReadAhead(_rows_by_rowid(self.lite, select, batch_rows), depth=1)
        reader = _ReadAhead(_hashed(scan, row_hash), depth=1)
        try:
            with conn.transaction():  # one per part; the batches' blocks are savepoints in it
                for batch, hashes, data in reader:
                    if stop.is_set():
                        raise _Stopped
                    outcome.source_rows += len(batch)
                    if data is not None:  # every line as SQLite built it: nothing to look at
                        lines: Sequence[tuple[Any, ...]] = batch
                        hashed = sum(hashes.values())
                    else:
                        lines = []
                        for rowid, line, bad_column in batch:
                            if bad_column is not None:
                                column = _shown(bad_column)
                                value = _shown(rare.values(rowid)[plan.column_names.index(column)])
                                date_like = plan.kind_of(column) in ("timestamp", "date")
                                reject(rowid, "22007" if date_like else "22P02", f"{column}: {value!r} is not {reasons[column]}")
                                continue
                            if line is None:
                                try:
                                    line = _render_line(plan, rare.values(rowid))
                                except _Refused as refusal:
                                    reject(rowid, refusal.sqlstate, refusal.message)
                                    continue
                                hashes[rowid] = row_hash(line)
                            lines.append((rowid, line))
                        hashed = sum(hashes[row[0]] for row in lines)
                    outcome.checksum_rows += len(lines)
                    outcome.checksum_sum += hashed
                    outcome.loaded_rows += _copy_lines(conn, copy_sql, lines, refused, data)
                    self.health.advance(len(batch))
                    if progress is not None:
                        progress.advance(len(batch))
        finally:
            for thread in (reader, scan):  # the hashing thread, then the SQLite reader
                thread.close()
        return outcome


class _Stopped(Exception):
    """Another worker failed: this one stops between batches."""


def _finish_table(conninfo: str, source: Path, schema: str, table: _Table, rejects: Rejects) -> LoadOutcome:
    """The key, the indexes, COMMIT, then VACUUM and ANALYZE of a loaded table.

    The VACUUM (0.17 s of the server's CPU for the 1M rows of the benchmark) marks the
    pages all-visible: the dashboard queries' index-only scans then read no heap (the
    validation's dashboards 2.1 -> 0.9 s of server CPU at 1M rows), and autovacuum has
    nothing left to do on these tables while the migration validates them."""
    from psycopg import sql

    plan, outcome = table.plan, table.outcome
    lite = _open_sqlite(source, text_as_bytes=True)
    try:
        with connect(conninfo, application_name="servicedesk-etl load") as conn:
            mark = time.monotonic()
            _add_key(conn, schema, plan, lite, table.keep, outcome, rejects)
            outcome.phases["key"] = round(time.monotonic() - mark, 3)
            mark = time.monotonic()
            for statement in create_indexes(schema, plan):
                conn.execute(statement)
            conn.commit()
            outcome.phases["indexes"] = round(time.monotonic() - mark, 3)
            mark = time.monotonic()
            conn.autocommit = True
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(qualified(schema, plan.name)))
            outcome.phases["vacuum"] = round(time.monotonic() - mark, 3)  # VACUUM (ANALYZE)
    finally:
        lite.close()
    outcome.seconds = time.monotonic() - table.started
    return outcome


def _add_key(
    conn: "psycopg.Connection",
    schema: str,
    plan: TablePlan,
    lite: sqlite3.Connection,
    filters: list[str],
    outcome: LoadOutcome,
    rejects: Rejects,
) -> None:
    """Add the key; when duplicates refuse it, reject every later duplicate and add it again.

    The first occurrence (lowest SQLite rowid among the rows loaded) stays, as the
    cleaner's ``keep_first`` would; later ones go to the rejects with the server's own
    message. The parts of a table load at once, so the server's row order is not the
    source's: the row kept on the server is found by its content (its COPY line, the
    text both sides' checksums hash), not by its position.
    """
    import psycopg
    from psycopg import sql

    statement = add_key(schema, plan)
    if statement is None:
        return
    try:
        with conn.transaction():
            conn.execute(statement)
        return
    except psycopg.errors.UniqueViolation as exc:
        sqlstate, message = _server_message(exc)
    keys = ", ".join(_q(c) for c in plan.key)
    complete = " AND ".join(f"{_q(c)} IS NOT NULL" for c in plan.key)
    where = " AND ".join([*filters, complete])
    members = lite.execute(
        f"SELECT rowid, {keys}, {copy_values_sql(plan)}, {copy_line_sql(plan)}, {quotes_sql(plan)} FROM "
        f"(SELECT rowid, *, count(*) OVER (PARTITION BY {keys}) AS c_ FROM {_q(plan.name)} WHERE {where}) WHERE c_ > 1 ORDER BY rowid"
    ).fetchall()
    width = len(plan.key)
    groups: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    for m in members:
        if m[0] not in outcome.rejected_rowids:  # rows the server refused are not there
            groups.setdefault(tuple(m[1 : 1 + width]), []).append((m[0], *m[1 + width :]))

    def line_of(row: tuple[Any, ...]) -> bytes:
        line = _usable(row[-2], row[-1])
        return line if line is not None else _render_line(plan, row[1:-2])

    kept = [line_of(g[0]).decode("utf-8", "replace") for g in groups.values() if len(g) > 1]
    duplicates = [row for g in groups.values() for row in g[1:]]
    for row in duplicates:
        outcome.checksum_rows -= 1
        outcome.checksum_sum -= ROW_HASHES[outcome.row_hash][0](line_of(row))
    duplicates.sort()
    conn.execute("SET LOCAL DateStyle = 'ISO'")  # the server's lines as the COPY lines carry them
    conn.execute("CREATE TEMPORARY TABLE kept_lines_ (kept_line_ text) ON COMMIT DROP")
    with conn.cursor().copy("COPY kept_lines_ (kept_line_) FROM STDIN") as copy:
        for line in kept:
            copy.write_row((line,))
    key_cols = sql.SQL(", ").join(sql.Identifier(c) for c in plan.key)
    not_null = sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(sql.Identifier(c)) for c in plan.key)
    deleted = conn.execute(
        sql.SQL(
            "DELETE FROM {t} WHERE ctid IN (SELECT ctid FROM (SELECT t.ctid, row_number() OVER (PARTITION BY {k} ORDER BY k.kept_line_ IS NULL, t.ctid) AS n "
            "FROM {t} AS t LEFT JOIN kept_lines_ AS k ON k.kept_line_ = {line} WHERE {nn}) AS d WHERE n > 1)"
        ).format(t=qualified(schema, plan.name), k=key_cols, nn=not_null, line=copy_line_pg_sql(plan))
    ).rowcount
    if deleted != len(duplicates):
        raise GateFailed(
            GATE,
            f"{plan.name}: {deleted} duplicate keys in PostgreSQL but {len(duplicates)} in SQLite ({message})",
            "the key values differ only by type in SQLite (e.g. '5' and 5): run `servicedesk-etl clean` on the source",
        )
    outcome.loaded_rows -= deleted
    outcome.rejected_rowids.update(d[0] for d in duplicates)
    rejects.record(schema, plan.name, plan.column_names, [d[:-2] for d in duplicates], sqlstate, message)
    conn.execute(statement)


# --- checksums ---------------------------------------------------------------------------


def sqlite_checksum(
    source: Path,
    plan: TablePlan,
    *,
    where: str | None = None,
    skip: set[int] | frozenset[int] = frozenset(),
    row_hash: str = DEFAULT_ROW_HASH,
) -> tuple[int, str]:
    """(rows, checksum) of the SQLite rows expected in PostgreSQL (``skip``: rejected rowids)."""
    lite = _open_sqlite(source, text_as_bytes=True)
    rare = _SourceRows(source, plan)
    of = ROW_HASHES[row_hash][0]
    try:
        select = f"SELECT rowid, {copy_line_sql(plan)}, {quotes_sql(plan)} FROM {_q(plan.name)}"
        if where:
            select += f" WHERE {where}"
        rows = total = 0
        cursor = lite.execute(select)
        while batch := cursor.fetchmany(10_000):
            for rowid, line, quotes in batch:
                if rowid in skip:
                    continue
                line = _usable(line, quotes)
                if line is None:
                    try:
                        line = _render_line(plan, rare.values(rowid))
                    except _Refused:
                        continue  # a row the load refuses: never in PostgreSQL
                rows += 1
                total += of(line)
        return rows, _checksum_text(row_hash, rows, total)
    finally:
        lite.close()
        rare.close()


def pg_checksum(conninfo: str, schema: str, plan: TablePlan, row_hash: str | None = None) -> tuple[int, str]:
    """(rows, checksum) of a PostgreSQL table, computed on the server from its typed values
    (``row_hash``: see ``ROW_HASHES``; by default the one this server supports best)."""
    from psycopg import sql

    with connect(conninfo, autocommit=True, application_name="servicedesk-etl validate") as conn:
        conn.execute("SET DateStyle = 'ISO'")  # timestamps and dates printed as the COPY lines carry them
        row_hash = row_hash or row_hash_for(conn)
        hashed = sql.SQL(ROW_HASHES[row_hash][1]).format(row=copy_line_pg_sql(plan))
        query = sql.SQL("SELECT count(*), coalesce(sum({hashed}), 0) FROM {t}").format(hashed=hashed, t=qualified(schema, plan.name))
        rows, total = conn.execute(query).fetchone()
    return int(rows), _checksum_text(row_hash, int(rows), int(total))


def compare_checksums(conninfo: str, schema: str, plans: list[TablePlan], outcomes: dict[str, LoadOutcome]) -> list[TableResult]:
    """Each table's server-side checksum (computed in parallel) against the one read at load time."""
    with ThreadPoolExecutor(max_workers=len(plans), thread_name_prefix="checksum") as pool:
        on_server = {plan.name: pool.submit(pg_checksum, conninfo, schema, plan, outcomes[plan.name].row_hash) for plan in plans}
        results = []
        for plan in plans:
            outcome = outcomes[plan.name]
            pg_rows, pg_sum = on_server[plan.name].result()
            results.append(
                TableResult(
                    name=plan.name,
                    source_rows=outcome.source_rows,
                    loaded_rows=pg_rows,
                    rejected_rows=len(outcome.rejected_rowids),
                    checksum_source=outcome.source_checksum,
                    checksum_target=pg_sum,
                    seconds=round(outcome.seconds, 3),
                )
            )
    return results


# --- the ledger --------------------------------------------------------------------------


def ensure_ledger(conn: "psycopg.Connection", schema: str) -> None:
    from psycopg import sql

    meta = meta_schema(schema)
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(meta)))
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} ("
            " id bigserial PRIMARY KEY,"
            " started_at timestamptz NOT NULL DEFAULT now(),"
            " finished_at timestamptz,"
            " cutover_at timestamptz,"
            " status text NOT NULL,"
            " live_schema text NOT NULL,"
            " version_schema text NOT NULL,"
            " canary_schema text,"
            " source_path text,"
            " source_sha256 text,"
            " counts jsonb,"
            " canary jsonb,"
            " rejects bigint NOT NULL DEFAULT 0,"
            " scores jsonb,"
            " timings jsonb,"
            " backup_id text,"
            " message text,"
            " pid integer,"
            " client_host text)"
        ).format(qualified(meta, "migrations"))
    )
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} ("
            " run_id bigint NOT NULL,"
            " version_schema text NOT NULL,"
            " table_name text NOT NULL,"
            " source_rowid bigint,"
            " sqlstate text,"
            " message text NOT NULL,"
            " row_text text,"
            " at timestamptz NOT NULL DEFAULT now())"
        ).format(qualified(meta, "rejects"))
    )


def _ledger_update(conn: "psycopg.Connection", schema: str, run_id: int, **values: Any) -> None:
    from psycopg import sql
    from psycopg.types.json import Jsonb

    sets = []
    params = []
    for key, value in values.items():
        sets.append(sql.SQL("{} = %s").format(sql.Identifier(key)))
        params.append(Jsonb(value) if isinstance(value, (dict, list)) else value)
    conn.execute(
        sql.SQL("UPDATE {} SET {} WHERE id = %s").format(qualified(meta_schema(schema), "migrations"), sql.SQL(", ").join(sets)),
        [*params, run_id],
    )


def _schema_exists(conn: "psycopg.Connection", name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (name,)).fetchone() is not None


def _drop_schema(conn: "psycopg.Connection", name: str | None) -> None:
    from psycopg import sql

    if name:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def _lock_key(schema: str) -> str:
    return f"servicedesk-etl:{schema}"


def acquire_lock(conn: "psycopg.Connection", schema: str, wait: float = LOCK_WAIT_SECONDS) -> None:
    """Session advisory lock per live schema; waits a little for a killed run's backend to go."""
    deadline = time.monotonic() + wait
    while True:
        got = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (_lock_key(schema),)).fetchone()[0]
        if got:
            return
        if time.monotonic() >= deadline:
            raise TargetUnavailable(
                f"another migration or rollback of schema {schema!r} holds its lock",
                "wait for it to finish (see `servicedesk-etl versions`), then run again",
            )
        time.sleep(0.2)


def recover(conn: "psycopg.Connection", schema: str) -> list[str]:
    """Drop the half-built schemas of dead runs (we hold the lock: no unfinished run is alive)."""
    from psycopg import sql

    meta = meta_schema(schema)
    dropped = []
    rows = conn.execute(
        sql.SQL("SELECT id, version_schema, canary_schema, status FROM {} WHERE status = ANY(%s) ORDER BY id").format(
            qualified(meta, "migrations")
        ),
        (list(UNFINISHED),),
    ).fetchall()
    for run_id, version, canary, status in rows:
        with conn.transaction():
            for name in (version, canary):
                if name and name != schema and _schema_exists(conn, name):
                    _drop_schema(conn, name)
                    dropped.append(name)
            _ledger_update(conn, schema, run_id, status=ABANDONED, finished_at=datetime.now(timezone.utc), message=f"run died while {status}; its schemas were dropped")
        log.warning("abandoned run cleaned up", extra={"run_id": run_id, "version_schema": version, "was": status})
    # Failed runs drop their own schemas; a failure to do so (server gone) is caught here.
    rows = conn.execute(
        sql.SQL("SELECT version_schema, canary_schema FROM {} WHERE status = ANY(%s)").format(qualified(meta, "migrations")),
        ([FAILED, ABANDONED],),
    ).fetchall()
    for version, canary in rows:
        for name in (version, canary):
            if name and name != schema and _schema_exists(conn, name):
                _drop_schema(conn, name)
                dropped.append(name)
    return dropped


# --- the read-only role ------------------------------------------------------------------


def ensure_reader(conn: "psycopg.Connection", role: str) -> None:
    """Create the dashboards' read-only role (NOLOGIN) when it does not exist."""
    import psycopg
    from psycopg import sql

    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
        return
    try:
        with conn.transaction():
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    except psycopg.errors.DuplicateObject:
        return  # created by a concurrent run in another database of the cluster
    except psycopg.errors.InsufficientPrivilege:
        raise ConfigError(
            f"the read-only role {role!r} does not exist and this user may not create roles",
            f"ask an administrator to run: CREATE ROLE {role} NOLOGIN; (or set migrate.readonly_role to an existing role)",
        ) from None


def grant_reader(conn: "psycopg.Connection", schema: str, role: str) -> None:
    from psycopg import sql

    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), sql.Identifier(role)))
    conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(sql.Identifier(schema), sql.Identifier(role)))


# --- one migration -------------------------------------------------------------------------


def _target_of(config: MigrateConfig) -> Target:
    return resolve_target(config.settings.target, config.target, env={}, data_dir=config.data_dir)


def _run_preflight(config: MigrateConfig, target: Target) -> None:
    if not config.preflight:
        return
    from pipeline import preflight

    kwargs: dict[str, Any] = {"source": config.source, "target": target, "settings": config.settings}
    if config.backups_dir is not None:
        kwargs["work_dirs"] = (config.backups_dir,)
    if target.embedded:
        kwargs["data_dir"] = target.data_dir
    result = preflight.run(preflight.PreflightConfig(**kwargs))
    failed = [c for c in result.checks if c.status == preflight.FAIL]
    if not config.backup:
        failed = [c for c in failed if not c.name.startswith("pg_dump")]
    if failed:
        raise GateFailed(
            "preflight",
            "; ".join(f"{c.name}: {c.details}" for c in failed),
            " | ".join(dict.fromkeys(c.remedy for c in failed if c.remedy)) or "fix the failed checks and run again",
        )


GATE_MODULES = ("pytest", "contracts.gate", "contracts.plugin", "pipeline.pgsource")  # what a contract run imports


class _InChild:
    """A gate run in a child process (``call``, or None when there is none to run)."""

    call: SpawnedCall | None

    def __enter__(self) -> Any:
        if self.call is not None:
            self.call.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.call is not None:
            self.call.__exit__(*exc)


class _ContractRun(_InChild):
    """The contracts on PostgreSQL through the gate (``run_gate``), judged with the run's
    own settings, in a child process (``pipeline.child``) started before the load, which
    imports the gate's modules meanwhile (``GATE_MODULES``), and asked to run by
    ``start()`` once the rows are in: it runs beside the checksums and the dashboard
    queries, which are the server's work, and never shares this process (pytest changes
    the working folder, ``sys.stdout`` and the environment, which libpq reads when the
    checksums' threads connect).

    The run on the migrated version (not the canary) writes its JUnit XML and JSON
    report where ``config.gate_junitxml`` / ``config.gate_report`` say. Use as a context
    manager: leaving it kills a run whose verdict is no longer wanted.
    """

    def __init__(self, config: MigrateConfig, conninfo: str, schema: str, what: str) -> None:
        self.schema, self.what = schema, what
        self.started: float | None = None
        self.seconds: float | None = None
        self.call: SpawnedCall | None = None
        self.arguments: dict[str, Any] = {}
        if config.contracts:
            files: dict[str, Any] = {}
            if what == "migrated":
                files = {"junitxml": config.gate_junitxml, "report": config.gate_report}
            self.arguments = {"target": conninfo, "schema": schema, "quality_threshold": config.quality_gate, "settings": config.settings, **files}
            self.call = SpawnedCall("pipeline.migrate:_run_gate", deferred=True, preload=GATE_MODULES)

    def start(self) -> None:
        """The rows are in: the child runs the gate now."""
        self.started = time.monotonic()
        if self.call is not None:
            self.call.send(self.arguments)

    def verdict(self) -> "GateVerdict | None":
        """The run's verdict (None: contracts off); a failing one raises ``GateFailed``."""
        if self.call is None:
            return None
        assert self.started is not None, "start() first"
        try:
            verdict = self.call.result()
        finally:
            self.seconds = round(time.monotonic() - self.started, 3)
        if not verdict.passed:
            failed = ", ".join(f"{i} ({n})" for i, _, n in verdict.failed[:5])
            raise GateFailed(
                GATE,
                f"the contracts fail on the {self.what} schema {self.schema}: {failed or 'see the gate report'}",
                f"run `pytest --target URI --schema {self.schema}` to see every failing check, fix the cleaned data, run migrate again",
            )
        return verdict


def _run_gate(arguments: dict[str, Any]) -> "GateVerdict":
    """``run_gate(**arguments)``: what ``_ContractRun``'s child process calls."""
    from contracts.gate import run_gate

    return run_gate(**arguments)


def _scored(verdict: "GateVerdict | None") -> dict[str, Any]:
    return {} if verdict is None else {"quality": verdict.quality, "verdict": verdict.verdict}


class _SourceScore(_InChild):
    """The source's quality score: the caller's when it is for this very file, else
    computed by the gate on the source, in a child process started at once (beside the
    contract run on PostgreSQL)."""

    def __init__(self, config: MigrateConfig, sha: str) -> None:
        self.value: float | None = None
        self.call = None
        if not config.contracts:
            return
        if config.source_score is not None:
            if config.source_score_sha256 == sha:
                self.value = float(config.source_score)
                return
            log.warning(
                "the given source score is not for this file: computing it again",
                extra={"given_sha256": config.source_score_sha256, "source_sha256": sha},
            )
        self.call = SpawnedCall("pipeline.migrate:_run_gate", {"source": config.source, "quality_threshold": 0.0, "settings": config.settings})

    def score(self) -> float | None:
        return self.call.result().quality if self.call is not None else self.value


def _dashboards(conninfo: str, schema: str) -> int:
    """Run every dashboard query on ``schema``: the number of metrics that ran."""
    from pipeline import dashboard

    try:
        values = dashboard.compute_metrics(conninfo, schema)
    except EtlError:
        raise
    except Exception as exc:  # psycopg.Error: a query that does not run on this schema
        raise GateFailed(
            GATE,
            f"a dashboard query fails on {schema}: {redact(str(exc)).splitlines()[0][:300]}",
            "nothing was cut over; fix the query in pipeline/sql or the data, then run migrate again",
        ) from None
    return sum(1 for v in values if v.status != dashboard.NA)


def _alongside_dashboards(conninfo: str, schema: str, check: Callable[[], None]) -> int:
    """Run ``check`` (checksums, contracts) while the dashboard queries run on ``schema``.

    Both are mostly server work on different tables; the checks' failure comes first
    (once the queries have finished), then a failing dashboard query.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dashboards") as pool:
        boards = pool.submit(_dashboards, conninfo, schema)
        check()
        return boards.result()


def _take_backup(config: MigrateConfig, conninfo: str, schema: str) -> str | None:
    if not config.backup:
        return None
    from pipeline import backup

    kwargs: dict[str, Any] = {"kind": "pre-cutover"}
    if config.backups_dir is not None:
        kwargs["backups_dir"] = config.backups_dir
    record = backup.dump_schema(conninfo, schema, **kwargs)
    return record.id


def _already_migrated(conn: "psycopg.Connection", schema: str, sha: str) -> tuple[int, str, str] | None:
    from psycopg import sql

    rows = conn.execute(
        sql.SQL("SELECT id, version_schema, status FROM {} WHERE source_sha256 = %s AND status = ANY(%s) ORDER BY id DESC").format(
            qualified(meta_schema(schema), "migrations")
        ),
        (sha, list(KEPT)),
    ).fetchall()
    for run_id, version, status in rows:
        if _schema_exists(conn, schema if status == LIVE else version):
            return run_id, version, status
    return None


def load_schema(
    conninfo: str,
    source: Path,
    schema: str,
    plans: list[TablePlan],
    rejects: Rejects,
    *,
    where: dict[str, str] | None = None,
    batch_rows: int = 10_000,
    data_dir: Path | None = None,
    parallel: int = 0,
    label: str = "load",
) -> dict[str, LoadOutcome]:
    """Create ``schema`` and load every table into it (the load phase).

    Each table is cut into rowid ranges (``PART_ROWS``); ``parallel`` workers (default:
    one per core, at least 2, at most 4; processes, see ``_Workers``), each with its own
    connections, take the parts one after another and COPY each in its own transaction,
    so the server and the client keep every core busy until the last part, whatever the
    tables' sizes. The schema is new and nobody reads it before the cut-over: a failure
    leaves it to be dropped (``run``, ``recover``). A table whose last part is in is
    finished (key, indexes, VACUUM and ANALYZE) on a thread of this process while the
    workers go on.
    """
    from psycopg import sql

    with connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        for plan in plans:
            conn.execute(create_table(schema, plan))
        row_hash = row_hash_for(conn)
    workers = parallel if parallel > 0 else max(2, min(os.cpu_count() or 1, 4))
    lite = _open_sqlite(source)
    try:
        parts = {plan.name: _rowid_parts(lite, plan) for plan in plans}
    finally:
        lite.close()
    tables = {
        plan.name: _Table(plan, [f"({where[plan.name]})"] if where and where.get(plan.name) else [], len(parts[plan.name]), LoadOutcome(row_hash=row_hash))
        for plan in plans
    }
    # The table with the most parts first: its key and indexes, the longest to build, are
    # built while the others load, and the last table's finishing is the shortest.
    work = [(plan, tables[plan.name].filters, condition) for plan in sorted(plans, key=lambda p: -len(parts[p.name])) for condition in parts[plan.name]]
    finished: dict[str, Future[LoadOutcome]] = {}
    with (
        cyclic_gc_off(),  # 10% of the loader's CPU at 260K rows (perf)
        Progress(label) as progress,
        _Workers(min(workers, len(work)), work, (conninfo, source, schema, rejects.arguments, row_hash, data_dir, batch_rows)) as team,
        ThreadPoolExecutor(max_workers=len(plans), thread_name_prefix="finish") as finishing,
    ):
        errors: list[BaseException] = []
        try:
            for name, part, rows in team.messages():
                if part is None:
                    progress.advance(rows)
                    continue
                rejects.merge(part)
                table = tables[name]
                if table.add(part.outcome):
                    done = finished[name] = finishing.submit(_finish_table, conninfo, source, schema, table, rejects)
                    done.add_done_callback(lambda f: team.stop() if f.exception() is not None else None)
            errors += team.errors
        except BaseException as exc:
            team.stop()
            errors.append(exc)
        errors += [f.exception() for f in list(finished.values())]  # waits for every finishing
        real = [e for e in errors if e is not None and not isinstance(e, _Stopped)]
        for other in real[1:]:  # one error is raised: the others are logged
            log.warning("another load error", extra={"error": f"{type(other).__name__}: {redact(str(other))[:300]}"})
        if real:
            raise real[0]
        missing = [plan.name for plan in plans if plan.name not in finished]
        if missing:  # pragma: no cover - every part was loaded unless a worker failed
            raise RuntimeError(f"tables not loaded: {', '.join(missing)}")
        return {plan.name: finished[plan.name].result() for plan in plans}


@dataclass
class _Part:
    """What a worker process reports of one loaded part: its outcome and its rejects."""

    outcome: LoadOutcome
    rejected: int = 0
    first_message: str | None = None


class _Reported:
    """A worker's progress: rows sent to the parent, which draws the bar."""

    def __init__(self, results: Any) -> None:
        self.results = results

    def advance(self, rows: int) -> None:
        self.results.put((None, None, rows))


def _load_worker(
    number: int,
    work: list[tuple[TablePlan, list[str], str]],
    taken: Any,
    results: Any,
    stopping: Any,
    arguments: tuple[Any, ...],
    parent: int | None,
) -> None:
    """One load worker process: takes the next part of ``work`` (the shared counter
    ``taken``) until none is left, loads it (``_Loader.copy``) and sends its ``_Part``;
    ends with ("end", number, error or None). A process (``parent``: its parent's pid)
    dies with the migration (SIGKILL)."""
    from pipeline.child import die_with_parent, picklable_error

    if parent is not None:
        die_with_parent()
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)
    conninfo, source, schema, reject_arguments, row_hash, data_dir, batch_rows = arguments
    rejects = Rejects(*reject_arguments)
    error: BaseException | None = None
    try:
        loader = _Loader(conninfo, source, schema, rejects, row_hash, data_dir)
        try:
            while not stopping.is_set():
                with taken.get_lock():
                    index = taken.value
                    taken.value += 1
                if index >= len(work):
                    break
                plan, filters, condition = work[index]
                counted = rejects.count
                outcome = loader.copy(_Table(plan, filters, 1, LoadOutcome(row_hash=row_hash)), condition, batch_rows, _Reported(results), stopping)
                results.put((plan.name, _Part(outcome, rejects.count - counted, rejects.first_message), 0))
        finally:
            loader.close()
    except BaseException as exc:  # handed to the parent, which raises it
        error = exc
    results.put(("end", number, picklable_error(error)))


class _Counter:
    """``multiprocessing.Value``'s interface for threads: the next part to take."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def get_lock(self) -> threading.Lock:
        return self._lock


class _Workers:
    """The load's workers (``_load_worker``): processes forked from this one where it runs
    no other thread (``pipeline.child.alone``), else threads of this process.

    Processes, not threads: each worker's SQLite reader, hashing and COPY threads ran
    beside the other workers' under one GIL, and the handovers (400,000 futex calls at
    1M rows) cost more than the work: the load's client CPU 15-16 s -> 8.5 s at 1M rows
    (28 Nov). A fork is not safe beside another thread, which may hold a lock (SQLite's
    memory mutex) the worker would then wait for forever; and a new Python ("spawn",
    "forkserver") would import the caller's script (``__main__``) again in each worker.
    """

    def __init__(self, count: int, work: list[tuple[TablePlan, list[str], str]], arguments: tuple[Any, ...]) -> None:
        import multiprocessing

        from pipeline.child import CAN_FORK, alone

        self.count = count
        self.forked = CAN_FORK and alone()
        parent: int | None = None
        if self.forked:
            context = multiprocessing.get_context("fork")
            self.taken: Any = context.Value("q", 0)
            self.results: Any = context.Queue()
            self.stopping: Any = context.Event()
            make: Any = context.Process
            parent = os.getpid()
        else:
            self.taken, self.results, self.stopping, make = _Counter(), queue.Queue(), threading.Event(), threading.Thread
        self.errors: list[BaseException] = []
        self.workers = [
            make(
                target=_load_worker,
                args=(n, work, self.taken, self.results, self.stopping, arguments, parent),
                name=f"servicedesk-etl load {n}",
                daemon=True,
            )
            for n in range(count)
        ]

    def __enter__(self) -> "_Workers":
        import gc

        gc.freeze()  # a forked worker's collections never walk the parent's objects
        try:
            for worker in self.workers:
                worker.start()
        except BaseException:
            self.__exit__()
            raise
        finally:
            gc.unfreeze()
        return self

    def stop(self) -> None:
        """The workers stop between batches (a failure elsewhere)."""
        self.stopping.set()

    def _silent(self, n: int) -> str | None:
        """How worker ``n`` ended without its last message (killed), or None while it runs."""
        worker = self.workers[n]
        if self.forked:
            return None if worker.exitcode is None else f"exit code {worker.exitcode}"
        return None if worker.is_alive() else "no answer"  # pragma: no cover - a thread always answers

    def messages(self) -> Any:
        """(table, ``_Part``, 0) per loaded part and (None, None, rows) as rows go, until
        every worker has ended; a worker's error is kept in ``errors`` and stops the
        others; a worker that died without a word (killed) is an error too."""
        ended: set[int] = set()
        while len(ended) < self.count:
            try:
                name, part, rows = self.results.get(timeout=0.5)
            except queue.Empty:
                for n in range(self.count):
                    how = None if n in ended else self._silent(n)
                    if how is not None:
                        ended.add(n)
                        self.errors.append(
                            TryAgain(
                                f"load worker {n} ended before its part was loaded ({how})",
                                "nothing was cut over, and the next run drops what this one built; a worker killed by the "
                                "kernel's out-of-memory killer shows in `dmesg`: free memory, then run migrate again",
                            )
                        )
                        self.stop()
                continue
            if name == "end":
                ended.add(part)
                if rows is not None:
                    self.errors.append(rows)
                    self.stop()
                continue
            yield name, part, rows

    def __exit__(self, *exc: Any) -> None:
        self.stop()
        deadline = time.monotonic() + 10
        started = [w for w in self.workers if w.ident is not None]
        while any(w.is_alive() for w in started) and time.monotonic() < deadline:
            try:  # drained: a worker process ends only once its last messages are out
                self.results.get(timeout=0.1)
            except queue.Empty:
                pass
        for worker in started:
            if self.forked and worker.is_alive():  # pragma: no cover - a worker stuck in a call
                worker.kill()
            worker.join()
        if self.forked:
            self.results.close()



def _load_all(
    config: MigrateConfig,
    conninfo: str,
    target: Target,
    schema: str,
    plans: list[TablePlan],
    rejects: Rejects,
    where: dict[str, str] | None,
    label: str,
) -> dict[str, LoadOutcome]:
    return load_schema(
        conninfo,
        config.source,
        schema,
        plans,
        rejects,
        where=where,
        batch_rows=config.settings.migrate.batch_rows,
        data_dir=target.data_dir if target.embedded else None,
        parallel=config.parallel,
        label=label,
    )


def _validate(results: list[TableResult], what: str, tolerated: int, rejected: int) -> None:
    bad = [r for r in results if not r.matches]
    if bad:
        details = "; ".join(
            f"{r.name}: {r.source_rows - r.rejected_rows} rows expected, {r.loaded_rows} loaded, checksum {r.checksum_source} vs {r.checksum_target}"
            for r in bad
        )
        raise GateFailed(GATE, f"{what} does not match the source: {details}", "nothing was cut over; run migrate again (a changing source or a server fault)")
    if rejected > tolerated:
        raise GateFailed(
            GATE,
            f"PostgreSQL refused {rejected} rows in the {what} (tolerated: {tolerated})",
            "read them in <schema>_meta.rejects (the server's message per row), fix the cleaned data or raise migrate.tolerated_rejects",
        )


def run(config: MigrateConfig) -> MigrateResult:
    """Migrate ``config.source`` into a new version of ``config.schema`` and cut over to it."""
    source = check_sqlite_file(config.source)
    schema = config.schema
    _check_schema_name(schema)
    settings = config.settings
    on_error = config.on_error or settings.migrate.on_error
    if on_error not in ("reject", "stop"):
        raise ConfigError(f"--on-error {on_error!r} is not one of reject, stop", "use reject or stop")
    plans = data_table_plans()
    lite = _open_sqlite(source)
    try:
        check_source_tables(lite, plans, source)
    finally:
        lite.close()
    target = _target_of(config)
    _run_preflight(config, target)
    conninfo = target.conninfo()
    sha = sha256_file(source)
    timings: dict[str, float] = {}
    started = time.monotonic()

    with stage_trace("migrate", log) as trace, connect(conninfo, autocommit=True, target=target) as control:
        acquire_lock(control, schema)
        with control.transaction():
            ensure_ledger(control, schema)
        dropped = recover(control, schema)
        if dropped:
            log.info("dropped leftovers of dead runs", extra={"schemas": dropped})
        if not config.force:
            done = _already_migrated(control, schema, sha)
            if done is not None:
                run_id, version, status = done
                trace.outcome = SKIPPED
                message = f"source {sha[:12]} is already migrated (run {run_id}, {version}, {status})"
                log.info(message)
                return MigrateResult(run_id, SKIPPED, schema, version, sha, message=message + "; pass --force to load it again")

        now = datetime.now(timezone.utc)
        version = version_name(schema, now)
        canary = canary_name(schema, now) if config.canary else None
        from psycopg import sql

        run_id = control.execute(
            sql.SQL(
                "INSERT INTO {} (status, live_schema, version_schema, canary_schema, source_path, source_sha256, pid, client_host) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id"
            ).format(qualified(meta_schema(schema), "migrations")),
            (RUNNING, schema, version, canary, str(source.resolve()), sha, os.getpid(), socket.gethostname()),
        ).fetchone()[0]
        rejects = Rejects(conninfo, meta_schema(schema), run_id, on_error)
        tolerated = settings.migrate.tolerated_rejects
        scores: dict[str, Any] = {}
        try:
            # 3. canary. Each contract run's child process starts before its load: it
            # imports pandas, pandera and pytest meanwhile, and runs once the rows are in.
            canary_results: list[TableResult] = []
            if canary:
                t0 = time.monotonic()
                where = {p.name: canary_condition(p, settings.migrate.canary_fraction) for p in plans}
                try:
                    with _ContractRun(config, conninfo, canary, "canary") as canary_run:
                        outcomes = _load_all(config, conninfo, target, canary, plans, rejects, where, "canary")
                        timings["canary_load"] = round(time.monotonic() - t0, 3)
                        canary_run.start()

                        def check_canary() -> None:
                            canary_results.extend(compare_checksums(conninfo, canary, plans, outcomes))
                            _validate(canary_results, "canary", tolerated, rejects.count)
                            try:
                                scores["canary"] = _scored(canary_run.verdict())
                            finally:
                                if canary_run.seconds is not None:
                                    timings["canary_contracts"] = canary_run.seconds  # within canary

                        scores["canary_dashboards"] = _alongside_dashboards(conninfo, canary, check_canary)
                finally:  # the run's child is gone (killed if it still ran): the schema can go
                    _ledger_update(control, schema, run_id, canary=[asdict(r) for r in canary_results])
                    _drop_schema(control, canary)
                timings["canary"] = round(time.monotonic() - t0, 3)
                rejects.count = 0  # the full load judges its own rejects

            with _ContractRun(config, conninfo, version, "migrated") as contract_run, _SourceScore(config, sha) as source_score:
                # 4. the full load
                t0 = time.monotonic()
                outcomes = _load_all(config, conninfo, target, version, plans, rejects, None, "load")
                timings["load"] = round(time.monotonic() - t0, 3)
                trace.rows = sum(o.loaded_rows for o in outcomes.values())
                _ledger_update(control, schema, run_id, status=LOADED, rejects=rejects.count)

                # 5. validation: the contract run in its process, beside the checksums and
                # the dashboard queries in this one
                t0 = time.monotonic()
                contract_run.start()
                results: list[TableResult] = []
                gate: GateVerdict | None = None

                def check_version() -> None:
                    nonlocal gate
                    results.extend(compare_checksums(conninfo, version, plans, outcomes))
                    _ledger_update(control, schema, run_id, counts={r.name: asdict(r) for r in results})
                    _validate(results, "migrated schema", tolerated, rejects.count)
                    try:
                        gate = contract_run.verdict()
                    finally:
                        if contract_run.seconds is not None:
                            timings["contracts"] = contract_run.seconds  # within validate
                    if gate is None:
                        return
                    scores["target"] = gate.quality
                    scores["source"] = source_score.score()
                    if scores["source"] is not None and scores["target"] is not None and scores["target"] < scores["source"]:
                        raise GateFailed(
                            GATE,
                            f"the quality score on PostgreSQL ({scores['target']:.1f}) is below the source's ({scores['source']:.1f})",
                            "compare the two gate reports; nothing was cut over",
                        )

                scores["dashboards"] = _alongside_dashboards(conninfo, version, check_version)
                timings["validate"] = round(time.monotonic() - t0, 3)
            _ledger_update(control, schema, run_id, status=VALIDATED, scores=scores)

            # 6. access, backup, 7. cut-over
            t0 = time.monotonic()
            role = settings.migrate.readonly_role
            ensure_reader(control, role)
            grant_reader(control, version, role)
            backup_id = _take_backup(config, conninfo, schema) if _schema_exists(control, schema) else None
            previous = cutover(control, schema, version, run_id, role)
            timings["cutover"] = round(time.monotonic() - t0, 3)
            timings["total"] = round(time.monotonic() - started, 3)
            _ledger_update(control, schema, run_id, finished_at=datetime.now(timezone.utc), timings=timings, backup_id=backup_id)
            prune_versions(control, schema, settings.migrate.keep_versions)
        except BaseException as exc:
            _fail(control, schema, run_id, (version, canary), exc)
            if _is_connection_loss(exc):
                raise TargetUnavailable(
                    f"the connection to {target.label} was lost during the migration: {redact(str(exc)).splitlines()[0][:300]}",
                    "run migrate again: nothing was cut over, and the next run drops what this one built",
                ) from None
            raise
        log.info("migrated", extra={"version": version, "rows": trace.rows, "rejects": rejects.count, "previous": previous})
        return MigrateResult(
            run_id=run_id,
            status=LIVE,
            live_schema=schema,
            version_schema=version,
            source_sha256=sha,
            tables=tuple(results),
            rejects=rejects.count,
            canary=tuple(canary_results),
            previous_version=previous,
            scores=scores,
            timings=timings,
            backup_id=backup_id,
            message=f"{schema} now serves {version}",
            gate=gate,
        )


def _is_connection_loss(exc: BaseException) -> bool:
    import psycopg

    return isinstance(exc, psycopg.OperationalError)


def _fail(control: "psycopg.Connection", schema: str, run_id: int, schemas: Sequence[str | None], exc: BaseException) -> None:
    """Best effort: mark the run failed and drop what it built (the next run retries both)."""
    reason = exc.message if isinstance(exc, EtlError) else f"{type(exc).__name__}: {exc}"
    try:
        if control.closed or control.broken:
            return
        for name in schemas:
            if name and name != schema:
                _drop_schema(control, name)
        _ledger_update(control, schema, run_id, status=FAILED, finished_at=datetime.now(timezone.utc), message=redact(reason)[:2000])
    except Exception:  # the server itself may be gone: recover() finishes the job next time
        log.debug("could not record the failure", exc_info=True)


def cutover(control: "psycopg.Connection", schema: str, version: str, run_id: int, role: str) -> str | None:
    """ONE transaction: the live schema to its version name, ``version`` to the live name.

    A live schema made outside this tool (no ledger row) is kept as ``<schema>_pre_<ts>``.
    Returns the previous version's name (None on the first migration).
    """
    from psycopg import sql

    table = qualified(meta_schema(schema), "migrations")
    previous: str | None = None
    with control.transaction():
        control.execute("SET LOCAL lock_timeout = '30s'")
        if _schema_exists(control, schema):
            row = control.execute(sql.SQL("SELECT id, version_schema FROM {} WHERE status = %s ORDER BY id DESC LIMIT 1").format(table), (LIVE,)).fetchone()
            if row is not None:
                old_id, previous = row
            else:
                previous = f"{schema}_pre_{_stamp(datetime.now(timezone.utc))}"
                old_id = control.execute(
                    sql.SQL(
                        "INSERT INTO {} (status, live_schema, version_schema, finished_at, message) VALUES (%s, %s, %s, now(), %s) RETURNING id"
                    ).format(table),
                    (LIVE, schema, previous, "schema found in place before the first migration"),
                ).fetchone()[0]
                grant_reader(control, schema, role)
            control.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(schema), sql.Identifier(previous)))
            _ledger_update(control, schema, old_id, status=RETAINED)
        control.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(version), sql.Identifier(schema)))
        _ledger_update(control, schema, run_id, status=LIVE, cutover_at=datetime.now(timezone.utc))
    log.info("cut over", extra={"live": schema, "version": version, "previous": previous})
    return previous


def prune_versions(control: "psycopg.Connection", schema: str, keep: int) -> list[str]:
    """Drop retained versions beyond the newest ``keep`` (the live one is never counted)."""
    from psycopg import sql

    table = qualified(meta_schema(schema), "migrations")
    rows = control.execute(
        sql.SQL("SELECT id, version_schema FROM {} WHERE status = ANY(%s) ORDER BY coalesce(cutover_at, started_at) DESC, id DESC").format(table),
        ([RETAINED, ROLLED_BACK],),
    ).fetchall()
    dropped = []
    for run_id, version in rows[max(keep, 0):]:
        with control.transaction():
            _drop_schema(control, version)
            _ledger_update(control, schema, run_id, status=DROPPED)
        dropped.append(version)
    if dropped:
        log.info("old versions dropped", extra={"versions": dropped})
    return dropped


# --- rollback and versions ---------------------------------------------------------------------


@dataclass(frozen=True)
class RollbackResult:
    live_schema: str
    now_serving: str
    replaced: str


def rollback(conninfo: str, schema: str, to: str | None = None, *, target: Target | None = None) -> RollbackResult:
    """Swap the live schema back to a kept version (default: the newest retained) in ONE transaction."""
    from psycopg import sql

    table = qualified(meta_schema(schema), "migrations")
    with connect(conninfo, autocommit=True, target=target) as control:
        acquire_lock(control, schema)
        if not _schema_exists(control, meta_schema(schema)):
            raise ConfigError(f"schema {schema!r} has never been migrated here (no {meta_schema(schema)} ledger)", "check --schema and --target")
        live = control.execute(sql.SQL("SELECT id, version_schema FROM {} WHERE status = %s ORDER BY id DESC LIMIT 1").format(table), (LIVE,)).fetchone()
        if live is None or not _schema_exists(control, schema):
            raise ConfigError(f"schema {schema!r} has no live version to roll back from", "list versions with `servicedesk-etl versions`")
        if to:
            back = control.execute(
                sql.SQL("SELECT id, version_schema FROM {} WHERE version_schema = %s AND status = ANY(%s) ORDER BY id DESC LIMIT 1").format(table),
                (to, [RETAINED, ROLLED_BACK]),
            ).fetchone()
        else:
            back = control.execute(
                sql.SQL("SELECT id, version_schema FROM {} WHERE status = %s ORDER BY coalesce(cutover_at, started_at) DESC, id DESC LIMIT 1").format(table),
                (RETAINED,),
            ).fetchone()
        if back is None or not _schema_exists(control, back[1]):
            raise ConfigError(
                f"no kept version {('named ' + repr(to)) if to else 'to roll back to'} for schema {schema!r}",
                "list versions with `servicedesk-etl versions`",
            )
        live_id, live_version = live
        back_id, back_version = back
        with control.transaction():
            control.execute("SET LOCAL lock_timeout = '30s'")
            control.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(schema), sql.Identifier(live_version)))
            control.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(back_version), sql.Identifier(schema)))
            _ledger_update(control, schema, live_id, status=ROLLED_BACK)
            _ledger_update(control, schema, back_id, status=LIVE, cutover_at=datetime.now(timezone.utc))
    log.info("rolled back", extra={"live": schema, "serving": back_version, "replaced": live_version})
    return RollbackResult(schema, back_version, live_version)


@dataclass(frozen=True)
class VersionRow:
    run_id: int
    version_schema: str
    status: str
    started_at: str
    cutover_at: str | None
    source_sha256: str | None
    rows: dict[str, int]
    rejects: int
    scores: dict[str, Any]
    exists: bool


def versions(conninfo: str, schema: str, *, include_history: bool = False, target: Target | None = None) -> list[VersionRow]:
    """The ledger's versions of ``schema``, newest first (kept ones only unless ``include_history``)."""
    from psycopg import sql

    with connect(conninfo, autocommit=True, target=target) as conn:
        if not _schema_exists(conn, meta_schema(schema)):
            return []
        rows = conn.execute(
            sql.SQL(
                "SELECT id, version_schema, status, started_at, cutover_at, source_sha256, counts, rejects, scores FROM {} ORDER BY id DESC"
            ).format(qualified(meta_schema(schema), "migrations"))
        ).fetchall()
        out = []
        for run_id, version, status, started_at, cutover_at, sha, counts, rejects, scores in rows:
            if not include_history and status not in KEPT:
                continue
            where = schema if status == LIVE else version
            out.append(
                VersionRow(
                    run_id=run_id,
                    version_schema=version,
                    status=status,
                    started_at=started_at.isoformat(timespec="seconds"),
                    cutover_at=cutover_at.isoformat(timespec="seconds") if cutover_at else None,
                    source_sha256=sha,
                    rows={t: int(c.get("loaded_rows", 0)) for t, c in (counts or {}).items()},
                    rejects=int(rejects or 0),
                    scores=scores or {},
                    exists=_schema_exists(conn, where),
                )
            )
    return out


# --- CLI -----------------------------------------------------------------------------------


def _add_target_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", metavar="URI", help="PostgreSQL URI (default: config file, SERVICEDESK_TARGET, PG*, else the embedded server)")
    parser.add_argument("--schema", default=None, help="the live schema dashboards read (default: migrate.schema, servicedesk)")
    parser.add_argument("--data-dir", metavar="DIR", default=None, help="the embedded server's data folder (default .servicedesk/pg)")


def _resolve(args: argparse.Namespace, settings: Settings) -> Target:
    return resolve_target(settings.target, args.target, env=dict(os.environ), data_dir=args.data_dir)


def add_migrate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, metavar="DB", help="the cleaned SQLite database (from `servicedesk-etl clean`)")
    _add_target_arguments(parser)
    parser.add_argument("--no-canary", action="store_true", help="skip the 10%% canary load")
    parser.add_argument("--quality-gate", type=float, default=None, metavar="N", help="quality score the PostgreSQL schema must reach (default gate.quality_threshold)")
    parser.add_argument("--on-error", choices=("reject", "stop"), default=None, help="a refused row goes to the rejects table (default) or stops the run")
    parser.add_argument("--force", action="store_true", help="load a source already migrated again")
    parser.add_argument("--no-contracts", action="store_true", help="skip the contract run on PostgreSQL (counts and checksums still validate)")
    parser.add_argument("--no-backup", action="store_true", help="skip the pg_dump of the live schema before cut-over")
    parser.add_argument("--backups-dir", metavar="DIR", default=None, help="where pre-cut-over dumps go (default .servicedesk/backups)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def migrate_command(args: argparse.Namespace, settings: Settings) -> int:
    target = _resolve(args, settings)
    config = MigrateConfig(
        source=Path(args.source),
        target=target.dsn,
        schema=args.schema or settings.migrate.schema,
        canary=settings.migrate.canary and not args.no_canary,
        quality_gate=args.quality_gate if args.quality_gate is not None else settings.gate.quality_threshold,
        settings=settings,
        force=args.force,
        on_error=args.on_error,
        contracts=not args.no_contracts,
        backup=not args.no_backup,
        backups_dir=Path(args.backups_dir) if args.backups_dir else None,
        data_dir=target.data_dir,
    )
    result = run(config)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, default=str))
        return 0
    print(result.message)
    for t in result.tables:
        print(f"  {t.name:<11} {t.loaded_rows:>10,} rows  rejected {t.rejected_rows:>5}  checksum {t.checksum_target}  {t.seconds:.2f}s")
    if result.timings:
        print("  timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items()))
    return 0


def add_rollback_arguments(parser: argparse.ArgumentParser) -> None:
    _add_target_arguments(parser)
    parser.add_argument("--to", metavar="VERSION", default=None, help="the version to serve (default: the newest retained one)")


def rollback_command(args: argparse.Namespace, settings: Settings) -> int:
    target = _resolve(args, settings)
    result = rollback(target.conninfo(), args.schema or settings.migrate.schema, args.to, target=target)
    print(f"{result.live_schema} now serves {result.now_serving} (was {result.replaced}, kept)")
    return 0


def add_versions_arguments(parser: argparse.ArgumentParser) -> None:
    _add_target_arguments(parser)
    parser.add_argument("--all", action="store_true", help="include failed, abandoned and dropped runs")
    parser.add_argument("--json", action="store_true", help="print JSON")


def versions_command(args: argparse.Namespace, settings: Settings) -> int:
    target = _resolve(args, settings)
    rows = versions(target.conninfo(), args.schema or settings.migrate.schema, include_history=args.all, target=target)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2, default=str))
        return 0
    if not rows:
        print("no versions")
        return 0
    for r in rows:
        counts = " ".join(f"{t}={n:,}" for t, n in r.rows.items())
        quality = r.scores.get("target")
        print(
            f"{r.run_id:>4}  {r.status:<11} {r.version_schema:<40} {r.started_at}  sha {(r.source_sha256 or '-')[:12]:<12}"
            f"  {counts}  rejects={r.rejects}" + (f"  quality={quality:.1f}" if isinstance(quality, (int, float)) else "")
        )
    return 0

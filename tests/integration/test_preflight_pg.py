"""Preflight against a real PostgreSQL: PASS on a good setup, FAIL with a remedy on real faults."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pipeline import preflight
from pipeline.config import Settings
from pipeline.preflight import FAIL, PASS, PreflightConfig

pytestmark = pytest.mark.postgres


def _config(source: Path, target: str | None, work: Path, **kw) -> PreflightConfig:
    return PreflightConfig(source=source, target=target, settings=Settings(), work_dirs=(work,), env={}, **kw)


def test_good_setup_passes_every_check(pg_dsn: str, small_clean_db: Path, tmp_path: Path) -> None:
    result = preflight.run(_config(small_clean_db, pg_dsn, tmp_path / "backups"))
    statuses = {c.name.split(":")[0]: c.status for c in result.checks}
    assert statuses == {"source": PASS, "disk": PASS, "memory": statuses["memory"], "server": PASS, "pg_dump": PASS, "create_schema": PASS}
    assert result.ok
    server = result.check("server")
    assert server.data["major"] >= 18 and "PostgreSQL" in server.details
    with psycopg.connect(pg_dsn) as conn:  # the CREATE SCHEMA probe left nothing behind
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'servicedesk_preflight%'").fetchone()[0] == 0


def test_no_target_means_the_embedded_server(embedded_postgres, small_clean_db: Path, tmp_path: Path) -> None:
    result = preflight.run(_config(small_clean_db, None, tmp_path / "backups", data_dir=embedded_postgres.data_dir))
    assert result.ok, result.as_dict()
    assert result.target == f"embedded server at {embedded_postgres.data_dir}"
    assert result.check("server").status == PASS and result.check("create_schema").status == PASS


def test_unreachable_server_fails_with_a_remedy(small_clean_db: Path, tmp_path: Path) -> None:
    socket_dir = Path(tempfile.mkdtemp(prefix="sdetl-nosrv-", dir="/tmp"))  # a socket folder with no server
    try:
        result = preflight.run(_config(small_clean_db, make_conninfo(host=str(socket_dir), user="postgres", dbname="postgres"), tmp_path, connect_timeout=2))
    finally:
        shutil.rmtree(socket_dir)
    server = result.check("server")
    assert server.status == FAIL and ".s.PGSQL" in server.details and server.remedy
    assert not result.ok


def test_pg_dump_older_than_the_server_fails(pg_dsn: str, small_clean_db: Path, tmp_path: Path) -> None:
    fake = tmp_path / "pg_dump"
    fake.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 14.11'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    result = preflight.run(_config(small_clean_db, pg_dsn, tmp_path, pg_dump=fake))
    check = result.check("pg_dump")
    assert check.status == FAIL and "14.11" in check.details
    assert f"pg_dump {result.check('server').data['major']} or newer" in check.remedy
    assert not result.ok


def test_role_without_create_on_the_database_fails(pg_dsn: str, small_clean_db: Path, tmp_path: Path) -> None:
    role = f"sd_etl_nocreate_{os.getpid()}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        params = conninfo_to_dict(pg_dsn)
        params["user"] = role
        result = preflight.run(_config(small_clean_db, make_conninfo(**params), tmp_path))
        check = result.check("create_schema")
        assert check.status == FAIL and role in check.details
        assert check.remedy.startswith("as an administrator: GRANT CREATE ON DATABASE")
        assert result.check("server").status == PASS
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.fixture
def tiny_tmpfs():
    """A 1 MiB tmpfs, mounted for the test (skipped where mounting is not permitted)."""
    point = Path(tempfile.mkdtemp(prefix="sdetl-tmpfs-", dir="/tmp"))
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(point)], capture_output=True, text=True)
    if proc.returncode != 0:
        point.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip() or proc.returncode}")
    try:
        yield point
    finally:
        if subprocess.run(["umount", str(point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(point)], capture_output=True)  # busy: detach lazily
        shutil.rmtree(point, ignore_errors=True)


def test_too_little_disk_fails(pg_dsn: str, tmp_path: Path, tiny_tmpfs: Path) -> None:
    source = tmp_path / "big.db"
    conn = sqlite3.connect(source)
    conn.execute("CREATE TABLE tickets (a TEXT)")
    conn.executemany("INSERT INTO tickets VALUES (?)", [("x" * 1000,) for _ in range(1000)])  # about 1 MiB
    conn.commit()
    conn.close()
    result = preflight.run(_config(source, pg_dsn, tiny_tmpfs / "backups"))
    [disk] = [c for c in result.checks if c.name.startswith("disk:")]
    assert disk.status == FAIL
    assert disk.data["measured_at"] == str(tiny_tmpfs)
    assert disk.data["free_bytes"] < disk.data["needed_bytes"]
    assert "free" in disk.remedy
    assert not result.ok

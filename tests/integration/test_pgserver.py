"""The embedded server, target precedence and redaction, against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from pipeline.errors import ConfigError, TargetUnavailable
from pipeline.pgserver import EmbeddedServer, connect, redact, resolve_target


@pytest.mark.parametrize(
    "dsn, secret",
    [
        ("postgresql://alice:s3cr%40t@db.example:5432/sd", "s3cr%40t"),
        ("postgres://alice:hunter2@db/sd?sslmode=require", "hunter2"),
        ("postgresql://alice@db/sd?password=hunter2&sslmode=require", "hunter2"),
        ("host=db user=alice password=hunter2 dbname=sd", "hunter2"),
        ("host=db password = 'hunter 2\\' x' dbname=sd", "hunter 2"),
        ("host=db PASSWORD=hunter2", "hunter2"),
    ],
)
def test_redact_masks_passwords(dsn: str, secret: str) -> None:
    shown = redact(dsn)
    assert secret not in shown
    assert "***" in shown
    assert "db" in shown  # the rest stays readable


def test_redact_leaves_passwordless_targets_alone() -> None:
    uri = "postgresql://postgres@/postgres?host=/tmp/x"
    assert redact(uri) == uri
    assert redact("postgresql://bob:@host/db") == "postgresql://bob:@host/db"


def test_target_precedence() -> None:
    env = {"SERVICEDESK_TARGET": "postgresql://env@h/d", "PGHOST": "pghost", "PGUSER": "pguser", "PGPASSWORD": "pw"}
    assert resolve_target("postgresql://cfg@h/d", "postgresql://cli@h/d", env=env).origin == "cli"
    assert resolve_target("postgresql://cfg@h/d", None, env=env).dsn == "postgresql://cfg@h/d"
    assert resolve_target(None, None, env=env).origin == "SERVICEDESK_TARGET"
    env.pop("SERVICEDESK_TARGET")
    pg = resolve_target(None, None, env=env)
    assert pg.origin == "PG*" and "host=pghost" in pg.dsn and "user=pguser" in pg.dsn
    assert "pw" not in pg.dsn  # libpq reads PGPASSWORD itself
    embedded = resolve_target(None, None, env={}, data_dir="rel/pg")
    assert embedded.embedded and embedded.data_dir == (Path.cwd() / "rel/pg").resolve()
    assert resolve_target(None, None, env={}).data_dir == (Path.cwd() / ".servicedesk/pg").resolve()


def test_bad_target_text_is_a_config_error_without_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_target(None, "host=db password=hunter2 'unterminated")
    assert "hunter2" not in str(info.value)


def test_unreachable_target_names_the_redacted_target_and_a_remedy(tmp_path: Path) -> None:
    target = resolve_target(None, f"postgresql://alice:hunter2@/db?host={tmp_path}", env={})
    with pytest.raises(TargetUnavailable) as info:
        connect(target.conninfo(), target=target)
    text = str(info.value)
    assert "hunter2" not in text and "***" in text
    assert "fix:" in text and "--target" in text


@pytest.mark.postgres
def test_session_server_is_real_postgres(postgresql: psycopg.Connection, pg_dsn: str) -> None:
    assert postgresql.execute("SELECT current_setting('server_version_num')::int").fetchone()[0] >= 150000
    with connect(pg_dsn) as conn:
        # The session is forced to ISO dates: '05/07/2025' can never be read silently.
        assert conn.execute("SHOW DateStyle").fetchone()[0].startswith("ISO")
        assert conn.execute("SELECT current_database()").fetchone()[0] == postgresql.info.dbname


@pytest.mark.postgres
@pytest.mark.slow
def test_embedded_server_lifecycle_through_the_cli() -> None:
    """db start -> url -> status -> stop, in a child process, on a fresh folder."""
    folder = Path(tempfile.mkdtemp(prefix="sdetl-pgcli-", dir="/tmp"))
    data = folder / "nested" / "pg"  # parents are created
    cli = [sys.executable, "-m", "pipeline", "db"]
    try:
        started = subprocess.run([*cli, "start", "--data-dir", str(data)], capture_output=True, text=True, timeout=120)
        assert started.returncode == 0, started.stderr
        url = subprocess.run([*cli, "url", "--data-dir", str(data)], capture_output=True, text=True, timeout=60)
        assert url.returncode == 0, url.stderr
        uri = url.stdout.strip()
        assert uri.startswith("postgresql://postgres@/")
        # The server outlives the process that started it: data stays queryable.
        with psycopg.connect(uri) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        status = subprocess.run([*cli, "status", "--data-dir", str(data)], capture_output=True, text=True, timeout=60)
        assert status.returncode == 0 and '"running": true' in status.stdout
        stopped = subprocess.run([*cli, "stop", "--data-dir", str(data)], capture_output=True, text=True, timeout=120)
        assert stopped.returncode == 0, stopped.stderr
        assert not EmbeddedServer(data).is_running()
        status = subprocess.run([*cli, "status", "--data-dir", str(data)], capture_output=True, text=True, timeout=60)
        assert status.returncode == 1 and '"running": false' in status.stdout
        # Restart on the existing folder in the same process as a stop (cached handle).
        server = EmbeddedServer(data)
        server.start()
        assert server.is_running()
        assert server.stop()
        assert not server.is_running()
    finally:
        EmbeddedServer(data).stop()
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def test_stopped_embedded_server_uri_is_an_error_with_remedy() -> None:
    folder = Path(tempfile.mkdtemp(prefix="sdetl-pgno-", dir="/tmp"))
    try:
        with pytest.raises(TargetUnavailable) as info:
            EmbeddedServer(folder / "pg").uri()
        assert "db start" in info.value.remedy
    finally:
        os.rmdir(folder)

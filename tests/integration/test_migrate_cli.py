"""The migrate, versions and rollback commands, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import build_clean_db

pytestmark = pytest.mark.postgres


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_migrate_versions_rollback_commands(tmp_path: Path, pg_dsn: str, postgresql) -> None:
    postgresql.autocommit = True
    first = build_clean_db(tmp_path / "first.db", tickets=15, seed=1)
    second = build_clean_db(tmp_path / "second.db", tickets=25, seed=2)
    common = ["--target", pg_dsn, "--no-contracts", "--backups-dir", str(tmp_path / "backups")]

    done = cli("migrate", "--source", str(first), *common, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "live" and result["rows"] == sum(t["loaded_rows"] for t in result["tables"])

    again = cli("migrate", "--source", str(first), *common, cwd=tmp_path)
    assert again.returncode == 0 and "already migrated" in again.stdout

    assert cli("migrate", "--source", str(second), *common, "--no-canary", cwd=tmp_path).returncode == 0
    assert postgresql.execute("SELECT count(*) FROM servicedesk.tickets").fetchone()[0] == 25
    # A dump of the live schema was taken before that cut-over.
    assert any((tmp_path / "backups").glob("*.dump"))

    listed = cli("versions", "--target", pg_dsn, "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["status"] for r in rows] == ["live", "retained"]
    assert rows[0]["rows"]["tickets"] == 25 and len(rows[0]["source_sha256"]) == 64
    text = cli("versions", "--target", pg_dsn, cwd=tmp_path).stdout
    assert "live" in text and "tickets=25" in text

    back = cli("rollback", "--target", pg_dsn, cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    assert postgresql.execute("SELECT count(*) FROM servicedesk.tickets").fetchone()[0] == 15


def test_errors_are_one_line_with_a_remedy_and_no_password(tmp_path: Path) -> None:
    missing = cli("migrate", "--source", str(tmp_path / "nope.db"), "--target", "postgresql://u:hunter2@/x?host=/nonexistent", cwd=tmp_path)
    assert missing.returncode == 3 and "fix:" in missing.stderr and "Traceback" not in missing.stderr
    db = build_clean_db(tmp_path / "c.db", tickets=5)
    down = cli("migrate", "--source", str(db), "--target", f"postgresql://u:hunter2@/x?host={tmp_path}", "--no-contracts", cwd=tmp_path)
    assert down.returncode != 0 and "hunter2" not in down.stderr + down.stdout and "Traceback" not in down.stderr
    assert "fix:" in down.stderr

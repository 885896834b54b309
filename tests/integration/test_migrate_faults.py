"""Failure injection with real faults: the live schema never changes until a cut-over commits.

- the COPY backend terminated from a second connection (``pg_terminate_backend``);
- a validation failure before cut-over (an event trigger deletes a row of the new
  version while its indexes are built, so the checksums disagree);
- the migrate process killed with SIGKILL at many points of its run.

After each: the live schema's checksums are unchanged, the next run leaves no
half-built schema behind, and it completes with exact row counts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from conftest import build_clean_db
from pipeline.config import Settings
from pipeline.errors import GateFailed, TargetUnavailable
from pipeline.migrate import KEPT, MigrateConfig, UNFINISHED, pg_checksum, run, sqlite_checksum
from pipeline.pgschema import data_table_plans

pytestmark = pytest.mark.postgres


@pytest.fixture
def postgresql(postgresql: psycopg.Connection) -> psycopg.Connection:
    postgresql.autocommit = True
    return postgresql


def migrate(db: Path, dsn: str, tmp_path: Path, **kw):
    kw.setdefault("contracts", False)
    kw.setdefault("backups_dir", tmp_path / "backups")
    return run(MigrateConfig(source=db, target=dsn, **kw))


def live_checksums(dsn: str, schema: str = "servicedesk") -> dict[str, tuple[int, str]]:
    return {p.name: pg_checksum(dsn, schema, p) for p in data_table_plans()}


def expected_checksums(db: Path) -> dict[str, tuple[int, str]]:
    return {p.name: sqlite_checksum(db, p) for p in data_table_plans()}


def assert_clean_state(conn: psycopg.Connection) -> None:
    """Only the live schema, the ledger and kept versions exist; no run is unfinished."""
    kept = {r[0] for r in conn.execute("SELECT version_schema FROM servicedesk_meta.migrations WHERE status = ANY(%s) AND status <> 'live'", (list(KEPT),))}
    present = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'servicedesk%'")}
    assert present == {"servicedesk", "servicedesk_meta"} | kept
    unfinished = conn.execute("SELECT count(*) FROM servicedesk_meta.migrations WHERE status = ANY(%s)", (list(UNFINISHED),)).fetchone()[0]
    assert unfinished == 0


def test_backend_terminated_mid_copy(tmp_path: Path, pg_dsn: str, postgresql) -> None:
    old = build_clean_db(tmp_path / "old.db", tickets=20, seed=1)
    new = build_clean_db(tmp_path / "new.db", tickets=400, seed=2)
    migrate(old, pg_dsn, tmp_path, canary=False)
    live_before = live_checksums(pg_dsn)

    # Small batches: many COPY statements, so the load lasts long enough to be hit.
    settings = Settings().with_overrides(**{"migrate.batch_rows": 20})
    outcome: dict[str, BaseException | object] = {}

    def migrate_in_thread() -> None:
        try:
            outcome["result"] = migrate(new, pg_dsn, tmp_path, canary=False, settings=settings)
        except BaseException as exc:  # noqa: BLE001 - inspected below
            outcome["error"] = exc

    thread = threading.Thread(target=migrate_in_thread)
    thread.start()
    killed = None
    deadline = time.monotonic() + 60
    while thread.is_alive() and killed is None and time.monotonic() < deadline:
        row = postgresql.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'servicedesk-etl load' AND query LIKE 'COPY%%' LIMIT 1"
        ).fetchone()
        if row:
            killed = postgresql.execute("SELECT pg_terminate_backend(%s)", (row[0],)).fetchone()[0] and row[0]
        time.sleep(0.002)
    thread.join(60)
    assert killed, "the COPY backend was never seen: the load finished too fast"
    assert isinstance(outcome.get("error"), TargetUnavailable), outcome
    assert "run migrate again" in outcome["error"].remedy

    assert live_checksums(pg_dsn) == live_before
    status = postgresql.execute("SELECT status FROM servicedesk_meta.migrations ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert status == "failed"

    result = migrate(new, pg_dsn, tmp_path, canary=False)
    assert all(t.matches and t.rejected_rows == 0 for t in result.tables)
    assert live_checksums(pg_dsn) == expected_checksums(new)
    assert_clean_state(postgresql)


def test_validation_failure_before_cutover(tmp_path: Path, pg_dsn: str, postgresql) -> None:
    old = build_clean_db(tmp_path / "old.db", tickets=20, seed=1)
    new = build_clean_db(tmp_path / "new.db", tickets=50, seed=2)
    migrate(old, pg_dsn, tmp_path, canary=False)
    live_before = live_checksums(pg_dsn)
    # A real fault inside the server: while the new version's status index is built, a
    # row of that version disappears. Only the checksums can notice.
    postgresql.execute(
        r"""
        CREATE FUNCTION public.lose_a_row() RETURNS event_trigger LANGUAGE plpgsql AS $$
        DECLARE r record;
        BEGIN
          FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
            IF r.schema_name LIKE 'servicedesk\_v%' AND r.object_identity LIKE '%tickets_tkt_status_idx' THEN
              EXECUTE format('DELETE FROM %I.tickets WHERE ctid = (SELECT min(ctid) FROM %I.tickets)', r.schema_name, r.schema_name);
            END IF;
          END LOOP;
        END $$;
        CREATE EVENT TRIGGER lose_a_row ON ddl_command_end WHEN TAG IN ('CREATE INDEX') EXECUTE FUNCTION public.lose_a_row();
        """
    )
    with pytest.raises(GateFailed) as info:
        migrate(new, pg_dsn, tmp_path, canary=False)
    assert "tickets: 50 rows expected, 49 loaded" in str(info.value)
    assert live_checksums(pg_dsn) == live_before
    assert_clean_state(postgresql)

    postgresql.execute("DROP EVENT TRIGGER lose_a_row")
    result = migrate(new, pg_dsn, tmp_path, canary=False)
    assert {t.name: t.loaded_rows for t in result.tables}["tickets"] == 50
    assert live_checksums(pg_dsn) == expected_checksums(new)
    assert_clean_state(postgresql)


@pytest.mark.slow
def test_sigkill_at_many_points(tmp_path: Path, pg_dsn: str, postgresql) -> None:
    """At least 20 SIGKILLs spread over whole runs; the live schema is always whole."""
    old = build_clean_db(tmp_path / "old.db", tickets=30, seed=1)
    new = build_clean_db(tmp_path / "new.db", tickets=2500, seed=2)
    migrate(old, pg_dsn, tmp_path, canary=False)
    old_sums, new_sums = live_checksums(pg_dsn), expected_checksums(new)
    config = tmp_path / "etl.toml"
    config.write_text("[migrate]\nbatch_rows = 500\n")  # many COPY batches: more places to die in
    command = [
        sys.executable, "-m", "pipeline", "--config", str(config), "migrate", "--source", str(new), "--target", pg_dsn,
        "--no-contracts", "--no-backup", "--force",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    full = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert full.returncode == 0, full.stderr
    span = time.monotonic() - started
    migrate(old, pg_dsn, tmp_path, canary=False, force=True)  # back to the old data

    kills, attempts, cutovers = 0, 0, 0
    low, high = 0.1 * span, span
    loop_started = time.monotonic()
    while kills < 22 and attempts < 60:
        # Spread the kill points over the run; shrink the window when a run finished first.
        delay = low + (high - low) * ((attempts * 0.618) % 1.0)
        attempts += 1
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=tmp_path)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += proc.wait(30) == -signal.SIGKILL
        else:
            high = max(low * 1.5, delay * 0.9)
        live = live_checksums(pg_dsn)  # the live schema is always there, and whole
        assert live in (old_sums, new_sums), f"attempt {attempts} at {delay:.2f}s left a live schema that is neither version"
        if live == new_sums:  # the kill came after the cut-over committed: back to the old data
            cutovers += 1
            migrate(old, pg_dsn, tmp_path, canary=False, force=True)
    assert kills >= 20, f"only {kills} kills in {attempts} attempts"
    assert time.monotonic() - loop_started < 900

    final = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert final.returncode == 0, final.stderr
    assert live_checksums(pg_dsn) == new_sums  # exact counts, no duplicates
    assert_clean_state(postgresql)


def test_health_check_every_10000_rows_stops_on_a_full_disk(pg_dsn: str, embedded_postgres, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline import migrate as stage
    from pipeline.errors import ResourceExhausted
    from pipeline.pgserver import connect

    with connect(pg_dsn) as conn:
        health = stage.Health(conn, embedded_postgres.data_dir)
        health.advance(9_999)
        assert health.checks == 0
        health.advance(25_001)  # crosses 10,000, 20,000 and 30,000
        assert health.checks == 3
        # The same check with a threshold above the disk's free space: it refuses to go on.
        monkeypatch.setattr(stage, "MIN_FREE_DISK_MB", 10**12)
        with pytest.raises(ResourceExhausted) as info:
            health.advance(10_000)
        assert "free disk space" in info.value.remedy
    # A dead connection is noticed by the check itself.
    dead = connect(pg_dsn)
    dead.close()
    with pytest.raises(psycopg.OperationalError):
        stage.Health(dead, None).check()


def test_a_killed_migration_leaves_no_contract_run_behind(tmp_path: Path, pg_dsn: str, postgresql) -> None:
    """The contract runs on PostgreSQL are child processes (pipeline.child): SIGKILL of the
    migration kills them too (PR_SET_PDEATHSIG), and the next run completes."""
    import psutil

    db = build_clean_db(tmp_path / "new.db", tickets=300, seed=3)
    command = [sys.executable, "-m", "pipeline", "migrate", "--source", str(db), "--target", pg_dsn, "--no-backup", "--force"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    children: list[psutil.Process] = []
    deadline = time.monotonic() + 120
    while not children and proc.poll() is None and time.monotonic() < deadline:
        children = [c for c in psutil.Process(proc.pid).children(recursive=True) if "pipeline.child" in " ".join(c.cmdline())]
        time.sleep(0.05)
    assert children, "no contract run started"
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"contract runs left running: {[c.pid for c in alive]}"
    final = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert final.returncode == 0, final.stderr
    assert live_checksums(pg_dsn) == expected_checksums(db)
    assert_clean_state(postgresql)

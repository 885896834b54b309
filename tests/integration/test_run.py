"""``servicedesk-etl run`` end to end on a real PostgreSQL: the success and every stop.

Exports are generated (``pipeline.sample.generate``, 150 tickets: about 3,600 rows) and
some are then rewritten cell by cell to carry one specific fault. Every stop is run
against a database whose live schema a first successful run created, and must leave
that schema byte for byte as it was (md5 of every table's ordered rows), with its own
exit code and a message that names the gate and the way forward.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable

import psycopg
import pytest
from psycopg import sql

from contracts import spec
from contracts.schemas import DATA_TABLES, contract_for
from pipeline.config import Settings, load_settings
from pipeline.run import (
    EXIT_GATE1,
    EXIT_GATE2,
    EXIT_GATE3,
    EXIT_NEEDS_CLEAN,
    EXIT_OK,
    EXIT_PREFLIGHT,
    RunConfig,
    RunResult,
    run,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TICKETS = 150
SCHEMA = "servicedesk"
# the installed console script, as an operator runs it
_SCRIPT = Path(sys.executable).with_name("servicedesk-etl")
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "pipeline"]
# information_schema's name for each contract type's PostgreSQL type
PG_DATA_TYPE = {"timestamp": "timestamp without time zone", "date": "date", "bigint": "bigint", "numeric": "numeric", "text": "text"}
KEYS = {"tickets": ['"TKT-Ticket ID"'], "comments": ["comment_id"]}


# --- exports -----------------------------------------------------------------------------


def rewrite_column(path: Path, header: str, change: Callable[[int, Any], Any]) -> int:
    """Rewrite one column of a generated workbook in place; returns the cells changed.

    Read with openpyxl (read-only), written back with the generator's own sheet writer,
    which keeps dates as Excel dates and escapes what XML cannot hold (``_x0000_``).
    """
    from openpyxl import load_workbook

    from pipeline.sample import SheetWriter

    wb = load_workbook(path, read_only=True)
    rows = wb.worksheets[0].iter_rows(values_only=True)
    headers = list(next(rows))
    while headers and headers[-1] is None:
        headers.pop()
    data = [list(r[: len(headers)]) + [None] * (len(headers) - len(r)) for r in rows]
    wb.close()
    col = headers.index(header)
    changed = 0
    for n, row in enumerate(data):
        new = change(n, row[col])
        changed += new != row[col]
        row[col] = new
    tmp = path.with_name(path.stem + ".rewrite.xlsx")
    writer = SheetWriter(tmp, headers, len(data))
    for row in data:
        writer.write(row)
    writer.close()
    os.replace(tmp, path)
    return changed


def _generate(folder: Path, clean: bool) -> Path:
    from pipeline.sample import generate

    generate(folder, tickets=TICKETS, seed=11, clean=clean)
    return folder


@pytest.fixture(scope="module")
def defective_exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every known quirk injected: Gate 1 says CLEAN."""
    return _generate(tmp_path_factory.mktemp("defective"), clean=False)


@pytest.fixture(scope="module")
def clean_exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """No defect at all: Gate 1 says PROCEED."""
    return _generate(tmp_path_factory.mktemp("clean"), clean=True)


@pytest.fixture(scope="module")
def corrupt_date_exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A third of TKT-Created Time is no date at all: over the 20% circuit breaker."""
    folder = _generate(tmp_path_factory.mktemp("corrupt_dates"), clean=True)
    changed = rewrite_column(folder / "tickets.xlsx", "TKT-Created Time", lambda n, v: "see ticket history" if n % 3 == 0 else v)
    assert changed >= TICKETS // 3
    return folder


@pytest.fixture(scope="module")
def nul_exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """NUL characters in a short text column (TKT-Severity): the cleaner removes NULs
    only from long free text, so Gate 2's contracts still see them (PostgreSQL text
    cannot hold a NUL)."""
    folder = _generate(tmp_path_factory.mktemp("nul"), clean=True)
    changed = rewrite_column(folder / "tickets.xlsx", "TKT-Severity", lambda n, v: v + "\x00" if v and n % 2 == 0 else v)
    assert changed > 0
    return folder


def config_for(folder: Path, tmp_path: Path, dsn: str | None, toml: str = "", **kw: Any) -> RunConfig:
    config_file = None
    settings = Settings()
    if toml:
        config_file = tmp_path / "etl.toml"
        config_file.write_text(toml)
        settings = load_settings(config_file)
    return RunConfig(
        tickets=folder / "tickets.xlsx",
        comments=folder / "comments.xlsx",
        timesheets=folder / "timesheets.xlsx",
        settings=settings,
        target=dsn,
        workdir=tmp_path / "runs",
        config_file=config_file,
        **kw,
    )


# --- the live schema, seen from outside ------------------------------------------------


def live_snapshot(dsn: str) -> dict[str, Any]:
    """Every table of the live schema as (rows, md5 of its rows in order), and the names
    of the schemas the tool owns (the meta schema's ledger changes on every run: left out)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1", (SCHEMA,)
        )]
        snap: dict[str, Any] = {}
        for name in tables:
            snap[name] = conn.execute(
                sql.SQL("SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {} AS t").format(
                    sql.Identifier(SCHEMA, name)
                )
            ).fetchone()
        snap["schemas"] = sorted(r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (SCHEMA + "%",)))
        return snap


def unfinished_runs(dsn: str) -> int:
    from pipeline.migrate import UNFINISHED

    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE status = ANY(%s)").format(sql.Identifier(SCHEMA + "_meta", "migrations")),
            (list(UNFINISHED),),
        ).fetchone()[0]


@pytest.fixture(scope="module")
def live_dsn(embedded_postgres, clean_exports: Path, tmp_path_factory: pytest.TempPathFactory):
    """A database of this module's own, whose live schema a first successful run made.

    The stops share it: each must leave it exactly as it found it.
    """
    name = "run_stops"
    admin = embedded_postgres.conninfo()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = embedded_postgres.conninfo(name)
    tmp = tmp_path_factory.mktemp("first_run")
    result = run(config_for(clean_exports, tmp, dsn))
    assert result.exit_code == EXIT_OK, result.message
    try:
        yield dsn
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from an empty folder: backups and run folders default to ./.servicedesk."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def step_names(result: RunResult) -> list[str]:
    return [s.name for s in result.steps]


# --- success -----------------------------------------------------------------------------


def test_run_with_auto_clean_migrates_and_leaves_a_complete_run_folder(defective_exports: Path, pg_dsn: str, in_tmp: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from pipeline.migrate import pg_checksum, sqlite_checksum
    from pipeline.pgschema import data_table_plans

    result = run(config_for(defective_exports, in_tmp, pg_dsn, auto_clean=True))

    assert result.exit_code == EXIT_OK, result.message
    assert step_names(result) == ["preflight", "ingest", "gate1", "clean", "gate2", "migrate", "gate3"]
    gate1 = result.steps[2]
    assert gate1.outcome == "failed" and gate1.detail["verdict"] == "CLEAN"  # the quirks were found...
    assert all(s.outcome == "ok" for s in result.steps[3:])  # ...and fixed
    assert result.scores["raw"]["score"] < result.scores["clean"]["score"]
    # Each file judged once: Gate 2 is the clean's check of its output, the post-migration
    # contract run is the validation's run on the version that the cut-over made live.
    gate2, gate3 = result.steps[4], result.steps[6]
    assert gate2.detail["ran_in"] == "clean" and gate2.detail["passed"]
    assert gate3.detail["ran_in"] == "migrate" and gate3.detail["passed"]
    migrated = result.steps[5].detail
    assert gate3.detail["live_rows"] == {t["name"]: t["loaded_rows"] for t in migrated["tables"]}
    assert migrated["scores"]["source"] == result.scores["clean"]["score"]  # Gate 2's, not computed again

    # The live schema: every contract column, with the contract's PostgreSQL type, and
    # exactly the cleaned rows (the migration's own row checksums, both sides).
    clean_db = result.run_dir / "clean.db"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for table in DATA_TABLES:
            types = dict(conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
                (SCHEMA, table),
            ).fetchall())
            expected = {name: PG_DATA_TYPE[spec.pg_type(col)] for name, col in contract_for(table).columns.items()}
            assert {c: types.get(c) for c in expected} == expected
    for plan in data_table_plans():
        rows, checksum = sqlite_checksum(clean_db, plan)
        assert rows > 0
        assert pg_checksum(pg_dsn, SCHEMA, plan) == (rows, checksum)

    # The run folder.
    folder = result.run_dir
    saved = json.loads((folder / "result.json").read_text())
    assert saved["exit_code"] == 0 and saved["run_id"] == result.run_id
    assert [s["name"] for s in saved["steps"]] == step_names(result)
    progress = json.loads((folder / "progress.json").read_text())
    assert progress["status"] == "done" and progress["current_step"] is None
    assert [s["name"] for s in progress["steps"]] == step_names(result)
    for gate in ("gate1", "gate2", "gate3"):
        junit = ET.parse(folder / f"{gate}-junit.xml").getroot()
        suite = junit if junit.tag == "testsuite" else junit.find("testsuite")
        assert int(suite.get("tests")) > 0
        assert json.loads((folder / f"{gate}.json").read_text())
    assert int(ET.parse(folder / "gate1-junit.xml").getroot().find("testsuite").get("failures")) > 0
    assert int(ET.parse(folder / "gate3-junit.xml").getroot().find("testsuite").get("failures")) == 0

    families = {f.name: f for f in text_string_to_metric_families((folder / "metrics.prom").read_text())}
    durations = {s.labels["stage"]: s.value for s in families["servicedesk_etl_stage_duration_seconds"].samples}
    assert set(durations) == set(step_names(result)) and all(v >= 0 for v in durations.values())
    gates = {s.labels["gate"]: s.value for s in families["servicedesk_etl_gate_outcome"].samples}
    assert gates == {"gate1": 0.0, "gate2": 1.0, "gate3": 1.0}
    quality = {(s.labels["stage"], s.labels["dimension"]): s.value for s in families["servicedesk_etl_quality_score"].samples}
    assert quality[("postgres", "overall")] == pytest.approx(result.scores["postgres"]["score"])
    read = {s.labels["table"]: s.value for s in families["servicedesk_etl_rows"].samples if s.labels.get("direction") == "read"}
    assert set(read) == set(DATA_TABLES) and all(v > 0 for v in read.values())
    assert families["servicedesk_etl_last_success_timestamp_seconds"].samples[0].value > 0
    # the dashboard metrics were computed on the live schema
    assert result.metrics and any(m.get("value") is not None for m in result.metrics)

    # The same command again: nothing is redone, Gate 2's verdict is read back from its
    # report, the same source is not loaded twice, so the live schema is judged itself.
    again = run(config_for(defective_exports, in_tmp, pg_dsn, auto_clean=True))
    assert again.exit_code == EXIT_OK, again.message
    outcomes = {s.name: s.outcome for s in again.steps}
    assert outcomes["ingest"] == outcomes["clean"] == outcomes["gate2"] == "reused"
    assert again.steps[4].detail["quality"] == gate2.detail["quality"]
    assert again.steps[5].detail["status"] == "skipped"
    assert "ran_in" not in again.steps[6].detail and again.steps[6].outcome == "ok"


# --- the stops ---------------------------------------------------------------------------


def test_gate1_fix_source_stops_before_anything_is_loaded(corrupt_date_exports: Path, live_dsn: str, in_tmp: Path) -> None:
    before = live_snapshot(live_dsn)
    result = run(config_for(corrupt_date_exports, in_tmp, live_dsn, auto_clean=True))
    assert result.exit_code == EXIT_GATE1
    assert step_names(result) == ["preflight", "ingest", "gate1"]
    assert result.steps[-1].detail["verdict"] == "FIX_SOURCE"
    assert result.message.startswith("Gate 1 (raw data) failed")
    assert "TKT-Created Time" in result.message
    assert "fix the export at its source" in result.message
    assert str(result.run_dir / "gate1.json") in result.message
    assert live_snapshot(live_dsn) == before


def test_gate1_clean_without_auto_clean_asks_for_it(defective_exports: Path, live_dsn: str, in_tmp: Path) -> None:
    before = live_snapshot(live_dsn)
    result = run(config_for(defective_exports, in_tmp, live_dsn))
    assert result.exit_code == EXIT_NEEDS_CLEAN
    assert step_names(result) == ["preflight", "ingest", "gate1"]
    assert "--auto-clean" in result.message
    assert not (result.run_dir / "clean.db").exists()
    assert live_snapshot(live_dsn) == before


def test_gate2_fails_on_what_cleaning_cannot_fix(nul_exports: Path, live_dsn: str, in_tmp: Path) -> None:
    before = live_snapshot(live_dsn)
    result = run(config_for(nul_exports, in_tmp, live_dsn, auto_clean=True))
    assert result.exit_code == EXIT_GATE2
    assert step_names(result) == ["preflight", "ingest", "gate1", "clean", "gate2"]
    assert result.message.startswith("Gate 2 (cleaned data) failed")
    assert "tickets::TKT-Severity::NUL_BYTES" in result.message
    assert live_snapshot(live_dsn) == before


def test_gate2_fails_on_a_quality_score_below_the_threshold(nul_exports: Path, live_dsn: str, in_tmp: Path) -> None:
    # The NULs cost the cleaned data a fraction of a point; this desk asks for 99.9.
    before = live_snapshot(live_dsn)
    result = run(config_for(nul_exports, in_tmp, live_dsn, toml="[gate]\nquality_threshold = 99.9\n", auto_clean=True))
    assert result.exit_code == EXIT_GATE2
    assert step_names(result) == ["preflight", "ingest", "gate1", "clean"]
    assert result.steps[2].detail["verdict"] == "CLEAN"
    assert "Gate 2 (clean) failed" in result.message and "below the threshold 99.9" in result.message
    assert not (result.run_dir / "clean.db").exists()
    assert live_snapshot(live_dsn) == before


def test_duplicates_with_strategy_fail_stop_at_gate2(defective_exports: Path, live_dsn: str, in_tmp: Path) -> None:
    before = live_snapshot(live_dsn)
    result = run(config_for(defective_exports, in_tmp, live_dsn, toml='[clean]\nduplicates = "fail"\n', auto_clean=True))
    assert result.exit_code == EXIT_GATE2
    assert step_names(result) == ["preflight", "ingest", "gate1", "clean"]
    assert "Gate 2 (clean) failed" in result.message and "appear more than once" in result.message
    assert "keep_latest" in result.message  # the way forward
    assert live_snapshot(live_dsn) == before


def test_canary_failure_stops_gate3_before_the_full_load(clean_exports: Path, live_dsn: str, in_tmp: Path) -> None:
    # A canary fraction so small that 150 tickets give an empty canary: its contract
    # run fails (empty tables) and the full load never starts.
    before = live_snapshot(live_dsn)
    result = run(config_for(clean_exports, in_tmp, live_dsn, toml="[migrate]\ncanary_fraction = 0.0001\n", force=True))
    assert result.exit_code == EXIT_GATE3, result.message
    assert step_names(result) == ["preflight", "ingest", "gate1", "migrate"]
    assert result.message.startswith("Gate 3 (migration) failed, the live schema is untouched")
    assert "canary" in result.message and "row_count" in result.message
    assert live_snapshot(live_dsn) == before
    assert unfinished_runs(live_dsn) == 0


def test_unreachable_target_is_one_line_without_traceback(clean_exports: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [*CLI, "run", "--tickets", str(clean_exports / "tickets.xlsx"), "--comments", str(clean_exports / "comments.xlsx"),
         "--timesheets", str(clean_exports / "timesheets.xlsx"), "--target", "postgresql://nobody@/db?host=/nonexistent"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode in (5, EXIT_PREFLIGHT), proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")] or [
        line for line in proc.stdout.splitlines() if line.startswith("stopped")
    ]
    assert len(errors) == 1, proc.stdout + proc.stderr
    assert "/nonexistent" in errors[0]
    if proc.returncode == EXIT_PREFLIGHT:  # stopped by the preflight: the run folder says so
        (result_file,) = (tmp_path / ".servicedesk" / "runs").glob("*/result.json")
        saved = json.loads(result_file.read_text())
        assert saved["exit_code"] == EXIT_PREFLIGHT
        assert {s["name"]: s["outcome"] for s in saved["steps"]}["preflight"] == "failed"


def test_an_unreadable_workbook_is_an_error_and_the_run_folder_says_so(clean_exports: Path, live_dsn: str, tmp_path: Path) -> None:
    import shutil

    from prometheus_client.parser import text_string_to_metric_families

    from pipeline.errors import InputFileError

    folder = tmp_path / "exports"
    shutil.copytree(clean_exports, folder)
    (folder / "tickets.xlsx").write_bytes(b"Ticket ID,Title\n1,not a workbook\n")
    with pytest.raises(InputFileError) as caught:
        run(config_for(folder, tmp_path, live_dsn))
    assert "tickets" in str(caught.value)
    (run_dir,) = (tmp_path / "runs").iterdir()
    saved = json.loads((run_dir / "result.json").read_text())
    assert saved["exit_code"] == InputFileError.exit_code
    assert [(s["name"], s["outcome"]) for s in saved["steps"]] == [("preflight", "ok"), ("ingest", "failed")]
    assert json.loads((run_dir / "progress.json").read_text())["status"] == "failed"
    families = {f.name: f for f in text_string_to_metric_families((run_dir / "metrics.prom").read_text())}
    assert "servicedesk_etl_last_run_timestamp_seconds" in families
    assert "servicedesk_etl_last_success_timestamp_seconds" not in families  # never succeeded


# --- killed and run again ----------------------------------------------------------------


def _run_cli(folder: Path, dsn: str, cwd: Path) -> list[str]:
    return [*CLI, "run", "--tickets", str(folder / "tickets.xlsx"), "--comments", str(folder / "comments.xlsx"),
            "--timesheets", str(folder / "timesheets.xlsx"), "--target", dsn, "--auto-clean", "--workdir", str(cwd / "runs")]


def _half_built_schemas(dsn: str) -> list[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return [r[0] for r in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s OR nspname LIKE %s", (SCHEMA + "\\_v%", SCHEMA + "\\_canary\\_%")
        )]


def _progress(cwd: Path) -> dict[str, Any]:
    for path in (cwd / "runs").glob("*/progress.json"):
        try:
            return json.loads(path.read_text())
        except ValueError:  # replaced while we read: read it next time
            return {}
    return {}


def _kill_when(cmd: list[str], cwd: Path, ready: Callable[[], bool]) -> None:
    """Start the pipeline, SIGKILL it as soon as ``ready()`` holds; it must not finish first."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while proc.poll() is None and not ready() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before the point to kill it at"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def test_rerun_after_sigkill_at_several_points_completes_exactly_once(defective_exports: Path, pg_dsn: str, tmp_path: Path) -> None:
    cmd = _run_cli(defective_exports, pg_dsn, tmp_path)
    # 1. during Gate 1 (ingest done), 2. during the clean, 3. with a half-built canary or
    # version schema in the server.
    _kill_when(cmd, tmp_path, lambda: _progress(tmp_path).get("current_step") == "gate1")
    _kill_when(cmd, tmp_path, lambda: _progress(tmp_path).get("current_step") == "clean")
    _kill_when(cmd, tmp_path, lambda: _progress(tmp_path).get("current_step") == "migrate" and bool(_half_built_schemas(pg_dsn)))
    assert _half_built_schemas(pg_dsn)

    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    run_dirs = list((tmp_path / "runs").iterdir())
    assert len(run_dirs) == 1  # the same command resumed the same run folder
    result = json.loads((run_dirs[0] / "result.json").read_text())
    steps = {s["name"]: s["outcome"] for s in result["steps"]}
    assert steps["ingest"] == "reused"  # finished before the first kill, not done again
    clean_db = run_dirs[0] / "clean.db"
    lite = sqlite3.connect(clean_db)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for table in DATA_TABLES:
            expected = lite.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
            live = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(SCHEMA, table))).fetchone()[0]
            assert live == expected > 0, table
            for key in KEYS.get(table, []):
                distinct = conn.execute(
                    sql.SQL("SELECT count(DISTINCT {}) FROM {}").format(sql.SQL(key), sql.Identifier(SCHEMA, table))
                ).fetchone()[0]
                assert distinct == live, f"duplicates in {table}"
        # exactly one version lives, nothing half-built is left, no run is unfinished
        versions = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE status = 'live'").format(sql.Identifier(SCHEMA + "_meta", "migrations"))
        ).fetchone()[0]
        assert versions == 1
    lite.close()
    assert _half_built_schemas(pg_dsn) == []
    assert unfinished_runs(pg_dsn) == 0

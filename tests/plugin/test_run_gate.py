"""``contracts.gate.run_gate``: the gate from Python, as the pipeline calls it (Gates 1-3)."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import pytest

from contracts.gate import GateVerdict, run_gate
from pipeline.errors import ConfigError, InputFileError

pytest_plugins = ["pytester"]

CREATED = "tickets::TKT-Created Time::timestamp_parseable"


def test_clean_database_passes(gate_db) -> None:
    verdict = run_gate(gate_db(), extra_args=["-q"])
    assert isinstance(verdict, GateVerdict)
    assert verdict.passed and verdict.exit_code == 0
    assert verdict.failed == ()
    assert verdict.verdict == "PROCEED"
    assert verdict.quality is not None and verdict.quality >= 80
    assert verdict.report["summary"]["failed"] == 0


def test_defect_fails_with_ids_severities_and_counts(gate_db, tmp_path: Path) -> None:
    def change(t: dict) -> None:
        t["tickets"][1][3]["TKT-Created Time"] = "20/05/2025 8:42"
        t["tickets"][1][4]["TKT-Category"] = "New Category"

    junit, report = tmp_path / "gate.xml", tmp_path / "gate.json"
    verdict = run_gate(gate_db(change), junitxml=junit, report=report, extra_args=["-q"])
    assert not verdict.passed and verdict.exit_code == 1
    assert (CREATED, "error", 1) in verdict.failed
    assert CREATED in verdict.failed_ids
    assert ("tickets::TKT-Category::allowed_values", "warning", 1) in verdict.warned
    assert json.loads(report.read_text()) == verdict.report
    names = {(c.get("classname"), c.get("name")) for c in ET.parse(junit).getroot().iter("testcase")}
    assert ("tickets.TKT-Created Time", "timestamp_parseable") in names


def test_quality_threshold_and_settings_file(gate_db, tmp_path: Path) -> None:
    db = gate_db()
    strict = run_gate(db, quality_threshold=100.0, extra_args=["-q"])
    assert strict.report["quality_threshold"] == pytest.approx(100.0)
    settings = tmp_path / "etl.toml"
    settings.write_text("[gate]\nsample_rows = 2\n")

    def change(t: dict) -> None:
        for row in t["tickets"][1][:5]:
            row["TKT-Status"] = "Resolved"

    verdict = run_gate(gate_db(change, name="five.db"), settings_file=settings, extra_args=["-q"])
    result = next(r for r in verdict.report["results"] if r["id"] == "tickets::TKT-Status::allowed_values")
    assert result["failing"] == 5 and len(result["sample"]) == 2


def test_settings_object_reaches_the_gate(gate_db) -> None:
    from pipeline.config import Settings

    def change(t: dict) -> None:
        for row in t["tickets"][1][:5]:
            row["TKT-Status"] = "Resolved"

    settings = Settings().with_overrides(**{"gate.sample_rows": 3})
    verdict = run_gate(gate_db(change, name="five.db"), settings=settings)
    result = next(r for r in verdict.report["results"] if r["id"] == "tickets::TKT-Status::allowed_values")
    assert result["failing"] == 5 and len(result["sample"]) == 3
    with pytest.raises(ConfigError, match="not both"):
        run_gate(gate_db(), settings=settings, settings_file=Path("x.toml"))


def test_the_callers_tests_and_conftest_are_not_collected(gate_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "conftest.py").write_text("raise RuntimeError('the caller conftest was imported')\n")
    (project / "test_theirs.py").write_text("def test_theirs():\n    assert False\n")
    (project / "pytest.ini").write_text("[pytest]\naddopts = --this-option-does-not-exist\n")
    monkeypatch.chdir(project)
    verdict = run_gate(gate_db(), extra_args=["-q"])
    assert verdict.passed
    assert not any("test_theirs" in i["id"] for i in verdict.report["items"])
    assert Path(os.getcwd()) == project  # the caller's folder is given back


def test_bad_input_raises_pipeline_errors(tmp_path: Path, gate_db) -> None:
    with pytest.raises(InputFileError, match="does not exist"):
        run_gate(tmp_path / "absent.db")
    (tmp_path / "x.txt").write_text("no")
    with pytest.raises(InputFileError, match="not a SQLite database"):
        run_gate(tmp_path / "x.txt")
    with pytest.raises(ConfigError, match="exactly one"):
        run_gate()
    bad = tmp_path / "bad.toml"
    bad.write_text("[gate]\nno_such_key = 1\n")
    with pytest.raises(ConfigError, match="gate.no_such_key"):
        run_gate(gate_db(), settings_file=bad)


def test_a_stale_report_is_never_read_as_the_verdict(gate_db, tmp_path: Path) -> None:
    report = tmp_path / "gate.json"
    report.write_text(json.dumps({"failed": [], "quality": 100.0, "verdict": "PROCEED"}))
    with pytest.raises(ConfigError):
        run_gate(gate_db(), report=report, extra_args=["--quality-threshold", "not-a-number"])
    assert not report.exists()


def _judged(verdict: GateVerdict) -> tuple:
    """What a gate decided, without its clock (creation times)."""
    profile = {k: v for k, v in verdict.report["profile"].items() if k != "created"}
    return verdict.exit_code, verdict.failed, verdict.warned, verdict.quality, verdict.verdict, verdict.report["results"], profile


def test_contract_checks_in_a_child_process_judge_the_same(gate_db, monkeypatch: pytest.MonkeyPatch) -> None:
    import contracts.report as report

    def change(t: dict) -> None:
        t["tickets"][1][3]["TKT-Created Time"] = "20/05/2025 8:42"
        t["tickets"][1][4]["TKT-Category"] = "New Category"

    db = gate_db(change)
    monkeypatch.setattr(report, "_parallel_worth_it", lambda path: False)
    in_turn = run_gate(db)
    monkeypatch.setattr(report, "_parallel_worth_it", lambda path: True)
    side_by_side = run_gate(db)
    assert _judged(side_by_side) == _judged(in_turn)
    assert side_by_side.report["profile"]["source_sha256"] == in_turn.report["profile"]["source_sha256"] is not None


def test_a_given_profile_of_the_same_file_is_not_made_again(gate_db, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from pipeline.config import Settings
    from pipeline.profile import profile_source
    from pipeline.sources import SQLiteSource, sha256_file

    def change(t: dict) -> None:
        t["tickets"][1][3]["TKT-Created Time"] = "20/05/2025 8:42"

    db = gate_db(change)
    fresh = run_gate(db)
    with SQLiteSource(db) as source:
        given = profile_source(source, Settings(), source_sha256=sha256_file(db))
    given.created = "given by the caller"
    reused = run_gate(db, profile=given)
    assert reused.report["profile"]["created"] == "given by the caller"
    assert _judged(reused) == _judged(fresh)
    # Its JSON (a profile file or a gate report holding it) does as well.
    report = tmp_path / "gate1.json"
    report.write_text(json.dumps(reused.report))
    assert run_gate(db, profile=report).report["profile"]["created"] == "given by the caller"
    # A profile of another file is not used: the file is profiled again, with a warning.
    other = gate_db(name="other.db")
    with caplog.at_level("WARNING", logger="contracts.report"):
        again = run_gate(other, profile=given)
    assert again.report["profile"]["created"] != "given by the caller"
    assert "SHA-256 differs" in caplog.text


# --- Gate 3: the same gate on a PostgreSQL schema -------------------------------------------


@pytest.mark.postgres
def test_gate_on_a_postgresql_schema(pg_dsn: str, pytester: pytest.Pytester) -> None:
    import psycopg
    from psycopg import sql

    from contracts.schemas import contract_for
    from pipeline.pgschema import ddl

    schema = "gate_check"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for statement in ddl(schema):
            conn.execute(statement)

        def insert(table: str, rows: list[dict]) -> None:
            cols = list(contract_for(table).columns)
            stmt = sql.SQL("INSERT INTO {}.{} ({}) VALUES ({})").format(
                sql.Identifier(schema),
                sql.Identifier(table),
                sql.SQL(", ").join(map(sql.Identifier, cols)),
                sql.SQL(", ").join(sql.Placeholder() * len(cols)),
            )
            conn.cursor().executemany(stmt, [[r.get(c) for c in cols] for r in rows])

        created = datetime(2025, 5, 20, 8, 42)
        insert("tickets", [{"TKT-Ticket ID": 1000 + i, "TKT-Created Time": created, "TKT-Status": "Closed", "TKT-Month Created": "2025-05"} for i in range(10)])
        insert("comments", [{"comment_id": i + 1, "ticket_id": 1000 + i % 10, "created_time": created, "owner_type": "agent"} for i in range(20)])
        insert("timesheets", [{"TS-User Username": "u1", "TS-Date": created.date(), "TS-Time From": f"{8 + i}:00", "TS-Hours": 1.5, "TS-Crm ID": 1000 + i % 10} for i in range(8)])

    verdict = run_gate(target=pg_dsn, schema=schema, extra_args=["-q"])
    assert verdict.passed, verdict.failed
    assert verdict.report["db"] == schema
    assert any(r["id"] == "tickets::TKT-Created Time::timestamp_parseable" and r["considered"] == 10 for r in verdict.report["results"])

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("UPDATE {}.tickets SET {} = 'Resolved' WHERE {} = 1003").format(
            sql.Identifier(schema), sql.Identifier("TKT-Status"), sql.Identifier("TKT-Ticket ID")))
    # The same through the command line, as a user would run it on the target.
    result = pytester.runpytest_subprocess("--target", pg_dsn, "--schema", schema, "-rf")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["FAILED tickets::TKT-Status::allowed_values - 1 of 10 values*"])


def test_only_the_gate_plugin_is_loaded(gate_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate's pytest loads its own plugin only (other installed plugins cost ~1 s and
    are of no use to it), and leaves the environment as it found it; with PYTEST_ADDOPTS
    set (it may name other plugins' options) every plugin loads as before."""
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    log = tmp_path / "gate.log"
    db = gate_db()
    verdict = run_gate(db, output=log)
    assert verdict.passed
    assert "PYTEST_DISABLE_PLUGIN_AUTOLOAD" not in os.environ
    header = [line for line in log.read_text(encoding="utf-8").splitlines() if line.startswith("plugins:")]
    assert header == []  # pytest lists the entry-point plugins it loaded: none
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:randomly")
    verdict = run_gate(db, output=log)
    assert verdict.passed
    assert "PYTEST_DISABLE_PLUGIN_AUTOLOAD" not in os.environ

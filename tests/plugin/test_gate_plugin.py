"""``pytest --source DB``: the gate as a user runs it, in an empty folder, in a child pytest.

Each test runs ``pytest`` in a subprocess in pytester's empty folder, so the plugin is
found exactly as in a user's repository: through its ``pytest11`` entry point.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest


pytest_plugins = ["pytester"]

CREATED = "tickets::TKT-Created Time::timestamp_parseable"


def set_value(tables: dict, table: str, index: int, column: str, value: object) -> None:
    tables[table][1][index][column] = value


def run_gate(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*args)


def item_ids(report: dict) -> list[str]:
    return [i["id"] for i in report["items"]]


# --- pass, fail, warn ----------------------------------------------------------------------


def test_clean_database_passes(pytester: pytest.Pytester, gate_db) -> None:
    db = gate_db()
    result = run_gate(pytester, "--source", str(db))
    assert result.ret == 0, result.stdout.str()
    out = result.stdout.str()
    result.stdout.fnmatch_lines(["*servicedesk contracts: */gate.db *"])
    result.stdout.re_match_lines([r"^tickets\s+20\s+\d+\s+0\s+0\s+\d+\.\d$", r"^verdict: PROCEED"])
    assert "failed" not in out.splitlines()[-1]


def test_error_defect_fails_with_its_id_and_a_sample(pytester: pytest.Pytester, gate_db) -> None:
    db = gate_db(lambda t: set_value(t, "tickets", 3, "TKT-Created Time", "20/05/2025 8:42"))
    result = run_gate(pytester, "--source", str(db), "-rf")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            f"*_ {CREATED} _*",
            "1 of 20 values are not an ISO 8601 timestamp*[[]error[]]",
            "failing: 1 of 20 (5.00%)*",
            "*1003  TKT-Created Time  '20/05/2025 8:42'",
            f"FAILED {CREATED} - 1 of 20 values*",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_critical_defect_missing_table_fails(pytester: pytest.Pytester, gate_db) -> None:
    db = gate_db(lambda t: t.pop("comments"))
    result = run_gate(pytester, "--source", str(db), "-rf")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["FAILED comments::[*]::row_count - table comments is missing*"])


def test_warning_only_database_passes_with_the_warning_visible(pytester: pytest.Pytester, gate_db) -> None:
    db = gate_db(lambda t: set_value(t, "tickets", 2, "TKT-Category", "Brand New Category"))
    result = run_gate(pytester, "--source", str(db))
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*warnings summary*",
            "*ContractWarning: tickets::TKT-Category::allowed_values: 1 of 20 values are not in the closed set*",
            "*servicedesk contracts: *gate.db*",
            "warnings (1; they do not fail the gate):",
            "  WARNED tickets::TKT-Category::allowed_values*",
            "*passed*1 warning*",
        ]
    )
    result.stdout.re_match_lines([r"^tickets\s+20\s+\d+\s+0\s+1\s"])


def test_missing_contract_column_fails_never_skips(pytester: pytest.Pytester, gate_db) -> None:
    db = gate_db(lambda t: t["tickets"][0].remove("TKT-Status"))
    result = run_gate(pytester, "--source", str(db), "-rfs")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "FAILED tickets::TKT-Status::present - column missing*",
            "FAILED tickets::TKT-Status::not_null - column missing*",
            "FAILED tickets::TKT-Status::allowed_values - column missing*",
        ]
    )
    assert "skipped" not in result.stdout.str()


# --- outputs --------------------------------------------------------------------------------


def test_junitxml_has_one_testcase_per_check(pytester: pytest.Pytester, gate_db) -> None:
    db = gate_db(lambda t: set_value(t, "tickets", 3, "TKT-Created Time", ""))
    result = run_gate(pytester, "--source", str(db), "--junitxml", "gate.xml", "--contracts-report", "gate.json")
    assert result.ret == 1
    report = json.loads((pytester.path / "gate.json").read_text())
    cases = ET.parse(pytester.path / "gate.xml").getroot().iter("testcase")
    seen = {(c.get("classname"), c.get("name")): c for c in cases}
    assert len(seen) == len(report["items"]) > 150
    case = seen[("tickets.TKT-Created Time", "timestamp_parseable")]
    assert case.find("failure") is not None
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["severity"] == "error" and props["failing"] == "1" and props["status"] == "failed"
    assert float(props["share"]) == pytest.approx(0.05)
    assert ("tickets.*", "unique_key") in seen and ("comments.ticket_id", "references") in seen
    assert seen[("tickets.TKT-Ticket ID", "integer")].find("failure") is None
    assert ("gate.db", "quality_score") in seen and ("gate.db", "verdict") in seen


def test_contracts_report_json(pytester: pytest.Pytester, gate_db) -> None:
    db = gate_db(lambda t: (set_value(t, "tickets", 3, "TKT-Created Time", "3/05/2025 8:42"), set_value(t, "tickets", 4, "TKT-Category", "Odd")))
    (pytester.path / "out").mkdir()
    result = run_gate(pytester, "--source", str(db), "--contracts-report", "out/gate.json")
    assert result.ret == 1
    report = json.loads((pytester.path / "out" / "gate.json").read_text())
    assert report["format"] == "servicedesk-etl/gate/1"
    assert report["exit_code"] == 1 and report["passed"] is False
    assert {"id": CREATED, "severity": "error", "count": 1} in report["failed"]
    assert {"id": "tickets::TKT-Category::allowed_values", "severity": "warning", "count": 1} in report["warned"]
    results = {r["id"]: r for r in report["results"]}
    assert results[CREATED]["sample"] == [{"key": 1003, "column": "TKT-Created Time", "value": "3/05/2025 8:42"}]
    assert results[CREATED]["considered"] == 20 and results[CREATED]["status"] == "failed"
    items = {i["id"]: i for i in report["items"]}
    assert items[CREATED]["outcome"] == "failed"
    assert items["tickets::TKT-Category::allowed_values"]["outcome"] == "warned"
    assert report["tables"]["tickets"]["rows"] == 20
    assert report["tables"]["tickets"]["warned"] == sum(1 for w in report["warned"] if w["id"].startswith("tickets::"))
    assert isinstance(report["quality"], float) and report["verdict"] in ("PROCEED", "CLEAN", "FIX_SOURCE")
    assert report["profile"]["quality"]["score"] == report["quality"]
    assert isinstance(report["profile"]["findings"], list)


def test_failure_output_is_bounded_and_personal_values_masked(pytester: pytest.Pytester, gate_db) -> None:
    def change(t: dict) -> None:
        for i in range(20):
            set_value(t, "tickets", i, "TKT-Severity", f"P{9 + i}")
        t["cloud_team_roster"] = (["name", "email", "username"], [{"name": "Ann Smith", "email": "ann at example", "username": "asmith"}])

    db = gate_db(change)
    result = run_gate(pytester, "--source", str(db))
    out = result.stdout.str()
    assert result.ret == 1
    assert "sample (first 10 of 20):" in out
    assert "'P18'" in out and "'P19'" not in out  # 10 of 20 shown
    assert "ann at example" not in out and "asmith" not in out
    assert "<personal #" in out
    shown = run_gate(pytester, "--source", str(db), "--show-personal").stdout.str()
    assert "'ann at example'" in shown and "asmith" in shown


# --- bad --source -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "absent.db", "does not exist"),
        (lambda p: (p / "notes.txt").write_text("hello\n") and p / "notes.txt", "is not a SQLite database"),
        (lambda p: (p / "folder").mkdir() or p / "folder", "is a folder"),
        (lambda p: (p / "t.db").write_bytes(b"SQLite format 3\x00" + b"\x00" * 10) and p / "t.db", "cannot be opened as SQLite"),
    ],
    ids=["missing", "text-file", "folder", "truncated"],
)
def test_bad_source_is_a_usage_error_with_the_remedy(pytester: pytest.Pytester, make, message: str) -> None:
    path = make(pytester.path)
    result = run_gate(pytester, "--source", str(path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert f"ERROR: --source {path}" in err and message in err
    assert "fix:" in err
    assert "Traceback" not in err + result.stdout.str()
    assert "collected 0 items" not in result.stdout.str() and "no tests ran" not in result.stdout.str()


def test_bad_options_are_usage_errors(pytester: pytest.Pytester, gate_db) -> None:
    db = gate_db()
    result = run_gate(pytester, "--source", str(db), "--quality-threshold", "lots")
    assert result.ret == pytest.ExitCode.USAGE_ERROR and "--quality-threshold must be a number" in result.stderr.str()
    (pytester.path / "bad.toml").write_text("[gate]\nsample_rows = 'ten'\n")
    result = run_gate(pytester, "--source", str(db), "--contracts-config", "bad.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR and "gate.sample_rows" in result.stderr.str()
    result = run_gate(pytester, "--source", str(db), "--target", "postgresql://localhost/x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR and "exclusive" in result.stderr.str()


def test_unreachable_target_is_a_usage_error_without_the_password(pytester: pytest.Pytester) -> None:
    result = run_gate(pytester, "--target", "postgresql://gate:s3cr3t-pw@127.0.0.1:1/none", "--schema", "servicedesk")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str() + result.stdout.str()
    assert "ERROR: --target" in err
    assert "s3cr3t-pw" not in err and "Traceback" not in err


# --- selection and re-runs ---------------------------------------------------------------------


def test_k_selects_a_check(pytester: pytest.Pytester, gate_db) -> None:
    db = gate_db(lambda t: set_value(t, "tickets", 3, "TKT-Created Time", ""))
    result = run_gate(pytester, "--source", str(db), "-k", "timestamp_parseable and tickets and Created", "-v")
    assert result.ret == 1
    result.stdout.fnmatch_lines([f"{CREATED} FAILED*"])
    result.assert_outcomes(failed=1, deselected=result.parseoutcomes()["deselected"])
    assert result.parseoutcomes()["deselected"] > 150


def test_last_failed_reruns_only_the_failures(pytester: pytest.Pytester, gate_db) -> None:
    db = gate_db(lambda t: set_value(t, "tickets", 3, "TKT-Status", "Resolved"))
    assert run_gate(pytester, "--source", str(db)).ret == 1
    again = run_gate(pytester, "--source", str(db), "--lf", "-v")
    again.stdout.fnmatch_lines(["tickets::TKT-Status::allowed_values FAILED*"])
    assert again.parseoutcomes() == {"failed": 1, "deselected": again.parseoutcomes()["deselected"]}


def test_zero_selected_items_is_not_a_pass(pytester: pytest.Pytester, gate_db) -> None:
    result = run_gate(pytester, "--source", str(gate_db()), "-k", "no_such_check")
    assert result.ret != 0


def test_collect_only_lists_stable_ids(pytester: pytest.Pytester, gate_db) -> None:
    db = gate_db()
    first = run_gate(pytester, "--source", str(db), "--collect-only", "-q").stdout.lines
    second = run_gate(pytester, "--source", str(db), "--collect-only", "-q").stdout.lines
    ids = [line for line in first if "::" in line]
    assert ids == [line for line in second if "::" in line]
    for expected in (CREATED, "tickets::*::unique_key", "comments::ticket_id::references", "timesheets::TS-Crm ID::orphans", "gate.db::quality_score", "gate.db::verdict"):
        assert expected in ids
    assert len(ids) == len(set(ids))


# --- the project's own tests, and the ini options ------------------------------------------


def test_without_source_pytest_runs_the_projects_tests(pytester: pytest.Pytester, gate_db) -> None:
    pytester.makepyfile(test_own="def test_own():\n    assert 1 + 1 == 2\n")
    result = run_gate(pytester)
    assert result.ret == 0
    result.assert_outcomes(passed=1)
    assert "servicedesk contracts" not in result.stdout.str()
    # With --source, the same folder's test files are not collected.
    gated = run_gate(pytester, "--source", str(gate_db()), "-v")
    assert "test_own" not in gated.stdout.str()
    assert gated.ret == 0


def test_options_from_the_ini_file(pytester: pytest.Pytester, gate_db) -> None:
    gate_db(lambda t: set_value(t, "tickets", 3, "TKT-Status", "Resolved"), name="ini.db")
    pytester.makeini("[pytest]\ncontracts_source = ini.db\ncontracts_report = ini.json\ncontracts_quality_threshold = 10\n")
    result = run_gate(pytester)
    assert result.ret == 1
    report = json.loads((pytester.path / "ini.json").read_text())
    assert report["quality_threshold"] == 10.0 and report["db"] == "ini.db"


def test_perf_tests_are_skipped_unless_asked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bench="import pytest\n\n@pytest.mark.perf\ndef test_slow():\n    pass\n")
    skipped = run_gate(pytester, "-rs")
    skipped.assert_outcomes(skipped=1)
    skipped.stdout.fnmatch_lines(["*--run-perf or --benchmark-only*"])
    run_gate(pytester, "--run-perf").assert_outcomes(passed=1)


# --- the sample databases of the project --------------------------------------------------------


@pytest.mark.slow
def test_sample_raw_database_fails_and_clean_one_passes(pytester: pytest.Pytester, raw_db: Path, clean_raw_db: Path, manifest: dict) -> None:
    raw = run_gate(pytester, "--source", str(raw_db), "--contracts-report", "raw.json", "-q")
    assert raw.ret == 1
    report = json.loads((pytester.path / "raw.json").read_text())
    failed = {f["id"] for f in report["failed"]}
    # The first migration's problems: day-first dates among ISO ones, '' in date columns.
    assert "tickets::TKT-Actual Response Date::timestamp_parseable" in failed
    assert "tickets::TKT-Actual Response Date::INCONSISTENT_DATE_FORMAT" in failed
    assert "tickets::*::unique_key" in failed
    assert report["verdict"] in ("CLEAN", "FIX_SOURCE")
    clean = run_gate(pytester, "--source", str(clean_raw_db), "-q")
    assert clean.ret == 0, clean.stdout.str()[-3000:]
    clean.stdout.fnmatch_lines(["verdict: PROCEED*"])


def test_gate_in_a_repository_with_its_own_conftest_and_tests(pytester: pytest.Pytester, gate_db) -> None:
    """A user's repository: a failing test of theirs must not run in gate mode."""
    pytester.makeconftest("import pytest\n")
    pytester.makepyfile(test_theirs="def test_theirs():\n    assert False\n")
    db = gate_db()
    shutil.copy(db, pytester.path / "their.db")
    result = run_gate(pytester, "--source", "their.db")
    assert result.ret == 0
    assert "test_theirs" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*servicedesk contracts: their.db*"])

"""The run report on synthetic run folders: full, stopped early, killed, hostile strings."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from pipeline import report
from pipeline.cli import main
from pipeline.errors import InputFileError

HOSTILE_TABLE = "<script>alert('t')</script>"
HOSTILE_COLUMN = '"><img src=x onerror=alert(1)>'
HOSTILE_MESSAGE = "stopped & <b>bold</b> 'quoted'"
SECTION_IDS = [sid for sid, _ in report.SECTIONS]


def _quality(score: float, validity: float) -> dict[str, Any]:
    return {
        "score": score,
        "grade": "A",
        "dimensions": {"completeness": 99.5, "validity": validity, "consistency": 98.0, "uniqueness": 99.9, "integrity": 100.0},
        "per_table": {"tickets": score, HOSTILE_TABLE: 50.0},
    }


def _gate(passed: bool, verdict: str, quality: dict[str, Any], findings: list[dict[str, Any]]) -> dict[str, Any]:
    failed = [{"id": f"{HOSTILE_TABLE}::{HOSTILE_COLUMN}::integer", "severity": "error", "count": 7}] if not passed else []
    return {
        "format": "servicedesk-etl/gate/1",
        "passed": passed,
        "quality": quality["score"],
        "verdict": verdict,
        "summary": {"items": 10, "passed": 10 - len(failed), "failed": len(failed), "warned": 1},
        "failed": failed,
        "warned": [],
        "tables": {"tickets": {"rows": 202, "passed": 9, "failed": len(failed), "warned": 1, "quality": quality["score"]}},
        "items": [],
        # The check samples hold values; the report must never show them.
        "results": [{"id": "x", "sample": [{"key": 1, "value": "SECRET-SAMPLE-VALUE"}]}],
        "profile": {"quality": quality, "verdict": verdict, "reasons": [], "tables": {}, "findings": findings},
    }


FINDINGS = [
    {
        "id": f"{HOSTILE_TABLE}::{HOSTILE_COLUMN}::TYPE_MISMATCH",
        "code": "TYPE_MISMATCH",
        "severity": "error",
        "table": HOSTILE_TABLE,
        "column": HOSTILE_COLUMN,
        "count": 3,
        "share": 0.015,
        "example_keys": ["5101974-B", "<i>k</i>"],
        "detail": {"tokens": {"SECRET-DETAIL-TOKEN": 1}},
    },
    {
        "id": "tickets::TKT-Closure Date::INCONSISTENT_DATE_FORMAT",
        "code": "INCONSISTENT_DATE_FORMAT",
        "severity": "error",
        "table": "tickets",
        "column": "TKT-Closure Date",
        "count": 3,
        "share": 0.0152,
        "example_keys": [3601301, 3601323],
        "detail": {},
    },
    {
        "id": "timesheets::TS-Date::FUTURE_DATES",
        "code": "FUTURE_DATES",
        "severity": "error",
        "table": "timesheets",
        "column": "TS-Date",
        "count": 1,
        "share": 0.0004,
        "example_keys": [["jdoe-secret", "3/10/2052", "09:00", 3578832]],
        "detail": {},
    },
]


def _steps(*names_outcomes: tuple[str, str]) -> list[dict[str, Any]]:
    return [
        {"name": n, "outcome": o, "seconds": 1.5 + i, "peak_rss_mb": 120.0 + i, "detail": {"rows": 4835} if n == "ingest" else {}}
        for i, (n, o) in enumerate(names_outcomes)
    ]


def _write(folder: Path, name: str, data: Any) -> None:
    (folder / name).write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture
def full_run(tmp_path: Path) -> Path:
    """Every file of a run that went through all three gates and computed its metrics."""
    run = tmp_path / "run-full"
    run.mkdir()
    raw, cleaned, pg = _quality(97.87, 94.04), _quality(100.0, 100.0), _quality(99.5, 99.0)
    metrics = [
        {"id": "1.1", "title": "SLA compliance", "unit": "%", "columns": ["value"], "rows": [{"value": 94.9}], "status": "amber", "row_status": ["amber"], "note": "", "value": 94.9},
        {"id": "1.5", "title": "Comment quality score", "unit": "score", "columns": [], "rows": [], "status": "n/a", "row_status": [], "note": "no comment_quality table"},
        {"id": "2.3", "title": "Team workload", "unit": "tickets, %", "columns": ["team", "tickets", "pct"], "rows": [{"team": HOSTILE_TABLE, "tickets": 70, "pct": 36.3}], "status": "-", "row_status": ["-"], "note": ""},
        {"id": "2.7", "title": "Resolution time by team", "unit": "days", "columns": ["team", "tickets", "avg_days"], "rows": [{"team": "Cloud - BAU", "tickets": 43, "avg_days": 9.5}], "status": "red", "row_status": ["red"], "note": ""},
        {"id": "3.2", "title": "Agent hours", "unit": "hours", "columns": ["username", "hours"], "rows": [{"username": "jdoe-secret", "hours": 86.3}, {"username": "asmith-secret", "hours": 80.1}], "status": "-", "row_status": ["-", "-"], "note": ""},
    ]  # fmt: skip
    steps = _steps(("ingest", "ok"), ("preflight", "ok"), ("gate1", "failed"), ("clean", "ok"), ("gate2", "ok"), ("migrate", "ok"), ("gate3", "ok"))
    _write(run, "result.json", {"run_id": "run-full", "exit_code": 0, "outcome": "migrated and validated", "message": HOSTILE_MESSAGE, "steps": steps, "scores": {"raw": raw, "clean": cleaned, "postgres": pg}, "metrics": metrics})
    _write(run, "progress.json", {"run_id": "run-full", "status": "done", "current_step": None, "steps": []})
    _write(run, "gate1.json", _gate(False, "CLEAN", raw, FINDINGS))
    _write(run, "gate2.json", _gate(True, "PROCEED", cleaned, []))
    _write(run, "gate3.json", _gate(True, "PROCEED", pg, []))
    _write(run, "metrics.json", metrics)
    _write(run, "clean.json", {
        "tables": {"tickets": {"rows_in": 202, "rows_out": 198, "quarantined": 4, "duplicates_dropped": 2, "changed_cells": 55}},
        "changes": [{"table": "tickets", "column": HOSTILE_COLUMN, "rule": "date_iso", "count": 2044}],
        "quarantine": [{"table": "tickets", "rule": "required_missing", "count": 2}, {"table": "tickets", "rule": "duplicate_dropped", "count": 2}],
        "audit_rows": 4710,
        "date_columns": {
            "tickets.TKT-Closure Date": {"format": "MIXED", "order": "day-first", "ambiguous": False, "inconsistent": True, "read_as": "day-first", "counts": {"day_first": 3, "iso": 192}},
            "timesheets.TS-Date": {"format": "DAY_FIRST", "order": "day-first", "ambiguous": False, "inconsistent": False, "read_as": "day-first", "counts": {"day_first": 1389, "slash_ambiguous": 1193}},
        },
        "orphans": [{"table": "comments", "column": "ticket_id", "target": "tickets.TKT-Ticket ID", "orphans": 34, "references": 2044, "share": 0.0166, "sample": [3583157]}],
        "quality_before": raw, "quality_after": cleaned, "contract_failures": [], "audit_trail": str(run / "audit.jsonl"), "seconds": 2.0,
    })  # fmt: skip
    table = {"name": "tickets", "source_rows": 198, "loaded_rows": 198, "rejected_rows": 0, "checksum_source": "198:5dbba4", "checksum_target": "198:5dbba4", "seconds": 0.18}
    bad = dict(table, name="comments", checksum_target="198:ffffff")
    _write(run, "migrate.json", {
        "run_id": 1, "status": "live", "live_schema": "servicedesk", "version_schema": "servicedesk_v20261127_163948_200",
        "source_sha256": "2679f65f", "tables": [table, bad], "rejects": 0, "canary": [dict(table, source_rows=14, loaded_rows=14)],
        "previous_version": "servicedesk_v20261001_000000_100", "scores": {"canary": {"quality": 100.0, "verdict": "PROCEED"}, "target": 100.0},
        "timings": {"canary": 0.96, "load": 0.28, "validate": 3.79, "cutover": 0.04, "total": 5.1}, "backup_id": "b-20261127", "message": "ok", "rows": 4818,
    })  # fmt: skip
    return run


class _Doc(HTMLParser):
    """Ids, tags and attributes of a document, to check structure without a browser."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)
        self.ids.extend(v for k, v in attrs if k == "id" and v)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(path: Path) -> _Doc:
    doc = _Doc()
    doc.feed(path.read_text(encoding="utf-8"))
    return doc


def _section(html_text: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}">(.*?)</section>', html_text, re.S)
    assert m, sid
    return m.group(1)


def test_full_run_has_every_section_once_in_order(full_run: Path) -> None:
    path = report.write_report(full_run)
    assert path == full_run / "report.html"
    doc = _parse(path)
    section_ids = [i for i in doc.ids if i in SECTION_IDS]
    assert section_ids == SECTION_IDS
    text = path.read_text(encoding="utf-8")
    assert "<svg" in _section(text, "quality") and "<svg" in _section(text, "steps")
    assert "97.87" in _section(text, "quality") and "94.04" in _section(text, "quality")
    assert "servicedesk_v20261127_163948_200" in _section(text, "migration")
    assert "94.9" in _section(text, "metrics")
    assert 'class="missing"' not in text  # a complete run: no section says something did not happen


def test_report_is_self_contained(full_run: Path) -> None:
    doc = _parse(report.write_report(full_run))
    assert "script" not in doc.tags and "link" not in doc.tags and "img" not in doc.tags and "iframe" not in doc.tags
    for key, value in doc.attrs:
        if key in ("src", "href"):
            assert value is not None and value.startswith("#"), (key, value)
    text = (full_run / "report.html").read_text(encoding="utf-8")
    assert "@import" not in text and "url(" not in text
    # The only URL is the SVG namespace, which is a name, not a fetch.
    assert set(re.findall(r"https?://[^\s\"'<>]+", text)) <= {"http://www.w3.org/2000/svg"}


def test_hostile_strings_are_escaped_everywhere(full_run: Path) -> None:
    text = report.write_report(full_run).read_text(encoding="utf-8")
    for raw in (HOSTILE_TABLE, HOSTILE_COLUMN, HOSTILE_MESSAGE, "<i>k</i>"):
        assert raw not in text
    assert "&lt;script&gt;alert(&#x27;t&#x27;)&lt;/script&gt;" in text
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in text
    assert "stopped &amp; &lt;b&gt;bold&lt;/b&gt;" in text
    doc = _parse(full_run / "report.html")
    assert "img" not in doc.tags and doc.tags.count("script") == 0 and "b" not in doc.tags and "i" not in doc.tags


def test_no_personal_data_and_no_samples(full_run: Path) -> None:
    text = report.write_report(full_run).read_text(encoding="utf-8")
    assert "SECRET-SAMPLE-VALUE" not in text and "SECRET-DETAIL-TOKEN" not in text
    assert "jdoe-secret" not in text and "asmith-secret" not in text
    metrics = _section(text, "metrics")
    assert "agent #1" in metrics and "agent #2" in metrics and "86.3" in metrics
    # The timesheet key's username is masked, its other parts kept.
    assert "3578832" in _section(text, "issues") and "personal #" in _section(text, "issues")


def test_personal_metric_columns_are_personal_in_their_contract() -> None:
    from contracts import spec
    from contracts.schemas import contract_for

    for table, column in report.PERSONAL_METRIC_COLUMNS.values():
        schema = contract_for(table)
        assert schema is not None and spec.is_personal(schema.columns[column])


def test_sections_show_the_run_facts(full_run: Path) -> None:
    text = report.write_report(full_run).read_text(encoding="utf-8")
    verdicts = _section(text, "verdicts")
    assert "migrated and validated" in verdicts and "<code>0</code>" in verdicts
    assert verdicts.count("badge green\">passed") == 2 and "badge red\">failed" in verdicts and "CLEAN" in verdicts
    issues = _section(text, "issues")
    assert "TYPE_MISMATCH" in issues and "1.50%" in issues and "5101974-B" in issues
    dates = _section(text, "dates")
    assert "tickets.TKT-Closure Date" in dates and "MIXED" in dates and "1,389" in dates and "3601301" in dates
    cleaning = _section(text, "cleaning")
    assert "4,710" in cleaning and "required_missing" in cleaning and "date_iso" in cleaning and "34" in cleaning
    migration = _section(text, "migration")
    assert "servicedesk_v20261001_000000_100" in migration and "b-20261127" in migration
    assert migration.count("badge green\">match") == 2 and "badge red\">differs" in migration  # canary + tickets match, comments not
    metrics = _section(text, "metrics")
    assert 'class="metric amber" id="metric-1.1"' in metrics and 'class="metric red" id="metric-2.7"' in metrics
    assert "green &gt;= 95, amber &gt;= 90" in metrics and "no comment_quality table" in metrics
    steps = _section(text, "steps")
    assert all(name in steps for name in report.STEP_ORDER) and "not run" not in steps


def _stopped_needs_clean(folder: Path) -> Path:
    folder.mkdir()
    steps = _steps(("ingest", "ok"), ("preflight", "ok"), ("gate1", "failed"))
    raw = _quality(97.87, 94.04)
    _write(folder, "result.json", {"run_id": "run-12", "exit_code": 12, "outcome": "Gate 1 says the data needs cleaning (add --auto-clean)", "message": "Gate 1 (raw data) failed", "steps": steps, "scores": {"raw": raw, "clean": None, "postgres": None}, "metrics": []})
    _write(folder, "gate1.json", _gate(False, "CLEAN", raw, FINDINGS))
    return folder


def test_stopped_early_renders_what_exists_and_says_what_did_not_happen(tmp_path: Path) -> None:
    run = _stopped_needs_clean(tmp_path / "run-12")
    text = report.write_report(run).read_text(encoding="utf-8")
    assert [i for i in _parse(run / "report.html").ids if i in SECTION_IDS] == SECTION_IDS
    assert "exit code <code>12</code>" in _section(text, "verdicts")
    assert "--auto-clean was not given" in _section(text, "cleaning")
    assert "did not happen" in _section(text, "migration") and "exit code 12" in _section(text, "migration")
    assert "No dashboard metrics" in _section(text, "metrics")
    assert "No score after cleaning" in _section(text, "quality") and "97.87" in _section(text, "quality")
    steps = _section(text, "steps")
    assert steps.count("badge grey\">not run") == 4  # clean, gate2, migrate, gate3
    # Date findings of Gate 1 are shown even without the cleaner's decisions.
    assert "INCONSISTENT_DATE_FORMAT" in _section(text, "dates")


def test_killed_run_with_only_progress(tmp_path: Path) -> None:
    run = tmp_path / "run-killed"
    run.mkdir()
    _write(run, "progress.json", {"run_id": "run-killed", "status": "running", "current_step": "gate1", "steps": _steps(("ingest", "ok"), ("preflight", "ok"))})
    text = report.write_report(run).read_text(encoding="utf-8")
    assert [i for i in _parse(run / "report.html").ids if i in SECTION_IDS] == SECTION_IDS
    assert "did not finish" in _section(text, "verdicts") and "gate1" in _section(text, "verdicts")
    assert "killed during step gate1" in _section(text, "migration")
    assert "ingest" in _section(text, "steps") and "4,835 rows" in _section(text, "steps")


def test_a_corrupt_file_is_reported_not_fatal(full_run: Path) -> None:
    (full_run / "migrate.json").write_text("{not json", encoding="utf-8")
    text = report.write_report(full_run).read_text(encoding="utf-8")
    assert "migrate.json" in _section(text, "verdicts") and "JSONDecodeError" in _section(text, "verdicts")
    assert "97.87" in _section(text, "quality")


def test_refresh_replaces_the_file_and_leaves_no_temporary(full_run: Path) -> None:
    first = report.write_report(full_run)
    (full_run / "metrics.json").unlink()
    result = json.loads((full_run / "result.json").read_text())
    result["metrics"] = []
    _write(full_run, "result.json", result)
    second = report.write_report(full_run)
    assert first == second
    assert "No dashboard metrics" in _section(second.read_text(encoding="utf-8"), "metrics")
    assert not list(full_run.glob(".report-*"))


def test_not_a_run_folder_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="does not exist"):
        report.write_report(tmp_path / "nowhere")
    with pytest.raises(InputFileError, match="holds none of a run's files"):
        report.write_report(tmp_path)


def test_cli_writes_and_prints_the_path(full_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(full_run)]) == 0
    assert capsys.readouterr().out.strip() == str((full_run / "report.html").resolve())
    assert main(["report", str(full_run / "missing")]) == 3
    assert "does not exist" in capsys.readouterr().err


def test_quality_chart_draws_one_bar_per_known_value() -> None:
    svg = report.svg_grouped_bars(["a", "b"], [("s1", "#000", [10.0, None]), ("s2", "#111", [100.0, 50.0])], "t <x>")
    assert svg.count("<rect") == 3 + 2  # three bars, two legend swatches
    assert "t &lt;x&gt;" in svg and "<x>" not in svg


def test_a_run_that_needed_no_cleaning_says_so(full_run: Path) -> None:
    """Gate 1 passed: the raw file was migrated as it is, and the report says why there is no cleaning."""
    gate1 = json.loads((full_run / "gate1.json").read_text())
    gate1.update(passed=True, verdict="PROCEED", failed=[])
    _write(full_run, "gate1.json", gate1)
    (full_run / "clean.json").unlink()
    (full_run / "gate2.json").unlink()
    result = json.loads((full_run / "result.json").read_text())
    result["steps"] = [s for s in result["steps"] if s["name"] not in ("clean", "gate2")]
    result["scores"]["clean"] = None
    _write(full_run, "result.json", result)
    text = report.write_report(full_run).read_text(encoding="utf-8")
    assert "not needed: Gate 1 passed" in _section(text, "cleaning")
    assert "not needed: Gate 1 passed" in _section(text, "verdicts")  # the Gate 2 line
    assert "INCONSISTENT_DATE_FORMAT" in _section(text, "dates")  # the profile's date findings remain


def test_failed_preflight_checks_are_listed_with_their_fix(tmp_path: Path) -> None:
    run = tmp_path / "run-10"
    run.mkdir()
    steps = _steps(("ingest", "ok"), ("preflight", "ok"))
    steps[1]["detail"] = {
        "status": "FAIL",
        "checks": [
            {"name": "memory", "status": "PASS", "details": "22,520 MiB available", "remedy": ""},
            {"name": "create_schema", "status": "FAIL", "details": "role etl may not create schemas in database sd", "remedy": "as an administrator: GRANT CREATE ON DATABASE sd TO etl;"},
        ],
    }
    _write(run, "result.json", {"run_id": "run-10", "exit_code": 10, "outcome": "preflight failed", "message": "preflight failed: create_schema", "steps": steps, "scores": {}, "metrics": []})
    text = report.write_report(run).read_text(encoding="utf-8")
    steps_html = _section(text, "steps")
    assert 'badge red">FAIL' in steps_html and "GRANT CREATE ON DATABASE sd TO etl;" in steps_html
    assert steps_html.count('badge grey">not run') == 5  # gate1, clean, gate2, migrate, gate3
    assert "No gate report" in _section(text, "issues")

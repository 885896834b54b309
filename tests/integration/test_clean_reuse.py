"""The cleaner's shortcuts give the same result as the long way.

- a Gate 1 profile handed over (``CleanConfig.profile``) instead of profiling the
  source again: used only when it is a profile of that very file;
- the output's contract checks in a second process beside its profile.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from pipeline import clean
from pipeline.config import Settings
from pipeline.profile import ProfileConfig
from pipeline.profile import run as profile_run

TODAY = date(2026, 11, 27)


def _clean(source: Path, out: Path, **kw: Any) -> clean.CleanResult:
    return clean.run(clean.CleanConfig(source=source, out=out, settings=Settings(), today=TODAY, progress=False, **kw))


def _same(a: clean.CleanResult, b: clean.CleanResult) -> None:
    for name in ("tables", "changes", "quarantine", "audit_rows", "date_columns", "ambiguous_date_columns", "orphans",
                 "quality_before", "quality_after", "contract_failures", "source_sha256"):
        assert getattr(a, name) == getattr(b, name), name


@pytest.fixture(scope="module")
def reference(raw_db: Path, tmp_path_factory: pytest.TempPathFactory) -> clean.CleanResult:
    return _clean(raw_db, tmp_path_factory.mktemp("reference") / "clean.db")


def test_a_profile_of_the_source_is_used_and_changes_nothing(raw_db: Path, reference: clean.CleanResult, tmp_path: Path, caplog):
    profile_json = tmp_path / "profile.json"
    profile_run(ProfileConfig(raw_db, profile_json, Settings()))
    with caplog.at_level(logging.INFO, logger="pipeline.clean"):
        result = _clean(raw_db, tmp_path / "clean.db", profile=profile_json)
    assert any("using the given Gate 1 profile" in r.getMessage() for r in caplog.records)
    _same(result, reference)


def test_a_gate_report_holding_the_profile_is_used(raw_db: Path, reference: clean.CleanResult, tmp_path: Path, caplog):
    profile_json = tmp_path / "profile.json"
    profile_run(ProfileConfig(raw_db, profile_json, Settings()))
    report = tmp_path / "gate1.json"
    report.write_text(json.dumps({"format": "gate", "profile": json.loads(profile_json.read_text())}))
    with caplog.at_level(logging.INFO, logger="pipeline.clean"):
        result = _clean(raw_db, tmp_path / "clean.db", profile=report)
    assert any("using the given Gate 1 profile" in r.getMessage() for r in caplog.records)
    _same(result, reference)


def test_a_profile_of_another_file_is_not_used(raw_db: Path, clean_raw_db: Path, reference: clean.CleanResult, tmp_path: Path, caplog):
    other = tmp_path / "other.json"
    profile_run(ProfileConfig(clean_raw_db, other, Settings()))
    with caplog.at_level(logging.WARNING, logger="pipeline.clean"):
        result = _clean(raw_db, tmp_path / "clean.db", profile=other)
    assert any("SHA-256 differs" in r.getMessage() for r in caplog.records)
    _same(result, reference)


def test_a_profile_without_column_profiles_is_not_used(raw_db: Path, reference: clean.CleanResult, tmp_path: Path, caplog):
    profile_json = tmp_path / "profile.json"
    profile_run(ProfileConfig(raw_db, profile_json, Settings()))
    data = json.loads(profile_json.read_text())
    for table in data["tables"].values():
        del table["columns"]
    profile_json.write_text(json.dumps(data))
    with pytest.raises(clean.InputFileError):
        clean.profile_from_json(data)
    with caplog.at_level(logging.WARNING, logger="pipeline.clean"):
        result = _clean(raw_db, tmp_path / "clean.db", profile=profile_json)
    assert any("is not used" in r.getMessage() for r in caplog.records)
    _same(result, reference)


def test_contract_checks_in_a_second_process_give_the_same_result(raw_db: Path, reference: clean.CleanResult, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(clean, "PARALLEL_GATE_ROWS", 0)
    result = _clean(raw_db, tmp_path / "clean.db")
    _same(result, reference)
    assert (tmp_path / "clean.db").exists()


@pytest.mark.parametrize("how", ["spawned", "forked"])
def test_a_failing_contract_process_fails_the_run_and_leaves_nothing(raw_db: Path, tmp_path: Path, monkeypatch, how: str):
    import os

    from contracts import report

    monkeypatch.setattr(clean, "PARALLEL_GATE_ROWS", 0)
    if how == "spawned":  # no Python to start
        monkeypatch.setattr(report, "_CAN_FORK", False)
        monkeypatch.setattr(clean.sys, "executable", str(tmp_path / "no-such-python"))
        expected: type[Exception] = OSError
    else:  # the forked child dies without an answer
        if not report._CAN_FORK:
            pytest.skip("the contract checks are forked on Linux only")
        monkeypatch.setattr(report, "_alone", lambda: True)  # forked even beside the clean's fsync thread
        monkeypatch.setattr(report, "_executed", lambda *a: os._exit(3))
        expected = RuntimeError
    with pytest.raises(expected):
        _clean(raw_db, tmp_path / "clean.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_command_takes_a_profile(raw_db: Path, tmp_path: Path, caplog):
    import argparse

    profile_json = tmp_path / "profile.json"
    profile_run(ProfileConfig(raw_db, profile_json, Settings()))
    parser = argparse.ArgumentParser()
    clean.add_arguments(parser)
    args = parser.parse_args(["--source", str(raw_db), "--out", str(tmp_path / "clean.db"), "--profile", str(profile_json), "--json", str(tmp_path / "r.json")])
    with caplog.at_level(logging.INFO, logger="pipeline.clean"):
        assert clean.command(args, Settings()) == 0
    assert any("using the given Gate 1 profile" in r.getMessage() for r in caplog.records)
    result = json.loads((tmp_path / "r.json").read_text())
    given = json.loads(profile_json.read_text())["quality"]
    assert result["quality_before"]["score"] == given["score"] and result["quality_before"]["dimensions"] == given["dimensions"]

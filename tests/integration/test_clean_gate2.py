"""Gate 2 inside the clean (``CleanConfig.gate_report`` / ``gate_junitxml`` / ``gate_log``):
the files and the verdict are what ``contracts.gate.run_gate`` makes of the cleaned file,
so ``servicedesk-etl run`` need not check the file a second time."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from contracts.gate import run_gate
from pipeline import clean
from pipeline.config import Settings
from pipeline.errors import GateFailed


def _clean(source: Path, out: Path, **kw: Any) -> clean.CleanResult:
    return clean.run(clean.CleanConfig(source=source, out=out, settings=Settings(), progress=False, **kw))


def _report(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    data.pop("created", None)
    profile = data.get("profile") or {}
    profile.pop("created", None)
    for table in profile.get("tables", {}).values():  # HyperLogLog estimates: salted per process
        for col in table["columns"].values():
            if col.get("distinct_estimated"):
                col.pop("distinct_count", None)
    return data


def _junit(path: Path) -> str:
    return re.sub(r'(time|timestamp|hostname)="[^"]*"', "", path.read_text(encoding="utf-8"))


def test_gate2_files_and_verdict_are_run_gates_own(raw_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "clean.db"
    files = {"gate_report": tmp_path / "gate2.json", "gate_junitxml": tmp_path / "gate2-junit.xml", "gate_log": tmp_path / "gate2.log"}
    result = _clean(raw_db, out, **files)
    reference = _clean(raw_db, tmp_path / "reference.db")
    for name in ("tables", "changes", "quarantine", "audit_rows", "quality_before", "quality_after", "contract_failures"):
        assert getattr(result, name) == getattr(reference, name), name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.db", "gate2-junit.xml", "gate2.json", "gate2.log", "reference.db"]
    own = run_gate(source=out, settings=Settings(), junitxml=tmp_path / "own-junit.xml", report=tmp_path / "own.json", output=tmp_path / "own.log")
    assert result.gate is not None
    assert (result.gate.passed, result.gate.exit_code, result.gate.failed, result.gate.warned, result.gate.quality, result.gate.verdict) == (
        own.passed, own.exit_code, own.failed, own.warned, own.quality, own.verdict)
    assert _report(files["gate_report"]) == _report(tmp_path / "own.json")
    assert _junit(files["gate_junitxml"]) == _junit(tmp_path / "own-junit.xml")
    for path in files.values():
        assert clean.GATE_MARK not in path.read_text(encoding="utf-8")
    assert json.loads(json.dumps(result.to_json()))["gate"]["passed"] == own.passed


def test_a_failing_clean_writes_no_gate_files(raw_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "clean.db"
    with pytest.raises(GateFailed):
        _clean(raw_db, out, quality_threshold=101, gate_report=tmp_path / "gate2.json", gate_junitxml=tmp_path / "gate2-junit.xml")
    assert list(tmp_path.iterdir()) == []


def test_a_gate_folder_left_by_a_killed_run_is_removed(raw_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "clean.db"
    stale = tmp_path / f".clean.db{clean.GATE_MARK}999999999"
    stale.mkdir()
    (stale / "clean.db").write_bytes(b"")
    _clean(raw_db, out, gate_report=tmp_path / "gate2.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.db", "gate2.json"]

"""Retention of run folders: databases after 7 days, whole runs after 30, latest success kept."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from pipeline.cli import main
from pipeline.config import Retention
from pipeline.retention import prune_runs

DAY = 86400


def make_run(runs: Path, name: str, age_days: float, exit_code: int = 0) -> Path:
    d = runs / name
    d.mkdir(parents=True)
    for f in ("raw.db", "clean.db", "audit.jsonl", "report.html"):
        (d / f).write_text("x" * 100)
    (d / "state.json").write_text("{}")
    (d / "result.json").write_text(json.dumps({"exit_code": exit_code}))
    stamp = time.time() - age_days * DAY
    os.utime(d / "result.json", (stamp, stamp))
    return d


def test_operational_then_archival(tmp_path):
    runs = tmp_path / "runs"
    fresh = make_run(runs, "fresh", 1)
    week = make_run(runs, "week", 10, exit_code=11)
    old = make_run(runs, "old", 40, exit_code=12)
    report = prune_runs(runs, Retention(7, 30))
    assert report.folders_removed == [str(old)] and not old.exists()
    assert not (week / "raw.db").exists() and not (week / "clean.db").exists()
    assert (week / "audit.jsonl").exists() and (week / "report.html").exists()  # the archival record stays
    assert (fresh / "raw.db").exists()
    assert report.bytes_freed == 4 * 100 + len('{"exit_code": 12}') + 2 + 2 * 100


def test_latest_success_is_never_pruned(tmp_path):
    runs = tmp_path / "runs"
    only = make_run(runs, "only", 90)
    failed_later = make_run(runs, "failed", 60, exit_code=13)
    report = prune_runs(runs, Retention(7, 30))
    assert only.exists() and (only / "raw.db").exists()
    assert not failed_later.exists()
    assert report.kept_latest == str(only)


def test_dry_run_removes_nothing(tmp_path):
    runs = tmp_path / "runs"
    make_run(runs, "newer", 1)
    old = make_run(runs, "old", 40)
    report = prune_runs(runs, Retention(7, 30), dry_run=True)
    assert report.folders_removed == [str(old)] and old.exists()


def test_cli(tmp_path, capsys):
    runs = tmp_path / "runs"
    make_run(runs, "new", 0)
    make_run(runs, "old", 45)
    code = main(["prune", "--workdir", str(runs), "--backups", str(tmp_path / "bk")])
    out = capsys.readouterr().out
    assert code == 0 and "removed 1 run folders" in out
    assert not (runs / "old").exists()

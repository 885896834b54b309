"""Retention of run folders, audit trails and backups: ``servicedesk-etl prune``.

A run folder holds two kinds of things. Its databases (``raw.db``, ``clean.db``) are
*operational*: needed to resume or debug a recent run, large, and holding the data
itself; they go after ``retention.operational_days`` (7). Its record (gate reports and
JUnit XML, ``audit.jsonl``, ``result.json``, ``report.html``, metrics, logs) is
*archival*: the trail an auditor asks for; the whole folder goes after
``retention.archival_days`` (30). Backups follow their own catalog's retention
(``pipeline.backup.prune``). The newest successful run is never pruned.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config import Retention, Settings

log = logging.getLogger(__name__)

OPERATIONAL_FILES = ("raw.db", "clean.db")
DAY = 86400.0


@dataclass
class PruneReport:
    folders_removed: list[str] = field(default_factory=list)
    files_removed: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    kept_latest: str | None = None
    backups_removed: list[str] = field(default_factory=list)
    dry_run: bool = False


def _finished_at(run_dir: Path) -> float:
    """When the run ended: result.json's time, else the folder's."""
    result = run_dir / "result.json"
    return (result if result.exists() else run_dir).stat().st_mtime


def _succeeded(run_dir: Path) -> bool:
    try:
        return json.loads((run_dir / "result.json").read_text()).get("exit_code") == 0
    except (OSError, ValueError):
        return False


def prune_runs(runs_dir: Path, retention: Retention, *, now: float | None = None, dry_run: bool = False) -> PruneReport:
    """Apply retention to the run folders under ``runs_dir``."""
    moment = time.time() if now is None else now
    report = PruneReport(dry_run=dry_run)
    if not runs_dir.is_dir():
        return report
    runs = sorted(
        (p for p in runs_dir.iterdir() if p.is_dir() and ((p / "state.json").exists() or (p / "result.json").exists())),
        key=_finished_at,
    )
    latest_ok = next((p for p in reversed(runs) if _succeeded(p)), None)
    report.kept_latest = str(latest_ok) if latest_ok else None
    for run_dir in runs:
        if run_dir == latest_ok:
            continue
        age_days = (moment - _finished_at(run_dir)) / DAY
        if age_days > retention.archival_days:
            size = sum(f.stat().st_size for f in run_dir.rglob("*") if f.is_file())
            report.folders_removed.append(str(run_dir))
            report.bytes_freed += size
            if not dry_run:
                shutil.rmtree(run_dir)
        elif age_days > retention.operational_days:
            for name in OPERATIONAL_FILES:
                f = run_dir / name
                if f.exists():
                    report.files_removed.append(str(f))
                    report.bytes_freed += f.stat().st_size
                    if not dry_run:
                        f.unlink()
    for path in report.folders_removed + report.files_removed:
        log.info("pruned" if not dry_run else "would prune", extra={"path": path})
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", type=Path, default=Path(".servicedesk") / "runs", help="the run folders (default .servicedesk/runs)")
    parser.add_argument("--backups", type=Path, default=None, help="the backups folder (default .servicedesk/backups)")
    parser.add_argument("--dry-run", action="store_true", help="only say what would be removed")


def command(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.backup import DEFAULT_BACKUPS_DIR, prune

    report = prune_runs(args.workdir, settings.retention, dry_run=args.dry_run)
    backups = prune(args.backups or DEFAULT_BACKUPS_DIR, settings.retention, dry_run=args.dry_run)
    report.backups_removed = [r.id for r in backups.removed]
    verb = "would remove" if args.dry_run else "removed"
    r = settings.retention
    print(f"retention: databases of runs older than {r.operational_days} days, whole runs older than {r.archival_days} days")
    for path in report.folders_removed:
        print(f"  {verb} run folder {path}")
    for path in report.files_removed:
        print(f"  {verb} {path}")
    for backup_id in report.backups_removed:
        print(f"  {verb} backup {backup_id}")
    if report.kept_latest:
        print(f"  kept the latest successful run {report.kept_latest}")
    print(f"{verb} {len(report.folders_removed)} run folders, {len(report.files_removed)} databases, "
          f"{len(report.backups_removed)} backups; {report.bytes_freed / 1e6:,.1f} MB of run data")
    return 0

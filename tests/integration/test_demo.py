"""The README's main job: ``servicedesk-etl demo`` from a clean, empty folder.

Run as an operator runs it: the installed command, as a subprocess, in an empty
working folder, into the embedded PostgreSQL server (no ``--target``). The server's data
folder is made under /tmp (as root the server runs as an unprivileged account that must
traverse its parents; pytest's 0700 temporary folders would refuse it) and the server
is stopped with ``servicedesk-etl db stop`` at the end.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

_SCRIPT = Path(sys.executable).with_name("servicedesk-etl")
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "pipeline"]


@pytest.fixture
def data_dir():
    folder = Path(tempfile.mkdtemp(prefix="sdetl-demo-pg-", dir="/tmp"))
    try:
        yield folder / "pg"
    finally:
        stop = subprocess.run([*CLI, "db", "stop", "--data-dir", str(folder / "pg")], capture_output=True, text=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)
        assert stop.returncode == 0, stop.stdout + stop.stderr


def test_demo_from_an_empty_folder(tmp_path: Path, data_dir: Path) -> None:
    workdir = tmp_path / "fresh"
    workdir.mkdir()
    proc = subprocess.run(
        [*CLI, "demo", "--tickets", "100", "--data-dir", str(data_dir)],
        cwd=workdir, capture_output=True, text=True, timeout=900,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "Traceback" not in out + proc.stderr

    # the gate verdicts, step by step
    steps = dict(re.findall(r"^\s+(\w+)\s+(ok|failed|reused)\s", out, re.M))
    assert steps == {"ingest": "ok", "preflight": "ok", "gate1": "failed", "clean": "ok", "gate2": "ok", "migrate": "ok", "gate3": "ok"}
    assert re.search(r"gate1 .*verdict CLEAN", out) and re.search(r"gate2 .*verdict PROCEED", out)
    # the quality scores before and after: the cleaned and migrated data score higher
    scores = re.search(r"quality score\s+raw ([\d.]+)\s+cleaned ([\d.]+)\s+postgres ([\d.]+)", out)
    assert scores, out
    raw, cleaned, migrated = map(float, scores.groups())
    assert raw < cleaned <= 100 and migrated >= cleaned - 0.5
    # the dashboard metrics, each with its value and colour band
    metrics = re.findall(r"^\s+(\d+\.\d+)\s+.+?\s+[\d.]+ .*\[(green|amber|red|n/a)\]$", out, re.M)
    assert len(metrics) >= 3, out
    assert re.search(r"^done: live", out, re.M)

    # everything it made is under the folder it ran in (and the server's data folder)
    made = [p for p in workdir.iterdir()]
    assert made == [workdir / ".servicedesk"]
    (demo,) = (workdir / ".servicedesk" / "demo").iterdir()
    assert {"tickets.xlsx", "comments.xlsx", "timesheets.xlsx", "manifest.json"} <= {p.name for p in demo.iterdir()}
    (run_dir,) = (demo / "runs").iterdir()
    assert json.loads((run_dir / "result.json").read_text())["exit_code"] == 0
    assert (run_dir / "metrics.prom").stat().st_size > 0

    # the connection command it prints works against the server it left running
    url = subprocess.run([*CLI, "db", "url", "--data-dir", str(data_dir)], cwd=workdir, capture_output=True, text=True, timeout=120)
    assert url.returncode == 0 and url.stdout.startswith("postgresql://")

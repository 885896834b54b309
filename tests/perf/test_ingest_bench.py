"""Benchmark: ingest of generated sample exports, against an openpyxl read-only pass.

Size: ``SERVICEDESK_BENCH_TICKETS`` tickets (default 300; the reference proportions give
about 10 comments and 12.9 timesheet rows per ticket, so 20,000 tickets is about 470K
rows). Run with ``pytest tests/perf/test_ingest_bench.py --benchmark-only``.

Recorded in ``benchmark.extra_info``: rows, workbook bytes, the peak memory of an
ingest run alone in a child process (``peak_rss_mb``; the pytest process's own peak
includes sample generation), the seconds of one openpyxl read-only pass over the same
three workbooks (the issue's baseline reader) and the ratio of ingest to it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

TICKETS = int(os.environ.get("SERVICEDESK_BENCH_TICKETS", "300"))
WORKBOOKS = ("tickets", "comments", "timesheets")

pytestmark = pytest.mark.perf


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pipeline.sample import generate

    folder = tmp_path_factory.mktemp(f"bench_{TICKETS}")
    generate(folder, tickets=TICKETS, seed=11, clean=False)
    return folder


def _openpyxl_pass(folder: Path) -> tuple[float, int]:
    import openpyxl

    started = time.perf_counter()
    rows = 0
    for name in WORKBOOKS:
        book = openpyxl.load_workbook(folder / f"{name}.xlsx", read_only=True)
        try:
            for _ in book.worksheets[0].iter_rows(values_only=True):
                rows += 1
        finally:
            book.close()
    return time.perf_counter() - started, rows


# The child reports VmHWM, the peak of its own address space: ru_maxrss survives exec
# on Linux, so a child of this (large) pytest process would report the parent's peak.
_CHILD = """
import json, sys
from pathlib import Path
from pipeline.config import Settings
from pipeline.ingest import IngestConfig, run

def vm_hwm_mb():
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None

folder, out = Path(sys.argv[1]), Path(sys.argv[2])
before = vm_hwm_mb()
result = run(IngestConfig(folder / "tickets.xlsx", folder / "comments.xlsx", folder / "timesheets.xlsx", out, Settings()))
peak = vm_hwm_mb()
print(json.dumps({"peak_rss_mb": round(peak if peak is not None else result.peak_rss_mb, 1),
                  "after_imports_mb": round(before, 1) if before is not None else None,
                  "seconds": result.seconds}))
"""


def _ingest_in_child(folder: Path, out: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", _CHILD, str(folder), str(out)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_ingest_benchmark(benchmark, exports: Path, tmp_path: Path) -> None:
    from pipeline.config import Settings
    from pipeline.ingest import IngestConfig, run

    out = tmp_path / "raw.db"

    def ingest() -> object:
        return run(
            IngestConfig(exports / "tickets.xlsx", exports / "comments.xlsx", exports / "timesheets.xlsx", out, Settings())
        )

    result = benchmark.pedantic(ingest, rounds=1, iterations=1, warmup_rounds=0)
    rows = sum(result.rows_read.values())  # type: ignore[attr-defined]
    manifest = json.loads((exports / "manifest.json").read_text())
    assert result.rows_imported == manifest["rows"]  # type: ignore[attr-defined]

    child = _ingest_in_child(exports, tmp_path / "child.db")
    baseline_seconds, baseline_rows = _openpyxl_pass(exports)
    assert baseline_rows == rows + len(WORKBOOKS)  # openpyxl also returns the header rows
    ingest_seconds = benchmark.stats.stats.mean
    benchmark.extra_info.update(
        {
            "tickets": TICKETS,
            "rows": rows,
            "workbook_bytes": sum((exports / f"{n}.xlsx").stat().st_size for n in WORKBOOKS),
            "peak_rss_mb": child["peak_rss_mb"],
            "rss_after_imports_mb": child["after_imports_mb"],
            "openpyxl_read_only_seconds": round(baseline_seconds, 3),
            "ratio_to_openpyxl_read_only": round(ingest_seconds / baseline_seconds, 3),
            "rows_per_second": round(rows / ingest_seconds),
        }
    )

"""Benchmark: ingest of generated sample exports, against reading the same workbooks.

Size: ``SERVICEDESK_BENCH_TICKETS`` tickets (default 300; the reference proportions give
about 10 comments and 12.9 timesheet rows per ticket, so 10,900 tickets is about 260K
rows). ``SERVICEDESK_BENCH_EXPORTS=folder`` benchmarks workbooks generated before
(``tickets.xlsx``, ``comments.xlsx``, ``timesheets.xlsx`` and ``manifest.json``, as
``pipeline.sample.generate`` writes them; 1M rows take minutes to generate). Run with
``pytest tests/perf/test_ingest_bench.py --benchmark-only``.

The ingest timed is one ``pipeline.ingest.run`` in a child process (so that its CPU
time, its worker's included, and its peak memory are its own). Recorded in
``benchmark.extra_info``: rows, workbook bytes, ``ingest_seconds`` (measured inside the
child: interpreter start and imports left out), ``cpu_seconds`` (user + system of the
child and its timesheets worker: with the worker, wall time is below CPU time),
``peak_rss_mb`` (the parent's peak plus the worker's: an upper bound of the memory
in use at once), and two baselines timed in this process on the same workbooks: one
pass of ``pipeline.xlsx`` alone (every row of the three first sheets, no SQLite) and,
unless ``SERVICEDESK_BENCH_OPENPYXL=0``, one openpyxl read-only pass (the issue's
baseline reader, about 4x slower than ingest), with the ratios of ingest to each.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

TICKETS = int(os.environ.get("SERVICEDESK_BENCH_TICKETS", "300"))
EXPORTS = os.environ.get("SERVICEDESK_BENCH_EXPORTS")
OPENPYXL = os.environ.get("SERVICEDESK_BENCH_OPENPYXL", "1") != "0"
WORKBOOKS = ("tickets", "comments", "timesheets")

pytestmark = pytest.mark.perf


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if EXPORTS:
        return Path(EXPORTS)
    from pipeline.sample import generate

    folder = tmp_path_factory.mktemp(f"bench_{TICKETS}")
    generate(folder, tickets=TICKETS, seed=11, clean=False)
    return folder


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def _openpyxl_pass(folder: Path) -> tuple[float, float, int]:
    import openpyxl

    started, cpu = time.perf_counter(), _cpu()
    rows = 0
    for name in WORKBOOKS:
        book = openpyxl.load_workbook(folder / f"{name}.xlsx", read_only=True)
        try:
            for _ in book.worksheets[0].iter_rows(values_only=True):
                rows += 1
        finally:
            book.close()
    return time.perf_counter() - started, _cpu() - cpu, rows


def _reader_pass(folder: Path) -> tuple[float, float, int]:
    """The floor: our reader alone, every row of the three sheets, nothing stored."""
    from pipeline.xlsx import open_first_sheet

    started, cpu = time.perf_counter(), _cpu()
    rows = 0
    for name in WORKBOOKS:
        with open_first_sheet(folder / f"{name}.xlsx") as sheet:
            for batch in sheet.batches(10_000):
                rows += len(batch)
    return time.perf_counter() - started, _cpu() - cpu, rows


# The child reports VmHWM, the peak of its own address space: ru_maxrss survives exec
# on Linux, so a child of this (large) pytest process would report the parent's peak.
_CHILD = """
import json, resource, sys
from pathlib import Path
from pipeline.config import Settings
from pipeline.ingest import IngestConfig, run

def cpu():
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

folder, out = Path(sys.argv[1]), Path(sys.argv[2])
before = cpu()
result = run(IngestConfig(folder / "tickets.xlsx", folder / "comments.xlsx", folder / "timesheets.xlsx", out, Settings()))
print(json.dumps({"peak_rss_mb": result.peak_rss_mb, "seconds": result.seconds, "cpu_seconds": round(cpu() - before, 2),
                  "rows_read": result.rows_read, "rows_imported": result.rows_imported}))
"""


def _ingest_in_child(folder: Path, out: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", _CHILD, str(folder), str(out)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_ingest_benchmark(benchmark, exports: Path, tmp_path: Path) -> None:
    out = tmp_path / "raw.db"
    child: dict = {}

    def ingest() -> None:
        child.update(_ingest_in_child(exports, out))

    benchmark.pedantic(ingest, rounds=1, iterations=1, warmup_rounds=0)
    rows = sum(child["rows_read"].values())
    manifest = json.loads((exports / "manifest.json").read_text())
    assert child["rows_imported"] == manifest["rows"]
    out.unlink()

    reader_seconds, reader_cpu, reader_rows = _reader_pass(exports)
    assert reader_rows == rows
    ingest_seconds = child["seconds"]
    info = {
        "tickets": manifest.get("tickets", TICKETS),
        "rows": rows,
        "workbook_bytes": sum((exports / f"{n}.xlsx").stat().st_size for n in WORKBOOKS),
        "ingest_seconds": ingest_seconds,
        "cpu_seconds": child["cpu_seconds"],
        "peak_rss_mb": child["peak_rss_mb"],
        "reader_seconds": round(reader_seconds, 3),
        "reader_cpu_seconds": round(reader_cpu, 3),
        "ratio_to_reader": round(ingest_seconds / reader_seconds, 3),
        "cpu_ratio_to_reader": round(child["cpu_seconds"] / reader_cpu, 3),
        "rows_per_second": round(rows / ingest_seconds),
    }
    if OPENPYXL:
        baseline_seconds, baseline_cpu, baseline_rows = _openpyxl_pass(exports)
        assert baseline_rows == rows + len(WORKBOOKS)  # openpyxl also returns the header rows
        info.update(
            openpyxl_read_only_seconds=round(baseline_seconds, 3),
            openpyxl_read_only_cpu_seconds=round(baseline_cpu, 3),
            ratio_to_openpyxl_read_only=round(ingest_seconds / baseline_seconds, 3),
            cpu_ratio_to_openpyxl_read_only=round(child["cpu_seconds"] / baseline_cpu, 3),
        )
    benchmark.extra_info.update(info)

"""Benchmark: clean of a generated and ingested database, against a bare scan of it.

Size: ``SERVICEDESK_BENCH_TICKETS`` tickets (default 300; about 23 rows per ticket in
the reference proportions, so 11,300 tickets is about 260K rows, 22,600 about 520K and
43,500 about 1M). Run with ``pytest tests/perf/test_clean_bench.py --benchmark-only``.

``SERVICEDESK_BENCH_RAW_DB=path`` benchmarks an already ingested database instead
(generating and ingesting 1M rows takes minutes).

What is timed is the clean as ``servicedesk-etl run`` does it: after Gate 1, with Gate
1's profile of the source handed over (``CleanConfig.profile``; the profile itself is
made in the fixture, untimed). Recorded in ``benchmark.extra_info``: rows, database
bytes, the seconds of a bare ``SELECT *`` scan of every table of the same database (rows
fetched into Python, in batches), the ratio of the clean to it, the clean's phases
(build, profile of the output, contract checks), the seconds of a standalone clean
(``servicedesk-etl clean``, which profiles the source itself; skipped with
``SERVICEDESK_BENCH_STANDALONE=0``) and its ratio, and the peak memory of a clean
alone in a child process, with and without the contract-checking process it starts
(the pytest process's own peak includes sample generation).
"""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

TICKETS = int(os.environ.get("SERVICEDESK_BENCH_TICKETS", "300"))
RAW_DB = os.environ.get("SERVICEDESK_BENCH_RAW_DB")
STANDALONE = os.environ.get("SERVICEDESK_BENCH_STANDALONE", "1") != "0"

pytestmark = pytest.mark.perf


@pytest.fixture(scope="module")
def gate1_profile(bench_raw_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Gate 1's profile of the database, as ``servicedesk-etl run`` has it before cleaning."""
    from pipeline.config import Settings
    from pipeline.profile import ProfileConfig, run

    out = tmp_path_factory.mktemp("gate1") / "profile.json"
    run(ProfileConfig(bench_raw_db, out, Settings()))
    return out


@pytest.fixture(scope="module")
def bench_raw_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pipeline.config import Settings
    from pipeline.ingest import IngestConfig, run
    from pipeline.sample import generate

    if RAW_DB:
        return Path(RAW_DB)
    folder = tmp_path_factory.mktemp(f"clean_bench_{TICKETS}")
    generate(folder, tickets=TICKETS, seed=11, clean=False)
    out = folder / "raw.db"
    run(IngestConfig(folder / "tickets.xlsx", folder / "comments.xlsx", folder / "timesheets.xlsx", out, Settings()))
    return out


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the clean's contract checker)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def bare_scan(db: Path) -> tuple[float, int]:
    """Seconds to read every row of every table into Python, as the cleaner must."""
    started = time.perf_counter()
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    rows = 0
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        for table in tables:
            cur = conn.execute(f'SELECT * FROM "{table}"')
            while batch := cur.fetchmany(10_000):
                rows += len(batch)
    finally:
        conn.close()
    return time.perf_counter() - started, rows


# Peak memory is sampled in the child: ru_maxrss survives fork and exec on Linux, so
# a child started by a big pytest process would report the parent's size.
_CHILD = """
import json, sys, threading, time
import psutil
from pathlib import Path
proc = psutil.Process()
peak = [0, 0]  # this process; this process and its children (the contract checker)
def sample():
    # reads /proc only, holding no lock a forked child needs: the clean still forks (pipeline.child.alone)
    threading.current_thread().fork_safe = True
    while True:
        own = proc.memory_info().rss
        total = own
        for child in proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        peak[0] = max(peak[0], own)
        peak[1] = max(peak[1], total)
        time.sleep(0.02)
threading.Thread(target=sample, daemon=True).start()
from pipeline.clean import CleanConfig, run
from pipeline.config import Settings
time.sleep(0.05)
after_imports = peak[0]
result = run(CleanConfig(source=Path(sys.argv[1]), out=Path(sys.argv[2]), settings=Settings(), progress=False, profile=Path(sys.argv[3])))
time.sleep(0.05)
mb = 1024 * 1024
print(json.dumps({"peak_rss_mb": round(peak[0] / mb, 1), "peak_rss_with_children_mb": round(peak[1] / mb, 1), "after_imports_mb": round(after_imports / mb, 1), "seconds": result.seconds, "phases": result.phases}))
"""


def _clean_in_child(source: Path, out: Path, profile: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", _CHILD, str(source), str(out), str(profile)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_clean_benchmark(benchmark, bench_raw_db: Path, gate1_profile: Path, tmp_path: Path) -> None:
    from pipeline.clean import CleanConfig, run
    from pipeline.config import Settings

    out = tmp_path / "clean.db"

    def clean_once(profile: Path | None) -> object:
        if out.exists():
            out.unlink()
        return run(CleanConfig(source=bench_raw_db, out=out, settings=Settings(), progress=False, profile=profile))

    # Imported by Gate 1 already in a pipeline run: not timed here. pandera's pandas check
    # backend pulls in hypothesis (82 modules), which this pytest process would rewrite
    # for assertions on import (hypothesis is a pytest plugin distribution): ~1.2 s of
    # CPU no clean outside pytest pays.
    import contracts.executor  # noqa: F401
    import pandera.backends.pandas.builtin_checks  # noqa: F401

    cpu = _cpu()
    scan_seconds, scan_rows = bare_scan(bench_raw_db)
    scan_cpu = _cpu() - cpu
    cpu = _cpu()
    result = benchmark.pedantic(clean_once, args=(gate1_profile,), rounds=1, iterations=1, warmup_rounds=0)
    clean_cpu = _cpu() - cpu
    rows = sum(t.rows_in for t in result.tables.values())  # type: ignore[attr-defined]
    assert result.quality_after["score"] >= result.threshold  # type: ignore[attr-defined]
    assert scan_rows == rows
    clean_seconds = benchmark.stats.stats.mean
    info: dict = {
        "tickets": None if RAW_DB else TICKETS,
        "rows": rows,
        "database_bytes": bench_raw_db.stat().st_size,
        "bare_scan_seconds": round(scan_seconds, 3),
        "ratio_to_bare_scan": round(clean_seconds / scan_seconds, 2),
        "rows_per_second": round(rows / clean_seconds),
        # CPU seconds (with the contract-checking child): steadier than wall time on a shared machine
        "bare_scan_cpu_seconds": round(scan_cpu, 3),
        "cpu_seconds": round(clean_cpu, 3),
        "cpu_ratio_to_bare_scan": round(clean_cpu / scan_cpu, 2),
        "phases": result.phases,  # type: ignore[attr-defined]
        "audit_rows": result.audit_rows,  # type: ignore[attr-defined]
    }
    if STANDALONE:  # the clean command alone: it profiles the source itself
        started, cpu = time.perf_counter(), _cpu()
        alone = clean_once(None)
        alone_seconds, alone_cpu = time.perf_counter() - started, _cpu() - cpu
        # the same scores either way: Gate 1's profile stands for the one made here
        assert alone.quality_before == result.quality_before and alone.quality_after == result.quality_after  # type: ignore[attr-defined]
        info.update(
            standalone_seconds=round(alone_seconds, 3),
            standalone_ratio_to_bare_scan=round(alone_seconds / scan_seconds, 2),
            standalone_cpu_seconds=round(alone_cpu, 3),
            standalone_cpu_ratio_to_bare_scan=round(alone_cpu / scan_cpu, 2),
            standalone_phases=alone.phases,  # type: ignore[attr-defined]
        )
    child = _clean_in_child(bench_raw_db, tmp_path / "child.db", gate1_profile)
    info.update(
        peak_rss_mb=child["peak_rss_mb"],
        peak_rss_with_children_mb=child["peak_rss_with_children_mb"],
        rss_after_imports_mb=child["after_imports_mb"],
        child_seconds=child["seconds"],
        child_phases=child["phases"],
    )
    benchmark.extra_info.update(info)

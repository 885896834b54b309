"""The SLA report on synthetic pytest-benchmark JSON files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main
from pipeline.errors import ConfigError, InputFileError
from pipeline.sla import EXIT_SLA, SlaConfig, measurements, run


def bench(name: str, mean: float, rows: int | None = 260_000, **extra: Any) -> dict[str, Any]:
    info = dict(extra)
    if rows is not None:
        info["rows"] = rows
    return {
        "group": None,
        "name": name,
        "fullname": f"tests/perf/x.py::{name}",
        "params": None,
        "extra_info": info,
        "stats": {"min": mean * 0.9, "max": mean * 1.1, "mean": mean, "median": mean, "rounds": 1, "iterations": 1},
    }


def save(folder: Path, counter: int, benchmarks: list[dict[str, Any]], when: str | None = None) -> Path:
    """A file as --benchmark-autosave names it: .benchmarks/<machine>/NNNN_<commit>_<time>.json."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{counter:04d}_abc123_20261127_160000.json"
    path.write_text(json.dumps({
        "machine_info": {"node": "box"},
        "commit_info": {"id": "abc123"},
        "benchmarks": benchmarks,
        "datetime": when or f"2026-11-27T16:{counter:02d}:00.000000",
        "version": "5.1.0",
    }))
    return path


def healthy() -> list[dict[str, Any]]:
    return [
        bench("test_profile_benchmark", 20.0, peak_rss_mb=180.0),
        bench("test_clean_benchmark", 40.0, peak_rss_mb=210.0),
        bench("test_migrate_against_psql_copy", 10.0, load_peak_rss_mb=90.0, gate_peak_rss_mb=120.0),
        bench("test_whole_pipeline", 58.0, peak_rss_mb=400.0,
              stages={"ingest": {"seconds": 12.0, "peak_rss_mb": 150.0}, "gate1": {"seconds": 14.0, "peak_rss_mb": 200.0},
                      "clean": {"seconds": 15.0}, "migrate": {"seconds": 9.0}}),
    ]


def by_part(report) -> dict[tuple[str, str], Any]:
    return {(c.measurement.stage, c.measurement.part): c for c in report.checks}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / ".benchmarks" / "Linux-CPython-3.11-64bit"


def test_every_service_level_met_and_no_previous_run(store: Path) -> None:
    save(store, 1, healthy())
    report = run(SlaConfig(benchmarks=store.parent))
    assert not report.failed
    assert report.previous is None
    checks = by_part(report)
    assert checks[("pipeline", "")].sla_status == "ok" and checks[("pipeline", "")].sla_value == 58.0
    # the pipeline's own stages are judged too: Gate 1 is the profiler's run
    assert checks[("profile", "gate1")].sla_status == "ok"
    assert checks[("ingest", "ingest")].sla_status == "none"  # no service level for ingest
    # the migrate benchmark's memory is the larger of its two peaks
    assert checks[("migrate", "")].measurement.peak_mb == 120.0
    assert all(c.ratio is None for c in report.checks)


def test_a_stage_over_its_service_level_fails(store: Path) -> None:
    runs = healthy()
    runs[1] = bench("test_clean_benchmark", 16 * 60.0)  # 16 min against 15
    save(store, 1, runs)
    report = run(SlaConfig(benchmarks=store.parent))
    assert report.failed
    clean = by_part(report)[("clean", "")]
    assert clean.sla_status == "BREAK" and not clean.projected


def test_times_at_other_sizes_are_projected_linearly(store: Path) -> None:
    # 20 s on 26,000 rows is 200 s on 260,000: within 5 min; 40 s would be 400 s: broken.
    save(store, 1, [bench("test_profile_benchmark", 20.0, rows=26_000), bench("test_migrate_against_psql_copy", 40.0, rows=26_000)])
    checks = by_part(run(SlaConfig(benchmarks=store.parent)))
    assert checks[("profile", "")].projected and checks[("profile", "")].sla_value == pytest.approx(200.0)
    assert checks[("profile", "")].sla_status == "ok"
    assert checks[("migrate", "")].sla_status == "BREAK"


@pytest.mark.parametrize(
    ("rows", "peak", "status"),
    [
        (1_000_000, 450.0, "ok"),
        (1_000_000, 520.0, "BREAK"),
        (260_000, 520.0, "BREAK"),  # already over at a quarter of the size
        (260_000, 300.0, "smaller"),  # under, but not measured at the size the limit is for
    ],
)
def test_profiler_memory_against_500_mb_on_1m_rows(store: Path, rows: int, peak: float, status: str) -> None:
    save(store, 1, [bench("test_profile_benchmark", 10.0, rows=rows, peak_rss_mb=peak)])
    check = by_part(run(SlaConfig(benchmarks=store.parent)))[("profile", "")]
    assert check.memory_status == status
    assert check.failed == (status == "BREAK")


def test_regression_against_the_previous_run_beyond_the_margin(store: Path) -> None:
    save(store, 1, healthy())
    slower = healthy()
    slower[0] = bench("test_profile_benchmark", 25.0, peak_rss_mb=180.0)  # x1.25
    slower[1] = bench("test_clean_benchmark", 46.0, peak_rss_mb=210.0)  # x1.15
    latest = save(store, 2, slower)
    report = run(SlaConfig(benchmarks=store.parent, margin=0.2))
    assert report.latest == latest and report.previous is not None and report.previous.name.startswith("0001_")
    checks = by_part(report)
    assert checks[("profile", "")].ratio == pytest.approx(1.25) and checks[("profile", "")].regressed
    assert checks[("clean", "")].ratio == pytest.approx(1.15) and not checks[("clean", "")].regressed
    assert checks[("profile", "gate1")].ratio == pytest.approx(1.0)
    assert report.failed
    assert not run(SlaConfig(benchmarks=store.parent, margin=0.3)).failed


def test_sub_second_slowdowns_are_not_regressions(store: Path) -> None:
    save(store, 1, [bench("test_whole_pipeline", 60.0, stages={"preflight": {"seconds": 0.2}, "clean": {"seconds": 10.0}})])
    save(store, 2, [bench("test_whole_pipeline", 60.0, stages={"preflight": {"seconds": 0.4}, "clean": {"seconds": 13.0}})])
    checks = by_part(run(SlaConfig(benchmarks=store.parent)))
    assert checks[("preflight", "preflight")].ratio == pytest.approx(2.0) and not checks[("preflight", "preflight")].regressed
    assert checks[("clean", "clean")].regressed
    assert by_part(run(SlaConfig(benchmarks=store.parent, min_seconds=0.0)))[("preflight", "preflight")].regressed


def test_only_the_same_size_is_compared(store: Path) -> None:
    save(store, 1, [bench("test_profile_benchmark", 2.0, rows=26_000)])
    save(store, 2, [bench("test_profile_benchmark", 20.0, rows=260_000)])
    check = by_part(run(SlaConfig(benchmarks=store.parent)))[("profile", "")]
    assert check.ratio is None and not check.regressed


def test_latest_is_the_newest_run_not_the_last_name(tmp_path: Path) -> None:
    # Two machine folders: the newest run decides, and is compared within its folder.
    a, b = tmp_path / "m-a", tmp_path / "m-b"
    save(a, 1, [bench("test_profile_benchmark", 10.0)], when="2026-11-27T10:00:00")
    save(a, 2, [bench("test_profile_benchmark", 30.0)], when="2026-11-27T12:00:00")
    save(b, 1, [bench("test_profile_benchmark", 11.0)], when="2026-11-27T11:00:00")
    report = run(SlaConfig(benchmarks=tmp_path))
    assert report.latest.parent == a and report.latest.name.startswith("0002_")
    assert report.previous is not None and report.previous.parent == a
    assert by_part(report)[("profile", "")].ratio == pytest.approx(3.0)


def test_one_benchmark_json_file_and_an_explicit_previous(tmp_path: Path) -> None:
    old = save(tmp_path / "old", 1, [bench("test_profile_benchmark", 10.0)])
    new = save(tmp_path / "new", 1, [bench("test_profile_benchmark", 11.0)])
    report = run(SlaConfig(benchmarks=new, previous=old))
    assert report.previous == old and by_part(report)[("profile", "")].ratio == pytest.approx(1.1)


def test_measurements_skip_entries_without_stats_and_keep_unknown_benchmarks() -> None:
    data = {"benchmarks": [{"name": "test_x", "stats": {}}, bench("test_dashboard_query[1.1]", 0.01, rows=None)]}
    found = measurements(data)
    assert [(m.stage, m.rows) for m in found] == [("dashboard_query", None)]


def test_missing_or_empty_benchmark_folder_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="does not exist"):
        run(SlaConfig(benchmarks=tmp_path / "nowhere"))
    (tmp_path / "junk.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"a": 1}')
    with pytest.raises(InputFileError, match="no pytest-benchmark JSON file"):
        run(SlaConfig(benchmarks=tmp_path))
    with pytest.raises(ConfigError):
        run(SlaConfig(benchmarks=tmp_path, margin=-0.1))


def test_cli_text_json_and_exit_codes(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save(store, 1, healthy())
    assert main(["sla", "--benchmarks", str(store.parent)]) == 0
    out = capsys.readouterr().out
    assert "pipeline" in out and "ok: every service level met" in out
    slower = healthy()
    slower[3] = bench("test_whole_pipeline", 26 * 60.0)
    save(store, 2, slower)
    assert main(["sla", "--benchmarks", str(store.parent), "--json"]) == EXIT_SLA
    data = json.loads(capsys.readouterr().out)
    assert data["failed"] is True
    pipeline = next(c for c in data["checks"] if c["measurement"]["stage"] == "pipeline" and c["measurement"]["part"] == "")
    assert pipeline["sla_status"] == "BREAK" and pipeline["regressed"] is True
    assert main(["sla", "--benchmarks", str(store.parent / "missing")]) == 3
    assert "error:" in capsys.readouterr().err

"""The SLA report: the latest benchmark run against the operators' service levels.

``servicedesk-etl sla`` reads the pytest-benchmark JSON files the benchmarks write
(``pytest tests/perf --run-perf --benchmark-autosave`` stores them as
``.benchmarks/<machine>/NNNN_*.json``; ``--benchmark-json FILE`` writes one file) and
prints, per stage and size, the time and peak memory

- against the service levels (``SERVICE_LEVELS``: profile 5 min, clean 15 min,
  migrate 5 min, whole pipeline 25 min on 260K rows; the profiler under 500 MB on
  1M rows). A time measured at another size is projected linearly to the service
  level's size (the pipeline is meant to grow linearly; the report says "projected").
  Memory is judged as measured: over the limit at any size up to the service level's
  size is a break (memory does not shrink with more rows); under it at a smaller size
  is shown but not judged ("smaller");
- against the previous saved run, as pytest-benchmark's ``compare`` does: the ratio
  of the mean times of the same benchmark at the same size. A ratio above
  ``1 + margin`` is a regression, when the stage is also at least ``min_seconds``
  slower (sub-second steps vary by more than any margin on a busy machine).

Exit status 0 when nothing breaks or regresses, 1 otherwise (``EXIT_SLA``).

Where the figures come from in a benchmark entry: the time is ``stats.mean``, the size
``extra_info["rows"]``, the memory ``extra_info["peak_rss_mb"]`` (or the largest
``*_peak_rss_mb``). The whole-pipeline benchmark also records each stage of the run
under ``extra_info["stages"]`` (``{"gate1": {"seconds": .., "peak_rss_mb": ..}}``),
and those stages are judged too: Gate 1 is the profiler's run.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from pipeline.config import Settings
from pipeline.errors import ConfigError, InputFileError

EXIT_SLA = 1
DEFAULT_DIR = Path(".benchmarks")
DEFAULT_MARGIN = 0.20
# Below this many seconds slower, a stage is not called a regression whatever the ratio:
# a 0.2 s step that takes 0.3 s on a busy machine is noise, not a regression.
DEFAULT_MIN_SECONDS = 0.5


@dataclass(frozen=True)
class ServiceLevel:
    stage: str
    metric: str  # seconds | peak_mb
    limit: float
    rows: int  # the size the limit is stated for

    def describe(self) -> str:
        what = f"{self.limit / 60:g} min" if self.metric == "seconds" else f"{self.limit:g} MB"
        return f"{self.stage} under {what} on {self.rows:,} rows"


SERVICE_LEVELS: tuple[ServiceLevel, ...] = (
    ServiceLevel("profile", "seconds", 5 * 60, 260_000),
    ServiceLevel("clean", "seconds", 15 * 60, 260_000),
    ServiceLevel("migrate", "seconds", 5 * 60, 260_000),
    ServiceLevel("pipeline", "seconds", 25 * 60, 260_000),
    ServiceLevel("profile", "peak_mb", 500, 1_000_000),
)

# Benchmark test name -> the stage it measures (anything else: its own name, shortened).
BENCHMARK_STAGES = {
    "test_profile_benchmark": "profile",
    "test_clean_benchmark": "clean",
    "test_ingest_benchmark": "ingest",
    "test_migrate_against_psql_copy": "migrate",
    "test_whole_pipeline": "pipeline",
}
# A stage of the whole pipeline run -> the service level's stage name.
PIPELINE_STAGES = {"gate1": "profile", "clean": "clean", "migrate": "migrate"}


@dataclass(frozen=True)
class Measurement:
    benchmark: str  # pytest-benchmark's fullname (with parameters)
    stage: str  # the service level's stage name (profile, clean, migrate, pipeline, ...)
    part: str  # "" for the benchmark itself, else the pipeline stage it came from
    rows: int | None
    seconds: float
    peak_mb: float | None

    @property
    def key(self) -> tuple[str, str, int | None]:
        return (self.benchmark, self.part, self.rows)


@dataclass(frozen=True)
class Check:
    measurement: Measurement
    sla: str | None  # the service level described, None when none applies
    sla_value: float | None  # the measured (or projected) value judged
    projected: bool
    sla_status: str  # ok | BREAK | smaller | none
    memory_sla: str | None
    memory_status: str  # ok | BREAK | smaller | none
    previous_seconds: float | None
    ratio: float | None
    regressed: bool

    @property
    def failed(self) -> bool:
        return self.regressed or "BREAK" in (self.sla_status, self.memory_status)


@dataclass(frozen=True)
class SlaReport:
    latest: Path
    previous: Path | None
    margin: float
    checks: tuple[Check, ...]

    @property
    def failed(self) -> bool:
        return any(c.failed for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "latest": str(self.latest),
            "previous": str(self.previous) if self.previous else None,
            "margin": self.margin,
            "failed": self.failed,
            "service_levels": [asdict(s) | {"description": s.describe()} for s in SERVICE_LEVELS],
            "checks": [asdict(c) | {"failed": c.failed} for c in self.checks],
        }


@dataclass(frozen=True)
class SlaConfig:
    benchmarks: Path = DEFAULT_DIR  # a folder of saved runs, or one JSON file
    previous: Path | None = None  # compare with this file instead of the run before
    margin: float = DEFAULT_MARGIN
    min_seconds: float = DEFAULT_MIN_SECONDS


# --- reading -----------------------------------------------------------------------------


def _load(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("benchmarks"), list) else None


def _order(path: Path, data: dict[str, Any]) -> tuple[str, int, str]:
    # Autosaved names start with a counter (0001_...); the run's own datetime decides
    # across machine folders and for files named by hand.
    counter = re.match(r"(\d+)_", path.name)
    return (str(data.get("datetime") or ""), int(counter.group(1)) if counter else -1, path.name)


def saved_runs(where: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The pytest-benchmark JSON files under ``where`` (or ``where`` itself), oldest first."""
    where = Path(where)
    if where.is_file():
        files = [where]
    elif where.is_dir():
        files = sorted(where.rglob("*.json"))
    else:
        raise InputFileError(
            f"--benchmarks {where} does not exist",
            "run `pytest tests/perf --run-perf --benchmark-autosave` first, or give the folder or JSON file it wrote",
        )
    runs = [(p, d) for p in files if (d := _load(p)) is not None]
    if not runs:
        raise InputFileError(
            f"no pytest-benchmark JSON file in {where}",
            "run `pytest tests/perf --run-perf --benchmark-autosave` (or --benchmark-json FILE) first",
        )
    return sorted(runs, key=lambda r: _order(*r))


def _stage_of(bench: dict[str, Any]) -> str:
    name = str(bench.get("name") or "").split("[")[0]
    if name in BENCHMARK_STAGES:
        return BENCHMARK_STAGES[name]
    return re.sub(r"^test_|_bench(mark)?$", "", name) or name


def _peak(info: dict[str, Any]) -> float | None:
    if isinstance(info.get("peak_rss_mb"), (int, float)):
        return float(info["peak_rss_mb"])
    peaks = [float(v) for k, v in info.items() if k.endswith("peak_rss_mb") and isinstance(v, (int, float))]
    return max(peaks) if peaks else None


def measurements(data: dict[str, Any]) -> list[Measurement]:
    """What one saved run measured: each benchmark, and each stage of a pipeline run."""
    found = []
    for bench in data["benchmarks"]:
        stats = bench.get("stats") or {}
        if not isinstance(stats.get("mean"), (int, float)):
            continue
        info = bench.get("extra_info") or {}
        rows = info.get("rows") if isinstance(info.get("rows"), int) else None
        name = str(bench.get("fullname") or bench.get("name"))
        found.append(Measurement(name, _stage_of(bench), "", rows, float(stats["mean"]), _peak(info)))
        stages = info.get("stages")
        if isinstance(stages, dict):
            for part, figures in stages.items():
                if not isinstance(figures, dict) or not isinstance(figures.get("seconds"), (int, float)):
                    continue
                peak = figures.get("peak_rss_mb")
                found.append(
                    Measurement(
                        name, PIPELINE_STAGES.get(part, part), part, rows, float(figures["seconds"]),
                        float(peak) if isinstance(peak, (int, float)) else None,
                    )
                )
    return found


# --- judging -----------------------------------------------------------------------------


def _judge_time(m: Measurement) -> tuple[str | None, float | None, bool, str]:
    level = next((s for s in SERVICE_LEVELS if s.stage == m.stage and s.metric == "seconds"), None)
    if level is None:
        return None, None, False, "none"
    if not m.rows:
        return level.describe(), m.seconds, False, "BREAK" if m.seconds > level.limit else "ok"
    projected = abs(m.rows - level.rows) > 0.1 * level.rows
    value = m.seconds * level.rows / m.rows if projected else m.seconds
    return level.describe(), value, projected, "BREAK" if value > level.limit else "ok"


def _judge_memory(m: Measurement) -> tuple[str | None, str]:
    level = next((s for s in SERVICE_LEVELS if s.stage == m.stage and s.metric == "peak_mb"), None)
    if level is None or m.peak_mb is None:
        return (level.describe() if level else None), "none"
    if m.peak_mb > level.limit and (m.rows is None or m.rows <= level.rows * 1.1):
        return level.describe(), "BREAK"
    if m.rows is not None and m.rows < level.rows * 0.9:
        return level.describe(), "smaller"
    return level.describe(), "ok"


def judge(
    latest: Iterable[Measurement], previous: Iterable[Measurement], margin: float, min_seconds: float = DEFAULT_MIN_SECONDS
) -> list[Check]:
    before = {m.key: m for m in previous}
    checks = []
    for m in latest:
        sla, value, projected, status = _judge_time(m)
        memory_sla, memory_status = _judge_memory(m)
        old = before.get(m.key)
        ratio = m.seconds / old.seconds if old is not None and old.seconds > 0 else None
        checks.append(
            Check(
                m, sla, value, projected, status, memory_sla, memory_status,
                old.seconds if old is not None else None, ratio,
                ratio is not None and ratio > 1 + margin and m.seconds - old.seconds >= min_seconds,
            )
        )
    return checks


def run(config: SlaConfig) -> SlaReport:
    """Judge the latest saved benchmark run (and compare it with the one before)."""
    if config.margin < 0:
        raise ConfigError(f"--margin {config.margin:g} is negative", "give a share such as 0.2 (20% slower is a regression)")
    runs = saved_runs(config.benchmarks)
    latest_path, latest = runs[-1]
    if config.previous is not None:
        prev = _load(Path(config.previous))
        if prev is None:
            raise InputFileError(f"--previous {config.previous} is not a pytest-benchmark JSON file", "give a file --benchmark-autosave wrote")
        previous_path, previous = Path(config.previous), prev
    else:
        # The run before in the same folder (pytest-benchmark keeps one folder per machine).
        same = [r for r in runs[:-1] if r[0].parent == latest_path.parent]
        previous_path, previous = same[-1] if same else (None, None)
    checks = judge(measurements(latest), measurements(previous) if previous else [], config.margin, config.min_seconds)
    return SlaReport(latest_path, previous_path, config.margin, tuple(checks))


# --- output ------------------------------------------------------------------------------


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}s" if value < 120 else f"{value / 60:.1f}min"


def format_report(report: SlaReport) -> str:
    lines = [f"latest:   {report.latest}", f"previous: {report.previous or '(none: nothing to compare with)'}", ""]
    header = f"{'stage':<10} {'part':<9} {'rows':>9} {'time':>9} {'peak MB':>8}  {'verdict':<7} {'vs previous':<22} service level"
    lines += [header, "-" * (len(header) + 40)]
    for c in report.checks:
        m = c.measurement
        if c.sla_status == "none":
            sla = "-"
        else:
            shown = f"{'projected ' if c.projected else ''}{_seconds(c.sla_value)}"
            sla = f"{c.sla_status}: {shown} against {c.sla}"
        if c.memory_status != "none":
            sla += f"; memory {c.memory_status} against {c.memory_sla}"
        if c.ratio is None:
            versus = "-"
        else:
            versus = f"x{c.ratio:.2f} of {_seconds(c.previous_seconds)}" + (" SLOWER" if c.regressed else "")
        rows = f"{m.rows:,}" if m.rows else "-"
        peak = f"{m.peak_mb:.0f}" if m.peak_mb is not None else "-"
        lines.append(
            f"{m.stage:<10} {m.part or '-':<9} {rows:>9} {_seconds(m.seconds):>9} {peak:>8}  {'FAIL' if c.failed else 'ok':<7} {versus:<22} {sla}"
        )
    lines.append("")
    broken = sum(1 for c in report.checks if "BREAK" in (c.sla_status, c.memory_status))
    regressed = sum(1 for c in report.checks if c.regressed)
    if report.failed:
        lines.append(f"FAIL: {broken} service level(s) broken, {regressed} regression(s) over {report.margin:.0%}")
    else:
        lines.append(f"ok: every service level met, no regression over {report.margin:.0%}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--benchmarks", type=Path, default=DEFAULT_DIR,
        help="folder of saved benchmark runs (pytest --benchmark-autosave) or one --benchmark-json file (default .benchmarks)",
    )
    parser.add_argument("--previous", type=Path, help="compare with this saved run instead of the one before the latest")
    parser.add_argument(
        "--margin", type=float, default=DEFAULT_MARGIN,
        help="a stage whose mean time grew by more than this share is a regression (default 0.2)",
    )
    parser.add_argument(
        "--min-seconds", type=float, default=DEFAULT_MIN_SECONDS,
        help="a stage must also be at least this many seconds slower to count as a regression (default 0.5)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def command(args: argparse.Namespace, settings: Settings) -> int:
    report = run(SlaConfig(benchmarks=args.benchmarks, previous=args.previous, margin=args.margin, min_seconds=args.min_seconds))
    if args.json:
        print(json.dumps(report.to_json(), indent=2, default=str))
    else:
        print(format_report(report))
    return EXIT_SLA if report.failed else 0


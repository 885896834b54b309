"""Metrics in the Prometheus text exposition format, for node_exporter's textfile collector.

The pipeline is a batch job: nothing scrapes it while it runs. At the end of a run (and
at each stop) it writes its metrics to a ``*.prom`` file in the folder node_exporter
reads with ``--collector.textfile.directory``. The file is written the way that
collector asks: to a temporary file in the same folder, then renamed over the old one,
so a scrape never sees half a file. No timestamps are written (the collector refuses
them); the values are those of the latest run.

``MetricsRegistry`` holds gauges and counters with labels and renders them (HELP and
TYPE lines, label values escaped). ``PipelineMetrics`` declares the pipeline's own
metrics (see ``docs/monitoring.md``) and fills them from stage traces, row counts,
quality scores and gate outcomes.

No third-party dependency at run time: ``prometheus_client`` is used by the tests only,
to prove that its parser reads what we write.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

PREFIX = "servicedesk_etl"

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
TYPES = ("gauge", "counter")


def escape_label_value(value: str) -> str:
    """Backslash, double quote and newline escaped, as the exposition format requires."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """HELP text: backslash and newline escaped (quotes stay as they are)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value: integers without a fraction, ``+Inf``/``-Inf``/``NaN`` spelt as Prometheus does."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


@dataclass
class Metric:
    """One metric family: a name, its help, its type, its label names and its samples."""

    name: str
    help: str
    type: str
    label_names: tuple[str, ...] = ()
    samples: dict[tuple[str, ...], float] = field(default_factory=dict)

    def _key(self, labels: Mapping[str, Any]) -> tuple[str, ...]:
        if set(labels) != set(self.label_names):
            raise ValueError(
                f"{self.name} takes labels {sorted(self.label_names)}, got {sorted(labels)}"
            )
        return tuple(str(labels[n]) for n in self.label_names)

    def set(self, value: float, **labels: Any) -> None:
        """Set the sample with these labels (counters too: a run reports its own totals)."""
        value = float(value) if not isinstance(value, (int, bool)) else value
        if self.type == "counter" and value < 0:
            raise ValueError(f"counter {self.name} cannot be negative ({value})")
        self.samples[self._key(labels)] = value

    def inc(self, amount: float = 1, **labels: Any) -> None:
        if amount < 0:
            raise ValueError(f"{self.name}: cannot increase by a negative amount ({amount})")
        key = self._key(labels)
        self.samples[key] = self.samples.get(key, 0) + amount

    def value(self, **labels: Any) -> float | None:
        return self.samples.get(self._key(labels))

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {escape_help(self.help)}", f"# TYPE {self.name} {self.type}"]
        for key, value in self.samples.items():
            if self.label_names:
                pairs = ",".join(f'{n}="{escape_label_value(v)}"' for n, v in zip(self.label_names, key))
                lines.append(f"{self.name}{{{pairs}}} {format_value(value)}")
            else:
                lines.append(f"{self.name} {format_value(value)}")
        return lines


class MetricsRegistry:
    """Metric families in the order they were declared; rendered as one exposition text."""

    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}

    def _declare(self, name: str, help_text: str, kind: str, labels: Iterable[str]) -> Metric:
        if not _METRIC_NAME.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        label_names = tuple(labels)
        for label in label_names:
            if not _LABEL_NAME.match(label) or label.startswith("__"):
                raise ValueError(f"invalid label name {label!r} for {name}")
        if len(set(label_names)) != len(label_names):
            raise ValueError(f"{name}: duplicate label names {label_names}")
        existing = self._metrics.get(name)
        if existing is not None:
            if (existing.type, existing.label_names) != (kind, label_names):
                raise ValueError(f"{name} is already declared as a {existing.type} with labels {existing.label_names}")
            return existing
        metric = Metric(name, help_text, kind, label_names)
        self._metrics[name] = metric
        return metric

    def gauge(self, name: str, help_text: str, labels: Iterable[str] = ()) -> Metric:
        return self._declare(name, help_text, "gauge", labels)

    def counter(self, name: str, help_text: str, labels: Iterable[str] = ()) -> Metric:
        if not name.endswith("_total"):
            raise ValueError(f"counter {name!r} must end in _total (Prometheus naming)")
        return self._declare(name, help_text, "counter", labels)

    def get(self, name: str) -> Metric:
        return self._metrics[name]

    def __iter__(self):
        return iter(self._metrics.values())

    def render(self) -> str:
        """The exposition text: HELP and TYPE before each family, a newline at the end."""
        lines: list[str] = []
        for metric in self._metrics.values():
            if metric.samples:
                lines.extend(metric.render())
        return "\n".join(lines) + "\n" if lines else ""

    def write(self, path: str | Path) -> Path:
        return write_textfile(self.render(), path)


def write_textfile(text: str, path: str | Path) -> Path:
    """Write ``text`` to ``path`` (a ``*.prom`` file) atomically: temp file, fsync, rename.

    The temporary file lives in the same folder (a rename is atomic only within one
    file system) and does not end in ``.prom``, so the collector never reads it.
    """
    target = Path(path)
    if target.suffix != ".prom":
        raise ValueError(f"{target}: the textfile collector reads only files ending in .prom")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        # node_exporter usually runs as another user: the file must be readable by it.
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def read_sample(path: str | Path, name: str) -> float | None:
    """The value of a label-less sample in an existing textfile (None when absent or unreadable)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == name:
            try:
                return float(parts[1])
            except ValueError:
                return None
    return None


# --- the pipeline's metrics --------------------------------------------------------------------

STAGE_DURATION = f"{PREFIX}_stage_duration_seconds"
ROWS = f"{PREFIX}_rows_total"
QUALITY = f"{PREFIX}_quality_score"
GATE = f"{PREFIX}_gate_outcome"
LAST_SUCCESS = f"{PREFIX}_last_success_timestamp_seconds"
LAST_RUN = f"{PREFIX}_last_run_timestamp_seconds"
PEAK_MEMORY = f"{PREFIX}_peak_memory_bytes"

DIRECTIONS = ("read", "written", "rejected", "quarantined")
QUALITY_STAGES = ("raw", "clean", "postgres")


class PipelineMetrics:
    """The pipeline's metrics, declared once; see ``docs/monitoring.md`` for their meaning."""

    def __init__(self, registry: MetricsRegistry | None = None) -> None:
        self.registry = registry or MetricsRegistry()
        r = self.registry
        self.stage_duration = r.gauge(STAGE_DURATION, "Wall-clock seconds a stage of the latest run took.", ("stage",))
        self.rows = r.counter(
            ROWS,
            "Rows per table in the latest run, by direction: read, written, rejected (refused by the target), quarantined (held back by the cleaner).",
            ("table", "direction"),
        )
        self.quality = r.gauge(
            QUALITY,
            "Quality score 0-100 of the data at a stage (raw, clean, postgres), overall and per dimension.",
            ("stage", "dimension"),
        )
        self.gate = r.gauge(GATE, "Outcome of a gate in the latest run: 1 passed, 0 failed.", ("gate",))
        self.last_success = r.gauge(LAST_SUCCESS, "Unix time the pipeline last finished successfully.")
        self.last_run = r.gauge(LAST_RUN, "Unix time the latest run ended, successful or not.")
        self.peak_memory = r.gauge(PEAK_MEMORY, "Peak resident memory of the process by the end of a stage (the highest so far in the run), in bytes.", ("stage",))

    def stage(self, stage: str, seconds: float, peak_bytes: float | None = None) -> None:
        self.stage_duration.set(max(float(seconds), 0.0), stage=stage)
        if peak_bytes is not None:
            self.peak_memory.set(float(peak_bytes), stage=stage)

    def from_trace(self, record: Mapping[str, Any]) -> None:
        """Duration and peak memory from a ``stage_trace`` record (``pipeline.observe``)."""
        peak_mb = record.get("peak_rss_mb")
        self.stage(
            str(record["stage"]),
            float(record.get("seconds", 0.0)),
            None if peak_mb is None else float(peak_mb) * 1024 * 1024,
        )

    def rows_counted(self, table: str, direction: str, count: int) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
        self.rows.set(int(count), table=table, direction=direction)

    def quality_score(self, stage: str, score: Any) -> None:
        """A ``QualityScore`` (or a mapping with ``score`` and ``dimensions``) at a stage.

        The overall score gets ``dimension="overall"``.
        """
        if stage not in QUALITY_STAGES:
            raise ValueError(f"stage must be one of {QUALITY_STAGES}, not {stage!r}")
        overall = score["score"] if isinstance(score, Mapping) else score.score
        dimensions = score["dimensions"] if isinstance(score, Mapping) else score.dimensions
        self.quality.set(float(overall), stage=stage, dimension="overall")
        for dimension, value in dimensions.items():
            self.quality.set(float(value), stage=stage, dimension=dimension)

    def gate_outcome(self, gate: str, passed: bool) -> None:
        self.gate.set(1 if passed else 0, gate=gate)

    def finished(self, success: bool, now: float | None = None, previous: str | Path | None = None) -> None:
        """Stamp the end of a run. A failed run carries the last success over from ``previous``.

        Without the carry-over, a failed run would drop the last-success sample and an
        alert on its age would see nothing instead of an old time.
        """
        now = time.time() if now is None else now
        self.last_run.set(now)
        if success:
            self.last_success.set(now)
        elif previous is not None:
            before = read_sample(previous, LAST_SUCCESS)
            if before is not None:
                self.last_success.set(before)

    def render(self) -> str:
        return self.registry.render()

    def write(self, path: str | Path) -> Path:
        return self.registry.write(path)

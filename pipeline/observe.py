"""Logs, stage traces and progress: the pipeline's observability in one place.

Logging goes through ``logging.getLogger(__name__)`` everywhere; this module only
chooses the format (human text, or JSON lines with ``--log-format json``). A stage
reports its start and end with ``stage_trace``: one JSON line with rows, peak memory
and outcome. ``Progress`` draws a bar on a terminal and stays silent otherwise.
``cyclic_gc_off`` keeps Python's cycle collector out of the passes that allocate a tuple
per row.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, TextIO

import psutil

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure_logging(fmt: str = "text", level: int = logging.INFO, stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    handler.setLevel(level)
    root = logging.getLogger("pipeline")
    root.handlers[:] = [handler]
    # The logger passes INFO on so a run's own log file gets every stage; what the
    # terminal shows is the handler's level.
    root.setLevel(min(level, logging.INFO))
    root.propagate = False


@contextlib.contextmanager
def cyclic_gc_off() -> Iterator[None]:
    """Python's cyclic garbage collector off inside the block, back on (if it was) after it.

    For passes that allocate tuples per row (the profile's batches, the migration's rows
    and lines), all freed by reference counting and none in a cycle: each allocation
    burst made the collector rescan every object of the process (pandas and pandera
    included), 10-15% of those passes' CPU at 260K rows. Memory stays bounded: only
    cycles wait, and these passes make none. Nesting is safe.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB.

    Linux: VmHWM from /proc/self/status, the peak of this process's own address space.
    ru_maxrss survives fork and exec there, so a pipeline started by a large parent (a
    pytest session, a scheduler) would report the parent's peak. Elsewhere ru_maxrss
    (KiB on Linux, bytes on macOS).
    """
    import resource
    import sys

    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def current_rss_mb() -> float:
    return psutil.Process().memory_info().rss / (1024 * 1024)


@dataclass
class StageTrace:
    stage: str
    started: float = field(default_factory=time.time)
    rows: int = 0
    outcome: str = "running"
    fields: dict[str, Any] = field(default_factory=dict)

    def as_record(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "start": self.started,
            "end": time.time(),
            "seconds": round(time.time() - self.started, 3),
            "rows": self.rows,
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "outcome": self.outcome,
            **self.fields,
        }


@contextlib.contextmanager
def stage_trace(stage: str, logger: logging.Logger | None = None) -> Iterator[StageTrace]:
    """Log one ``stage`` line at the end of a stage: start, end, rows, peak memory, outcome."""
    log = logger or logging.getLogger("pipeline.trace")
    trace = StageTrace(stage)
    try:
        yield trace
    except BaseException:
        trace.outcome = "failed"
        log.info("stage", extra={"trace": trace.as_record()})
        raise
    if trace.outcome == "running":
        trace.outcome = "ok"
    log.info("stage", extra={"trace": trace.as_record()})


class Progress:
    """A one-line progress bar on a terminal (rows, rate, time left); silent otherwise."""

    def __init__(self, label: str, total: int | None = None, stream: TextIO | None = None, every: float = 0.5) -> None:
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.done = 0
        self.started = time.monotonic()
        self._last = 0.0
        self.every = every

    def advance(self, rows: int) -> None:
        self.done += rows
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < self.every:
            return
        self._last = now
        self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-6)
        rate = self.done / elapsed
        if self.total:
            share = min(self.done / self.total, 1.0)
            left = (self.total - self.done) / rate if rate else 0
            bar = "#" * int(share * 24)
            text = f"\r{self.label:<12} [{bar:<24}] {self.done:>10,}/{self.total:,} {rate:>9,.0f} rows/s  {left:>5.0f}s left"
        else:
            text = f"\r{self.label:<12} {self.done:>10,} rows {rate:>9,.0f} rows/s"
        self.stream.write(text)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

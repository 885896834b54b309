"""Run the data-contract gate from Python: what the pipeline calls as Gate 1, 2 and 3.

``run_gate`` runs exactly what a user runs (``pytest --source db``), through
``pytest.main`` in a temporary, empty root folder: no test module, ``conftest.py`` or
ini file of the calling project is collected or read, and no cache is written. The
verdict is read back from the gate's JSON report (``--contracts-report``).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from pipeline.errors import ConfigError, GateFailed

if TYPE_CHECKING:
    from pipeline.config import Settings

# pytest's exit codes that mean "the gate ran": 0 all passed, 1 some check failed,
# 5 nothing was collected (never a pass).
_RAN = (0, 1, 5)
_USAGE_ERROR = 4


@dataclass(frozen=True)
class GateVerdict:
    """What one gate run decided, read from its JSON report."""

    passed: bool
    exit_code: int
    failed: tuple[tuple[str, str, int], ...]  # (item id, severity, failing count)
    warned: tuple[tuple[str, str, int], ...]
    quality: float | None  # the profiler's quality score, 0-100
    verdict: str | None  # PROCEED | CLEAN | FIX_SOURCE (None: no profile)
    report: dict[str, Any] = field(repr=False, compare=False)

    @property
    def failed_ids(self) -> list[str]:
        return [f[0] for f in self.failed]


# The gate's own pytest plugin (the module of its ``pytest11`` entry point).
GATE_PLUGIN = "contracts.plugin"


@contextlib.contextmanager
def _gate_plugin_only() -> Any:
    """pytest with the gate's plugin only: ``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` while it runs
    (the plugin is then named with ``-p``).

    The gate uses no other plugin, and autoloading them costs ~1-2 s of CPU in a first
    run in a process: pytest marks every module of every plugin's distribution for
    assertion rewriting, so hypothesis (imported by pandera's check backends during the
    gate) and the modules of pytest-postgresql, pytest-benchmark and typeguard are
    rewritten, not just imported (with PYTHONDONTWRITEBYTECODE=1 nothing is cached).
    Left as it was when ``PYTEST_ADDOPTS`` is set: it may name other plugins' options,
    which pytest would then refuse."""
    if os.environ.get("PYTEST_ADDOPTS", "").strip():
        yield []
        return
    before = os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        yield ["-p", GATE_PLUGIN]
    finally:
        if before is None:
            os.environ.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
        else:
            os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = before


def run_gate(
    source: Path | None = None,
    *,
    target: str | None = None,
    schema: str | None = None,
    settings_file: Path | None = None,
    settings: "Settings | None" = None,
    junitxml: Path | None = None,
    report: Path | None = None,
    quality_threshold: float | None = None,
    extra_args: Sequence[str] = (),
    output: Path | None = None,
    echo: bool = False,
    profile: Any = None,
) -> GateVerdict:
    """Run the gate on a SQLite file (``source``) or a PostgreSQL schema (``target``).

    Raises ``InputFileError`` for a bad ``source``, ``ConfigError`` for bad options
    (both before pytest starts), and ``GateFailed`` when pytest stopped before the gate
    could judge anything. A gate that ran returns its verdict, passed or not.

    ``settings`` (a ``Settings`` object) is an alternative to ``settings_file`` for
    callers that hold their configuration in memory: it is written to a TOML file the
    child run reads, so the gate judges with exactly the caller's settings.

    pytest's terminal output goes to ``output`` (a log file) when given, to the
    caller's stdout with ``echo=True``, and is otherwise dropped: the JSON report holds
    everything, and a pipeline's terminal should show our summary, not pytest's.

    ``profile`` (SQLite ``source`` only): a Gate 1 profile the caller already made of this
    very file, as a ``ProfileResult``, its JSON dict, a gate report holding it under
    ``profile``, or the path of either JSON file. It is used instead of profiling the file
    again only when its SHA-256 is the file's and its tables and columns are the file's
    (as ``CleanConfig.profile``); otherwise the file is profiled again, with a warning.
    """
    import pytest

    from pipeline.config import load_settings
    from pipeline.sources import check_sqlite_file

    if (source is None) == (target is None):
        raise ConfigError("run_gate needs exactly one of source (SQLite file) and target (PostgreSQL)", "pass source=Path(...) or target=URI")
    # Bad input fails here, as the pipeline's own exceptions, not as pytest's exit 4.
    if source is not None:
        source = check_sqlite_file(source).resolve()
    if settings_file is not None and settings is not None:
        raise ConfigError("run_gate takes settings_file or settings, not both", "pass one of them")
    if settings_file is not None:
        settings_file = Path(settings_file).resolve()
        load_settings(settings_file)
    with tempfile.TemporaryDirectory(prefix="servicedesk-gate-") as tmp:
        root = Path(tmp)
        if settings is not None:
            from pipeline.config import dump_toml

            settings_file = root / "settings.toml"
            settings_file.write_text(dump_toml(settings), encoding="utf-8")
        ini = root / "pytest.ini"
        ini.write_text("[pytest]\n", encoding="utf-8")
        report_path = Path(report).resolve() if report is not None else root / "gate-report.json"
        # A stale report from an earlier run must never be read as this run's verdict.
        report_path.unlink(missing_ok=True)
        args = [
            "-c", str(ini),
            "--rootdir", str(root),
            "--noconftest",
            "-p", "no:cacheprovider",
            "--contracts-report", str(report_path),
        ]
        if source is not None:
            args += ["--source", str(source)]
        else:
            args += ["--target", str(target)]
            if schema:
                args += ["--schema", schema]
        if settings_file is not None:
            args += ["--contracts-config", str(settings_file)]
        if junitxml is not None:
            args += ["--junitxml", str(Path(junitxml).resolve())]
        if quality_threshold is not None:
            args += ["--quality-threshold", str(quality_threshold)]
        args += [*extra_args]
        # Run from the root folder too, so pytest prints ids as they are
        # (``tickets::...``), not relative to the caller's folder. Paths above are absolute.
        cwd = os.getcwd()
        log_path = Path(output).resolve() if output is not None else root / "gate.log"
        os.chdir(root)
        plugins = [_GivenProfile(profile)] if profile is not None and source is not None else []
        try:
            with _gate_plugin_only() as load:
                if echo:
                    exit_code = int(pytest.main([*load, *args], plugins=plugins))
                else:
                    with open(log_path, "w", encoding="utf-8") as log, contextlib.redirect_stdout(log):
                        exit_code = int(pytest.main([*load, *args], plugins=plugins))
        finally:
            os.chdir(cwd)
        log_tail = "" if echo else _tail(log_path)
        data = _read_report(report_path)
    if data is None:
        if exit_code == _USAGE_ERROR:
            raise ConfigError(f"the contract gate refused its options: {log_tail}", "fix the option named there")
        raise GateFailed(
            "contract gate",
            f"pytest stopped before the gate judged anything (exit code {exit_code}): {log_tail}",
            "run `pytest --source DB` by hand to see the error",
        )
    return _verdict(data, exit_code)


def read_verdict(report: Path) -> GateVerdict | None:
    """The verdict of a gate run that already happened, from its JSON report (None: no
    readable report there). For a pipeline picking up a run whose gate was judged."""
    data = _read_report(Path(report))
    if data is None or "exit_code" not in data:
        return None
    return _verdict(data, int(data["exit_code"]))


def _verdict(data: dict[str, Any], exit_code: int) -> GateVerdict:
    return GateVerdict(
        passed=exit_code == 0,
        exit_code=exit_code,
        failed=tuple((f["id"], f["severity"], int(f["count"])) for f in data.get("failed", [])),
        warned=tuple((f["id"], f["severity"], int(f["count"])) for f in data.get("warned", [])),
        quality=data.get("quality"),
        verdict=data.get("verdict"),
        report=data,
    )


class _GivenProfile:
    """A plugin object carrying the caller's profile to ``contracts.plugin`` (no hooks)."""

    def __init__(self, profile: Any) -> None:
        self.servicedesk_given_profile = profile


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def _read_report(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None

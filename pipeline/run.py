"""The whole pipeline in one command, and the demo of the README.

``servicedesk-etl run`` takes three workbooks through preflight -> ingest -> Gate 1
(the pytest gate on the raw database) -> Gate 2 (clean, when Gate 1 says CLEAN and
``--auto-clean`` is given) -> Gate 3 (migration: canary, new version, validation,
backup, cut-over) -> the post-migration contract run. Each gate is a pytest run
through the contracts plugin, and each file is judged once: Gate 2 is the cleaner's own
check of its output (``CleanConfig.gate_report``), the post-migration contract run is the
migration's validation run on the new version, which the cut-over makes live by renames
(then the live tables' row counts are checked against it). Their JUnit XML and JSON
reports stay in the run folder, with the logs (``run.log``, JSON lines), the metrics (``metrics.prom``),
``progress.json`` (for another process to poll) and ``report.html``.

The run folder is named after the inputs and the settings (their SHA-256), so that
re-running the same command after a failure or a kill picks up where it stopped: an
ingest or clean whose output is recorded in ``state.json`` is not done again, and the
migration refuses to load the same source twice (its ledger knows it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from psycopg import sql

from pipeline.config import Settings
from pipeline.errors import EtlError, FixYourData, GateFailed, InputFileError
from pipeline.observe import JsonFormatter, peak_rss_mb
from pipeline.sources import sha256_file

log = logging.getLogger(__name__)

# One exit code per kind of stop (README, "Exit codes of run").
EXIT_OK = 0
EXIT_PREFLIGHT = 10  # disk, memory, server or tools not ready
EXIT_GATE1 = 11  # raw data that cannot be fixed automatically (FIX_SOURCE, critical checks)
EXIT_NEEDS_CLEAN = 12  # Gate 1 says CLEAN and --auto-clean was not given
EXIT_GATE2 = 13  # the cleaned data failed its gate (quality or contracts)
EXIT_GATE3 = 14  # canary, validation or cut-over refused: the live schema is untouched
EXIT_POST = 15  # the contracts failed on the live schema after cut-over: roll back
EXIT_CODES = {
    EXIT_OK: "migrated and validated",
    EXIT_PREFLIGHT: "preflight failed",
    EXIT_GATE1: "Gate 1 failed: fix the source",
    EXIT_NEEDS_CLEAN: "Gate 1 says the data needs cleaning (add --auto-clean)",
    EXIT_GATE2: "Gate 2 failed: the cleaned data is not good enough",
    EXIT_GATE3: "Gate 3 failed: nothing was switched over",
    EXIT_POST: "post-migration contracts failed on the live schema",
}


@dataclass(frozen=True)
class RunConfig:
    tickets: Path
    comments: Path
    timesheets: Path
    settings: Settings
    target: str | None = None
    auto_clean: bool = False
    workdir: Path | None = None  # parent of the run folders; default .servicedesk/runs
    config_file: Path | None = None
    force: bool = False
    data_dir: Path | None = None  # the embedded server's data folder
    metrics_textfile: Path | None = None  # also publish metrics.prom here (node_exporter textfile collector)


@dataclass
class StepRecord:
    name: str
    outcome: str  # ok | failed | reused
    seconds: float
    peak_rss_mb: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    exit_code: int
    message: str
    steps: list[StepRecord]
    scores: dict[str, Any]
    metrics: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
            "exit_code": self.exit_code,
            "outcome": EXIT_CODES.get(self.exit_code, "stopped"),
            "message": self.message,
            "steps": [asdict(s) for s in self.steps],
            "scores": self.scores,
            "metrics": self.metrics,
        }


def run_id_for(inputs: list[Path], settings: Settings) -> str:
    """Same workbooks and settings, same run id: a re-run resumes that run's folder."""
    digest = hashlib.sha256()
    for p in inputs:
        digest.update(sha256_file(p).encode())
    digest.update(json.dumps(asdict(settings), sort_keys=True, default=str).encode())
    return "run-" + digest.hexdigest()[:16]


class RunState:
    """``state.json``: the finished steps with their outputs' checksums."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "state.json"
        self.data: dict[str, Any] = json.loads(self.path.read_text()) if self.path.exists() else {}

    def reusable(self, step: str, output: Path) -> bool:
        done = self.data.get(step)
        return bool(done) and output.exists() and sha256_file(output) == done.get("sha256")

    def record(self, step: str, output: Path, detail: dict[str, Any]) -> None:
        self.data[step] = {"sha256": sha256_file(output), **detail}
        _write_json(self.path, self.data)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


class _Recorder:
    """Steps, progress.json and the run log of one run."""

    def __init__(self, run_id: str, run_dir: Path, on_step: Callable[[StepRecord], None] | None) -> None:
        self.run_id = run_id
        self.run_dir = run_dir
        self.steps: list[StepRecord] = []
        self.on_step = on_step
        self.handler = logging.FileHandler(run_dir / "run.log")
        self.handler.setFormatter(JsonFormatter())
        logging.getLogger("pipeline").addHandler(self.handler)
        logging.getLogger("pipeline").setLevel(logging.INFO)

    def close(self) -> None:
        logging.getLogger("pipeline").removeHandler(self.handler)
        self.handler.close()

    def progress(self, current: str | None, status: str = "running") -> None:
        _write_json(
            self.run_dir / "progress.json",
            {
                "run_id": self.run_id,
                "status": status,
                "current_step": current,
                "steps": [{"name": s.name, "outcome": s.outcome, "seconds": round(s.seconds, 3)} for s in self.steps],
                "updated": time.time(),
            },
        )

    def add(self, record: StepRecord) -> None:
        self.steps.append(record)
        log.info(
            "stage",
            extra={
                "run_id": self.run_id,
                "trace": {
                    "stage": record.name,
                    "seconds": round(record.seconds, 3),
                    "peak_rss_mb": round(record.peak_rss_mb, 1),
                    "outcome": record.outcome,
                    "rows": record.detail.get("rows", 0),
                },
            },
        )
        if self.on_step:
            self.on_step(record)
        self.progress(None)

    def step(self, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        self.progress(name)
        started = time.monotonic()
        try:
            detail = fn()
        except BaseException as exc:
            self.add(StepRecord(name, "failed", time.monotonic() - started, peak_rss_mb(), {"error": str(exc)}))
            raise
        outcome = detail.pop("_outcome", "ok")
        # a step that ran the next one inside it (clean runs Gate 2) hands its time over
        inner = detail.pop("_inner_seconds", 0.0)
        self.add(StepRecord(name, outcome, time.monotonic() - started - inner, peak_rss_mb(), detail))
        return detail


def run(config: RunConfig, on_step: Callable[[StepRecord], None] | None = None) -> RunResult:
    """Run the pipeline. A gate's "no" is a result (its exit code), not an exception;
    bad input and unreachable servers raise ``EtlError`` as every stage does."""
    inputs = [config.tickets, config.comments, config.timesheets]
    for what, p in zip(("--tickets", "--comments", "--timesheets"), inputs):
        if not Path(p).is_file():
            raise InputFileError(f"{what} {p} does not exist", "give the path of the exported .xlsx workbook")
    run_id = run_id_for(inputs, config.settings)
    base = config.workdir or Path(".servicedesk") / "runs"
    run_dir = (Path(base) / run_id).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    rec = _Recorder(run_id, run_dir, on_step)
    try:
        result = _run(config, run_id, run_dir, rec)
    except EtlError as exc:
        # A stage's error (bad input, server gone) is raised to the CLI as every stage's
        # is; the run folder still says how the run ended, for whoever polls it.
        rec.progress(None, status="failed")
        _finish_outputs(RunResult(run_id, run_dir, exc.exit_code, str(exc), rec.steps, {}), config)
        raise
    finally:
        rec.close()
    _finish_outputs(result, config)
    return result


def _run(config: RunConfig, run_id: str, run_dir: Path, rec: _Recorder) -> RunResult:
    from contracts.gate import read_verdict, run_gate
    from pipeline import clean, ingest, migrate, preflight
    from pipeline.pgserver import resolve_target

    settings = config.settings
    state = RunState(run_dir)
    scores: dict[str, Any] = {"raw": None, "clean": None, "postgres": None}
    raw_db, clean_db = run_dir / "raw.db", run_dir / "clean.db"
    target = resolve_target(settings.target, config.target, data_dir=config.data_dir)

    def stop(code: int, message: str) -> RunResult:
        rec.progress(None, status="stopped" if code else "done")
        return RunResult(run_id, run_dir, code, message, rec.steps, scores)

    # -- preflight ----------------------------------------------------------------------
    def do_preflight() -> dict[str, Any]:
        # Before ingest: the workbooks stand for the source (their uncompressed size
        # bounds the databases this run writes), so a full disk stops the run first.
        res = preflight.run(
            preflight.PreflightConfig(
                source=None, workbooks=(config.tickets, config.comments, config.timesheets), target=target, settings=settings, work_dirs=(run_dir,)
            )
        )
        data = res.as_dict()
        if data["status"] == "FAIL":  # the step's outcome, in progress.json and metrics.prom
            data["_outcome"] = "failed"
        return data

    pre = rec.step("preflight", do_preflight)
    if pre["status"] == "FAIL":
        failed = [c for c in pre["checks"] if c["status"] == "FAIL"]
        msg = "; ".join(f"{c['name']}: {c['details']} (fix: {c['remedy']})" for c in failed)
        return stop(EXIT_PREFLIGHT, f"preflight failed: {msg}")

    # -- ingest -----------------------------------------------------------------------
    if state.reusable("ingest", raw_db):
        rec.add(StepRecord("ingest", "reused", 0.0, peak_rss_mb(), state.data["ingest"]))
    else:

        def do_ingest() -> dict[str, Any]:
            res = ingest.run(
                ingest.IngestConfig(config.tickets, config.comments, config.timesheets, raw_db, settings)
            )
            rows = {t.table: t.rows_imported for t in res.tables}
            return {"rows": sum(rows.values()), "rows_by_table": rows}

        state.record("ingest", raw_db, rec.step("ingest", do_ingest))

    # -- Gate 1 -------------------------------------------------------------------------
    gate1 = _gate(rec, "gate1", run_gate, run_dir, config, source=raw_db)
    scores["raw"] = _quality(gate1)
    migrate_from, migrate_score = raw_db, gate1
    if not gate1.passed:
        if gate1.verdict != "CLEAN":
            return stop(EXIT_GATE1, _gate_message("Gate 1 (raw data)", gate1, run_dir / "gate1.json", "fix the export at its source, then run again"))
        if not config.auto_clean:
            return stop(
                EXIT_NEEDS_CLEAN,
                _gate_message("Gate 1 (raw data)", gate1, run_dir / "gate1.json", "every problem found is fixable: run the same command with --auto-clean"),
            )
        # -- Gate 2 -----------------------------------------------------------------------
        # Gate 2 runs inside the clean: its check of the finished output is the pytest gate
        # itself (JUnit XML, JSON report and log in the run folder), handed the output's
        # profile the clean has just made, so clean.db is profiled and checked once.
        gate2_files = {"gate_report": run_dir / "gate2.json", "gate_junitxml": run_dir / "gate2-junit.xml", "gate_log": run_dir / "gate2.log"}
        gate2 = read_verdict(run_dir / "gate2.json") if state.reusable("clean", clean_db) else None
        if gate2 is not None:
            rec.add(StepRecord("clean", "reused", 0.0, peak_rss_mb(), state.data["clean"]))
            rec.add(StepRecord("gate2", "reused", 0.0, peak_rss_mb(), _gate_detail(gate2)))
        else:
            held: dict[str, Any] = {}

            def do_clean() -> dict[str, Any]:
                res = clean.run(
                    # Gate 1's profile of raw.db (in its report) spares the cleaner a second one
                    clean.CleanConfig(
                        raw_db, clean_db, settings, audit_trail=run_dir / "audit.jsonl", profile=run_dir / "gate1.json", **gate2_files
                    )
                )
                _write_json(run_dir / "clean.json", res.to_json())
                held["gate"] = res.gate
                held["gate_seconds"] = res.phases.get("profile_output", 0.0) + res.phases.get("gate2", 0.0)
                return {
                    "rows": sum(t.rows_out for t in res.tables.values()),
                    "quarantined_by_table": {name: t.quarantined for name, t in res.tables.items()},
                    "audit_rows": res.audit_rows,
                    "quarantined": sum(q["count"] for q in res.quarantine),
                    "score_before": res.quality_before.get("score"),
                    "score_after": res.quality_after.get("score"),
                    "_inner_seconds": held["gate_seconds"],
                }

            try:
                state.record("clean", clean_db, rec.step("clean", do_clean))
            except (GateFailed, FixYourData) as exc:  # FixYourData: e.g. duplicates with strategy "fail"
                return stop(EXIT_GATE2, f"Gate 2 (clean) failed: {exc}")
            gate2 = held["gate"]
            detail = {**_gate_detail(gate2), "ran_in": "clean"}
            rec.add(StepRecord("gate2", detail.pop("_outcome"), held["gate_seconds"], peak_rss_mb(), detail))
        scores["clean"] = _quality(gate2)
        if not gate2.passed:
            return stop(EXIT_GATE2, _gate_message("Gate 2 (cleaned data)", gate2, run_dir / "gate2.json", "see the audit and quarantine in clean.db"))
        migrate_from = clean_db
        migrate_score = gate2

    # -- Gate 3 -------------------------------------------------------------------------
    # The source's score is known from the last gate on it (not computed a third time);
    # the validation's contract run on the new version is the post-migration contract
    # run, kept as gate3's JUnit XML and report: the version becomes the live schema by
    # renames only, so its tables are the ones judged.
    profile_of = (migrate_score.report.get("profile") or {}) if migrate_score is not None else {}
    held3: dict[str, Any] = {}

    def do_migrate() -> dict[str, Any]:
        res = migrate.run(
            migrate.MigrateConfig(
                source=migrate_from,
                target=target.dsn,
                schema=settings.migrate.schema,
                canary=settings.migrate.canary,
                quality_gate=settings.gate.quality_threshold,
                settings=settings,
                force=config.force,
                data_dir=target.data_dir,
                source_score=migrate_score.quality if migrate_score is not None else None,
                source_score_sha256=profile_of.get("source_sha256"),
                gate_junitxml=run_dir / "gate3-junit.xml",
                gate_report=run_dir / "gate3.json",
            )
        )
        data = res.as_dict()
        _write_json(run_dir / "migrate.json", data)
        held3["result"] = res
        held3["gate_seconds"] = res.timings.get("contracts", 0.0) if res.gate is not None else 0.0
        return {**data, "_inner_seconds": held3["gate_seconds"]}

    try:
        mig = rec.step("migrate", do_migrate)
    except GateFailed as exc:
        return stop(EXIT_GATE3, f"Gate 3 (migration) failed, the live schema is untouched: {exc}")

    conninfo = target.conninfo()
    res = held3["result"]
    if res.gate is not None:
        gate3 = res.gate
        detail = {**_gate_detail(gate3), "ran_in": "migrate", "schema": res.version_schema}
        live = _live_counts(conninfo, settings.migrate.schema, [t.name for t in res.tables])
        validated = {t.name: t.loaded_rows for t in res.tables}
        detail["live_rows"] = live
        if live != validated:  # the cut-over must have brought exactly the validated tables live
            detail["_outcome"] = "failed"
            rec.add(StepRecord("gate3", detail.pop("_outcome"), held3["gate_seconds"], peak_rss_mb(), detail))
            return stop(
                EXIT_POST,
                f"post-migration check failed: the live schema {settings.migrate.schema} holds {live} rows, "
                f"the validated version held {validated}\n  next: roll back with `servicedesk-etl rollback`, then look at the ledger (`servicedesk-etl versions`)",
            )
        rec.add(StepRecord("gate3", detail.pop("_outcome"), held3["gate_seconds"], peak_rss_mb(), detail))
    else:
        # nothing was validated in this run (the same source was live already): judge the live schema
        gate3 = _gate(rec, "gate3", run_gate, run_dir, config, target=conninfo, schema=settings.migrate.schema)
    scores["postgres"] = _quality(gate3)
    if not gate3.passed:
        return stop(
            EXIT_POST,
            _gate_message("post-migration contracts", gate3, run_dir / "gate3.json", "roll back with `servicedesk-etl rollback`, then look at the failures"),
        )

    # -- dashboard metrics ---------------------------------------------------------------
    from pipeline.dashboard import compute_metrics

    metrics = [m.as_dict() for m in compute_metrics(conninfo, settings.migrate.schema)]
    _write_json(run_dir / "metrics.json", metrics)
    result = stop(EXIT_OK, f"{mig.get('status', 'live')}: schema {settings.migrate.schema} now serves {mig.get('version_schema')}")
    result.metrics = metrics
    return result


def _gate(rec: _Recorder, name: str, run_gate: Callable[..., Any], run_dir: Path, config: RunConfig, **where: Any) -> Any:
    """One gate as one pytest run, its JUnit XML and JSON report kept in the run folder."""
    holder: dict[str, Any] = {}

    def do_gate() -> dict[str, Any]:
        # pytest's own terminal output goes to <gate>.log; the summary is printed by us.
        verdict = run_gate(
            settings_file=config.config_file,
            junitxml=run_dir / f"{name}-junit.xml",
            report=run_dir / f"{name}.json",
            output=run_dir / f"{name}.log",
            **where,
        )
        holder["v"] = verdict
        return _gate_detail(verdict)

    rec.step(name, do_gate)
    return holder["v"]


def _gate_detail(verdict: Any) -> dict[str, Any]:
    """A gate's step detail (``_outcome`` is the step's outcome)."""
    return {
        "_outcome": "ok" if verdict.passed else "failed",
        "passed": verdict.passed,
        "verdict": verdict.verdict,
        "quality": verdict.quality,
        "failed": len(verdict.failed),
        "warned": len(verdict.warned),
    }


def _live_counts(conninfo: str, schema: str, tables: list[str]) -> dict[str, int]:
    """Row counts of ``tables`` as readers of the live schema see them now."""
    import psycopg

    from pipeline.pgschema import qualified

    with psycopg.connect(conninfo, autocommit=True) as conn:
        return {t: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(qualified(schema, t))).fetchone()[0] for t in tables}


def _quality(verdict: Any) -> dict[str, Any] | None:
    """The gate's quality score with its dimensions (the profiler's, from the report)."""
    quality = (verdict.report.get("profile") or {}).get("quality")
    if quality is None and verdict.quality is not None:
        quality = {"score": verdict.quality, "grade": None, "dimensions": {}}
    return quality


def _gate_message(gate: str, verdict: Any, report: Path, remedy: str) -> str:
    top = sorted(verdict.failed, key=lambda f: -int(f[2] or 0))[:5]
    lines = [f"{gate} failed: {len(verdict.failed)} checks failed (verdict {verdict.verdict}, quality {verdict.quality})"]
    lines += [f"  - {fid} [{sev}] {count} rows" for fid, sev, count in top]
    if len(verdict.failed) > len(top):
        lines.append(f"  ... and {len(verdict.failed) - len(top)} more")
    lines.append(f"  details: {report}")
    lines.append(f"  next: {remedy}")
    return "\n".join(lines)


def _finish_outputs(result: RunResult, config: RunConfig) -> None:
    """result.json, metrics.prom and report.html, written whatever the outcome."""
    _write_json(result.run_dir / "result.json", result.to_json())
    try:
        from pipeline.promexport import PipelineMetrics

        pm = PipelineMetrics()
        for s in result.steps:
            pm.stage(s.name, s.seconds, s.peak_rss_mb * 1024 * 1024)
        for stage, score in result.scores.items():
            if score is not None:
                pm.quality_score(stage, score)
        for s in result.steps:
            if s.name.startswith("gate"):
                pm.gate_outcome(s.name, s.outcome == "ok")
        by_step = {s.name: s.detail for s in result.steps}
        for table, n in (by_step.get("ingest", {}).get("rows_by_table") or {}).items():
            pm.rows_counted(table, "read", n)
        for table, n in (by_step.get("clean", {}).get("quarantined_by_table") or {}).items():
            pm.rows_counted(table, "quarantined", n)
        for t in by_step.get("migrate", {}).get("tables") or []:
            pm.rows_counted(t["name"], "written", t["loaded_rows"])
            pm.rows_counted(t["name"], "rejected", t["rejected_rows"])
        # A stable path (the textfile collector's folder) carries the last success over
        # from the previous run; the run folder keeps its own copy.
        published = config.metrics_textfile
        pm.finished(result.exit_code == 0, previous=published if published and published.exists() else None)
        pm.write(result.run_dir / "metrics.prom")
        if published:
            pm.write(published)
    except Exception as exc:  # metrics must never turn a finished run into a failure
        log.warning("could not write metrics.prom: %s", exc)
        log.debug("metrics.prom", exc_info=True)
    try:
        from pipeline.report import write_report

        write_report(result.run_dir)
    except Exception as exc:
        log.warning("could not write report.html: %s", exc)
        log.debug("report.html", exc_info=True)


# --- CLI ---------------------------------------------------------------------------------


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tickets", type=Path, required=True, help="tickets workbook (.xlsx)")
    parser.add_argument("--comments", type=Path, required=True, help="comments workbook (.xlsx)")
    parser.add_argument("--timesheets", type=Path, required=True, help="timesheets workbook (.xlsx)")
    _common(parser)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", help="PostgreSQL URI (default: config, SERVICEDESK_TARGET, PG*, then the embedded server)")
    parser.add_argument("--auto-clean", action="store_true", help="clean automatically when Gate 1 says the data is fixable")
    parser.add_argument("--workdir", type=Path, help="parent folder of run folders (default .servicedesk/runs)")
    parser.add_argument("--data-dir", type=Path, help="embedded server data folder (default .servicedesk/pg)")
    parser.add_argument("--force", action="store_true", help="migrate even if this source was already migrated")
    parser.add_argument(
        "--metrics-textfile",
        type=Path,
        help="also write the run's metrics here, e.g. /var/lib/node_exporter/textfile/servicedesk_etl.prom",
    )


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    config = RunConfig(
        tickets=args.tickets,
        comments=args.comments,
        timesheets=args.timesheets,
        settings=settings,
        target=args.target,
        auto_clean=args.auto_clean,
        workdir=args.workdir,
        config_file=Path(args.config) if args.config else None,
        force=args.force,
        data_dir=args.data_dir,
        metrics_textfile=args.metrics_textfile,
    )
    result = run(config, on_step=_print_step)
    _print_result(result)
    return result.exit_code


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, help="folder for the sample exports (default: a new folder under .servicedesk/demo)")
    parser.add_argument("--tickets", type=int, default=1000, help="sample size in tickets (comments ~10x, timesheets ~13x)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--target", help="PostgreSQL URI (default: the embedded server)")
    parser.add_argument("--data-dir", type=Path, help="embedded server data folder (default .servicedesk/pg)")


def demo_command(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.sample import generate

    out = args.out or Path(".servicedesk") / "demo" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    if out.exists() and any(out.iterdir()):
        raise InputFileError(f"--out {out} is not empty", "give a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    print(f"writing sample exports ({args.tickets} tickets, every known defect injected) to {out}")
    generate(out, tickets=args.tickets, seed=args.seed)
    config = RunConfig(
        tickets=out / "tickets.xlsx",
        comments=out / "comments.xlsx",
        timesheets=out / "timesheets.xlsx",
        settings=settings,
        target=args.target,
        auto_clean=True,
        workdir=out / "runs",
        config_file=Path(args.config) if args.config else None,
        data_dir=args.data_dir,
    )
    result = run(config, on_step=_print_step)
    _print_result(result)
    if result.exit_code == 0:
        print("\nconnect:  servicedesk-etl db url" + (f" --data-dir {args.data_dir}" if args.data_dir else ""))
    return result.exit_code


def _print_step(step: StepRecord) -> None:
    extra = ""
    d = step.detail
    if step.name.startswith("gate"):
        extra = f"verdict {d.get('verdict')}, quality {d.get('quality')}, {d.get('failed')} failed, {d.get('warned')} warned"
    elif "rows" in d:
        extra = f"{d.get('rows'):,} rows" if isinstance(d.get("rows"), int) else ""
    print(f"  {step.name:<10} {step.outcome:<7} {step.seconds:7.1f}s  {extra}", flush=True)


def _print_result(result: RunResult) -> None:
    s = result.scores
    print()
    print(f"quality score  raw {_fmt(s.get('raw'))}  cleaned {_fmt(s.get('clean'))}  postgres {_fmt(s.get('postgres'))}")
    if result.metrics:
        print("dashboard metrics (the tables among them: `servicedesk-etl metrics`, or report.html):")
    for m in result.metrics:
        value = m.get("value")
        if value is not None:
            print(f"  {m['id']:<5} {m['title']:<40} {value} {m.get('unit', '')}  [{m.get('status')}]")
        elif m.get("rows"):
            print(f"  {m['id']:<5} {m['title']:<40} {len(m['rows'])} rows  [{m.get('status')}]")
        else:
            print(f"  {m['id']:<5} {m['title']:<40} {m.get('note') or 'n/a'}")
    print(f"\nrun folder: {result.run_dir}  (report.html, metrics.prom, gate JUnit XML)")
    print(("done: " if result.exit_code == 0 else f"stopped (exit {result.exit_code}): ") + result.message)


def _fmt(score: Any) -> str:
    if isinstance(score, dict):
        score = score.get("score")
    return "-" if score is None else f"{float(score):.1f}"

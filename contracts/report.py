"""The gate's session object and its report formatting (the plugin's hooks call these).

``GateSession`` is built once per pytest session, in ``pytest_configure``: it validates
the options (a bad ``--source`` is a usage error with a remedy), then, at collection,
runs the contract executor and the profiler once and turns their results into
``GateCase``s, one per test item. It renders failures (bounded samples), the terminal
summary, and the JSON written by ``--contracts-report`` (``GATE_FORMAT``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from contracts.executor import FAILED, PASSED, WARNED, CheckResult, ContractRun, SampleRow, TYPE_CHECKS
from pipeline.child import CAN_FORK, ChildFailed, SpawnedCall, alone, fork_answer

GATE_FORMAT = "servicedesk-etl/gate/1"

_log = logging.getLogger(__name__)

# Profiler finding codes a contract check already judges: such a finding gets no item of
# its own (it would be the same failure twice). Every other code becomes an item.
COVERED_BY: dict[str, tuple[str, ...]] = {
    "MISSING_TABLE": ("row_count",),
    "EMPTY_TABLE": ("row_count",),
    "MISSING_COLUMN": ("present",),
    "TYPE_MISMATCH": tuple(TYPE_CHECKS.values()),
    "NULL_IN_REQUIRED": ("not_null",),
    "NOT_ALLOWED": ("allowed_values",),
    "PATTERN_MISMATCH": ("pattern",),
    "OUT_OF_RANGE": ("in_range",),
    "DUPLICATE_KEYS": ("unique_key",),
    "FUTURE_DATES": ("not_future",),
    "ORPHANS": ("references", "orphans"),
}
# Codes about a whole table: their contract check sits on the pseudo-column ``*``.
TABLE_LEVEL_CODES = frozenset({"MISSING_TABLE", "EMPTY_TABLE", "DUPLICATE_KEYS"})
_FINDING_STATUS = {"critical": FAILED, "error": FAILED, "warning": WARNED, "info": PASSED}


@dataclass(frozen=True)
class GateOptions:
    """The gate's options as given (command line or ini), not yet validated."""

    source: str | None = None
    target: str | None = None
    schema: str | None = None
    settings_file: str | None = None
    report: str | None = None
    quality_threshold: str | float | None = None
    show_personal: bool = False


@dataclass
class GateCase:
    """What one test item reports."""

    id: str
    kind: str  # check | finding | score | verdict | profile
    table: str
    column: str
    check: str
    severity: str
    status: str  # passed | failed | warned
    message: str
    failing: int = 0
    considered: int = 0
    tolerance: float = 0.0
    sample: tuple[SampleRow, ...] = ()
    example_keys: list[Any] = field(default_factory=list)
    fix: str = ""
    detail: dict[str, Any] = field(default_factory=dict)  # a finding's evidence (formats, counts)
    error: BaseException | None = None  # a crash to re-raise (shows its traceback)

    @property
    def share(self) -> float:
        return self.failing / self.considered if self.considered else 0.0

    def properties(self) -> list[tuple[str, Any]]:
        """junit ``<properties>`` of the test case."""
        props = [
            ("kind", self.kind),
            ("severity", self.severity),
            ("status", self.status),
            ("failing", self.failing),
            ("considered", self.considered),
            ("share", f"{self.share:.6f}"),
        ]
        if self.kind == "check":
            props.append(("tolerance", f"{self.tolerance:g}"))
        return props

    def render(self, show_personal: bool = False) -> str:
        """The failure message: counts first, then a bounded sample, never thousands of lines."""
        # The first line is what pytest's short summary shows: make it the count.
        lines = [f"{self.message}  [{self.severity}]"]
        if self.considered:
            tolerated = f"; tolerated: {self.tolerance:.2%}" if self.kind == "check" else ""
            lines.append(f"failing: {self.failing:,} of {self.considered:,} ({self.share:.2%}){tolerated}")
        if self.sample:
            shown = len(self.sample)
            more = f" (first {shown} of {self.failing:,})" if self.failing > shown else ""
            lines.append(f"sample{more}:")
            keys = [_text(s.key) for s in self.sample]
            kw = min(max(len("key"), *(len(k) for k in keys)), 40)
            cw = min(max(len("column"), *(len(s.column) for s in self.sample)), 40)
            lines.append(f"  {'key':<{kw}}  {'column':<{cw}}  value")
            for s, k in zip(self.sample, keys):
                lines.append(f"  {k:<{kw}}  {s.column:<{cw}}  {s.value!r}")
            masked = any(isinstance(s.value, str) and s.value.startswith(("<personal #", "<text, ")) for s in self.sample)
            if masked and not show_personal:
                lines.append("(personal values and long text are masked; --show-personal shows them)")
        if self.detail:
            text = json.dumps(self.detail, default=str, ensure_ascii=False)
            lines.append("detail: " + (text if len(text) <= 300 else text[:300] + "..."))
        if self.example_keys:
            lines.append("example keys: " + ", ".join(_text(k) for k in self.example_keys[:10]))
        if self.fix:
            lines.append(f"fix: {self.fix}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "table": self.table,
            "column": self.column,
            "check": self.check,
            "severity": self.severity,
            "status": self.status,
            "failing": self.failing,
            "considered": self.considered,
            "share": self.share,
            "tolerance": self.tolerance,
            "message": self.message,
        }


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_text(v) for v in value) + ")"
    return str(value)


class GateSession:
    """One gate run: validated options, the results computed once, outcomes recorded."""

    def __init__(self, options: GateOptions, settings: Any, threshold: float, open_source: Callable[[], Any], label: str, db_name: str, path: Path | None) -> None:
        self.given_profile: Any = None  # the caller's profile of this file (``run_gate(profile=...)``)
        self.options = options
        self.settings = settings
        self.threshold = threshold
        self.show_personal = settings.gate.show_personal
        self.label = label
        self.db_name = db_name
        self.path = path
        self._open_source = open_source
        self._cases: list[GateCase] | None = None
        self.contract_run: ContractRun | None = None
        self.profile: Any = None
        self.profile_error: BaseException | None = None
        self.outcomes: dict[str, str] = {}
        self.report_path = Path(options.report) if options.report else None

    # -- validation: every problem here is a usage error with the remedy

    @classmethod
    def open(cls, options: GateOptions, usage_error: type[Exception] = ValueError) -> "GateSession":
        from pipeline.config import load_settings
        from pipeline.errors import EtlError

        if options.source and options.target:
            raise usage_error("--source and --target are exclusive: give a SQLite file or a PostgreSQL target, not both")
        threshold: float | None = None
        if options.quality_threshold is not None:
            try:
                threshold = float(options.quality_threshold)
            except (TypeError, ValueError):
                raise usage_error(f"--quality-threshold must be a number from 0 to 100, not {options.quality_threshold!r}") from None
            if not 0 <= threshold <= 100:
                raise usage_error(f"--quality-threshold must be within 0..100, not {threshold:g}")
        overrides: dict[str, Any] = {"gate.quality_threshold": threshold}
        if options.show_personal:
            overrides["gate.show_personal"] = True
        try:
            settings = load_settings(options.settings_file, overrides)
        except EtlError as exc:
            raise usage_error(f"--contracts-config: {exc}") from None
        if options.report:
            folder = Path(options.report).resolve().parent
            if not folder.is_dir():
                raise usage_error(f"--contracts-report {options.report}: folder {folder} does not exist\n  fix: create the folder or write the report elsewhere")
        if options.source:
            return cls._open_sqlite(options, settings, usage_error)
        return cls._open_postgres(options, settings, usage_error)

    @classmethod
    def _open_sqlite(cls, options: GateOptions, settings: Any, usage_error: type[Exception]) -> "GateSession":
        from pipeline.errors import EtlError
        from pipeline.sources import SQLiteSource

        path = Path(str(options.source))
        try:
            SQLiteSource(path).close()  # fails early, with the remedy, on a bad file
        except EtlError as exc:
            raise usage_error(str(exc)) from None
        return cls(options, settings, settings.gate.quality_threshold, lambda: SQLiteSource(path), str(path), path.name, path.resolve())

    @classmethod
    def _open_postgres(cls, options: GateOptions, settings: Any, usage_error: type[Exception]) -> "GateSession":
        from pipeline.errors import EtlError

        schema = options.schema or settings.migrate.schema
        try:
            from pipeline.pgsource import PostgresSource
        except ImportError:
            raise usage_error(
                "--target needs the PostgreSQL source (pipeline.pgsource), which this build does not have yet\n"
                "  fix: check the gate on the SQLite file with --source FILE"
            ) from None
        conninfo = str(options.target)

        def open_source() -> Any:
            return PostgresSource(conninfo, schema)

        try:
            open_source().close()
        except EtlError as exc:
            raise usage_error(f"--target: {exc}") from None
        except Exception as exc:  # psycopg's errors name host and user, never the password
            raise usage_error(f"--target: cannot read schema {schema}: {type(exc).__name__}: {str(exc).strip()}\n  fix: check that the server runs and the schema exists") from None
        return cls(options, settings, settings.gate.quality_threshold, open_source, f"PostgreSQL schema {schema}", schema, None)

    # -- computing, once

    def cases(self) -> list[GateCase]:
        if self._cases is None:
            self._cases = self._compute()
        return self._cases

    def _compute(self) -> list[GateCase]:
        from contracts.executor import execute

        source = self._open_source()
        try:
            try:
                from pipeline.profile import profile_source
            except ImportError as exc:
                self.profile_error = exc
                profile_source = None  # type: ignore[assignment]
            from pipeline.sources import SQLiteSource, sha256_file

            sqlite = isinstance(source, SQLiteSource)
            given = self._usable_profile(source) if sqlite and self.given_profile is not None else None
            if given is not None:
                self.profile = given
                self.contract_run = execute(source, self.settings)
            elif sqlite and profile_source is not None and _parallel_worth_it(source.path):
                # Two processes read the same read-only file: the contract checks (and the
                # file's SHA-256) in a child, the profile here. Same results as in turn.
                today, now = date.today(), datetime.now()
                with ChildExecution(source.path, self.settings, today, profile_tables=CHILD_PROFILE_TABLES, now=now) as child:
                    try:
                        profile = profile_source(source, self.settings, now=now, apart=child)
                    except Exception as exc:  # noqa: BLE001 - reported as a failing item with its traceback
                        self.profile_error = exc
                        profile = None
                    self.contract_run, digest = child.result()
                if profile is not None:
                    # The digest lets the cleaner reuse this profile.
                    self.profile = dataclasses.replace(profile, source_sha256=digest)
            elif not sqlite and profile_source is not None and _CAN_FORK and (os.cpu_count() or 1) > 1 and _alone():
                # PostgreSQL: the contract checks (and the tickets' profile) in a forked child,
                # each process on its own connections. In two threads they shared one GIL,
                # and the client's work (about 5.6 s of CPU at 1M rows) ran on one core:
                # 7.4-7.5 s -> 5.9-6.7 s for the gate at 1M rows (the checks mostly wait
                # on the server's GROUP BYs, 1 s of CPU here against 3.7 s for the profile).
                from pipeline.profile import source_origin

                today, now = date.today(), datetime.now()
                with ChildExecution(source_origin(source), self.settings, today, profile_tables=CHILD_PROFILE_TABLES, now=now) as child:
                    try:
                        self.profile = profile_source(source, self.settings, now=now, apart=child)
                    except Exception as exc:  # noqa: BLE001 - reported as a failing item with its traceback
                        self.profile_error = exc
                    self.contract_run, _ = child.result()
            elif not sqlite and profile_source is not None:
                # PostgreSQL: the contract checks on a thread, on a connection of their own
                # (``_execute_apart``), beside the profile. Both mostly wait on their reads
                # (the server's scans and GROUP BYs, psycopg's fetches release the GIL);
                # a thread, not a process: no second Python and pandas to start. Same
                # results as in turn: each reads the schema through its own source.
                import concurrent.futures

                with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="gate-checks") as pool:
                    checks = pool.submit(self._execute_apart, execute)
                    try:
                        self.profile = profile_source(source, self.settings)
                    except Exception as exc:  # noqa: BLE001 - reported as a failing item with its traceback
                        self.profile_error = exc
                    self.contract_run = checks.result()
            else:
                self.contract_run = execute(source, self.settings)
                if profile_source is not None:
                    try:
                        digest = sha256_file(source.path) if sqlite else None  # lets the cleaner reuse this profile
                        self.profile = profile_source(source, self.settings, source_sha256=digest)
                    except Exception as exc:  # noqa: BLE001 - reported as a failing item with its traceback
                        self.profile_error = exc
        finally:
            source.close()
        cases = [_case_of(r) for r in self.contract_run.results]
        cases.extend(self._finding_cases())
        cases.extend(self._profile_cases())
        return cases

    def _execute_apart(self, execute: Callable[..., ContractRun]) -> ContractRun:
        """The contract checks on a source of their own (``_compute`` on PostgreSQL)."""
        source = self._open_source()
        try:
            return execute(source, self.settings)
        finally:
            source.close()

    def _usable_profile(self, source: Any) -> Any:
        """The caller's profile when it stands for one made now: same SHA-256, same
        tables and columns (as the cleaner checks ``CleanConfig.profile``); else None."""
        from pipeline.sources import sha256_file

        given = self.given_profile
        try:
            if isinstance(given, (str, Path)):
                given = json.loads(Path(given).read_text(encoding="utf-8"))
            if isinstance(given, dict):
                from pipeline.clean import profile_from_json

                given = profile_from_json(given)
        except Exception as exc:  # noqa: BLE001 - an unusable profile is profiled again, with a warning
            _log.warning("the given profile is not used (%s): profiling %s again", exc, self.label)
            return None
        why = None
        if getattr(given, "source_sha256", None) != sha256_file(source.path):
            why = "it was made of another file (SHA-256 differs)" if getattr(given, "source_sha256", None) else "it does not record the source's SHA-256"
        else:
            present = source.tables()
            if set(given.tables) != set(present):
                why = "its tables are not the source's"
            elif any(set(given.tables[t].columns) != {c for c, _ in source.columns(t)} for t in present):
                why = "its columns are not the source's"
        if why is not None:
            _log.warning("the given profile is not used, %s: profiling %s again", why, self.label)
            return None
        return given

    def _finding_cases(self) -> list[GateCase]:
        if self.profile is None:
            return []
        assert self.contract_run is not None
        # Checks that said no, by place: a finding is skipped only when such a check
        # already reports the same problem. When the check passed but the profiler still
        # found something (a day-first date far in the future is no ISO date, so the
        # contract's not_future never saw it), the finding gets its own item.
        failing: dict[tuple[str, str], set[str]] = {}
        for r in self.contract_run.results:
            if r.status != PASSED:
                failing.setdefault((r.table, r.column), set()).add(r.check)
        seen: dict[str, int] = {}
        out = []
        for f in self.profile.findings:
            column = f.column or "*"
            where = "*" if f.code in TABLE_LEVEL_CODES else column
            covered = COVERED_BY.get(f.code, ())
            if covered and failing.get((f.table, where), set()) & set(covered):
                continue
            fid = f.id
            seen[fid] = seen.get(fid, 0) + 1
            if seen[fid] > 1:
                fid = f"{fid}#{seen[fid]}"
            considered = int(round(f.count / f.share)) if f.share else 0
            out.append(
                GateCase(
                    id=fid,
                    kind="finding",
                    table=f.table,
                    column=column,
                    check=f.code,
                    severity=f.severity,
                    status=_FINDING_STATUS.get(f.severity, FAILED),
                    message=f"{f.code}: {f.count:,} value{'' if f.count == 1 else 's'} ({f.share:.2%})"
                    + (f": {_describe_code(f.code)}" if _describe_code(f.code) else ""),
                    detail=dict(f.detail),
                    failing=f.count,
                    considered=considered,
                    example_keys=self._masked_keys(f.table, list(f.example_keys)),
                    fix=f.fix,
                )
            )
        return out

    def _masked_keys(self, table: str, keys: list[Any]) -> list[Any]:
        """Example keys with their personal parts (a timesheet's username) masked."""
        from contracts import spec
        from contracts.executor import mask_personal
        from contracts.schemas import contract_for

        schema = contract_for(table)
        if self.show_personal or schema is None:
            return keys
        key = spec.facts(schema).key
        personal = [spec.is_personal(schema.columns[c]) for c in key]
        if not any(personal):
            return keys
        out = []
        for k in keys:
            if isinstance(k, (list, tuple)) and len(k) == len(key):
                out.append(tuple(mask_personal(v) if p else v for v, p in zip(k, personal)))
            elif len(key) == 1:
                out.append(mask_personal(k))
            else:
                out.append(k)
        return out

    def _profile_cases(self) -> list[GateCase]:
        db = self.db_name
        if self.profile is None:
            err = self.profile_error
            if isinstance(err, ImportError):
                why = f"the profiler (pipeline.profile) is not available in this build: {err}"
                profile_case = GateCase(f"{db}::profile", "profile", "*", "*", "profile", "error", FAILED, why)
            else:
                why = f"the profiler failed: {type(err).__name__}: {err}"
                profile_case = GateCase(f"{db}::profile", "profile", "*", "*", "profile", "error", FAILED, why, error=err)
            return [
                profile_case,
                GateCase(f"{db}::quality_score", "score", "*", "*", "quality_score", "error", FAILED, f"no quality score: {why}"),
                GateCase(f"{db}::verdict", "verdict", "*", "*", "verdict", "critical", FAILED, f"no verdict: {why}"),
            ]
        q = self.profile.quality
        dims = ", ".join(f"{k} {v:.1f}" for k, v in q.dimensions.items())
        below = q.score < self.threshold
        score_msg = (
            f"quality score {q.score:.1f} (grade {q.grade}) is {'below' if below else 'at or above'} the threshold {self.threshold:g}; {dims}"
        )
        verdict = self.profile.verdict
        reasons = "; ".join(self.profile.reasons) or "no reasons given"
        return [
            GateCase(f"{db}::quality_score", "score", "*", "*", "quality_score", "error", FAILED if below else PASSED, score_msg),
            GateCase(
                f"{db}::verdict",
                "verdict",
                "*",
                "*",
                "verdict",
                "critical",
                FAILED if verdict == "FIX_SOURCE" else PASSED,
                f"verdict {verdict}: {reasons}",
                fix="the export itself is broken: fix it at the source and export again" if verdict == "FIX_SOURCE" else "",
            ),
        ]

    # -- outcomes, summary, report

    def record(self, case_id: str, outcome: str, when: str) -> None:
        if when != "call" and outcome == "passed":
            return
        if outcome == "passed":
            case = next((c for c in self.cases() if c.id == case_id), None)
            if case is not None and case.status == WARNED:
                outcome = "warned"
        self.outcomes[case_id] = outcome

    def _tables(self) -> dict[str, dict[str, Any]]:
        assert self.contract_run is not None
        per_table = self.profile.quality.per_table if self.profile is not None else {}
        out: dict[str, dict[str, Any]] = {}
        for name, t in self.contract_run.tables.items():
            out[name] = {
                "present": t.present,
                "rows": t.rows,
                "has_contract": t.has_contract,
                "passed": 0,
                "failed": 0,
                "warned": 0,
                "not_run": 0,
                "quality": per_table.get(name),
            }
        if self.profile is not None:
            for name, tp in self.profile.tables.items():
                out.setdefault(name, {"present": True, "rows": tp.rows, "has_contract": tp.has_contract, "passed": 0, "failed": 0, "warned": 0, "not_run": 0, "quality": per_table.get(name)})
        for case in self.cases():
            if case.table not in out:
                continue
            outcome = self.outcomes.get(case.id)
            if outcome is None:
                out[case.table]["not_run"] += 1
            elif outcome == "warned":
                out[case.table]["warned"] += 1
            elif outcome == "passed":
                out[case.table]["passed"] += 1
            else:
                out[case.table]["failed"] += 1
        return out

    def summary_lines(self) -> list[str]:
        """The terminal summary: a line per table, then the score and the verdict."""
        if self._cases is None or self.contract_run is None:
            return [f"# servicedesk contracts: {self.label}", "the gate did not run (collection failed)"]
        tables = self._tables()
        lines = [f"# servicedesk contracts: {self.label}"]
        width = max([len("table"), *(len(n) for n in tables)])
        lines.append(f"{'table':<{width}}  {'rows':>9}  {'passed':>6}  {'failed':>6}  {'warned':>6}  {'quality':>7}")
        for name, t in tables.items():
            rows = f"{t['rows']:,}" if t["present"] else "missing"
            quality = f"{t['quality']:.1f}" if isinstance(t["quality"], (int, float)) else "-"
            extra = "" if t["has_contract"] else "  (no contract)"
            if t["not_run"]:
                extra += f"  ({t['not_run']} not run)"
            lines.append(f"{name:<{width}}  {rows:>9}  {t['passed']:>6}  {t['failed']:>6}  {t['warned']:>6}  {quality:>7}{extra}")
        if self.profile is not None:
            q = self.profile.quality
            lines.append(f"quality score: {q.score:.1f} (grade {q.grade}), threshold {self.threshold:g}")
            lines.append(f"verdict: {self.profile.verdict}" + (f" ({'; '.join(self.profile.reasons)})" if self.profile.reasons else ""))
        else:
            lines.append(f"quality score: none; verdict: none (profiler: {self.profile_error})")
        warned = [c for c in self.cases() if self.outcomes.get(c.id) == "warned"]
        tolerated = [c for c in self.cases() if c.kind == "check" and c.status == PASSED and c.failing]
        if warned:
            lines.append(f"warnings ({len(warned)}; they do not fail the gate):")
            lines.extend(f"  WARNED {c.id}: {c.message}" for c in warned)
        if tolerated:
            lines.append("failures within tolerance:")
            lines.extend(f"  TOLERATED {c.id}: {c.message}" for c in tolerated)
        return lines

    def report(self, exit_code: int | None) -> dict[str, Any]:
        assert self.contract_run is not None
        cases = self.cases()
        items = []
        for c in cases:
            entry = c.to_json()
            entry["outcome"] = self.outcomes.get(c.id, "not run")
            items.append(entry)
        profile: dict[str, Any]
        if self.profile is not None:
            p = self.profile
            profile = {
                "format": p.format,
                "source_sha256": p.source_sha256,
                "created": p.created,
                "full": p.full,
                "quality": {"score": p.quality.score, "grade": p.quality.grade, "dimensions": p.quality.dimensions, "per_table": p.quality.per_table},
                "verdict": p.verdict,
                "reasons": list(p.reasons),
                "tables": {n: {"rows": t.rows, "has_contract": t.has_contract, "missing_columns": list(t.missing_columns), "extra_columns": list(t.extra_columns), "columns": {c: asdict(col) for c, col in t.columns.items()}} for n, t in p.tables.items()},
                "findings": [f.to_json() for f in p.findings],
            }
        else:
            profile = {"error": f"{type(self.profile_error).__name__}: {self.profile_error}"}
        failed = [c for c in cases if c.status == FAILED]
        warned = [c for c in cases if c.status == WARNED]
        return {
            "format": GATE_FORMAT,
            "source": self.label,
            "db": self.db_name,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "exit_code": exit_code,
            "passed": exit_code == 0,
            "quality_threshold": self.threshold,
            "quality": self.profile.quality.score if self.profile is not None else None,
            "verdict": self.profile.verdict if self.profile is not None else None,
            "summary": {
                "items": len(cases),
                "passed": sum(1 for c in cases if c.status == PASSED),
                "failed": len(failed),
                "warned": len(warned),
            },
            "failed": [{"id": c.id, "severity": c.severity, "count": c.failing} for c in failed],
            "warned": [{"id": c.id, "severity": c.severity, "count": c.failing} for c in warned],
            "tables": self._tables(),
            "items": items,
            "results": self.contract_run.to_json()["results"],
            "profile": profile,
        }

    def finish(self, exit_code: int) -> None:
        if self.report_path is None or self._cases is None or self.contract_run is None:
            return
        data = self.report(exit_code)
        # Written whole or not at all: a reader never sees half a report.
        fd, tmp = tempfile.mkstemp(prefix=".gate-", suffix=".json", dir=self.report_path.resolve().parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, default=str)
        os.replace(tmp, self.report_path)


# The tables the contract checker also profiles (``ChildExecution``'s ``profile_tables``)
# while the caller profiles the rest: the checks cost about 0.8x the profile, so the child
# takes about a tenth of the profile to finish with the caller. The tickets' share of
# the profile at 260K rows: 0.27 of 2.5 s of CPU (60 columns, 4% of the rows).
CHILD_PROFILE_TABLES = ("tickets",)
# The cleaner's output gate: a second forked child profiles these tables only (no checks)
# while the checker profiles CHILD_PROFILE_TABLES and the caller the rest (comments).
# With two processes the caller went on profiling comments and timesheets for about
# 1.5 s (at 260K rows) after the checker ended: the gate 4.2-5.2 s -> 2.9-3.5 s.
PROFILE_ONLY_TABLES = ("timesheets",)

# From this file size on, the contract checks run in a child process beside the profile
# (measured: at 260K rows, 351 MB, the gate's wall time drops from ~11 s to ~7 s on two
# cores); below it, starting a Python with pandas costs more than it saves.
PARALLEL_MIN_BYTES = 32 << 20


def _parallel_worth_it(path: Path) -> bool:
    """A big enough file and a core to spare (as ``make -l``: the last minute's load
    average leaves about one free). On a busy machine the child only adds its start-up (about
    1 s of CPU for Python and pandas) without finishing sooner: measured at 260K rows
    with a load of 5-7 on two cores, 21-23 s either way."""
    try:
        big = Path(path).stat().st_size >= PARALLEL_MIN_BYTES
    except OSError:
        return False
    cores = os.cpu_count() or 1
    try:
        # cores - 0.5, not - 1: the pipeline's own step before the gate (ingest, one
        # process) leaves a load of about 1 behind, and that core is free now.
        spare = os.getloadavg()[0] <= cores - 0.5
    except (OSError, AttributeError):  # pragma: no cover - no load average on this system
        spare = True
    return big and cores > 1 and spare


def _source_class(where: Any) -> tuple[type, tuple[Any, ...]]:
    """The source class and its arguments for ``where``: a SQLite file's path, or
    ("postgres", conninfo, schema) (``pipeline.profile.source_origin``)."""
    if isinstance(where, tuple):
        from pipeline.pgsource import PostgresSource

        return PostgresSource, tuple(where[1:])
    from pipeline.sources import SQLiteSource

    return SQLiteSource, (Path(where),)


def _executed(
    path: Any,
    settings: Any,
    today: date,
    with_sha256: bool,
    profile: tuple[tuple[str, ...], datetime] | None = None,
    only: tuple[str, ...] | None = None,
    *,
    checks: bool = True,
) -> bytes:
    """The child's answer (``path``: a SQLite file, or a PostgreSQL origin, see
    ``_source_class``), pickled: ``(status, value, profiled)``, ``status, value``
    being ``"ok", (ContractRun, sha256 or None)`` or ``"error", exception``; with
    ``profile`` (table names, the profile's clock) ``profiled`` is ``"ok", ({table:
    (TableProfile, findings)}, {(table, key): duplicate_keys answer})`` or ``"error",
    exception``, else None: the named tables' profiles (``pipeline.profile.profile_tables``)
    and the answers to the multi-column key questions of the other tables
    (``pipeline.profile.keys_asked_ahead``, ``settings.profile.example_keys`` sampled),
    taken from the contract checks' own ``unique_key`` question where it found no
    repeated key, else asked. Without ``checks`` (a child that profiles only) the
    checks' answer is ``"ok", (None, None)`` and no key question is answered. ``only``:
    the checks cover these tables alone (``execute(only=...)``). The checks run first:
    the profile takes their answers to its key questions where they found no repeated
    key, and the orphan counts of their stream (``Reusing``), instead of asking again."""
    import pickle

    kind, arguments = _source_class(path)
    asked: dict[tuple[str, tuple[str, ...]], tuple[int, list[tuple]]] = {}

    # (table, reference) -> (orphans, references) as the checks' stream counted them
    counted: dict[tuple[str, tuple[Any, ...]], tuple[int, int]] = {}

    def reference_key(table: str, reference: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
        column, target_table, target_column, ignore = reference
        return table, (column, target_table, target_column, tuple(ignore))

    class Remembering(kind):  # type: ignore[misc, valid-type]
        """Keeps the contract checks' ``duplicate_keys`` answers (in ``asked``) and the
        orphan counts of their stream (in ``counted``)."""

        def duplicate_keys(self, table: str, key: Any, limit: int = 10) -> tuple[int, list[tuple]]:
            answer = super().duplicate_keys(table, key, limit)
            asked[(table, tuple(key))] = answer
            return answer

        if hasattr(kind, "iter_batches_with_orphans"):

            def iter_batches_with_orphans(self, table: str, columns: Sequence[str], references: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
                tallies = [[0, 0] for _ in references]
                width = len(columns)
                for batch in super().iter_batches_with_orphans(table, columns, references, *args, **kwargs):
                    for j, tally in enumerate(tallies):
                        flags = [row[width + j] for row in batch]
                        tally[0] += flags.count(1)
                        tally[1] += len(flags) - flags.count(None)
                    yield batch
                for reference, (orphans, total) in zip(references, tallies):  # the whole table read
                    counted[reference_key(table, reference)] = (orphans, total)

    class Reusing(kind):  # type: ignore[misc, valid-type]
        """The profile's source: the orphans the checks counted are not counted again."""

        if hasattr(kind, "non_null_counts"):

            def non_null_counts(self, table: str, columns: Sequence[str], references: Sequence[Any] = ()) -> Any:
                keys = [reference_key(table, r) for r in references]
                if not references or not all(k in counted for k in keys):
                    return super().non_null_counts(table, columns, references)
                rows, filled, _ = super().non_null_counts(table, columns, ())
                return rows, filled, [counted[k] for k in keys]

    profiled: tuple[str, Any] | None = None
    tables: dict[str, Any] = {}
    try:
        from contracts.executor import execute
        from pipeline.sources import sha256_file

        payload: tuple[str, Any] = ("ok", (None, None))
        if checks:
            with Remembering(*arguments) as checked:
                run = execute(checked, settings, today=today, only=only)
            payload = ("ok", (run, sha256_file(path) if with_sha256 else None))
    except Exception as exc:  # noqa: BLE001 - raised again in the parent
        payload = ("error", exc)

    def answered(table: str, key: tuple[str, ...]) -> tuple[int, list[tuple]] | None:
        """A key the checks found no repeat of needs no second GROUP BY in the profile."""
        seen = asked.get((table, tuple(key)))
        return (0, []) if seen is not None and seen[0] == 0 else None

    if profile is not None:  # after the checks: their key questions answer the profile's
        try:
            from pipeline.profile import profile_tables

            names, now = profile
            with Reusing(*arguments) as source:
                tables = profile_tables(source, names, settings, now=now, answered=answered if checks else None)
        except Exception as exc:  # noqa: BLE001 - raised again in the parent's profile
            profiled = ("error", exc)
    if profile is not None and profiled is None and not checks:
        profiled = ("ok", (tables, {}))
    if profile is not None and profiled is None:
        try:
            from pipeline.profile import keys_asked_ahead

            duplicates = {}
            with kind(*arguments) as source:
                for table, key in keys_asked_ahead(source, [t for t in source.tables() if t not in profile[0]]):
                    if len(key) < 2:
                        continue  # a single key: asked by the profile's pass only when it does not rise
                    seen = asked.get((table, key))
                    if seen is not None and seen[0] == 0:
                        duplicates[(table, key)] = (0, [])  # no repeated key: no sample, whatever its size
                    else:
                        duplicates[(table, key)] = source.duplicate_keys(table, list(key), limit=settings.profile.example_keys)
            profiled = ("ok", (tables, duplicates))
        except Exception as exc:  # noqa: BLE001 - raised again in the parent's profile
            profiled = ("error", exc)
    try:
        return pickle.dumps((*payload, profiled))
    except Exception:  # noqa: BLE001 - an exception that cannot be pickled: its text instead
        def picklable(answer: tuple[str, Any] | None) -> tuple[str, Any] | None:
            if answer is None or answer[0] == "ok":
                return answer
            try:
                pickle.dumps(answer[1])
                return answer
            except Exception as exc:  # noqa: BLE001
                return ("error", RuntimeError(f"{type(answer[1]).__name__}: {answer[1]} ({exc})"))

        return pickle.dumps((*picklable(payload), picklable(profiled)))  # type: ignore[misc]


def import_checks() -> None:
    """Import what the contract checks need before forking a child that runs them.

    The first pandera check imports pandera's pandas check backend, and through
    pandera.strategies hypothesis: ~0.14 s of CPU, paid once per process instead of in
    each child."""
    import contextlib

    import contracts.executor  # noqa: F401

    with contextlib.suppress(ImportError):
        import pandera.backends.pandas.builtin_checks  # noqa: F401


class ChildExecution:
    """The contract executor (and, with ``with_sha256``, the file's SHA-256) in a child
    process beside the caller's profile: Gate 1 and the cleaner run it so, and the gate
    on PostgreSQL (``path``: the origin ("postgres", conninfo, schema), no SHA-256).

    On Linux, when the caller runs no other thread, the child is forked: it has the
    caller's modules (pandas, pandera, the executor) already imported, where a new
    Python spent ~0.6 s of CPU importing them.
    It runs ``_executed`` only and leaves by ``os._exit``: none of the caller's
    ``finally`` blocks, atexit handlers or finalizers run in it, and ``gc.freeze`` keeps
    the caller's objects out of its garbage collection. Elsewhere a new Python is started
    as a command (``pipeline.child.SpawnedCall``), so that the caller's ``__main__`` is
    never imported again.

    With ``profile_tables`` and ``now``, a forked child also profiles those tables
    (``pipeline.profile.profile_tables``, with the clock ``now``) after its checks
    (whose key questions it reuses):
    pass the object to ``profile_source(..., now=now, apart=child)``, which profiles
    the other tables and takes these from the child. A new Python profiles none (its
    string hashes, hence its distinct-count estimates, would differ from the caller's)."""

    def __init__(
        self,
        path: Path | tuple[str, str, str],
        settings: Any,
        today: date,
        with_sha256: bool = True,
        *,
        profile_tables: tuple[str, ...] = (),
        now: datetime | None = None,
        checks: bool = True,
        only: tuple[str, ...] | None = None,
    ) -> None:
        where = path if isinstance(path, tuple) else str(path)
        self.args = (where, settings, today, with_sha256 and not isinstance(path, tuple))
        self.only = only  # the checks cover these tables alone (``execute(only=...)``)
        self.profile = (tuple(profile_tables), now) if profile_tables and now is not None else None
        self.checks = checks
        self._answer: tuple | None = None

    def __enter__(self) -> "ChildExecution":
        self.errors = tempfile.TemporaryFile()  # a file, not a pipe: the forked child never blocks on it
        self.pid: int | None = None  # forked
        self.out: Any = None  # the forked child's answer
        self.call: SpawnedCall | None = None  # spawned
        self.child: Any = None  # the spawned child's process
        try:
            if _CAN_FORK and _alone():
                self._fork()
            else:
                self.profile = None
                if self.checks:  # a child that would only profile has nothing to do
                    self._spawn()
        except BaseException:
            self.errors.close()  # __exit__ does not run when __enter__ fails
            raise
        return self

    def _fork(self) -> None:
        import_checks()

        def answer() -> bytes:
            return _executed(*self.args, self.profile, self.only, checks=self.checks)

        self.pid, self.out = fork_answer(answer, errors=self.errors.fileno())

    def _spawn(self) -> None:
        self.call = SpawnedCall("contracts.report:_executed", *self.args, None, self.only).__enter__()
        self.child = self.call.child

    def _wait(self) -> int:
        _, status = os.waitpid(self.pid, 0)
        self.pid = None
        self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def _read(self) -> tuple:
        """The child's answer (``_executed``), read once: a child that stopped raises
        the same error at every call."""
        import pickle

        if self._answer is None:
            if self.call is not None:  # spawned: the answer (``_executed``'s bytes) through SpawnedCall
                try:
                    out, returncode, tail = self.call.result(), 0, ""
                except ChildFailed as failed:
                    out, returncode, tail = b"", failed.code, failed.tail
            else:
                out = self.out.read()
                returncode = self._wait()
                if returncode != 0 or not out:
                    self.errors.seek(0)
                    tail = (self.errors.read().decode("utf-8", errors="replace").strip().splitlines()[-1:] or ["no message"])[0]
            if returncode != 0 or not out:
                stopped = RuntimeError(f"the contract checks stopped (exit code {returncode}): {tail}")
                self._answer = ("error", stopped, ("error", stopped))
            else:
                self._answer = pickle.loads(out)
        return self._answer

    def result(self) -> tuple[ContractRun, str | None]:
        status, payload, _ = self._read()
        if status != "ok":
            raise payload
        return payload

    def apart_tables(self, path: Path | tuple[str, str, str], now: datetime, full: bool) -> frozenset[str]:
        """The tables this child profiles of the database at ``path`` (a file, or a
        PostgreSQL origin: ``pipeline.profile.source_origin``) with the clock ``now``
        and the detection mode ``full`` (``profile_source``'s ``apart``): none unless
        all three are the child's."""
        if self.profile is None:
            return frozenset()
        names, mine = self.profile
        settings = self.args[1]
        if mine != now or full != settings.profile.full or not _same_origin(path, self.args[0]):
            return frozenset()
        return frozenset(names)

    def _profiled(self) -> tuple[dict[str, tuple[Any, list[Any]]], dict[tuple[str, tuple[str, ...]], tuple[int, list[tuple]]]]:
        _, _, profiled = self._read()
        if profiled is None:
            raise RuntimeError("the contract checker was not asked to profile tables")
        status, value = profiled
        if status != "ok":
            raise value
        return value

    def table_profiles(self) -> dict[str, tuple[Any, list[Any]]]:
        """{table: (TableProfile, findings)} of the tables the child profiled (waits for it)."""
        return self._profiled()[0]

    def duplicate_keys(self, table: str, key: tuple[str, ...]) -> tuple[int, list[tuple]] | None:
        """``duplicate_keys(table, key, limit=settings.profile.example_keys)`` of a
        multi-column key of a table the child did not profile, or None (waits for it)."""
        return self._profiled()[1].get((table, tuple(key)))

    def __exit__(self, *exc: Any) -> None:
        import signal

        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:  # pragma: no cover - already gone (still to be reaped)
                pass
            self._wait()
        elif self.call is not None:
            self.call.__exit__(*exc)
        if self.out is not None:
            self.out.close()
        self.errors.close()


class Apart:
    """Several ``ChildExecution`` profiling tables beside the caller, as one
    ``profile_source(..., apart=)``: the tables of them all, each table's profile from
    its child, a key question answered by the first child that has the answer."""

    def __init__(self, *children: ChildExecution) -> None:
        self.children = children
        self._mine: dict[int, frozenset[str]] = {}

    def apart_tables(self, path: Path | tuple[str, str, str], now: datetime, full: bool) -> frozenset[str]:
        self._mine = {i: child.apart_tables(path, now, full) for i, child in enumerate(self.children)}
        return frozenset().union(*self._mine.values())

    def table_profiles(self) -> dict[str, tuple[Any, list[Any]]]:
        profiles: dict[str, tuple[Any, list[Any]]] = {}
        for i, child in enumerate(self.children):
            if self._mine.get(i):
                profiles.update(child.table_profiles())
        return profiles

    def duplicate_keys(self, table: str, key: tuple[str, ...]) -> tuple[int, list[tuple]] | None:
        for i, child in enumerate(self.children):
            if self._mine.get(i):
                answer = child.duplicate_keys(table, key)
                if answer is not None:
                    return answer
        return None


def _same_origin(one: Any, other: Any) -> bool:
    """Whether two origins (``_source_class``) name the same database."""
    if isinstance(one, tuple) or isinstance(other, tuple):
        return one == other
    return Path(one).resolve() == Path(other).resolve()


_alone = alone  # where the checkers look it up (tests replace it here)


_CAN_FORK = CAN_FORK  # where the checkers look it up (tests replace it here)


def _case_of(r: CheckResult) -> GateCase:
    return GateCase(
        id=r.id,
        kind="check",
        table=r.table,
        column=r.column,
        check=r.check,
        severity=r.severity,
        status=r.status,
        message=r.message,
        failing=r.failing,
        considered=r.considered,
        tolerance=r.tolerance,
        sample=r.sample,
    )


def _describe_code(code: str) -> str:
    from pipeline.findings import CODES

    return CODES.get(code, "")

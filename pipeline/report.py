"""The run report: one self-contained HTML file a person would rather look at than read.

``write_report(run_dir)`` reads whatever the run folder holds (``result.json``, the gate
reports ``gate1.json``/``gate2.json``/``gate3.json``, ``clean.json``, ``migrate.json``,
``metrics.json``, ``progress.json``, ``state.json``) and writes ``report.html`` next to
them: inline CSS, inline SVG charts drawn here, no script, no font, no network. A run
that stopped early has only some of those files; every section then says what did not
happen and why, instead of failing.

Every value is escaped (headers, table names and messages come from user files). The
report holds no personal data: counts, ids, contract key values as example keys, and
the dashboard metrics with any personal result column replaced by a rank
(:data:`PERSONAL_METRIC_COLUMNS`). Check samples and profile details are never shown.

Sections (stable ``id`` attributes, for people and tests): ``verdicts``, ``quality``,
``issues``, ``dates``, ``cleaning``, ``migration``, ``metrics``, ``steps``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
import webbrowser
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from pipeline.errors import InputFileError

if TYPE_CHECKING:
    from pipeline.config import Settings

log = logging.getLogger(__name__)

REPORT_NAME = "report.html"
SECTIONS: tuple[tuple[str, str], ...] = (
    ("verdicts", "Verdicts"),
    ("quality", "Quality"),
    ("issues", "Issues"),
    ("dates", "Date formats"),
    ("cleaning", "Cleaning"),
    ("migration", "Migration"),
    ("metrics", "Dashboard metrics"),
    ("steps", "Steps"),
)
# The steps of `servicedesk-etl run`, in order (pipeline.run).
STEP_ORDER = ("preflight", "ingest", "gate1", "clean", "gate2", "migrate", "gate3")
GATES = (
    ("gate1", "Gate 1", "raw data"),
    ("gate2", "Gate 2", "cleaned data"),
    ("gate3", "Gate 3", "live schema after cut-over"),
)
STAGES = (("raw", "before cleaning"), ("clean", "after cleaning"), ("postgres", "after migration"))
DIMENSIONS = ("completeness", "validity", "consistency", "uniqueness", "integrity")
DATE_CODES = ("INCONSISTENT_DATE_FORMAT", "AMBIGUOUS_DATE_FORMAT", "CORRUPT_DATES", "EXCEL_SERIAL_DATES", "FUTURE_DATES")
# Result columns of dashboard metrics that hold personal data, with the contract column
# they come from (tests check the contract marks it personal). Shown as a rank instead.
PERSONAL_METRIC_COLUMNS: dict[str, tuple[str, str]] = {"username": ("timesheets", "TS-User Username")}
MAX_ROWS = 200  # per table in the report; the JSON files hold everything
MAX_METRIC_ROWS = 25
SERIES_COLOURS = {"raw": "#c2410c", "clean": "#2563eb", "postgres": "#15803d"}
STATUS_CLASS = {"green": "green", "amber": "amber", "red": "red", "ok": "green", "reused": "green", "failed": "red"}
RUN_FILES = (
    "result.json", "progress.json", "state.json", "gate1.json", "gate2.json", "gate3.json",
    "clean.json", "migrate.json", "metrics.json",
)  # fmt: skip


@dataclass
class RunFiles:
    """The JSON files of one run folder; a missing file is None, an unreadable one noted."""

    run_dir: Path
    data: dict[str, Any] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        return self.data.get(name)

    @property
    def result(self) -> dict[str, Any] | None:
        r = self.data.get("result.json")
        return r if isinstance(r, dict) else None

    def gate(self, name: str) -> dict[str, Any] | None:
        g = self.data.get(f"{name}.json")
        return g if isinstance(g, dict) else None

    def steps(self) -> list[dict[str, Any]]:
        """The steps that ran: from result.json, else from progress.json (a killed run)."""
        for source in ("result.json", "progress.json"):
            doc = self.data.get(source)
            if isinstance(doc, dict) and isinstance(doc.get("steps"), list):
                return [s for s in doc["steps"] if isinstance(s, dict)]
        return []

    def step(self, name: str) -> dict[str, Any] | None:
        return next((s for s in self.steps() if s.get("name") == name), None)


def load_run(run_dir: Path) -> RunFiles:
    """Read every JSON file of the run folder that exists."""
    files = RunFiles(Path(run_dir))
    for name in RUN_FILES:
        path = files.run_dir / name
        if not path.is_file():
            continue
        try:
            files.data[name] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            files.problems[name] = f"{type(exc).__name__}: {exc}"
    return files


# --- small HTML helpers -------------------------------------------------------------------


def _e(value: Any) -> str:
    """Escaped text of any value (None as an en dash)."""
    if value is None:
        return "&ndash;"
    return escape(str(value), quote=True)


def _num(value: Any, digits: int | None = None) -> str:
    if value is None or value == "":
        return "&ndash;"
    if isinstance(value, bool):
        return _e("yes" if value else "no")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if digits is not None:
            return f"{value:,.{digits}f}"
        return f"{value:,.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value):,}"
    return _e(value)


def _pct(share: Any) -> str:
    if not isinstance(share, (int, float)):
        return "&ndash;"
    return f"{share * 100:.2f}%"


def _badge(text: Any, status: str | None = None) -> str:
    cls = STATUS_CLASS.get(str(status if status is not None else text).lower(), "grey")
    return f'<span class="badge {cls}">{_e(text)}</span>'


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "", limit: int = MAX_ROWS) -> str:
    """A table of already-escaped cells; headers are escaped here. Rows past ``limit`` are counted, not shown."""
    body, extra = [], 0
    for i, row in enumerate(rows):
        if i >= limit:
            extra += 1
            continue
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    note = f'<p class="note">{extra:,} more rows not shown (see the JSON files of the run folder).</p>' if extra else ""
    if not body:
        return '<p class="note">none</p>'
    return f'<table class="{_e(cls)}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>{note}'


def _missing(text: str) -> str:
    return f'<p class="missing">{_e(text)}</p>'


def _personal_key_parts(table: Any) -> list[bool] | None:
    """Which parts of ``table``'s contract key are personal (a timesheet's username)."""
    from contracts import spec
    from contracts.schemas import contract_for

    schema = contract_for(str(table)) if table is not None else None
    if schema is None:
        return None
    key = spec.facts(schema).key
    return [spec.is_personal(schema.columns[c]) for c in key]


def _keys(keys: Any, table: Any = None, limit: int = 5) -> str:
    """Example keys, personal key parts masked the way the gate masks its samples."""
    from contracts.executor import mask_personal

    if not isinstance(keys, list) or not keys:
        return "&ndash;"
    personal = _personal_key_parts(table) or []
    masked = []
    for k in keys[:limit]:
        if isinstance(k, list) and len(k) == len(personal):
            k = [mask_personal(v) if p else v for v, p in zip(k, personal)]
        elif not isinstance(k, list) and personal == [True]:
            k = mask_personal(k)
        masked.append(k)
    shown = [_e(" / ".join(map(str, k)) if isinstance(k, list) else k) for k in masked]
    return "<code>" + "</code> <code>".join(shown) + "</code>"


def _unique(keys: list[Any]) -> list[Any]:
    """Keys in first-seen order without repeats (composite keys are lists, not hashable)."""
    seen: dict[str, Any] = {}
    for k in keys:
        seen.setdefault(json.dumps(k, sort_keys=True, default=str), k)
    return list(seen.values())


# --- why a section is empty --------------------------------------------------------------


def _why_not(files: RunFiles, step: str) -> str:
    """Why ``step`` has no output in this run folder, in one sentence."""
    result = files.result
    ran = {s.get("name"): s for s in files.steps()}
    if step in ran and ran[step].get("outcome") == "failed":
        return f"Step {step} ran and failed; its output was not written."
    if step in ran:
        return f"Step {step} ran but its output file is missing from the run folder."
    if result is None:
        progress = files.get("progress.json")
        if isinstance(progress, dict) and progress.get("status") == "running":
            current = progress.get("current_step")
            return f"The run has not finished (no result.json): it is running, or was killed during step {current or 'unknown'}; step {step} has not happened yet."
        return f"Step {step} did not happen: the run folder has no result.json (the run did not finish)."
    code = result.get("exit_code")
    gate1 = files.gate("gate1")
    if step in ("clean", "gate2") and gate1 is not None and gate1.get("passed"):
        return f"Step {step} was not needed: Gate 1 passed, so the raw data was migrated as it is."
    if step in ("clean", "gate2") and code == 12:
        return f"Step {step} did not run: Gate 1 says the data needs cleaning and --auto-clean was not given."
    last = files.steps()[-1]["name"] if files.steps() else "before the first step"
    return f"Step {step} did not happen: the run stopped (exit code {code}) after {last}."


# --- SVG charts --------------------------------------------------------------------------


def svg_grouped_bars(categories: Sequence[str], series: Sequence[tuple[str, str, Sequence[float | None]]], title: str) -> str:
    """Vertical grouped bars on a 0-100 axis: ``series`` is (label, colour, values per category)."""
    width, height, left, top, bottom = 760, 300, 44, 28, 40
    plot_w, plot_h = width - left - 10, height - top - bottom
    n_series = max(len(series), 1)
    group_w = plot_w / max(len(categories), 1)
    bar_w = min(28.0, (group_w - 12) / n_series)
    parts = [f'<svg class="chart" role="img" aria-label="{_e(title)}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">']
    parts.append(f"<title>{_e(title)}</title>")
    for tick in range(0, 101, 20):
        y = top + plot_h * (1 - tick / 100)
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">{tick}</text>')
    for ci, cat in enumerate(categories):
        gx = left + ci * group_w
        start = gx + (group_w - bar_w * n_series) / 2
        for si, (label, colour, values) in enumerate(series):
            value = values[ci] if ci < len(values) else None
            x = start + si * bar_w
            if value is None:
                parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h - 4:.1f}" text-anchor="middle" class="axis">&ndash;</text>')
                continue
            v = max(0.0, min(100.0, float(value)))
            h = plot_h * v / 100
            parts.append(
                f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 2:.1f}" height="{h:.1f}" fill="{_e(colour)}">'
                f"<title>{_e(label)} {_e(cat)}: {float(value):.2f}</title></rect>"
            )
            label_text = f"{float(value):.0f}" if float(value) == round(float(value)) else f"{float(value):.1f}"
            parts.append(f'<text x="{x + bar_w / 2 - 1:.1f}" y="{top + plot_h - h - 3:.1f}" text-anchor="middle" class="value">{label_text}</text>')
        parts.append(f'<text x="{gx + group_w / 2:.1f}" y="{height - bottom + 16}" text-anchor="middle" class="axis">{_e(cat)}</text>')
    lx = left
    for label, colour, _ in series:
        parts.append(f'<rect x="{lx}" y="6" width="12" height="12" fill="{_e(colour)}"/><text x="{lx + 16}" y="16" class="axis">{_e(label)}</text>')
        lx += 24 + 7 * len(label)
    parts.append("</svg>")
    return "".join(parts)


def svg_horizontal_bars(items: Sequence[tuple[str, float, str]], unit: str, title: str) -> str:
    """One horizontal bar per (label, value, colour), scaled to the largest value."""
    row_h, left, width = 24, 130, 760
    height = row_h * max(len(items), 1) + 12
    top_value = max((v for _, v, _ in items), default=0.0) or 1.0
    plot_w = width - left - 90
    parts = [f'<svg class="chart" role="img" aria-label="{_e(title)}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">']
    parts.append(f"<title>{_e(title)}</title>")
    for i, (label, value, colour) in enumerate(items):
        y = 6 + i * row_h
        w = max(1.0, plot_w * value / top_value)
        parts.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" class="axis">{_e(label)}</text>')
        parts.append(f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" fill="{_e(colour)}"><title>{_e(label)}: {value:.2f} {_e(unit)}</title></rect>')
        parts.append(f'<text x="{left + w + 6:.1f}" y="{y + 15}" class="value">{value:,.2f} {_e(unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)


# --- sections ----------------------------------------------------------------------------


def _section_verdicts(files: RunFiles) -> str:
    out = []
    result = files.result
    if result is None:
        progress = files.get("progress.json")
        status = progress.get("status") if isinstance(progress, dict) else None
        current = progress.get("current_step") if isinstance(progress, dict) else None
        out.append(_missing(
            "The run has no result.json: it did not finish"
            + (f" (progress.json says {status}, step {current})." if status else ".")
            + " Run the same command again: finished steps are picked up, not repeated."
        ))
    else:
        code = result.get("exit_code")
        ok = code == 0
        out.append('<div class="outcome">')
        out.append(f'{_badge("succeeded" if ok else "stopped", "green" if ok else "red")} ')
        out.append(f"<strong>{_e(result.get('outcome'))}</strong> &middot; exit code <code>{_e(code)}</code>")
        out.append("</div>")
        out.append(f'<pre class="message">{_e(result.get("message"))}</pre>')
    rows = []
    for name, label, what in GATES:
        g = files.gate(name)
        if g is None:
            rows.append([_e(label), _e(what), _badge("not run", "grey"), "&ndash;", "&ndash;", "&ndash;", "&ndash;", _e(_why_not(files, name))])
            continue
        summary = g.get("summary") or {}
        passed = bool(g.get("passed"))
        top = sorted((f for f in g.get("failed") or [] if isinstance(f, dict)), key=lambda f: -int(f.get("count") or 0))[:5]
        failed_txt = "<br>".join(f"<code>{_e(f.get('id'))}</code> [{_e(f.get('severity'))}] {_num(f.get('count'))}" for f in top)
        if len(g.get("failed") or []) > len(top):
            failed_txt += f"<br>&hellip; and {len(g['failed']) - len(top):,} more"
        rows.append([
            _e(label),
            _e(what),
            _badge("passed" if passed else "failed", "green" if passed else "red"),
            _e(g.get("verdict")),
            _num(g.get("quality")),
            _num(summary.get("failed")),
            _num(summary.get("warned")),
            failed_txt or "&ndash;",
        ])  # fmt: skip
    out.append(_table(["gate", "on", "result", "verdict", "quality", "failed", "warned", "top failed checks (rows)"], rows))
    if files.problems:
        out.append(_table(["file", "could not be read"], ([_e(k), _e(v)] for k, v in files.problems.items())))
    return "".join(out)


def _scores(files: RunFiles) -> dict[str, dict[str, Any] | None]:
    """Quality per stage: result.json's scores, else the gate reports, else clean.json."""
    scores: dict[str, dict[str, Any] | None] = {k: None for k, _ in STAGES}
    result = files.result
    if result is not None and isinstance(result.get("scores"), dict):
        for k in scores:
            v = result["scores"].get(k)
            scores[k] = v if isinstance(v, dict) else None
    for key, gate in (("raw", "gate1"), ("clean", "gate2"), ("postgres", "gate3")):
        if scores[key] is None:
            g = files.gate(gate)
            q = ((g or {}).get("profile") or {}).get("quality")
            if isinstance(q, dict):
                scores[key] = q
    clean = files.get("clean.json")
    if isinstance(clean, dict):
        for key, field_name in (("raw", "quality_before"), ("clean", "quality_after")):
            if scores[key] is None and isinstance(clean.get(field_name), dict):
                scores[key] = clean[field_name]
    return scores


def _section_quality(files: RunFiles) -> str:
    scores = _scores(files)
    if all(v is None for v in scores.values()):
        return _missing("No quality score: " + _why_not(files, "gate1"))
    categories = ["overall", *DIMENSIONS]
    series = []
    for key, label in STAGES:
        q = scores[key] or {}
        dims = q.get("dimensions") or {}
        values = [q.get("score"), *(dims.get(d) for d in DIMENSIONS)]
        series.append((label, SERIES_COLOURS[key], [float(v) if isinstance(v, (int, float)) else None for v in values]))
    out = [svg_grouped_bars(categories, series, "Quality score per dimension before cleaning, after cleaning and after migration")]
    rows = []
    for cat_i, cat in enumerate(categories):
        rows.append([_e(cat), *(_num(s[2][cat_i], 2) if s[2][cat_i] is not None else "&ndash;" for s in series)])
    grades = ["grade", *(_e((scores[k] or {}).get("grade")) for k, _ in STAGES)]
    out.append(_table(["", *(label for _, label in STAGES)], [*rows, grades], cls="numbers"))
    for key, label in STAGES:
        if scores[key] is None:
            step = {"raw": "gate1", "clean": "gate2", "postgres": "gate3"}[key]
            out.append(_missing(f"No score {label}: {_why_not(files, step)}"))
    tables = sorted({t for k, _ in STAGES for t in ((scores[k] or {}).get("per_table") or {})})
    if tables:
        out.append("<h3>Per table</h3>")
        out.append(_table(["table", *(label for _, label in STAGES)], ([_e(t), *(_num(((scores[k] or {}).get("per_table") or {}).get(t), 2) for k, _ in STAGES)] for t in tables), cls="numbers"))
    return "".join(out)


def _findings(gate: dict[str, Any] | None) -> list[dict[str, Any]]:
    profile = (gate or {}).get("profile") or {}
    return [f for f in profile.get("findings") or [] if isinstance(f, dict)]


def _section_issues(files: RunFiles) -> str:
    out = []
    any_gate = False
    for name, label, what in GATES:
        g = files.gate(name)
        if g is None:
            continue
        any_gate = True
        findings = _findings(g)
        out.append(f"<h3>{_e(label)}: {_e(what)}</h3>")
        tables = g.get("tables") or {}
        if isinstance(tables, dict) and tables:
            out.append(_table(
                ["table", "rows", "checks passed", "failed", "warned", "quality"],
                ([_e(t), _num(v.get("rows")), _num(v.get("passed")), _num(v.get("failed")), _num(v.get("warned")), _num(v.get("quality"))]
                 for t, v in tables.items() if isinstance(v, dict)),
                cls="numbers",
            ))  # fmt: skip
        if not findings:
            out.append('<p class="note">No findings.</p>' if "error" not in ((g.get("profile") or {})) else _missing(f"The profiler did not run: {g['profile']['error']}"))
            continue
        findings.sort(key=lambda f: (str(f.get("table")), str(f.get("column")), str(f.get("code"))))
        out.append(_table(
            ["table", "column", "code", "severity", "count", "share", "example keys"],
            ([_e(f.get("table")), _e(f.get("column") if f.get("column") is not None else "*"), f"<code>{_e(f.get('code'))}</code>",
              _badge(f.get("severity"), {"critical": "red", "error": "amber", "warning": "grey"}.get(str(f.get("severity")), "grey")),
              _num(f.get("count")), _pct(f.get("share")), _keys(f.get("example_keys"), f.get("table"))] for f in findings),
        ))  # fmt: skip
    if not any_gate:
        return _missing("No gate report: " + _why_not(files, "gate1"))
    return "".join(out)


def _date_decisions(files: RunFiles) -> dict[str, dict[str, Any]]:
    """'table.column' -> decision: the cleaner's (clean.json), else the profile's columns."""
    decisions: dict[str, dict[str, Any]] = {}
    clean = files.get("clean.json")
    if isinstance(clean, dict) and isinstance(clean.get("date_columns"), dict):
        decisions.update({k: v for k, v in clean["date_columns"].items() if isinstance(v, dict)})
    # A full profile (servicedesk-etl profile --out) carries tables.<t>.columns.<c>.date.
    for t, tp in (((files.gate("gate1") or {}).get("profile") or {}).get("tables") or {}).items():
        for c, cp in ((tp or {}).get("columns") or {}).items():
            if isinstance(cp, dict) and isinstance(cp.get("date"), dict):
                decisions.setdefault(f"{t}.{c}", cp["date"])
    return decisions


def _section_dates(files: RunFiles) -> str:
    decisions = _date_decisions(files)
    findings = [f for f in _findings(files.gate("gate1")) if f.get("code") in DATE_CODES]
    by_column: dict[str, list[dict[str, Any]]] = {}
    for f in findings:
        by_column.setdefault(f"{f.get('table')}.{f.get('column')}", []).append(f)
    if not decisions and not findings:
        if files.gate("gate1") is None:
            return _missing("No date decisions: " + _why_not(files, "gate1"))
        return _missing("No date decisions recorded: " + (_why_not(files, "clean") if files.get("clean.json") is None else "the cleaner decided no date column."))
    out = []
    if decisions:
        classes = sorted({k for d in decisions.values() for k in (d.get("counts") or {})})
        rows = []
        for key in sorted(decisions):
            d = decisions[key]
            counts = d.get("counts") or {}
            examples = d.get("examples") or {}
            ex_keys = [k for f in by_column.get(key, []) for k in (f.get("example_keys") or [])]
            if isinstance(examples, dict):
                ex_keys += [k for v in examples.values() if isinstance(v, list) for k in v]
            flags = [w for w, on in (("ambiguous", d.get("ambiguous")), ("inconsistent", d.get("inconsistent"))) if on]
            status = "red" if d.get("format") == "MIXED" and d.get("order") is None and "inconsistent" in flags else "amber" if flags else "green"
            rows.append([
                _e(key), _badge(d.get("format"), status), _e(d.get("order")), _e(d.get("read_as")), _e(", ".join(flags) or "-"),
                *(_num(counts.get(c)) for c in classes), _keys(_unique(ex_keys), key.split(".", 1)[0]),
            ])  # fmt: skip
        out.append(_table(["column", "format", "order", "read as", "flags", *(f"{c} values" for c in classes), "example keys"], rows))
        out.append('<p class="note">Counts are the evidence per value shape over all values of the column; the order is decided by values with a part above 12, ambiguous columns are read by the configured date locale.</p>')
    else:
        out.append(_missing("The cleaner's decisions are not in this run folder: " + _why_not(files, "clean")))
    if findings:
        out.append("<h3>Date findings of Gate 1</h3>")
        out.append(_table(
            ["table", "column", "code", "severity", "count", "share", "example keys"],
            ([_e(f.get("table")), _e(f.get("column")), f"<code>{_e(f.get('code'))}</code>", _e(f.get("severity")), _num(f.get("count")), _pct(f.get("share")), _keys(f.get("example_keys"), f.get("table"))] for f in findings),
        ))  # fmt: skip
    return "".join(out)


def _section_cleaning(files: RunFiles) -> str:
    clean = files.get("clean.json")
    if not isinstance(clean, dict):
        return _missing(_why_not(files, "clean"))
    out = []
    quarantined = sum(int(q.get("count") or 0) for q in clean.get("quarantine") or [] if isinstance(q, dict))
    out.append(
        f'<p>{_num(clean.get("audit_rows"))} audit rows (one per changed cell or dropped row), {quarantined:,} rows quarantined, '
        f'in {_num(clean.get("seconds"))} s. Audit trail: <code>{_e(Path(str(clean.get("audit_trail") or "")).name or "-")}</code> and the '
        "<code>_audit</code> / <code>_quarantine</code> tables of <code>clean.db</code>.</p>"
    )
    tables = clean.get("tables") or {}
    if isinstance(tables, dict):
        out.append(_table(
            ["table", "rows in", "rows out", "quarantined", "duplicates dropped", "changed cells"],
            ([_e(t), _num(v.get("rows_in")), _num(v.get("rows_out")), _num(v.get("quarantined")), _num(v.get("duplicates_dropped")), _num(v.get("changed_cells"))]
             for t, v in sorted(tables.items()) if isinstance(v, dict)),
            cls="numbers",
        ))  # fmt: skip
    out.append("<h3>Changes per rule and column</h3>")
    out.append(_table(
        ["table", "column", "rule", "values changed"],
        ([_e(c.get("table")), _e(c.get("column")), f"<code>{_e(c.get('rule'))}</code>", _num(c.get("count"))] for c in clean.get("changes") or [] if isinstance(c, dict)),
    ))  # fmt: skip
    out.append("<h3>Quarantine</h3>")
    out.append(_table(
        ["table", "rule", "rows"],
        ([_e(q.get("table")), f"<code>{_e(q.get('rule'))}</code>", _num(q.get("count"))] for q in clean.get("quarantine") or [] if isinstance(q, dict)),
    ))  # fmt: skip
    orphans = [o for o in clean.get("orphans") or [] if isinstance(o, dict)]
    if orphans:
        out.append("<h3>Orphan references (kept, reported)</h3>")
        out.append(_table(
            ["table", "column", "references", "target", "orphans", "share", "example keys"],
            ([_e(o.get("table")), _e(o.get("column")), _num(o.get("references")), _e(o.get("target")), _num(o.get("orphans")), _pct(o.get("share")), _keys(o.get("sample"))] for o in orphans),
        ))  # fmt: skip
    failures = clean.get("contract_failures") or []
    if failures:
        out.append("<h3>Contract failures after cleaning</h3>")
        out.append("<ul>" + "".join(f"<li>{_e(f if not isinstance(f, dict) else f.get('id') or json.dumps(f))}</li>" for f in failures[:MAX_ROWS]) + "</ul>")
    return "".join(out)


def _load_rows(items: Any) -> list[dict[str, Any]]:
    return [t for t in items or [] if isinstance(t, dict)]


def _section_migration(files: RunFiles) -> str:
    mig = files.get("migrate.json")
    if not isinstance(mig, dict):
        return _missing(_why_not(files, "migrate"))
    out = []
    facts = [
        ("status", _badge(mig.get("status"), "green" if mig.get("status") == "live" else "amber")),
        ("live schema", f"<code>{_e(mig.get('live_schema'))}</code>"),
        ("new version", f"<code>{_e(mig.get('version_schema'))}</code>"),
        ("previous version", f"<code>{_e(mig.get('previous_version'))}</code>" if mig.get("previous_version") else "none (first migration)"),
        ("migration run", _e(mig.get("run_id"))),
        ("rows loaded", _num(mig.get("rows"))),
        ("rows rejected", _num(mig.get("rejects"))),
        ("backup", _e(mig.get("backup_id")) if mig.get("backup_id") else "none taken"),
        ("source SHA-256", f"<code>{_e(mig.get('source_sha256'))}</code>"),
        ("message", _e(mig.get("message"))),
    ]
    out.append('<table class="facts"><tbody>' + "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in facts) + "</tbody></table>")

    def load_table(rows: list[dict[str, Any]]) -> str:
        return _table(
            ["table", "source rows", "loaded rows", "rejected", "checksum source", "checksum target", "match", "seconds"],
            ([_e(t.get("name")), _num(t.get("source_rows")), _num(t.get("loaded_rows")), _num(t.get("rejected_rows")),
              f"<code>{_e(t.get('checksum_source'))}</code>", f"<code>{_e(t.get('checksum_target'))}</code>",
              _badge("match", "green") if t.get("checksum_source") == t.get("checksum_target") and t.get("checksum_source") else _badge("differs", "red"),
              _num(t.get("seconds"))] for t in rows),
        )  # fmt: skip

    out.append("<h3>Row counts and checksums</h3>")
    out.append(load_table(_load_rows(mig.get("tables"))))
    canary = _load_rows(mig.get("canary"))
    out.append("<h3>Canary</h3>")
    out.append(load_table(canary) if canary else '<p class="note">No canary load in this migration.</p>')
    scores = mig.get("scores") or {}
    if isinstance(scores, dict) and scores:
        flat = []
        for k, v in scores.items():
            if isinstance(v, dict):
                flat.extend((f"{k} {kk}", vv) for kk, vv in v.items())
            else:
                flat.append((k, v))
        out.append("<h3>Validation</h3>")
        out.append(_table(["check", "value"], ([_e(k), _num(v)] for k, v in flat)))
    timings = mig.get("timings") or {}
    if isinstance(timings, dict) and timings:
        items = [(str(k), float(v), "#64748b" if k == "total" else "#2563eb") for k, v in timings.items() if isinstance(v, (int, float))]
        out.append("<h3>Timings</h3>")
        out.append(svg_horizontal_bars(items, "s", "Migration timings"))
    return "".join(out)


def _metric_bands() -> dict[str, dict[str, str]]:
    try:
        from pipeline.dashboard import METRICS
    except Exception:  # the report must render even if the query library cannot load
        log.debug("dashboard library not importable", exc_info=True)
        return {}
    return {m.id: {col: band.describe() for col, band in m.bands.items()} for m in METRICS}


def _metric_cell(column: str, value: Any, rank: int) -> str:
    if column in PERSONAL_METRIC_COLUMNS:
        return f'<span class="hidden">agent #{rank}</span>'
    return _num(value) if isinstance(value, (int, float)) else _e(value)


def _section_metrics(files: RunFiles) -> str:
    metrics = files.get("metrics.json")
    if not isinstance(metrics, list):
        metrics = (files.result or {}).get("metrics") or None
    if not isinstance(metrics, list) or not metrics:
        return _missing("No dashboard metrics: they are computed on the live schema after Gate 3 passes. " + _why_not(files, "gate3"))
    bands = _metric_bands()
    out = ['<div class="metrics">']
    for m in (m for m in metrics if isinstance(m, dict)):
        status = str(m.get("status") or "-")
        mid = m.get("id")
        band_text = "; ".join(f"{c}: {t}" if c != "value" else t for c, t in (bands.get(str(mid)) or {}).items())
        out.append(f'<div class="metric {STATUS_CLASS.get(status, "grey")}" id="metric-{_e(mid)}">')
        label = {"-": "no band", "n/a": "n/a"}.get(status, status)
        out.append(f'<div class="mhead"><span class="mid">{_e(mid)}</span> {_e(m.get("title"))} {_badge(label, status)}</div>')
        columns = [str(c) for c in m.get("columns") or []]
        rows = [r for r in m.get("rows") or [] if isinstance(r, dict)]
        if "value" in m and columns == ["value"]:
            out.append(f'<div class="big">{_num(m.get("value"))} <span class="unit">{_e(m.get("unit"))}</span></div>')
        elif rows:
            row_status = list(m.get("row_status") or [])
            table_rows = []
            for i, r in enumerate(rows):
                cells = [_metric_cell(c, r.get(c), i + 1) for c in columns]
                if bands.get(str(mid)):
                    s = row_status[i] if i < len(row_status) else "-"
                    cells.append(_badge(s, s))
                table_rows.append(cells)
            heads = columns + (["band"] if bands.get(str(mid)) else [])
            out.append(_table(heads, table_rows, cls="small", limit=MAX_METRIC_ROWS))
            out.append(f'<p class="note">unit: {_e(m.get("unit"))}</p>')
            if any(c in PERSONAL_METRIC_COLUMNS for c in columns):
                out.append('<p class="note">Usernames are personal data and are shown as ranks here; the live dashboard shows them.</p>')
        else:
            out.append(f'<p class="note">{_e(m.get("note") or "no rows")}</p>')
        if band_text:
            out.append(f'<p class="band">bands: {_e(band_text)}</p>')
        out.append("</div>")
    out.append("</div>")
    return "".join(out)


def _section_steps(files: RunFiles) -> str:
    steps = files.steps()
    if not steps:
        return _missing("No step ran (no result.json or progress.json in the run folder).")
    rows = []
    for s in steps:
        detail = s.get("detail") if isinstance(s.get("detail"), dict) else {}
        summary = ""
        if "rows" in detail and isinstance(detail.get("rows"), int):
            summary = f"{detail['rows']:,} rows"
        elif "verdict" in detail:
            summary = f"verdict {detail.get('verdict')}, quality {detail.get('quality')}, {detail.get('failed')} failed"
        elif "status" in detail:
            summary = str(detail.get("status"))
        rows.append([_e(s.get("name")), _badge(s.get("outcome")), _num(s.get("seconds"), 2), _num(s.get("peak_rss_mb"), 1), _e(summary)])
    ran = {s.get("name") for s in steps}
    for name in STEP_ORDER:
        if name not in ran:
            rows.append([_e(name), _badge("not run", "grey"), "&ndash;", "&ndash;", _e(_why_not(files, name))])
    out = [_table(["step", "outcome", "seconds", "peak memory (MB)", "detail"], rows)]
    items = [(str(s.get("name")), float(s.get("seconds") or 0.0), {"failed": "#b91c1c", "reused": "#94a3b8"}.get(str(s.get("outcome")), "#2563eb")) for s in steps]
    out.append(svg_horizontal_bars(items, "s", "Seconds per step"))
    preflight = files.step("preflight")
    checks = [c for c in ((preflight or {}).get("detail") or {}).get("checks") or [] if isinstance(c, dict)]
    if checks:
        out.append("<h3>Preflight checks</h3>")
        out.append(_table(
            ["check", "status", "details", "fix"],
            ([_e(c.get("name")), _badge(c.get("status"), {"PASS": "green", "WARN": "amber", "FAIL": "red"}.get(str(c.get("status")), "grey")),
              _e(c.get("details")), _e(c.get("remedy") or "-")] for c in checks),
        ))  # fmt: skip
    return "".join(out)


CSS = """
:root{--fg:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f8fafc}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg);margin:0}
header{background:#0f172a;color:#fff;padding:16px 28px}
header h1{margin:0 0 4px;font-size:20px}
header p{margin:0;color:#cbd5e1;font-size:13px}
header code{background:#334155;color:#e2e8f0}
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid var(--line);padding:8px 28px;z-index:1}
nav a{margin-right:14px;color:#2563eb;text-decoration:none}
main{padding:8px 28px 40px;max-width:1200px}
section{background:#fff;border:1px solid var(--line);border-radius:6px;margin:18px 0;padding:12px 18px}
h2{font-size:17px;margin:4px 0 10px}
h3{font-size:14px;margin:16px 0 6px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f1f5f9;font-weight:600}
table.numbers td+td{text-align:right;font-variant-numeric:tabular-nums}
table.facts th{width:180px}
table.small{font-size:12px}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f1f5f9;padding:0 3px;border-radius:3px}
pre.message{white-space:pre-wrap;background:#f1f5f9;padding:8px 12px;border-radius:4px;font-size:12px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff;background:#94a3b8}
.badge.green{background:#15803d}.badge.amber{background:#d97706}.badge.red{background:#b91c1c}.badge.grey{background:#94a3b8}
.missing{color:#92400e;background:#fffbeb;border-left:4px solid #d97706;padding:6px 10px}
.note,.band,.unit{color:var(--muted);font-size:12px}
.outcome{font-size:15px;margin:6px 0}
.metrics{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:12px}
.metric{border:1px solid var(--line);border-left:6px solid #94a3b8;border-radius:4px;padding:8px 10px;overflow-x:auto}
.metric.green{border-left-color:#15803d}.metric.amber{border-left-color:#d97706}.metric.red{border-left-color:#b91c1c}
.mhead{font-weight:600}.mid{color:var(--muted);margin-right:4px}
.big{font-size:28px;font-weight:700;margin:4px 0}
.hidden{color:var(--muted);font-style:italic}
svg.chart{width:100%;max-width:760px;height:auto;display:block;margin:8px 0}
svg .grid{stroke:#e5e7eb;stroke-width:1}
svg .axis{font:11px system-ui,sans-serif;fill:#475569}
svg .value{font:10px system-ui,sans-serif;fill:#1f2937}
"""


def render_report(run_dir: Path) -> str:
    """The report of ``run_dir`` as one HTML document (no file is written)."""
    files = load_run(Path(run_dir))
    result = files.result or {}
    progress = files.get("progress.json") if isinstance(files.get("progress.json"), dict) else {}
    run_id = result.get("run_id") or progress.get("run_id") or Path(run_dir).name
    builders = {
        "verdicts": _section_verdicts,
        "quality": _section_quality,
        "issues": _section_issues,
        "dates": _section_dates,
        "cleaning": _section_cleaning,
        "migration": _section_migration,
        "metrics": _section_metrics,
        "steps": _section_steps,
    }
    body = []
    for sid, title in SECTIONS:
        try:
            content = builders[sid](files)
        except Exception as exc:  # one odd file must not cost the operator the whole report
            log.warning("report section %s failed", sid, exc_info=True)
            content = _missing(f"This section could not be drawn from the run files: {type(exc).__name__}: {exc}")
        body.append(f'<section id="{sid}"><h2>{_e(title)}</h2>{content}</section>')
    present = [n for n in RUN_FILES if n in files.data]
    generated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    nav = "".join(f'<a href="#{sid}">{_e(title)}</a>' for sid, title in SECTIONS)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # No script, no remote anything: the file opens the same offline and in a mail.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
        f"<title>servicedesk-etl run {_e(run_id)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>servicedesk-etl run report</h1><p>run <code>{_e(run_id)}</code> &middot; generated {_e(generated)} "
        f"&middot; from {_e(', '.join(present) or 'no run files')}</p></header>"
        f"<nav>{nav}</nav><main>{''.join(body)}</main></body></html>\n"
    )


def write_report(run_dir: Path) -> Path:
    """Write (or refresh) ``report.html`` in ``run_dir`` and return its path.

    Renders whatever the folder holds; raises ``InputFileError`` only when ``run_dir``
    is not a folder or holds none of the run's files.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputFileError(f"run folder {run_dir} does not exist", "give a folder under .servicedesk/runs/ (or the --workdir of the run)")
    if not any((run_dir / name).is_file() for name in RUN_FILES):
        raise InputFileError(
            f"{run_dir} holds none of a run's files ({', '.join(RUN_FILES)})",
            "give the run folder printed by `servicedesk-etl run` (run folder: ...)",
        )
    html_text = render_report(run_dir)
    out = run_dir / REPORT_NAME
    # Written whole or not at all: a browser never shows half a report.
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=run_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(html_text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


# --- CLI -----------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the run folder (printed by `servicedesk-etl run`)")
    parser.add_argument("--open", action="store_true", help="open the report in the default browser")


def command(args: argparse.Namespace, settings: "Settings") -> int:
    path = write_report(args.run_dir)
    print(path.resolve())
    if args.open:
        webbrowser.open(path.resolve().as_uri())
    return 0

"""The dashboard query library: every computable metric of the reference, on PostgreSQL.

Each metric is one SQL file in ``pipeline/sql`` (PostgreSQL, run against the live
schema) with a twin in ``pipeline/sql_sqlite`` (the same definition on a cleaned SQLite
file), so a test can prove that the migrated schema answers exactly what the cleaned
data says. The PostgreSQL forms avoid the traps of the first migration:
``ROUND(x::numeric, 1)`` (``ROUND(double precision, integer)`` does not exist) and epoch
arithmetic for durations (``EXTRACT(EPOCH FROM resolved - created) / 86400``; there is
no ``JULIANDAY``).

Definitions shared by every query are filled in from Python, never retyped in SQL:
``{schema}`` (a quoted identifier), ``{closed}`` (:data:`CLOSED_STATUSES`, from the
tickets contract) and ``{min_team_tickets}``.

Metrics 1.5 and 2.5 need a comment-quality table (``comment_quality`` with
``quality_score`` and ``quality_tier``); without one they are reported as ``n/a``.
Metric 3.6 (root cause accuracy) is a manual audit and always ``n/a``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from contracts.schemas.tickets import CLOSED_STATUSES
from pipeline.errors import ConfigError, InputFileError
from pipeline.sources import LENIENT_TEXT, check_sqlite_file

if TYPE_CHECKING:
    import psycopg

    from pipeline.config import Settings

log = logging.getLogger(__name__)

# "Closed" in every metric is CLOSED_STATUSES of the tickets contract: ('Closed',
# 'Incident Resolved'). The first dashboard queries used 'Resolved', which no ticket has,
# and so silently left out the quarter of closed tickets marked 'Incident Resolved'.
CUSTOMER_FACING = "Yes"  # comments.visible_to_customer of a customer-facing comment
MIN_TEAM_TICKETS = 50  # per-team metrics leave out teams smaller than this
QUALITY_TABLE = "comment_quality"
QUALITY_COLUMNS = {"quality_score", "quality_tier"}
GREEN, AMBER, RED, NA, NONE = "green", "amber", "red", "n/a", "-"
_STATUS_ORDER = {GREEN: 0, AMBER: 1, RED: 2}
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Band:
    """Colour thresholds: green at ``green`` or better, amber at ``amber`` or better, else red."""

    green: float
    amber: float
    higher_is_better: bool = True

    def status(self, value: float | None) -> str:
        if value is None:
            return NONE
        if self.higher_is_better:
            return GREEN if value >= self.green else AMBER if value >= self.amber else RED
        return GREEN if value <= self.green else AMBER if value <= self.amber else RED

    def describe(self) -> str:
        op = ">=" if self.higher_is_better else "<="
        return f"green {op} {self.green:g}, amber {op} {self.amber:g}, red otherwise"


@dataclass(frozen=True)
class Metric:
    """One dashboard metric: its definition, unit, colour bands and SQL file."""

    id: str
    slug: str
    title: str
    unit: str
    bands: dict[str, Band] = field(default_factory=dict)  # result column -> band
    needs_quality_table: bool = False
    computable: bool = True
    note: str = ""

    @property
    def file(self) -> str:
        return f"{self.id.replace('.', '_')}_{self.slug}.sql"

    def sql_text(self, dialect: str = "postgres") -> str:
        folder = "sql" if dialect == "postgres" else "sql_sqlite"
        return resources.files("pipeline").joinpath(folder, self.file).read_text(encoding="utf-8")


SLA = Band(95, 90)
RESOLUTION_DAYS = Band(4, 7, higher_is_better=False)
FCR = Band(70, 60)
COVERAGE = Band(80, 70)

METRICS: tuple[Metric, ...] = (
    Metric("1.1", "sla_compliance", "SLA compliance", "%", {"value": SLA}),
    Metric("1.2", "avg_resolution_days", "Average resolution time", "days", {"value": RESOLUTION_DAYS}),
    Metric("1.3", "first_contact_resolution", "First contact resolution", "%", {"value": FCR}),
    Metric("1.4", "communication_coverage", "Customer communication coverage", "%", {"value": COVERAGE}),
    Metric("1.5", "comment_quality", "Comment quality score", "score", {"value": Band(80, 60)}, needs_quality_table=True),
    Metric("2.1", "reassignment_rate", "Reassignment rate", "%", {"value": Band(25, 35, higher_is_better=False)}),
    Metric("2.2", "root_causes", "Root cause distribution (top 10, closed tickets)", "tickets, %"),
    Metric("2.3", "team_workload", "Team workload (closed tickets)", "tickets, %"),
    Metric("2.4", "team_efficiency", "Team efficiency (comments per ticket)", "comments/ticket"),
    Metric("2.5", "quality_tiers", "Quality tier distribution", "comments, %", needs_quality_table=True),
    Metric("2.6", "monthly_volume", "Monthly volume", "tickets"),
    Metric("2.7", "resolution_by_team", "Resolution time by team", "days", {"avg_days": RESOLUTION_DAYS}),
    Metric("2.8", "coverage_by_team", "Team communication coverage", "%", {"coverage_pct": COVERAGE}),
    Metric("3.1", "team_specialisation", "Team specialisation (closed tickets per category)", "tickets, %"),
    Metric("3.2", "agent_hours", "Agent hours", "hours"),
    Metric("3.3", "resolution_trend", "Resolution trend (by month created)", "days", {"avg_days": RESOLUTION_DAYS}),
    Metric("3.4", "fcr_by_comment_count", "FCR by customer-facing comment count", "tickets, %"),
    Metric("3.5", "reassignment_distribution", "Reassignment distribution (distinct timesheet users)", "tickets, %"),
    Metric("3.6", "root_cause_accuracy", "Root cause accuracy", "%", computable=False, note="not computable: a manual audit"),
    Metric("3.7", "team_fcr_ranking", "Team FCR ranking", "%", {"fcr_pct": FCR}),
    Metric("4.1", "category_distribution", "Category distribution (closed tickets)", "tickets, %"),
    Metric("4.2", "data_quality", "Data quality indicators", "%", {"root_cause_coverage_pct": Band(95, 85)}),
    Metric("4.3", "summary", "Summary", "rows"),
)
METRICS_BY_ID = {m.id: m for m in METRICS}


@dataclass(frozen=True)
class MetricValue:
    """A metric's result: columns and rows (a scalar metric has one ``value`` cell)."""

    id: str
    title: str
    unit: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    status: str  # green | amber | red (worst banded cell) | - (no band) | n/a
    row_status: tuple[str, ...] = ()
    seconds: float = 0.0
    note: str = ""

    @property
    def value(self) -> Any:
        """The single cell of a scalar metric (None when not a scalar)."""
        if len(self.rows) == 1 and len(self.columns) == 1:
            return self.rows[0][0]
        return None

    @property
    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row)) for row in self.rows]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rows"] = self.records
        data["milliseconds"] = round(self.seconds * 1000, 1)
        del data["seconds"]
        if self.value is not None:
            data["value"] = self.value
        return data


def _plain(cell: Any) -> Any:
    """Decimal -> float, so PostgreSQL and SQLite results compare and print alike."""
    if isinstance(cell, Decimal):
        return int(cell) if cell == cell.to_integral_value() and cell.as_tuple().exponent >= 0 else float(cell)
    return cell


def _evaluate(metric: Metric, columns: Sequence[str], rows: Sequence[Sequence[Any]], seconds: float) -> MetricValue:
    plain = tuple(tuple(_plain(c) for c in row) for row in rows)
    row_status: list[str] = []
    for row in plain:
        worst = NONE
        for column, band in metric.bands.items():
            if column in columns:
                s = band.status(row[list(columns).index(column)])
                if s in _STATUS_ORDER and (worst not in _STATUS_ORDER or _STATUS_ORDER[s] > _STATUS_ORDER[worst]):
                    worst = s
        row_status.append(worst)
    graded = [s for s in row_status if s in _STATUS_ORDER]
    status = max(graded, key=_STATUS_ORDER.__getitem__) if graded else NONE
    return MetricValue(metric.id, metric.title, metric.unit, tuple(columns), plain, status, tuple(row_status), seconds)


def _not_available(metric: Metric, note: str) -> MetricValue:
    return MetricValue(metric.id, metric.title, metric.unit, (), (), NA, (), 0.0, note)


# --- PostgreSQL ------------------------------------------------------------------------------


def _skipped(metric: Metric, has_quality: bool, where: str) -> MetricValue | None:
    """The n/a value of a metric that cannot run here, or None when it can."""
    if not metric.computable:
        return _not_available(metric, metric.note)
    if metric.needs_quality_table and not has_quality:
        return _not_available(metric, f"no {QUALITY_TABLE} table with {', '.join(sorted(QUALITY_COLUMNS))} in {where}")
    return None


def postgres_query(metric: Metric, schema: str, min_team_tickets: int = MIN_TEAM_TICKETS) -> "psycopg.sql.Composed":
    """The metric's PostgreSQL statement for ``schema``, identifiers and constants quoted."""
    from psycopg import sql

    return sql.SQL(metric.sql_text("postgres")).format(
        schema=sql.Identifier(schema),
        closed=sql.SQL(", ").join(sql.Literal(s) for s in CLOSED_STATUSES),
        min_team_tickets=sql.Literal(int(min_team_tickets)),
    )


def _pg_quality_table(conn: "psycopg.Connection", schema: str) -> bool:
    found = {
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
            (schema, QUALITY_TABLE),
        )
    }
    return QUALITY_COLUMNS <= found


def compute_metrics(
    conninfo: str,
    schema: str = "servicedesk",
    *,
    min_team_tickets: int = MIN_TEAM_TICKETS,
    ids: Sequence[str] | None = None,
    statement_timeout_ms: int = 60_000,
) -> list[MetricValue]:
    """Run every metric against ``schema`` in one read-only transaction (one snapshot)."""
    from pipeline.pgserver import connect

    wanted = _select(ids)
    import psycopg

    with connect(conninfo) as conn:
        # One snapshot for every metric, and no way to write by mistake.
        conn.read_only = True
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is None:
            raise ConfigError(f"schema {schema!r} does not exist in the target", "migrate first (`servicedesk-etl migrate`), or pass --schema")
        conn.execute(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
        has_quality = _pg_quality_table(conn, schema)
        results = []
        for metric in wanted:
            skipped = _skipped(metric, has_quality, f"schema {schema}")
            if skipped:
                results.append(skipped)
                continue
            started = time.perf_counter()
            try:
                cur = conn.execute(postgres_query(metric, schema, min_team_tickets))
            except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as exc:
                raise ConfigError(
                    f"metric {metric.id} cannot run on schema {schema}: {str(exc).splitlines()[0]}",
                    "point --schema at a schema built by `servicedesk-etl migrate` (see `servicedesk-etl versions`)",
                ) from None
            rows = cur.fetchall()
            seconds = time.perf_counter() - started
            columns = [d.name for d in cur.description]
            results.append(_evaluate(metric, columns, rows, seconds))
        conn.rollback()
    return results


# --- SQLite ----------------------------------------------------------------------------------


def _sqlite_literal(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"no SQLite literal for {value!r}")
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


def sqlite_query(metric: Metric, min_team_tickets: int = MIN_TEAM_TICKETS) -> str:
    """The metric's SQLite twin, constants filled in (tables are unqualified)."""
    values = {
        "closed": ", ".join(_sqlite_literal(s) for s in CLOSED_STATUSES),
        "min_team_tickets": _sqlite_literal(int(min_team_tickets)),
    }

    def fill(match: re.Match) -> str:
        if match.group(1) not in values:
            raise KeyError(f"{metric.file}: unknown placeholder {match.group(0)}")
        return values[match.group(1)]

    return _PLACEHOLDER.sub(fill, metric.sql_text("sqlite"))


def compute_metrics_sqlite(
    path: str | Path,
    *,
    min_team_tickets: int = MIN_TEAM_TICKETS,
    ids: Sequence[str] | None = None,
) -> list[MetricValue]:
    """The same metrics on a cleaned SQLite database (opened read-only)."""
    p = check_sqlite_file(path)
    wanted = _select(ids)
    conn = sqlite3.connect(f"file:{p.resolve().as_posix()}?mode=ro", uri=True)
    conn.text_factory = LENIENT_TEXT
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = {"tickets", "comments", "timesheets"} - tables
        if missing:
            raise InputFileError(f"{p} lacks the tables {', '.join(sorted(missing))}", "give the cleaned database written by `servicedesk-etl clean`")
        has_quality = QUALITY_TABLE in tables and QUALITY_COLUMNS <= {r[1] for r in conn.execute(f"PRAGMA table_info({QUALITY_TABLE})")}
        results = []
        for metric in wanted:
            skipped = _skipped(metric, has_quality, p.name)
            if skipped:
                results.append(skipped)
                continue
            started = time.perf_counter()
            cur = conn.execute(sqlite_query(metric, min_team_tickets))
            rows = cur.fetchall()
            seconds = time.perf_counter() - started
            results.append(_evaluate(metric, [d[0] for d in cur.description], rows, seconds))
    finally:
        conn.close()
    return results


def _select(ids: Sequence[str] | None) -> list[Metric]:
    if not ids:
        return list(METRICS)
    unknown = [i for i in ids if i not in METRICS_BY_ID]
    if unknown:
        raise ConfigError(f"unknown metric id(s): {', '.join(unknown)}", f"known: {', '.join(METRICS_BY_ID)}")
    return [METRICS_BY_ID[i] for i in ids]


# --- output ----------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_text(values: Sequence[MetricValue]) -> str:
    """Human-readable: scalars on one line, tables indented under their title."""
    lines = []
    for v in values:
        flag = f"[{v.status}]" if v.status != NONE else ""
        if v.status == NA:
            lines.append(f"{v.id:<4} {v.title:<52} n/a  ({v.note})")
        elif v.value is not None or (len(v.columns) == 1 and not v.rows):
            lines.append(f"{v.id:<4} {v.title:<52} {_cell(v.value):>10} {v.unit:<5} {flag}")
        else:
            lines.append(f"{v.id:<4} {v.title} ({v.unit}) {flag}".rstrip())
            widths = [max([len(c)] + [len(_cell(r[i])) for r in v.rows]) for i, c in enumerate(v.columns)]
            lines.append("     " + "  ".join(c.ljust(w) for c, w in zip(v.columns, widths)))
            for row, status in zip(v.rows, v.row_status):
                mark = f"  [{status}]" if status != NONE else ""
                lines.append("     " + "  ".join(_cell(x).ljust(w) for x, w in zip(row, widths)) + mark)
            if not v.rows:
                lines.append("     (no rows)")
    return "\n".join(lines)


# --- CLI: servicedesk-etl metrics --------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", metavar="URI", help="PostgreSQL URI (default: config, PG* variables, embedded server)")
    parser.add_argument("--schema", metavar="NAME", help="schema to read (default: migrate.schema, 'servicedesk')")
    parser.add_argument("--data-dir", metavar="DIR", help="the embedded server's data folder (default .servicedesk/pg)")
    parser.add_argument("--sqlite", metavar="DB", help="compute the same metrics on a cleaned SQLite file instead")
    parser.add_argument("--metric", action="append", metavar="ID", help="only this metric (repeatable), e.g. --metric 1.1")
    parser.add_argument("--min-team-tickets", type=int, default=MIN_TEAM_TICKETS, metavar="N", help=f"smallest team in per-team metrics (default {MIN_TEAM_TICKETS})")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--list", action="store_true", help="only list the metrics: id, title, unit, colour bands, SQL file")


def catalogue() -> list[dict[str, Any]]:
    """The metrics' definitions (no database needed): what ``metrics --list`` prints."""
    out = []
    for m in METRICS:
        out.append(
            {
                "id": m.id,
                "title": m.title,
                "unit": m.unit,
                "bands": {column: band.describe() for column, band in m.bands.items()},
                "sql": f"pipeline/sql/{m.file}" if m.computable else None,
                "sqlite_twin": f"pipeline/sql_sqlite/{m.file}" if m.computable else None,
                "note": m.note or (f"needs a {QUALITY_TABLE} table" if m.needs_quality_table else ""),
            }
        )
    return out


def command(args: argparse.Namespace, settings: "Settings") -> int:
    if args.list:
        entries = catalogue()
        if args.json:
            print(json.dumps(entries, indent=2))
        else:
            for e in entries:
                bands = "; ".join(f"{c}: {b}" for c, b in e["bands"].items())
                print(f"{e['id']:<4} {e['title']:<52} {e['unit']:<16} {bands or '-':<44} {e['sql'] or e['note']}")
        return 0
    if args.sqlite:
        values = compute_metrics_sqlite(args.sqlite, min_team_tickets=args.min_team_tickets, ids=args.metric)
    else:
        from pipeline.pgserver import resolve_target

        target = resolve_target(settings.target, args.target, env=dict(os.environ), data_dir=args.data_dir)
        values = compute_metrics(
            target.conninfo(), args.schema or settings.migrate.schema, min_team_tickets=args.min_team_tickets, ids=args.metric
        )
    if args.json:
        print(json.dumps([v.as_dict() for v in values], indent=2, default=str))
    else:
        print(format_text(values))
    return 0

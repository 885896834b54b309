"""The Grafana dashboard of the live schema, generated from the dashboard query library.

Every panel's SQL is :func:`pipeline.dashboard.postgres_query` of one metric of
:data:`pipeline.dashboard.METRICS`, rendered to text for the live schema (``servicedesk``
by default): the dashboard and ``servicedesk-etl metrics`` can never disagree, because
there is only one copy of each query. Scalar metrics are stat panels coloured by the
metric's :class:`~pipeline.dashboard.Band`; distributions are bar charts; the rest are
tables whose banded columns are coloured by the same bands. The PostgreSQL data source is
the dashboard variable ``DS`` (``${DS}`` in every panel), chosen in Grafana after import.

Regenerate the committed file after changing a metric (a test compares them)::

    python -m pipeline.grafana > dashboards/servicedesk.json

The plugin id is ``grafana-postgresql-datasource`` (Grafana 10.2.3 and later; older
versions call it ``postgres``, which newer ones still accept as an alias).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any, Sequence

from pipeline.dashboard import METRICS, MIN_TEAM_TICKETS, Band, Metric, postgres_query

DATASOURCE_TYPE = "grafana-postgresql-datasource"
DATASOURCE = {"type": DATASOURCE_TYPE, "uid": "${DS}"}
DASHBOARD_UID = "servicedesk-etl"
SECTIONS = {
    "1": "1 Service levels",
    "2": "2 Teams and workload",
    "3": "3 Agents and trends",
    "4": "4 Data quality",
}
# Distributions drawn as bar charts: metric id -> (label column, value column).
BAR_CHARTS: dict[str, tuple[str, str]] = {
    "2.2": ("root_cause", "tickets"),
    "2.3": ("team", "tickets"),
    "2.5": ("tier", "comments"),
    "2.6": ("month", "tickets"),
    "3.3": ("month", "avg_days"),
    "3.4": ("bucket", "tickets"),
    "3.5": ("bucket", "tickets"),
    "4.1": ("category", "tickets"),
}
GRID_WIDTH = 24
STAT_SIZE = (4, 5)
WIDE_SIZE = (12, 9)
TEXT_SIZE = (12, 4)
COLOURS = {"green": "green", "amber": "orange", "red": "red"}


def thresholds(band: Band) -> dict[str, Any]:
    """Grafana threshold steps with the band's colours.

    A Grafana step applies from its value upwards (``value >= step``). A higher-is-better
    band is the same rule. A lower-is-better band is green *at* its limit (``<= green``),
    so its amber and red steps start just above the limits (``math.nextafter``), which
    keeps a value exactly on the limit the colour the report and ``metrics`` give it.
    """
    if band.higher_is_better:
        steps = [(COLOURS["red"], None), (COLOURS["amber"], band.amber), (COLOURS["green"], band.green)]
    else:
        steps = [
            (COLOURS["green"], None),
            (COLOURS["amber"], math.nextafter(band.green, math.inf)),
            (COLOURS["red"], math.nextafter(band.amber, math.inf)),
        ]
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]}


def panel_sql(metric: Metric, schema: str = "servicedesk", min_team_tickets: int = MIN_TEAM_TICKETS) -> str:
    """The metric's PostgreSQL text for ``schema``: identifiers and constants quoted by psycopg."""
    return postgres_query(metric, schema, min_team_tickets).as_string(None).strip() + "\n"


def _unit(metric: Metric) -> str:
    if metric.unit == "%":
        return "percent"
    if metric.unit == "days":
        return "suffix: days"
    return "none"


def _description(metric: Metric) -> str:
    parts = [f"Metric {metric.id} ({metric.unit}), query pipeline/sql/{metric.file}."]
    for column, band in metric.bands.items():
        parts.append(f"{column}: {band.describe()}.")
    if metric.needs_quality_table:
        parts.append("Needs the comment_quality table (quality_score, quality_tier) in the schema.")
    if metric.note:
        parts.append(metric.note)
    return " ".join(parts)


def _target(metric: Metric, schema: str, min_team_tickets: int) -> dict[str, Any]:
    return {
        "refId": "A",
        "datasource": DATASOURCE,
        "editorMode": "code",
        "format": "table",
        "rawQuery": True,
        "rawSql": panel_sql(metric, schema, min_team_tickets),
    }


def _base(metric: Metric, kind: str, schema: str, min_team_tickets: int) -> dict[str, Any]:
    return {
        "type": kind,
        "title": f"{metric.id} {metric.title}",
        "description": _description(metric),
        "datasource": DATASOURCE,
        "targets": [_target(metric, schema, min_team_tickets)],
    }


def _stat(metric: Metric, schema: str, min_team_tickets: int) -> dict[str, Any]:
    panel = _base(metric, "stat", schema, min_team_tickets)
    panel["fieldConfig"] = {
        "defaults": {
            "unit": _unit(metric),
            "decimals": 1,
            "color": {"mode": "thresholds"},
            "thresholds": thresholds(metric.bands["value"]),
            "noValue": "no data",
        },
        "overrides": [],
    }
    panel["options"] = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "/^value$/", "values": False},
        "colorMode": "background",
        "graphMode": "none",
        "justifyMode": "center",
        "textMode": "value",
        "orientation": "auto",
    }
    return panel


def _banded_overrides(metric: Metric) -> list[dict[str, Any]]:
    return [
        {
            "matcher": {"id": "byName", "options": column},
            "properties": [
                {"id": "thresholds", "value": thresholds(band)},
                {"id": "color", "value": {"mode": "thresholds"}},
                {"id": "custom.cellOptions", "value": {"type": "color-background"}},
            ],
        }
        for column, band in metric.bands.items()
    ]


def _table(metric: Metric, schema: str, min_team_tickets: int) -> dict[str, Any]:
    panel = _base(metric, "table", schema, min_team_tickets)
    panel["fieldConfig"] = {"defaults": {"custom": {"align": "auto", "cellOptions": {"type": "auto"}}}, "overrides": _banded_overrides(metric)}
    panel["options"] = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"], "fields": ""}}
    return panel


def _bar_chart(metric: Metric, schema: str, min_team_tickets: int) -> dict[str, Any]:
    label, value = BAR_CHARTS[metric.id]
    panel = _base(metric, "barchart", schema, min_team_tickets)
    band = metric.bands.get(value)
    defaults: dict[str, Any] = {"decimals": 1 if band else 0, "color": {"mode": "thresholds" if band else "palette-classic"}}
    if band:
        defaults["thresholds"] = thresholds(band)
    panel["fieldConfig"] = {"defaults": defaults, "overrides": []}
    panel["options"] = {
        "xField": label,
        "orientation": "horizontal" if label in ("root_cause", "team", "category") else "vertical",
        "showValue": "auto",
        "legend": {"showLegend": False, "displayMode": "list", "placement": "bottom", "calcs": []},
        "tooltip": {"mode": "single", "sort": "none"},
        "colorByField": value if band else None,
        "xTickLabelRotation": 0,
    }
    # Only the label and the value are drawn; the query's other columns stay in the table view.
    panel["transformations"] = [{"id": "filterFieldsByName", "options": {"include": {"names": [label, value]}}}]
    return panel


def _text(metric: Metric) -> dict[str, Any]:
    return {
        "type": "text",
        "title": f"{metric.id} {metric.title}",
        "description": _description(metric),
        "options": {"mode": "markdown", "content": f"**{metric.title}**: {metric.note or 'not computable from the exports'}."},
    }


def build_panel(metric: Metric, schema: str = "servicedesk", min_team_tickets: int = MIN_TEAM_TICKETS) -> dict[str, Any]:
    """One panel for ``metric`` (without id and position)."""
    if not metric.computable:
        return _text(metric)
    if set(metric.bands) == {"value"}:
        return _stat(metric, schema, min_team_tickets)
    if metric.id in BAR_CHARTS:
        return _bar_chart(metric, schema, min_team_tickets)
    return _table(metric, schema, min_team_tickets)


def _size(panel: dict[str, Any]) -> tuple[int, int]:
    return {"stat": STAT_SIZE, "text": TEXT_SIZE}.get(panel["type"], WIDE_SIZE)


def build_dashboard(
    schema: str = "servicedesk",
    min_team_tickets: int = MIN_TEAM_TICKETS,
    metrics: Sequence[Metric] = METRICS,
) -> dict[str, Any]:
    """The dashboard JSON model: a row per section, panels laid left to right, top to bottom."""
    panels: list[dict[str, Any]] = []
    y = 0
    next_id = 1
    for section, title in SECTIONS.items():
        members = [m for m in metrics if m.id.split(".")[0] == section]
        if not members:
            continue
        panels.append({"type": "row", "title": title, "id": next_id, "collapsed": False, "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y}, "panels": []})
        next_id += 1
        y += 1
        x, row_h, last_kind = 0, 0, None
        # Stats first, in one strip; charts and tables two to a line below them.
        for metric in sorted(members, key=lambda m: build_panel(m)["type"] != "stat"):
            panel = build_panel(metric, schema, min_team_tickets)
            w, h = _size(panel)
            if x + w > GRID_WIDTH or (last_kind == "stat" and panel["type"] != "stat"):
                x, y, row_h = 0, y + row_h, 0
            last_kind = panel["type"]
            panel["id"] = next_id
            panel["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
            next_id += 1
            panels.append(panel)
            x += w
            row_h = max(row_h, h)
        y += row_h
    return {
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.2.3"},
            {"type": "datasource", "id": DATASOURCE_TYPE, "name": "PostgreSQL", "version": "1.0.0"},
            *({"type": "panel", "id": t, "name": t, "version": ""} for t in sorted({p["type"] for p in panels} - {"row"})),
        ],
        "annotations": {"list": []},
        "description": (
            f"ServiceDesk metrics on the live schema {schema}, generated by `python -m pipeline.grafana` "
            "from the dashboard query library (pipeline/sql); regenerate it rather than editing it."
        ),
        "editable": True,
        "graphTooltip": 0,
        "links": [],
        "panels": panels,
        "refresh": "",
        "schemaVersion": 39,
        "tags": ["servicedesk", "servicedesk-etl"],
        "templating": {
            "list": [
                {
                    "name": "DS",
                    "label": "PostgreSQL data source",
                    "type": "datasource",
                    "query": DATASOURCE_TYPE,
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                    "options": [],
                }
            ]
        },
        # The queries read the whole live schema; the time picker does not filter them.
        "time": {"from": "now-1y", "to": "now"},
        "timepicker": {"hidden": True},
        "timezone": "utc",
        "title": "ServiceDesk",
        "uid": DASHBOARD_UID,
        "version": 1,
    }


def render(schema: str = "servicedesk", min_team_tickets: int = MIN_TEAM_TICKETS) -> str:
    """The dashboard as the text committed in ``dashboards/servicedesk.json``."""
    return json.dumps(build_dashboard(schema, min_team_tickets), indent=2, ensure_ascii=False) + "\n"


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, SQL) of every query of a dashboard model, rows' nested panels included."""
    found: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for p in panels:
            for t in p.get("targets") or []:
                if t.get("rawSql"):
                    found.append((p.get("title", ""), t["rawSql"]))
            walk(p.get("panels") or [])

    walk(dashboard.get("panels") or [])
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.grafana", description="print the Grafana dashboard JSON of the live schema")
    parser.add_argument("--schema", default="servicedesk", help="the live schema the panels query (default servicedesk)")
    parser.add_argument("--min-team-tickets", type=int, default=MIN_TEAM_TICKETS, help=f"per-team floor of the team metrics (default {MIN_TEAM_TICKETS})")
    args = parser.parse_args(argv)
    sys.stdout.write(render(args.schema, args.min_team_tickets))
    return 0


if __name__ == "__main__":  # `python -m pipeline.grafana > dashboards/servicedesk.json`
    raise SystemExit(main())

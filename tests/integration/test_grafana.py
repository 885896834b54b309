"""The Grafana dashboard: the committed JSON is the generated one, and every panel's SQL
answers on a live schema migrated from the generated sample (raw -> clean -> migrate).

The first tests need no database; the last one is marked ``postgres``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline import grafana
from pipeline.dashboard import GREEN, METRICS, METRICS_BY_ID

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "dashboards" / "servicedesk.json"
SCHEMA = "servicedesk"


@pytest.fixture(scope="module")
def committed() -> dict[str, Any]:
    return json.loads(COMMITTED.read_text(encoding="utf-8"))


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def _metric_of(panel: dict[str, Any]):
    return METRICS_BY_ID[panel["title"].split(" ", 1)[0]]


def test_committed_dashboard_is_the_generated_one() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == grafana.render(), (
        "dashboards/servicedesk.json is stale: run `python -m pipeline.grafana > dashboards/servicedesk.json`"
    )


def test_module_entry_prints_the_same_json() -> None:
    out = subprocess.run([sys.executable, "-m", "pipeline.grafana"], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert out == grafana.render()
    other = subprocess.run([sys.executable, "-m", "pipeline.grafana", "--schema", "sd_test"], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert '\\"sd_test\\".tickets' in other and '\\"servicedesk\\"' not in other


def test_one_panel_per_metric_with_the_library_sql(committed: dict[str, Any]) -> None:
    panels = _panels(committed)
    assert [_metric_of(p).id for p in panels] == [m.id for m in METRICS if m.id.startswith("1.")] + [
        m.id for m in METRICS if not m.id.startswith("1.")
    ]
    for p in panels:
        metric = _metric_of(p)
        if not metric.computable:
            assert p["type"] == "text" and "targets" not in p
            continue
        [target] = p["targets"]
        assert target["rawSql"] == grafana.panel_sql(metric, SCHEMA)
        assert target["rawSql"].startswith(f"-- {metric.id} ")  # the library's file, comments and all
        assert p["datasource"] == target["datasource"] == {"type": grafana.DATASOURCE_TYPE, "uid": "${DS}"}
        # Grafana interpolates $name, ${name} and [[name]] in raw SQL: the library must not use them.
        assert "$" not in target["rawSql"] and "[[" not in target["rawSql"]
    [ds] = committed["templating"]["list"]
    assert ds["name"] == "DS" and ds["type"] == "datasource" and ds["query"] == grafana.DATASOURCE_TYPE


def test_panel_kinds_follow_the_metric_shape(committed: dict[str, Any]) -> None:
    for p in _panels(committed):
        metric = _metric_of(p)
        if set(metric.bands) == {"value"}:
            assert p["type"] == "stat"
            assert p["fieldConfig"]["defaults"]["thresholds"] == grafana.thresholds(metric.bands["value"])
        elif metric.id in grafana.BAR_CHARTS:
            assert p["type"] == "barchart" and p["options"]["xField"] == grafana.BAR_CHARTS[metric.id][0]
        elif metric.computable:
            assert p["type"] == "table"
            banded = {o["matcher"]["options"] for o in p["fieldConfig"]["overrides"]}
            assert banded == set(metric.bands)


def test_layout_has_unique_ids_and_no_overlap(committed: dict[str, Any]) -> None:
    ids = [p["id"] for p in committed["panels"]]
    assert len(ids) == len(set(ids))
    taken: set[tuple[int, int]] = set()
    for p in committed["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= grafana.GRID_WIDTH
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & taken, p["title"]
        taken |= cells


def _grafana_colour(steps: list[dict[str, Any]], value: float) -> str:
    """What Grafana paints: the last step whose value is at or below ``value``."""
    colour = steps[0]["color"]
    for step in steps[1:]:
        if value >= step["value"]:
            colour = step["color"]
    return colour


@pytest.mark.parametrize("metric", [m for m in METRICS if m.bands], ids=lambda m: m.id)
def test_thresholds_paint_what_the_band_says(metric) -> None:
    colours = {v: k for k, v in grafana.COLOURS.items()}
    for band in metric.bands.values():
        steps = grafana.thresholds(band)["steps"]
        for edge in (band.green, band.amber):
            for value in (edge - 0.1, edge - 0.05, edge, edge + 0.05, edge + 0.1, 0.0, 100.0):
                assert colours[_grafana_colour(steps, value)] == band.status(value), (metric.id, value)
    assert grafana.thresholds(METRICS_BY_ID["1.2"].bands["value"])["steps"][0]["color"] == grafana.COLOURS[GREEN]


# --- every panel's SQL on a migrated database ----------------------------------------------


@pytest.fixture(scope="module")
def cleaned_sample(raw_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pipeline import clean
    from pipeline.config import Settings

    out = tmp_path_factory.mktemp("grafana") / "clean.db"
    clean.run(clean.CleanConfig(source=raw_db, out=out, settings=Settings(), progress=False))
    return out


@pytest.mark.postgres
def test_every_panel_query_returns_rows_on_a_migrated_schema(committed: dict[str, Any], cleaned_sample: Path, pg_dsn: str, tmp_path: Path) -> None:
    import psycopg
    from psycopg import sql

    from pipeline.config import Settings
    from pipeline.migrate import LIVE, MigrateConfig, run

    result = run(MigrateConfig(source=cleaned_sample, target=pg_dsn, schema=SCHEMA, canary=False, contracts=False, settings=Settings(), backups_dir=tmp_path / "b"))
    assert result.status == LIVE
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        # 1.5 and 2.5 read a comment-quality table the exports do not have: add a small one.
        conn.execute(sql.SQL("CREATE TABLE {}.comment_quality (comment_id bigint, quality_score numeric, quality_tier text)").format(sql.Identifier(SCHEMA)))
        conn.execute(
            sql.SQL("INSERT INTO {}.comment_quality SELECT comment_id, 40 + comment_id % 60, (ARRAY['gold','silver','bronze'])[1 + comment_id % 3] FROM {}.comments").format(
                sql.Identifier(SCHEMA), sql.Identifier(SCHEMA)
            )
        )
    queries = grafana.panel_queries(committed)
    assert len(queries) == sum(1 for m in METRICS if m.computable)
    by_title = {p["title"]: p for p in _panels(committed)}
    with psycopg.connect(pg_dsn) as conn:
        conn.read_only = True  # a Grafana data source should use a read-only role; the SQL must not need more
        for title, text in queries:
            cur = conn.execute(text)
            rows = cur.fetchall()
            columns = [d.name for d in cur.description]
            assert rows, f"panel {title!r} returned no rows"
            panel = by_title[title]
            if panel["type"] == "stat":
                assert columns == ["value"] and rows[0][0] is not None, title
            elif panel["type"] == "barchart":
                assert set(grafana.BAR_CHARTS[_metric_of(panel).id]) <= set(columns), (title, columns)
            else:
                assert {o["matcher"]["options"] for o in panel["fieldConfig"]["overrides"]} <= set(columns), (title, columns)
        conn.rollback()

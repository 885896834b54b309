"""The dashboard query library against a real PostgreSQL: every metric equals its SQLite twin.

The data: a small deterministic service desk written twice, as the cleaned SQLite file
(ISO date text, as `clean` writes it) and as the live schema in PostgreSQL (tables from
the contracts through `pipeline.pgschema`, typed values). When the real pipeline is
present, the same comparison also runs on the generated sample, cleaned and migrated.
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from contracts.schemas import contract_for
from contracts.schemas.tickets import CLOSED_STATUSES
from pipeline import dashboard
from pipeline.dashboard import METRICS, compute_metrics, compute_metrics_sqlite, postgres_query, sqlite_query
from pipeline.pgschema import ddl

pytestmark = pytest.mark.postgres

SCHEMA = "servicedesk"
TEAMS = (
    ("Cloud - Infrastructure", 150),
    ("Cloud - BAU Support", 110),
    ("Cloud - Security", 70),
    ("Cloud - L2 Escalation", 25),  # under the 50-ticket floor of the per-team metrics
    (None, 8),
)
CATEGORIES = ("Support Tickets", "Alert", "PHI Support Tickets", "Standard", "Incident", "Service Request")
ROOT_CAUSES = ("Security", "Account", "Software", "User Modifications", "Hosted Service", None, "--None--")
USERS = tuple(f"agent{i:02d}" for i in range(12))


def _columns(table: str) -> list[str]:
    contract = contract_for(table)
    assert contract is not None
    return list(contract.columns)


def build_dataset(seed: int = 11) -> dict[str, list[dict[str, Any]]]:
    """Typed rows of the three tables (datetime, date, int, float, str, None)."""
    rng = random.Random(seed)
    tickets, comments, timesheets = [], [], []
    ticket_id = 3_600_000
    comment_id = 1
    start = datetime(2025, 5, 1, 8, 0, 0)
    for team, size in TEAMS:
        for _ in range(size):
            ticket_id += rng.randint(1, 40)
            created = start + timedelta(minutes=rng.randint(0, 150 * 24 * 60), seconds=rng.randint(0, 59))
            status = rng.choices(["Closed", "Incident Resolved", "Open", "In Progress", "Pending"], [65, 25, 4, 3, 3])[0]
            closed = status in CLOSED_STATUSES
            resolved = created + timedelta(seconds=rng.randint(600, 20 * 86400)) if closed and rng.random() < 0.85 else None
            row = dict.fromkeys(_columns("tickets"))
            row.update(
                {
                    "TKT-Ticket ID": ticket_id,
                    "TKT-Created Time": created,
                    "TKT-Month Created": created.strftime("%Y-%m") if rng.random() > 0.02 else None,
                    "TKT-Status": status,
                    "TKT-Team": team,
                    "TKT-Category": rng.choice(CATEGORIES),
                    "TKT-Root Cause Category": rng.choices(ROOT_CAUSES, [37, 20, 15, 10, 10, 5, 3])[0],
                    "TKT-SLA Met": rng.choices(["yes", "no", None], [60, 5, 35])[0],
                    "TKT-Actual Resolution Date": resolved,
                    "TKT-Modified Time": resolved or created,
                    "TKT-Actual SLA Achievement": round(rng.uniform(50, 100), 2),
                }
            )
            tickets.append(row)
            for _ in range(rng.choices([0, 1, 2, 3, 5, 9], [15, 30, 20, 15, 12, 8])[0]):
                comments.append(
                    {
                        **dict.fromkeys(_columns("comments")),
                        "comment_id": comment_id,
                        "ticket_id": ticket_id,
                        "comment_text": "Checked the logs, it's fine",
                        "user_name": rng.choice(USERS),
                        "created_time": created + timedelta(minutes=rng.randint(1, 5000)),
                        "visible_to_customer": rng.choices(["Yes", "No"], [45, 55])[0],
                        "comment_type": "comments",
                        "team": team,
                    }
                )
                comment_id += 1
            users = rng.sample(USERS, rng.choices([0, 1, 2, 3, 4, 5], [40, 35, 12, 6, 4, 3])[0])
            for slot, user in enumerate(users * rng.randint(1, 2)):
                timesheets.append(_timesheet(rng, user, created.date(), slot, ticket_id))
    # Comments on tickets outside the extract, admin time, and orphan timesheet rows.
    for _ in range(20):
        comments.append({**dict.fromkeys(_columns("comments")), "comment_id": comment_id, "ticket_id": 9_000_000 + comment_id,
                         "created_time": start, "visible_to_customer": "Yes"})
        comment_id += 1
    for i in range(200):
        timesheets.append(_timesheet(rng, rng.choice(USERS), date(2025, 7, 1) + timedelta(days=i % 60), 20 + i, 0 if i % 3 == 0 else 8_000_000 + i))
    return {"tickets": tickets, "comments": comments, "timesheets": timesheets}


def _timesheet(rng: random.Random, user: str, day: date, slot: int, crm: int) -> dict[str, Any]:
    row = dict.fromkeys(_columns("timesheets"))
    row.update(
        {
            "TS-User Username": user,
            "TS-Date": day,
            "TS-Time From": f"{slot // 6:02d}:{(slot % 6) * 10:02d}",
            "TS-Hours": rng.choice([0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.25]),
            "TS-Crm ID": crm,
        }
    )
    return row


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    return value


def write_sqlite(data: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    """The cleaned-SQLite form: ISO date text, NULLs, numbers as numbers."""
    conn = sqlite3.connect(path)
    for table, rows in data.items():
        cols = _columns(table)
        conn.execute(f"CREATE TABLE {table} ({', '.join(json.dumps(c) for c in cols)})")
        conn.executemany(
            f"INSERT INTO {table} VALUES ({', '.join('?' for _ in cols)})",
            [tuple(_sqlite_value(r[c]) for c in cols) for r in rows],
        )
    conn.commit()
    conn.close()
    return path


def write_postgres(data: dict[str, list[dict[str, Any]]], conninfo: str, schema: str = SCHEMA) -> None:
    """The live schema: contract DDL, typed rows by COPY."""
    with psycopg.connect(conninfo) as conn:
        for statement in ddl(schema):
            conn.execute(statement)
        for table, rows in data.items():
            cols = _columns(table)
            copy = sql.SQL("COPY {}.{} ({}) FROM STDIN").format(
                sql.Identifier(schema), sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in cols)
            )
            with conn.cursor().copy(copy) as cp:
                for r in rows:
                    cp.write_row([r[c] for c in cols])


@pytest.fixture(scope="module")
def dataset() -> dict[str, list[dict[str, Any]]]:
    return build_dataset()


@pytest.fixture(scope="module")
def cleaned_sqlite(dataset, tmp_path_factory) -> Path:
    return write_sqlite(dataset, tmp_path_factory.mktemp("dash") / "clean.db")


@pytest.fixture
def live_schema(pg_dsn: str, dataset) -> str:
    write_postgres(dataset, pg_dsn)
    return pg_dsn


def assert_same(pg: dashboard.MetricValue, lite: dashboard.MetricValue) -> None:
    """Equal within rounding: numbers to one decimal, one unit of the last digit apart at most."""
    assert pg.id == lite.id
    assert pg.columns == lite.columns, pg.id
    assert len(pg.rows) == len(lite.rows), (pg.id, pg.rows, lite.rows)
    for prow, lrow in zip(pg.rows, lite.rows):
        for column, a, b in zip(pg.columns, prow, lrow):
            where = f"{pg.id} {column} {prow} vs {lrow}"
            if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
                assert a == pytest.approx(b, abs=0.1 + 1e-9), where
            else:
                assert a == b, where
    assert pg.status == lite.status or pg.id in {"1.2", "2.7", "3.3"}, pg.id  # a band edge may fall between roundings


# --- every metric, PostgreSQL == SQLite ----------------------------------------------------


@pytest.mark.parametrize("metric", [m for m in METRICS if m.computable and not m.needs_quality_table], ids=lambda m: m.id)
def test_metric_equals_sqlite_computation(metric, live_schema: str, cleaned_sqlite: Path) -> None:
    [pg] = compute_metrics(live_schema, SCHEMA, ids=[metric.id])
    [lite] = compute_metrics_sqlite(cleaned_sqlite, ids=[metric.id])
    assert pg.rows, f"{metric.id} returned no rows on the sample"
    assert all(cell is not None for cell in pg.rows[0]), (metric.id, pg.rows[0])
    assert_same(pg, lite)


def test_all_metrics_in_one_snapshot_with_expected_shapes(live_schema: str, cleaned_sqlite: Path, dataset) -> None:
    values = {v.id: v for v in compute_metrics(live_schema, SCHEMA)}
    assert list(values) == [m.id for m in METRICS]
    tickets = dataset["tickets"]
    closed = [t for t in tickets if t["TKT-Status"] in CLOSED_STATUSES]
    # Hand computations of a few metrics from the Python rows: the SQL means what it says.
    summary = values["4.3"].records[0]
    assert summary == {"tickets": len(tickets), "comments": len(dataset["comments"]), "timesheets": len(dataset["timesheets"]), "closed_tickets": len(closed)}
    met = [t["TKT-SLA Met"] for t in tickets if t["TKT-SLA Met"] is not None]
    assert values["1.1"].value == pytest.approx(round(100 * met.count("yes") / len(met), 1), abs=0.05)
    days = [(t["TKT-Actual Resolution Date"] - t["TKT-Created Time"]).total_seconds() / 86400 for t in closed if t["TKT-Actual Resolution Date"]]
    assert values["1.2"].value == pytest.approx(round(sum(days) / len(days), 1), abs=0.05)
    # Per-team metrics leave out the team under 50 tickets.
    for mid in ("2.4", "2.7", "2.8"):
        teams = {r["team"] for r in values[mid].records}
        assert "Cloud - L2 Escalation" not in teams and "Cloud - Infrastructure" in teams, mid
    # Buckets always present, in order, adding up to 100%.
    assert [r["bucket"] for r in values["3.4"].records] == ["0", "1", "2-3", "4+"]
    assert [r["bucket"] for r in values["3.5"].records] == ["1", "2", "3", "4+"]
    assert sum(r["tickets"] for r in values["3.4"].records) == len(closed)
    assert sum(r["pct"] for r in values["3.4"].records) == pytest.approx(100, abs=0.3)
    # 1.3 and 3.4 agree: FCR is the 0 and 1 buckets.
    fcr_buckets = sum(r["tickets"] for r in values["3.4"].records[:2]) * 100 / len(closed)
    assert values["1.3"].value == pytest.approx(round(fcr_buckets, 1), abs=0.05)
    # Placeholders and NULL are not root causes.
    assert all(r["root_cause"] not in ("--None--", None, "") for r in values["2.2"].records)
    assert len(values["2.2"].records) <= 10
    # Colour bands: every banded scalar has a colour.
    for mid in ("1.1", "1.2", "1.3", "1.4", "2.1"):
        assert values[mid].status in ("green", "amber", "red"), mid
    # Not computable / needing a table that does not exist: reported as n/a, with why.
    assert values["3.6"].status == "n/a" and "manual audit" in values["3.6"].note
    for mid in ("1.5", "2.5"):
        assert values[mid].status == "n/a" and "comment_quality" in values[mid].note


def test_comment_quality_metrics_appear_when_the_table_exists(live_schema: str, cleaned_sqlite: Path, tmp_path: Path) -> None:
    scores = [(i, 40 + (i * 7) % 60, ("gold", "silver", "bronze")[i % 3]) for i in range(1, 61)]
    with psycopg.connect(live_schema, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {}.comment_quality (comment_id bigint, quality_score numeric, quality_tier text)").format(sql.Identifier(SCHEMA)))
        with conn.cursor().copy(sql.SQL("COPY {}.comment_quality FROM STDIN").format(sql.Identifier(SCHEMA))) as cp:
            for row in scores:
                cp.write_row(row)
    lite_path = tmp_path / "with_quality.db"
    lite_path.write_bytes(cleaned_sqlite.read_bytes())
    with sqlite3.connect(lite_path) as lite:
        lite.execute("CREATE TABLE comment_quality (comment_id INTEGER, quality_score REAL, quality_tier TEXT)")
        lite.executemany("INSERT INTO comment_quality VALUES (?, ?, ?)", scores)
    pg = {v.id: v for v in compute_metrics(live_schema, SCHEMA, ids=["1.5", "2.5"])}
    lite_values = {v.id: v for v in compute_metrics_sqlite(lite_path, ids=["1.5", "2.5"])}
    assert pg["1.5"].value == pytest.approx(round(sum(s for _, s, _ in scores) / len(scores), 1), abs=0.05)
    assert [r["tier"] for r in pg["2.5"].records] == ["bronze", "gold", "silver"]
    for mid in ("1.5", "2.5"):
        assert_same(pg[mid], lite_values[mid])


# --- named regressions of the first migration --------------------------------------------------


def _code(text: str) -> str:
    """SQL without its comment lines (the library writes comments on lines of their own)."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))


def test_closed_means_closed_or_incident_resolved_not_resolved(live_schema: str, dataset) -> None:
    """Regression: the old queries filtered on 'Resolved', a status no ticket has."""
    assert CLOSED_STATUSES == ("Closed", "Incident Resolved")
    incident_resolved = sum(t["TKT-Status"] == "Incident Resolved" for t in dataset["tickets"])
    only_closed = sum(t["TKT-Status"] == "Closed" for t in dataset["tickets"])
    assert incident_resolved > 0
    [summary] = compute_metrics(live_schema, SCHEMA, ids=["4.3"])
    assert summary.records[0]["closed_tickets"] == only_closed + incident_resolved
    with psycopg.connect(live_schema) as conn:
        old = conn.execute(
            sql.SQL("""SELECT count(*) FROM {}.tickets WHERE "TKT-Status" IN ('Closed', 'Resolved')""").format(sql.Identifier(SCHEMA))
        ).fetchone()[0]
    assert old == only_closed < summary.records[0]["closed_tickets"]  # what the old filter lost
    # No query in the library spells the broken filter again.
    for metric in METRICS:
        if metric.computable:
            for dialect in ("postgres", "sqlite"):
                assert not re.search(r"'Resolved'", _code(metric.sql_text(dialect))), (metric.file, dialect)


def test_round_and_duration_forms_run_on_postgresql(live_schema: str) -> None:
    """Regression (problem 4 of the first migration): ROUND(double precision, n) and JULIANDAY
    do not exist in PostgreSQL; the library uses ROUND(x::numeric, n) and epoch arithmetic."""
    with psycopg.connect(live_schema) as conn:
        # The failures the old SQLite-flavoured queries hit, quoted from the server.
        with pytest.raises(psycopg.errors.UndefinedFunction, match=r"round\(double precision, integer\) does not exist"):
            conn.execute("SELECT ROUND(AVG(EXTRACT(EPOCH FROM now() - now())::double precision), 1)")
        conn.rollback()
        with pytest.raises(psycopg.errors.UndefinedFunction, match=r"julianday"):
            conn.execute(sql.SQL('SELECT AVG(JULIANDAY("TKT-Actual Resolution Date") - JULIANDAY("TKT-Created Time")) FROM {}.tickets').format(sql.Identifier(SCHEMA)))
        conn.rollback()
        # The forms the library uses, on the migrated types.
        value = conn.execute(
            sql.SQL(
                'SELECT ROUND(AVG(EXTRACT(EPOCH FROM ("TKT-Actual Resolution Date" - "TKT-Created Time")) / 86400)::numeric, 1) FROM {}.tickets'
            ).format(sql.Identifier(SCHEMA))
        ).fetchone()[0]
        assert isinstance(value, Decimal) and value > 0
    for metric in METRICS:
        if not metric.computable:
            continue
        text = _code(metric.sql_text("postgres"))
        assert "JULIANDAY" not in text.upper(), metric.file
        for call in re.finditer(r"ROUND\(", text):
            # Every ROUND's argument is cast to numeric just before its precision.
            depth, i = 1, call.end()
            while depth:
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                i += 1
            inner = text[call.end() : i - 1]
            assert re.search(r"::numeric,\s*1$", inner), (metric.file, inner[-60:])


def test_schema_name_is_quoted_not_interpolated(live_schema: str) -> None:
    odd = 'sd"; DROP TABLE servicedesk.tickets; --'
    with psycopg.connect(live_schema, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(odd)))
        conn.execute(sql.SQL("CREATE TABLE {}.tickets (LIKE servicedesk.tickets)").format(sql.Identifier(odd)))
        conn.execute(sql.SQL("CREATE TABLE {}.comments (LIKE servicedesk.comments)").format(sql.Identifier(odd)))
        conn.execute(sql.SQL("CREATE TABLE {}.timesheets (LIKE servicedesk.timesheets)").format(sql.Identifier(odd)))
    values = {v.id: v for v in compute_metrics(live_schema, odd, ids=["4.3", "1.1"])}
    assert values["4.3"].records[0]["tickets"] == 0
    assert values["1.1"].value is None  # no SLA rows: NULL, not a division by zero
    with psycopg.connect(live_schema) as conn:
        assert conn.execute("SELECT count(*) FROM servicedesk.tickets").fetchone()[0] > 0


def test_missing_schema_is_one_error_with_a_remedy(pg_dsn: str) -> None:
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="does not exist") as err:
        compute_metrics(pg_dsn, "servicedesk_nope")
    assert "migrate" in err.value.remedy


def test_queries_use_the_dashboard_indexes_and_answer_fast(live_schema: str) -> None:
    """Each query's server-side time, from EXPLAIN ANALYZE, is reported (no wall-clock limit
    asserted here: the figures are printed for the report, the benchmark lives in tests/perf)."""
    with psycopg.connect(live_schema) as conn:
        for metric in METRICS:
            if not metric.computable or metric.needs_quality_table:
                continue
            plan = conn.execute(sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) ") + postgres_query(metric, SCHEMA)).fetchone()[0]
            assert plan[0]["Execution Time"] >= 0
            print(f"{metric.id} {plan[0]['Execution Time']:.2f} ms")


def test_sqlite_twins_fill_every_placeholder() -> None:
    for metric in METRICS:
        if metric.computable:
            text = sqlite_query(metric)
            assert "{" not in text and "}" not in text, metric.file
            assert "::" not in text and "EXTRACT(EPOCH" not in text, metric.file


def test_metrics_cli_prints_json_and_text(live_schema: str, cleaned_sqlite: Path, capsys) -> None:
    from pipeline.config import Settings

    parser = __import__("argparse").ArgumentParser()
    dashboard.add_arguments(parser)
    assert dashboard.command(parser.parse_args(["--target", live_schema, "--json"]), Settings()) == 0
    printed = json.loads(capsys.readouterr().out)
    assert {m["id"] for m in printed} == {m.id for m in METRICS}
    sla = next(m for m in printed if m["id"] == "1.1")
    assert sla["status"] in ("green", "amber", "red") and "value" in sla
    assert dashboard.command(parser.parse_args(["--sqlite", str(cleaned_sqlite)]), Settings()) == 0
    text = capsys.readouterr().out
    assert "SLA compliance" in text and "n/a" in text and "Team FCR ranking" in text


# --- the real pipeline: a cleaned file migrated by `migrate`, then every metric compared ---------


def test_metrics_on_a_migrated_schema_equal_the_cleaned_sqlite(pg_dsn: str, small_clean_db: Path, tmp_path: Path) -> None:
    migrate = pytest.importorskip("pipeline.migrate")
    from pipeline.config import Settings

    result = migrate.run(
        migrate.MigrateConfig(
            source=small_clean_db,
            target=pg_dsn,
            schema=SCHEMA,
            canary=False,
            contracts=False,  # the contract gate has its own tests; here: the dashboard
            settings=Settings(),
            backups_dir=tmp_path / "backups",
        )
    )
    assert result.status == "live"
    # 60 tickets: lower the team floor so the per-team metrics have rows to compare.
    pg = compute_metrics(pg_dsn, SCHEMA, min_team_tickets=5)
    lite = compute_metrics_sqlite(small_clean_db, min_team_tickets=5)
    assert [v.id for v in pg] == [v.id for v in lite]
    for a, b in zip(pg, lite):
        if a.status == "n/a":
            assert b.status == "n/a", a.id
            continue
        assert a.rows, a.id
        assert_same(a, b)
    with psycopg.connect(pg_dsn) as conn:
        types = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s AND table_name = 'tickets'",
                (SCHEMA,),
            ).fetchall()
        )
    assert types["TKT-Created Time"].startswith("timestamp")  # epoch arithmetic needs real timestamps


def test_a_schema_that_is_not_a_migrated_one_is_one_error_with_a_remedy(pg_dsn: str) -> None:
    from pipeline.errors import ConfigError

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute('CREATE SCHEMA other; CREATE TABLE other.tickets ("TKT-Ticket ID" bigint)')
    with pytest.raises(ConfigError, match="metric 1.1 cannot run on schema other") as err:
        compute_metrics(pg_dsn, "other")
    assert "migrate" in err.value.remedy


def test_metrics_list_needs_no_database(capsys) -> None:
    from pipeline.config import Settings

    parser = __import__("argparse").ArgumentParser()
    dashboard.add_arguments(parser)
    assert dashboard.command(parser.parse_args(["--list", "--json"]), Settings()) == 0
    entries = {e["id"]: e for e in json.loads(capsys.readouterr().out)}
    assert entries["1.1"]["bands"] == {"value": "green >= 95, amber >= 90, red otherwise"}
    assert entries["1.2"]["bands"]["value"].startswith("green <= 4")
    assert entries["3.6"]["sql"] is None and "manual audit" in entries["3.6"]["note"]
    for e in entries.values():
        if e["sql"]:
            assert (Path(dashboard.__file__).parent.parent / e["sql"]).is_file()
            assert (Path(dashboard.__file__).parent.parent / e["sqlite_twin"]).is_file()

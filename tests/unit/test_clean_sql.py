"""The SQL shortcuts of the set-based build never skip a value a rule would change.

A value the SQL "kept" predicate (``ColumnPlan.kept_sql``) passes never reaches the
Python rules, and a long text the "suspect" predicate does not flag is copied as it is:
both must be true only for values every rule of the column keeps.
"""

from __future__ import annotations

import sqlite3
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import spec
from contracts.schemas import REGISTRY
from pipeline import clean
from pipeline.config import Settings

TODAY = date(2025, 10, 15)

EDGE_VALUES: list[Any] = [
    "2025-07-01 09:00:00", "2025-07-01", "2025-02-30 10:00:00", "2025-02-30", "0000-01-01 00:00:00", "0000-01-01",
    "2025-13-45 25:61:00", "2025-01-01 24:00:00", "2025-01-01 23:59:60", "2025-01-01 23:59:59.123456",
    " 2025-01-01 10:00:00", "2025-01-01 10:00:00\n", "2099-01-01 00:00:00", "2099-01-01", "2025-10-15 23:59:59",
    "1/07/2025", "45123", 45123, 45123.5, 0, -1, 1, 24, 24.5, 0.25, 3652948.0, 2**63 - 1, -(2**63), float("inf"),
    float("-inf"), 1e308, "42", "7.5", "", "  ", "N/A", "n/a", "-", "PendingAssignment", " PendingAssignment", b"\x00\x01",
]


def _plans() -> list[tuple[str, clean.ColumnPlan]]:
    out = []
    for table, schema in REGISTRY.items():
        plans, _ = clean.plan_table(table, schema, list(schema.columns), Settings(), {}, TODAY)
        out.extend((table, p) for p in plans)
    return out


PLANS = _plans()


def _kept(conn: sqlite3.Connection, plan: clean.ColumnPlan, value: Any) -> bool:
    sql, args = plan.kept_sql  # type: ignore[misc]
    return bool(conn.execute(f"WITH t(x) AS (SELECT ?) SELECT coalesce({sql.replace('{c}', 'x')}, 0) FROM t", [value, *args]).fetchone()[0])


@pytest.mark.parametrize("table,plan", [p for p in PLANS if p[1].kept_sql is not None], ids=lambda p: getattr(p, "name", p))
def test_a_value_sql_keeps_is_kept_by_every_rule(table: str, plan: clean.ColumnPlan) -> None:
    conn = sqlite3.connect(":memory:")
    for value in EDGE_VALUES:
        if _kept(conn, plan, value):
            assert plan._apply(value) is None, (table, plan.name, value)


def _long_text_plans() -> list[clean.ColumnPlan]:
    return [p for _, p in PLANS if p.memo is None]


def _suspect(conn: sqlite3.Connection, plan: clean.ColumnPlan, text: str) -> bool:
    builder = object.__new__(clean._Builder)
    builder.cs = Settings().clean
    sql, args = clean._Builder._text_suspect(builder, plan, "x")
    return bool(conn.execute(f"WITH t(x) AS (SELECT ?) SELECT coalesce({sql}, 0) FROM t", [text, *args]).fetchone()[0])


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab \t\n\r\x00\u3000.")), max_size=30))
def test_a_long_text_not_suspected_is_kept_by_every_rule(text: str) -> None:
    conn = sqlite3.connect(":memory:")
    for plan in _long_text_plans():
        if not _suspect(conn, plan, text):
            assert plan._apply(text) is None, (plan.name, text)


def test_long_text_edge_cases_are_suspected() -> None:
    conn = sqlite3.connect(":memory:")
    plan = _long_text_plans()[0]
    for text in ("a\n\n\n\nb", "a\n \n\n\nb", "a\n\t\n\n\nb", "a\r\nb", "a\x00b", "   ", ""):
        assert _suspect(conn, plan, text), repr(text)
    assert not _suspect(conn, plan, "a\n\nb\n\nc")
    assert spec.is_long_text(REGISTRY["comments"].columns["comment_text"])


def test_clean_values_are_told_in_sql() -> None:
    conn = sqlite3.connect(":memory:")
    plans = {(t, p.name): p for t, p in PLANS}
    assert _kept(conn, plans[("tickets", "TKT-Created Time")], "2025-07-01 09:00:00")
    assert not _kept(conn, plans[("tickets", "TKT-Created Time")], "2025-02-30 09:00:00")
    assert _kept(conn, plans[("timesheets", "TS-Date")], "2025-07-01")
    assert _kept(conn, plans[("comments", "comment_id")], 5)
    assert not _kept(conn, plans[("comments", "comment_id")], 5.0)


# --- slash dates rewritten in SQL (ColumnPlan.rewrite_sql) ---------------------------------


def _order_plans(order: str) -> list[tuple[str, clean.ColumnPlan]]:
    """Every date column's plan with its slash dates read in ``order`` (the profiler's decision)."""
    counts = {"day-first": {"day_first": 1}, "month-first": {"month_first": 1}}[order]
    out = []
    for table, schema in REGISTRY.items():
        decisions = {c: {"format": "DAY_FIRST", "order": order, "ambiguous": False, "counts": counts} for c in schema.columns}
        plans, _ = clean.plan_table(table, schema, list(schema.columns), Settings(), decisions, TODAY)
        out.extend((table, p) for p in plans if p.rewrite_sql is not None)
    return out


REWRITE_PLANS = _order_plans("day-first") + _order_plans("month-first")

SLASH_EDGES: list[Any] = [
    "5/07/2025 10:38", "25/08/2025 6:41", "05/07/2025 06:41:09", "1/1/2025", "01/01/2025", "31/12/2025 23:59:59",
    "31/02/2025", "29/02/2024", "29/02/2025", "30/04/2025 10:00", "31/04/2025 10:00", "0/1/2025", "1/0/2025",
    "13/12/2025", "12/13/2025", "1/13/2025", "1/1/0999", "1/1/1000", "1/1/0000", "1/1/9999 23:59:59", "1/1/2025 24:00",
    "1/1/2025 23:60", "1/1/2025 9:05:60", "1/1/2025 9:5", "1/1/2025 009:05", "1/1/2025 9:05:1", "1/1/2025 10:00 PM",
    "1/1/2025 10:00:00.5", "1/1/2025T10:00", "1/1/2025  10:00", " 1/1/2025", "1/1/2025 ", "1/1/2025\n", "1.1.2025",
    "1-1-2025 10:00", "1/1.2025", "1/1/20255", "1/1/202", "123/1/2025", "1/123/2025", "1//2025", "//", "1/1/2025 00:00",
    "1/1/2025 00:00:00", "15/10/2025", "16/10/2025", "14/11/2025 10:00", "15/11/2025 00:00:01", "16/11/2025",
    "\u0661/1/2025", "1/1/2025 1\u0660:00", "N/A", "-", 45123, 45123.5, b"1/1/2025", None,
]


def _rewritten(plan: clean.ColumnPlan, values: list[Any]) -> dict[int, Any]:
    """{position in values: the new value} for the values the plan's SQL rewrites."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE vals (id INTEGER PRIMARY KEY, ty TEXT, v)")
    conn.executemany("INSERT INTO vals VALUES (?, ?, ?)", [(i, None, v) for i, v in enumerate(values)])
    sql, args = plan.rewrite_sql  # type: ignore[misc]
    return dict(conn.execute(sql.replace("{vals}", "vals"), args).fetchall())


def _check_rewrites(values: list[Any]) -> int:
    done = 0
    for table, plan in REWRITE_PLANS:
        for i, new in _rewritten(plan, values).items():
            fix = plan._apply(values[i])
            assert fix == clean.Fix(new, clean.DATE_REWRITE_RULE), (table, plan.name, values[i], new, fix)
            done += 1
    return done


def test_slash_dates_sql_rewrites_are_the_rules_outcome() -> None:
    assert _check_rewrites(SLASH_EDGES) > 0


def test_slash_dates_sql_rewrites_what_it_should() -> None:
    plans = {(t, p.name, p.date_decision["order"]): p for t, p in REWRITE_PLANS}  # type: ignore[index]
    stamp, day = plans[("comments", "created_time", "day-first")], plans[("timesheets", "TS-Date", "day-first")]
    month = plans[("comments", "created_time", "month-first")]
    values = ["5/07/2025 10:38", "25/08/2025 6:41:09", "1/1/2025", "31/02/2025 10:00", "1/1/2025 24:00", "1/1/0999 10:00", "17/10/2026 10:00", "16/10/2026 10:00"]
    # TODAY is 2025-10-15: created_time may be up to 366 days ahead, TS-Date 31 (not_future_days)
    assert list(_rewritten(stamp, values).values()) == ["2025-07-05 10:38:00", "2025-08-25 06:41:09", "2025-01-01 00:00:00", "2026-10-16 10:00:00"]
    assert _rewritten(day, ["5/07/2025", "5/07/2025 10:38", "29/02/2024", "29/02/2025", "16/11/2025", "15/11/2025"]) == {0: "2025-07-05", 2: "2024-02-29", 5: "2025-11-15"}
    assert _rewritten(month, ["7/5/2025 10:38", "25/08/2025 10:38"]) == {0: "2025-07-05 10:38:00"}


_SLASH_PIECES = st.sampled_from(["0", "1", "2", "3", "9", "00", "01", "09", "10", "12", "13", "19", "23", "24", "28", "29", "30", "31", "32", "59", "60", "99", "123", ""])


@st.composite
def _slash_like(draw: st.DrawFn) -> str:
    sep = draw(st.sampled_from(["/", ".", "-", ":", " "]))
    sep2 = draw(st.sampled_from([sep, sep, sep, "/", "-"]))
    year = draw(st.sampled_from(["2025", "2024", "2100", "1999", "1000", "0999", "0000", "9999", "202", "20255"]))
    text = draw(_SLASH_PIECES) + sep + draw(_SLASH_PIECES) + sep2 + year
    if draw(st.booleans()):
        text += draw(st.sampled_from([" ", "T", "  ", ""])) + draw(_SLASH_PIECES) + ":" + draw(_SLASH_PIECES)
        if draw(st.booleans()):
            text += ":" + draw(_SLASH_PIECES)
    if draw(st.integers(0, 9)) == 0:
        text = draw(st.sampled_from([" ", "x", "\n"])) + text if draw(st.booleans()) else text + draw(st.sampled_from([" ", "x", "\n", " PM"]))
    return text


@settings(max_examples=400, deadline=None)
@given(st.lists(_slash_like() | st.text(alphabet=st.sampled_from(list("0123456789/.-: T")), max_size=20), min_size=1, max_size=20))
def test_slash_dates_sql_rewrites_hypothesis(values: list[str]) -> None:
    _check_rewrites(values)


KEY_PARTS: list[Any] = [
    "wwalker", "1/07/2025", 'a"b', "a\\b", "a,b", "a\nb", "a\tb", "a\x01b", "a\x1fb", "a\x7fb", "a\x00b", "é ü 漢字", "\u2028",
    "", " ", 0, 3967190, -5, 2**63 - 1, 1.5, 3652948.0, None, b"\x00\x01",
]


def test_row_keys_in_sql_are_python_s() -> None:
    conn = sqlite3.connect(":memory:")
    conn.create_function("sdetl_row_key", 1, lambda v: clean._row_key([v]), deterministic=True)
    conn.create_function("sdetl_json_part", 1, clean._json_part, deterministic=True)
    one = clean._Builder._row_key_sql(["x"])
    two = clean._Builder._row_key_sql(["x", "y"])
    for x in KEY_PARTS:
        assert conn.execute(f"WITH t(x) AS (SELECT ?) SELECT {one} FROM t", [x]).fetchone()[0] == clean._row_key([x]), repr(x)
        for y in KEY_PARTS:
            got = conn.execute(f"WITH t(x, y) AS (SELECT ?, ?) SELECT {two} FROM t", [x, y]).fetchone()[0]
            assert got == clean._row_key([x, y]), (x, y)

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

"""The profiler's fast paths judge exactly as the whole judgement does."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from contracts.schemas import contract_for
from pipeline.config import Settings
from pipeline.profile import _ColumnScan, _Spec

NOW = datetime(2026, 11, 27, 12, 0, 0)


def _scan(table: str, column: str) -> _ColumnScan:
    col = dict(contract_for(table).columns)[column]
    return _ColumnScan(_Spec(table, column, "TEXT", col, Settings(), NOW), 5)


def _same(a, b) -> None:
    assert (a.hits, a.kind, a.num, a.text, a.dt, a.hash) == (b.hits, b.kind, b.num, b.text, b.dt, b.hash)


DATE_TEXTS = [
    "2025-05-20 08:42:00", "2025-05-20", "2025-05-20T08:42:00", "2025-02-30 10:00:00", "2025-05-20 8:42:00",
    "20/05/2025 8:42", "2/07/2025 16:21", "07/02/2025 16:21", "5/20/2025 8:42 PM", "31/31/2025", "13/13/2025 10:00",
    "45000", "45000.5", "not a date", "", " ", "  2025-05-20 08:42:00", "2025-05-20 08:42:00 ", "N/A", "--None--",
    "?", " N/A ", "2025-05-20\x0008:42:00", "2099-01-01 00:00:00", "28/11/2026 13:00", "2026-11-27 12:00:01",
    "2026-12-30 00:00:00", "2027-01-30 10:00:00", "25:61", "2025-05-20 24:00:00",
]


@pytest.mark.parametrize("table,column", [("tickets", "TKT-Created Time"), ("comments", "created_time"), ("timesheets", "TS-Date")])
@pytest.mark.parametrize("value", DATE_TEXTS)
def test_date_text_fast_judgement_is_the_whole_judgement(table: str, column: str, value: str) -> None:
    fast, whole = _scan(table, column), _scan(table, column)
    assert fast.spec.simple_date
    _same(fast.judge_date_text(value), whole.judge(value))


@hsettings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789/-: T.APMapm \t\x00", max_size=22))
def test_date_text_fast_judgement_on_any_text(value: str) -> None:
    _same(_scan("tickets", "TKT-Created Time").judge_date_text(value), _scan("tickets", "TKT-Created Time").judge(value))

"""The quality score: a pure function of the profile, dimension by dimension."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from contracts.schemas import REGISTRY
from contracts.spec import kind
from pipeline import quality
from pipeline.config import ProfileSettings
from pipeline.findings import ColumnProfile, Finding, TableProfile


def column(name: str, contract_kind: str | None, rows: int, **kw: Any) -> ColumnProfile:
    base: dict[str, Any] = dict(
        name=name,
        declared_type="",
        contract_kind=contract_kind,
        storage_classes={"text": rows},
        detected_kind=contract_kind,
        confidence=1.0,
        sampled=rows,
        null_count=0,
        empty_count=0,
        whitespace_count=0,
        placeholder_counts={},
        distinct_count=rows,
    )
    base.update(kw)
    return ColumnProfile(**base)


def table(name: str, rows: int = 100, **columns: dict[str, Any]) -> TableProfile:
    """A contract table with every column filled, overridden per column."""
    cols = {}
    for col_name, col in REGISTRY[name].columns.items():
        cols[col_name] = column(col_name, kind(col), rows, **columns.get(col_name, {}))
    return TableProfile(name=name, rows=rows, has_contract=True, columns=cols)


def healthy() -> dict[str, TableProfile]:
    return {"tickets": table("tickets"), "comments": table("comments", 1000), "timesheets": table("timesheets", 1300)}


def finding(code: str, table_: str, column_: str | None, count: int, share: float, severity: str = "error", **detail: Any) -> Finding:
    return Finding(code, severity, table_, column_, count, share, [], "", detail)


def test_clean_profile_scores_100_grade_a() -> None:
    q = quality.score(healthy(), [])
    assert q.score == 100.0 and q.grade == "A"
    assert set(q.dimensions) == {"completeness", "validity", "consistency", "uniqueness", "integrity"}
    assert q.per_table == {"tickets": 100.0, "comments": 100.0, "timesheets": 100.0}


def test_weights_sum_to_one() -> None:
    assert sum(quality.WEIGHTS.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(("value", "letter"), [(100, "A"), (90, "A"), (89.99, "B"), (80, "B"), (70, "C"), (60, "D"), (59.9, "F"), (0, "F")])
def test_grades(value: float, letter: str) -> None:
    assert quality.grade(value) == letter


def test_completeness_counts_nulls_blanks_and_placeholders_in_required_columns() -> None:
    tables = healthy()
    tables["tickets"].columns["TKT-Status"].null_count = 10
    tables["tickets"].columns["TKT-Created Time"].empty_count = 5
    tables["tickets"].columns["TKT-Created Time"].placeholder_counts = {"N/A": 5}
    tables["tickets"].columns["TKT-Title"].null_count = 100  # optional: no effect
    q = quality.score(tables, [])
    assert 90 < q.dimensions["completeness"] < 100
    assert q.dimensions["validity"] == 100.0
    assert q.score < 100


def test_validity_counts_form_and_rules_not_blanks_twice() -> None:
    tables = healthy()
    c = tables["comments"].columns["created_time"]
    c.empty_count = 10
    c.nonconforming = 10  # exactly the blanks: not a validity problem
    before = quality.score(tables, [])
    assert before.dimensions["validity"] == 100.0
    assert before.dimensions["consistency"] < 100.0
    c.nonconforming = 60  # 50 day-first values on top
    after = quality.score(tables, [finding("OUT_OF_RANGE", "timesheets", "TS-Hours", 13, 0.01)])
    assert after.dimensions["validity"] < 100.0


def test_consistency_counts_minority_date_formats() -> None:
    tables = healthy()
    tables["tickets"].columns["TKT-Closure Date"].date = {"counts": {"iso": 90, "day_first": 10}}
    q = quality.score(tables, [])
    assert q.dimensions["consistency"] < 100.0


def test_uniqueness_from_duplicate_keys() -> None:
    q = quality.score(healthy(), [finding("DUPLICATE_KEYS", "comments", "comment_id", 100, 0.1)])
    assert q.dimensions["uniqueness"] == pytest.approx(100 * (1 + 0.9 + 1) / 3, abs=0.01)


def test_integrity_respects_the_tolerance_of_each_reference() -> None:
    expected_orphans = finding("ORPHANS", "timesheets", "TS-Crm ID", 900, 0.9, "warning", tolerance=0.99)
    q = quality.score(healthy(), [expected_orphans])
    assert q.dimensions["integrity"] == 100.0
    within = finding("ORPHANS", "comments", "ticket_id", 40, 0.04, "warning", tolerance=0.05)
    assert quality.score(healthy(), [within]).dimensions["integrity"] == 100.0
    beyond = finding("ORPHANS", "comments", "ticket_id", 240, 0.24, tolerance=0.05)
    assert quality.score(healthy(), [beyond]).dimensions["integrity"] == pytest.approx(100 * (1 + (1 - 0.19 / 0.95)) / 2, abs=0.01)


def test_breaker_caps_the_score() -> None:
    tables = healthy()
    corrupt = finding("CORRUPT_DATES", "comments", "created_time", 300, 0.3)
    q = quality.score(tables, [corrupt])
    assert q.score <= quality.CAP and q.grade == "F"
    assert q.per_table["comments"] <= quality.CAP and q.per_table["tickets"] == 100.0
    assert quality.breaker_reasons(tables, [corrupt])
    mild = finding("CORRUPT_DATES", "comments", "created_time", 100, 0.1)
    assert quality.breaker_reasons(tables, [mild]) == []
    assert quality.score(tables, [mild]).score > 80


def test_breaker_on_mostly_unconvertible_typed_columns() -> None:
    tables = healthy()
    typed = [(t.name, c.name) for t in tables.values() for c in t.columns.values() if c.contract_kind in ("integer", "numeric", "timestamp", "date")]
    bad = [finding("TYPE_MISMATCH", t, c, 90, 0.9, unfixable=90, considered=100) for t, c in typed[:3]]
    assert len(bad) / len(typed) > 0.10
    assert quality.breaker_reasons(tables, bad)
    assert quality.breaker_reasons(tables, bad[:1]) == []
    half = [finding("TYPE_MISMATCH", t, c, 50, 0.5, unfixable=50, considered=100) for t, c in typed[:3]]
    assert quality.breaker_reasons(tables, half) == []  # not *mostly* unconvertible
    assert quality.breaker_reasons(tables, bad, ProfileSettings(max_mismatched_column_share=0.5)) == []


def test_missing_table_caps_and_lowers_completeness() -> None:
    tables = healthy()
    del tables["timesheets"]
    q = quality.score(tables, [finding("MISSING_TABLE", "timesheets", None, 1, 1.0, "critical")])
    assert q.score <= quality.CAP
    assert q.dimensions["completeness"] < 100


def test_tables_without_contract_only_count_for_consistency() -> None:
    tables = healthy()
    tables["notes"] = TableProfile("notes", 10, False, {"a": column("a", None, 10, empty_count=5)})
    q = quality.score(tables, [])
    assert q.dimensions["consistency"] < 100 and q.dimensions["validity"] == 100.0


def test_score_is_pure() -> None:
    tables = healthy()
    tables["comments"].columns["created_time"].empty_count = 7
    findings = [finding("DUPLICATE_KEYS", "tickets", "TKT-Ticket ID", 2, 0.02)]
    snapshot = copy.deepcopy((tables, findings))
    first = quality.score(tables, findings)
    assert quality.score(tables, findings) == first
    assert (tables, findings) == snapshot

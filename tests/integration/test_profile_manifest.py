"""The profiler against the generator's ground truth: every injected defect found in the
right table and column with the exact count (no false negatives), nothing error-level on
the ``--clean`` data (no false positives)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from contracts.schemas import DATA_TABLES
from pipeline import profile
from pipeline.config import Settings
from pipeline.findings import ProfileResult
from pipeline.sources import SQLiteSource


def _count(result: ProfileResult, table: str, column: str | None, *codes: str) -> int:
    return sum(f.count for f in result.findings if f.table == table and f.column == column and f.code in codes)


def _slash_dates(result: ProfileResult, table: str, column: str) -> int:
    counts = (result.tables[table].columns[column].date or {}).get("counts", {})
    return sum(counts.get(k, 0) for k in ("day_first", "month_first", "slash_ambiguous"))


def _key_count(result: ProfileResult, table: str, column: str) -> int:
    return sum(f.count for f in result.findings if f.table == table and f.code == "DUPLICATE_KEYS")


# manifest kind -> how many the profile says (table, column) holds
DETECTED: dict[str, Callable[[ProfileResult, str, str], int]] = {
    "day_first_date": _slash_dates,
    "empty_string": lambda r, t, c: _count(r, t, c, "EMPTY_STRINGS"),
    "whitespace_string": lambda r, t, c: _count(r, t, c, "WHITESPACE_STRINGS"),
    "float_id": lambda r, t, c: _count(r, t, c, "NUMBER_AS_TEXT", "INTEGER_AS_REAL"),
    "placeholder": lambda r, t, c: _count(r, t, c, "PLACEHOLDERS"),
    "duplicate_key": _key_count,
    "unparseable_date": lambda r, t, c: _count(r, t, c, "CORRUPT_DATES"),
    "excel_serial_date": lambda r, t, c: _count(r, t, c, "EXCEL_SERIAL_DATES"),
    "future_date": lambda r, t, c: _count(r, t, c, "FUTURE_DATES"),
    "out_of_range_hours": lambda r, t, c: _count(r, t, c, "OUT_OF_RANGE"),
    "nul_byte": lambda r, t, c: _count(r, t, c, "NUL_BYTES"),
    "crlf_mix": lambda r, t, c: _count(r, t, c, "MIXED_LINE_ENDINGS"),
    "blank_line_run": lambda r, t, c: _count(r, t, c, "BLANK_LINE_RUNS"),
    "non_numeric_id": lambda r, t, c: _count(r, t, c, "NOT_A_NUMBER"),
}
# kinds whose finding carries the row keys the manifest lists (single-column keys)
KEYED = {
    "empty_string": "EMPTY_STRINGS",
    "whitespace_string": "WHITESPACE_STRINGS",
    "placeholder": "PLACEHOLDERS",
    "unparseable_date": "CORRUPT_DATES",
    "excel_serial_date": "EXCEL_SERIAL_DATES",
    "future_date": "FUTURE_DATES",
    "out_of_range_hours": "OUT_OF_RANGE",
    "nul_byte": "NUL_BYTES",
    "crlf_mix": "MIXED_LINE_ENDINGS",
    "blank_line_run": "BLANK_LINE_RUNS",
}


def _profile(db: Path) -> ProfileResult:
    with SQLiteSource(db) as src:
        return profile.profile_source(src, Settings())


@pytest.fixture(scope="module")
def raw_profile(raw_db: Path) -> ProfileResult:
    return _profile(raw_db)


@pytest.fixture(scope="module")
def clean_profile(clean_raw_db: Path) -> ProfileResult:
    return _profile(clean_raw_db)


def _defect_ids(manifest: dict[str, Any]) -> list[str]:
    return [f"{d['table']}::{d['column']}::{d['kind']}" for d in manifest["defects"]]


def test_manifest_lists_defects(manifest: dict[str, Any]) -> None:
    kinds = {d["kind"] for d in manifest["defects"]}
    unknown = kinds - set(DETECTED) - {"orphan_comment"}
    assert not unknown, f"manifest kinds this test does not map to findings yet: {unknown}"
    assert {"day_first_date", "empty_string", "duplicate_key", "orphan_comment"} <= kinds


def test_every_injected_defect_is_found_with_its_exact_count(manifest: dict[str, Any], raw_profile: ProfileResult) -> None:
    misses = []
    for d in manifest["defects"]:
        if d["kind"] == "orphan_comment":
            continue  # below: orphans include the non-numeric ticket ids
        got = DETECTED[d["kind"]](raw_profile, d["table"], d["column"])
        if got != d["count"]:
            misses.append(f"{d['table']}.{d['column']} {d['kind']}: injected {d['count']}, found {got}")
    assert misses == []


def test_orphans_match_the_manifest(manifest: dict[str, Any], raw_profile: ProfileResult) -> None:
    expected: dict[tuple[str, str], int] = {}
    for d in manifest["defects"]:
        if d["kind"] in ("orphan_comment", "non_numeric_id") and d["column"] == "ticket_id":
            expected[(d["table"], d["column"])] = expected.get((d["table"], d["column"]), 0) + d["count"]
    for (table, column), count in expected.items():
        assert _count(raw_profile, table, column, "ORPHANS") == count
    facts = manifest.get("facts", {})
    if "timesheet_orphans" in facts:
        ts = [f for f in raw_profile.findings if f.table == "timesheets" and f.code == "ORPHANS"]
        assert sum(f.count for f in ts) == facts["timesheet_orphans"]
        assert all(f.severity == "warning" for f in ts)  # expected, only counted


def test_example_keys_point_at_the_injected_rows(manifest: dict[str, Any], raw_profile: ProfileResult) -> None:
    limit = Settings().profile.example_keys
    for d in manifest["defects"]:
        code = KEYED.get(d["kind"])
        if code is None or d["table"] == "timesheets":
            continue
        f = next(f for f in raw_profile.findings if (f.table, f.column, f.code) == (d["table"], d["column"], code))
        if d["count"] <= len(d["example_keys"]) and f.count == d["count"]:
            assert sorted(map(str, f.example_keys)) == sorted(map(str, d["example_keys"][:limit])), d
        else:
            assert f.example_keys, d


def test_row_counts_match(manifest: dict[str, Any], raw_profile: ProfileResult) -> None:
    for table, rows in manifest["rows"].items():
        assert raw_profile.tables[table].rows == rows


def test_no_error_finding_outside_the_injected_columns(manifest: dict[str, Any], raw_profile: ProfileResult) -> None:
    injected = {(d["table"], d["column"]) for d in manifest["defects"]}
    tables_with_keys = {d["table"] for d in manifest["defects"] if d["kind"] == "duplicate_key"}
    unexplained = []
    for f in raw_profile.findings:
        if f.severity not in ("critical", "error"):
            continue
        if f.code == "DUPLICATE_KEYS" and f.table in tables_with_keys:
            continue
        if (f.table, f.column) not in injected:
            unexplained.append(f"{f.id} ({f.count})")
    assert unexplained == []


def test_raw_sample_needs_cleaning_but_scores_above_the_gate(raw_profile: ProfileResult, clean_profile: ProfileResult) -> None:
    assert raw_profile.verdict == "CLEAN"
    assert not [f.id for f in raw_profile.findings if f.severity == "critical"]
    assert 80 <= raw_profile.quality.score < clean_profile.quality.score


def test_clean_sample_has_no_critical_or_error_finding(clean_profile: ProfileResult) -> None:
    assert [f"{f.id} ({f.count})" for f in clean_profile.findings if f.severity in ("critical", "error")] == []
    assert clean_profile.verdict == "PROCEED"
    assert clean_profile.quality.score >= 95
    for table in DATA_TABLES:
        assert clean_profile.tables[table].has_contract


def test_clean_sample_dates_are_iso(clean_profile: ProfileResult) -> None:
    for table in DATA_TABLES:
        for col in clean_profile.tables[table].columns.values():
            if col.date and sum(col.date["counts"].values()):
                assert col.date["format"] == "ISO", (table, col.name, col.date)

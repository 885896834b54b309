"""The profiler on tiny hand-built SQLite files: every finding code, the date decision,
the circuit breaker both ways, tables without a contract, the CLI and the JSON shape."""

from __future__ import annotations

import argparse
import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from contracts.schemas import REGISTRY
from pipeline import profile
from pipeline.config import Settings
from pipeline.errors import ConfigError, InputFileError
from pipeline.findings import PROFILE_FORMAT, Finding, ProfileResult
from pipeline.sources import SQLiteSource, quote_sqlite

NOW = datetime(2025, 10, 15, 12, 0, 0)


def ticket(i: int, **changes: Any) -> dict[str, Any]:
    row = {
        "TKT-Ticket ID": 1000000 + i,
        "TKT-Created Time": f"2025-07-{i % 28 + 1:02d} 09:00:00",
        "TKT-Month Created": "2025-07",
        "TKT-Status": "Closed",
        "TKT-Severity": "P3",
        "TKT-Title": "Printer on fire",
        "TKT-Modified Time": f"2025-08-{i % 28 + 1:02d} 10:00:00",
        "TKT-Assigned To User": "Alice Adams",
        "TKT-SLA Met": "yes",
    }
    row.update(changes)
    return row


def comment(i: int, **changes: Any) -> dict[str, Any]:
    row = {
        "comment_id": i,
        "ticket_id": 1000000 + i % 20,
        "comment_text": "Looked at it.\nAll good.",
        "user_id": 7,
        "user_name": "alice",
        "owner_type": "agent",
        "created_time": f"2025-07-{i % 28 + 1:02d} 10:{i % 60:02d}:00",
        "visible_to_customer": "Yes",
        "comment_type": "comments",
        "team": "Cloud - Infrastructure",
    }
    row.update(changes)
    return row


def timesheet(i: int, **changes: Any) -> dict[str, Any]:
    row = {
        "TS-User Full Name": "Alice Adams",
        "TS-User Username": f"user{i}",
        "TS-Date": f"2025-07-{i % 28 + 1:02d}",
        "TS-Time From": "09:00",
        "TS-Time To": "10:00",
        "TS-Hours": 1.0,
        "TS-Crm ID": 1000000 + i % 20,
    }
    row.update(changes)
    return row


def build(
    path: Path,
    tickets: list[dict] | None = None,
    comments: list[dict] | None = None,
    timesheets: list[dict] | None = None,
    *,
    drop: dict[str, set[str]] | None = None,
    extra: dict[str, list[tuple[str, str]]] | None = None,
    types: dict[tuple[str, str], str] | None = None,
    skip: set[str] = frozenset(),
) -> Path:
    """A SQLite file with the three data tables, untyped like ingest's, holding the rows."""
    tickets = [ticket(i) for i in range(20)] if tickets is None else tickets
    comments = [comment(i) for i in range(1, 41)] if comments is None else comments
    timesheets = [timesheet(i) for i in range(30)] if timesheets is None else timesheets
    drop = drop or {}
    extra = extra or {}
    types = types or {}
    conn = sqlite3.connect(path)
    for name, rows in (("tickets", tickets), ("comments", comments), ("timesheets", timesheets)):
        if name in skip:
            continue
        cols = [c for c in REGISTRY[name].columns if c not in drop.get(name, set())]
        cols += [c for c, _ in extra.get(name, [])]
        decl = ", ".join(f"{quote_sqlite(c)} {types.get((name, c), '')}".strip() for c in cols)
        conn.execute(f"CREATE TABLE {quote_sqlite(name)} ({decl})")
        marks = ", ".join("?" for _ in cols)
        conn.executemany(
            f"INSERT INTO {quote_sqlite(name)} VALUES ({marks})",
            [tuple(r.get(c) for c in cols) for r in rows],
        )
    conn.commit()
    conn.close()
    return path


def profile_of(path: Path, settings: Settings | None = None, **kw: Any) -> ProfileResult:
    with SQLiteSource(path) as src:
        return profile.profile_source(src, settings or Settings(), now=NOW, **kw)


def only(result: ProfileResult, code: str, table: str, column: str | None) -> Finding:
    found = [f for f in result.findings if f.code == code and f.table == table and f.column == column]
    assert len(found) == 1, f"{code} on {table}.{column}: {[f.id for f in result.findings]}"
    return found[0]


def codes(result: ProfileResult, table: str, column: str | None = None) -> set[str]:
    return {f.code for f in result.findings_for(table, column)}


def severe(result: ProfileResult) -> list[str]:
    return [f.id for f in result.findings if f.severity in ("critical", "error")]


# --- clean data --------------------------------------------------------------------------


def test_clean_database_proceeds_with_a_high_score(tmp_path: Path) -> None:
    result = profile_of(build(tmp_path / "clean.db"))
    assert severe(result) == []
    assert result.verdict == "PROCEED"
    assert result.quality.score >= 95
    assert result.quality.grade == "A"
    col = result.tables["comments"].columns["created_time"]
    assert col.contract_kind == "timestamp"
    assert col.storage_classes == {"text": 40}
    assert col.detected_kind == "timestamp" and col.confidence == 1.0
    assert col.date is not None and col.date["format"] == "ISO"
    assert col.min == "2025-07-01 10:28:00" or col.min.startswith("2025-07-01")
    ids = result.tables["comments"].columns["comment_id"]
    assert (ids.min, ids.max, ids.distinct_count, ids.distinct_estimated) == (1, 40, 40, False)


# --- the four problems of the first migration (PostgreSQL ROUND/JULIANDAY is the dashboard's)


def test_regression_dates_stored_as_text_are_a_type_mismatch(tmp_path: Path) -> None:
    """Problem 1: dates arrived as TEXT; the type must come from the values, not the label."""
    db = build(tmp_path / "r1.db", types={("tickets", "TKT-Created Time"): "TEXT"})
    result = profile_of(db)
    f = only(result, "TYPE_MISMATCH", "tickets", "TKT-Created Time")
    assert f.detail["declared_type"] == "TEXT"
    assert f.detail["declared_mismatch"] is True
    assert f.detail["contract_kind"] == "timestamp"
    assert f.detail["detected_kind"] == "timestamp"
    assert f.severity == "warning"  # the values are fine: only the label lies
    assert f.count == 20


def test_regression_day_first_among_iso_is_inconsistent_and_decided_day_first(tmp_path: Path) -> None:
    """Problem 2: 20/05/2025 8:42 and 2/07/2025 16:21 among 2025-05-20 08:42:00."""
    rows = [ticket(i, **{"TKT-Actual Response Date": f"2025-05-{i + 1:02d} 08:42:00"}) for i in range(20)]
    rows[3]["TKT-Actual Response Date"] = "20/05/2025 8:42"
    rows[7]["TKT-Actual Response Date"] = "2/07/2025 16:21"
    result = profile_of(build(tmp_path / "r2.db", tickets=rows))
    f = only(result, "INCONSISTENT_DATE_FORMAT", "tickets", "TKT-Actual Response Date")
    assert f.severity == "error"
    assert f.count == 2
    assert sorted(f.example_keys) == [1000003, 1000007]
    assert f.detail["dominant"] == "iso" and f.detail["families"]["slash"] == 2
    date = result.tables["tickets"].columns["TKT-Actual Response Date"].date
    assert date["order"] == "day-first"
    assert date["counts"] == {"day_first": 1, "iso": 18, "slash_ambiguous": 1}
    assert result.verdict == "CLEAN"
    # Read day-first, 2/07/2025 is 2 July: the max of the column says so.
    assert result.tables["tickets"].columns["TKT-Actual Response Date"].max == "2025-07-02 16:21:00"


def test_regression_empty_strings_in_date_columns(tmp_path: Path) -> None:
    """Problem 3: '' instead of NULL in date columns (PostgreSQL refuses '' as a timestamp)."""
    rows = [ticket(i) for i in range(20)]
    rows[2]["TKT-Closure Date"] = ""
    rows[5]["TKT-Closure Date"] = ""
    rows[6]["TKT-Closure Date"] = None  # NULL is not an empty string
    result = profile_of(build(tmp_path / "r3.db", tickets=rows))
    f = only(result, "EMPTY_STRINGS", "tickets", "TKT-Closure Date")
    assert (f.count, f.severity, sorted(f.example_keys)) == (2, "error", [1000002, 1000005])
    col = result.tables["tickets"].columns["TKT-Closure Date"]
    assert col.empty_count == 2
    assert col.null_count == 18
    assert only(result, "TYPE_MISMATCH", "tickets", "TKT-Closure Date").detail["reasons"] == {"empty": 2}


# --- storage and types ---------------------------------------------------------------------


def test_real_stored_integers_are_type_mismatch_and_integer_as_real(tmp_path: Path) -> None:
    rows = [comment(i) for i in range(1, 41)]
    for i in (4, 9, 14):
        rows[i]["comment_id"] = float(rows[i]["comment_id"])
    result = profile_of(build(tmp_path / "real.db", comments=rows))
    col = result.tables["comments"].columns["comment_id"]
    assert col.storage_classes == {"integer": 37, "real": 3}
    assert col.nonconforming == 3
    assert only(result, "INTEGER_AS_REAL", "comments", "comment_id").count == 3
    mismatch = only(result, "TYPE_MISMATCH", "comments", "comment_id")
    assert mismatch.detail["reasons"] == {"integer_as_real": 3}
    assert mismatch.detail["unfixable"] == 0
    assert sorted(mismatch.example_keys) == [5.0, 10.0, 15.0]


def test_numbers_as_text_and_values_that_are_no_number(tmp_path: Path) -> None:
    rows = [timesheet(i) for i in range(30)]
    rows[1]["TS-Crm ID"] = "1000001"
    rows[2]["TS-Crm ID"] = "1000002.0"
    rows[3]["TS-Crm ID"] = "ADMIN"
    rows[4]["TS-Hours"] = "1.5"
    rows[5]["TS-Crm ID"] = 7.5
    result = profile_of(build(tmp_path / "num.db", timesheets=rows))
    assert only(result, "NUMBER_AS_TEXT", "timesheets", "TS-Crm ID").count == 2
    nan = only(result, "NOT_A_NUMBER", "timesheets", "TS-Crm ID")
    assert (nan.count, nan.detail["not_a_number"], nan.detail["not_integer"]) == (2, 1, 1)
    assert only(result, "NUMBER_AS_TEXT", "timesheets", "TS-Hours").count == 1
    assert only(result, "TYPE_MISMATCH", "timesheets", "TS-Crm ID").count == 4


def test_timestamp_labelled_text_is_a_mismatch(tmp_path: Path) -> None:
    """A column labelled TIMESTAMP whose values are no timestamps (a table without contract)."""
    db = tmp_path / "label.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE events (happened TIMESTAMP, note TEXT)")
    conn.executemany("INSERT INTO events VALUES (?, ?)", [(f"pending-{i}", "x") for i in range(10)])
    conn.commit()
    conn.close()
    result = profile_of(db)
    f = only(result, "TYPE_MISMATCH", "events", "happened")
    assert f.detail["declared_type"] == "TIMESTAMP" and f.detail["detected_kind"] == "text"
    assert f.severity == "warning"


def test_detected_type_comes_from_an_evenly_spread_sample(tmp_path: Path) -> None:
    db = tmp_path / "sample.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (v)")
    # First half integers, second half words: a head-only sample would say integer.
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(500)] + [(f"w{i}",) for i in range(500)])
    conn.commit()
    conn.close()
    settings = Settings().with_overrides(**{"profile.sample_size": 100})
    col = profile_of(db, settings).tables["t"].columns["v"]
    assert col.sampled == 100
    assert col.detected_kind == "text"
    full = profile_of(db, settings, full=True).tables["t"].columns["v"]
    assert full.sampled == 1000


def test_detected_kind_below_the_confidence_threshold_keeps_its_share(tmp_path: Path) -> None:
    db = tmp_path / "mostly.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (v)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(90)] + [(f"x{i}",) for i in range(10)])
    conn.commit()
    conn.close()
    col = profile_of(db).tables["t"].columns["v"]
    assert (col.detected_kind, col.confidence) == ("integer", 0.9)


# --- dates -----------------------------------------------------------------------------------


def test_ambiguous_slash_dates_follow_the_locale_and_are_flagged(tmp_path: Path) -> None:
    rows = [comment(i, created_time=f"{i % 12 + 1}/{i % 12 + 1}/2025 10:00") for i in range(1, 41)]
    db = build(tmp_path / "amb.db", comments=rows)
    result = profile_of(db)
    f = only(result, "AMBIGUOUS_DATE_FORMAT", "comments", "created_time")
    assert (f.severity, f.count, f.detail["decided_order"]) == ("warning", 40, "day-first")
    assert result.tables["comments"].columns["created_time"].date["format"] == "DAY_FIRST"
    us = profile_of(db, Settings().with_overrides(date_locale="month-first"))
    assert only(us, "AMBIGUOUS_DATE_FORMAT", "comments", "created_time").detail["decided_order"] == "month-first"


def test_conflicting_day_first_and_month_first_evidence_is_critical(tmp_path: Path) -> None:
    rows = [comment(i) for i in range(1, 41)]
    rows[0]["created_time"] = "20/05/2025 10:00"
    rows[1]["created_time"] = "05/20/2025 10:00"
    result = profile_of(build(tmp_path / "conflict.db", comments=rows))
    f = only(result, "INCONSISTENT_DATE_FORMAT", "comments", "created_time")
    assert f.severity == "critical" and f.detail["conflicting_orders"] is True
    assert result.verdict == "FIX_SOURCE"


def test_corrupt_serial_and_future_dates(tmp_path: Path) -> None:
    rows = [comment(i) for i in range(1, 41)]
    rows[0]["created_time"] = "not a date"
    rows[1]["created_time"] = "31/02/2025 10:00"  # day-first column: no 31 February
    rows[2]["created_time"] = 45_900.5  # Excel serial (2025-09-01 12:00)
    rows[3]["created_time"] = "45901"
    rows[4]["created_time"] = "2027-01-01 00:00:00"  # over a year ahead of NOW
    rows[5]["created_time"] = "25/07/2025 10:00"
    result = profile_of(build(tmp_path / "dates.db", comments=rows))
    corrupt = only(result, "CORRUPT_DATES", "comments", "created_time")
    assert (corrupt.count, sorted(corrupt.example_keys)) == (2, [1, 2])
    assert corrupt.detail == {"unparseable": 1, "invalid_in_decided_order": 1}
    assert only(result, "EXCEL_SERIAL_DATES", "comments", "created_time").count == 2
    future = only(result, "FUTURE_DATES", "comments", "created_time")
    assert (future.count, future.example_keys) == (1, [5])
    assert result.verdict == "CLEAN"


def test_future_dates_of_day_first_text(tmp_path: Path) -> None:
    rows = [timesheet(i, **{"TS-Date": f"{i % 28 + 1}/07/2025"}) for i in range(30)]
    rows[4]["TS-Date"] = "27/08/2052"
    result = profile_of(build(tmp_path / "future.db", timesheets=rows))
    f = only(result, "FUTURE_DATES", "timesheets", "TS-Date")
    assert f.count == 1 and f.example_keys == [["user4", "27/08/2052", "09:00", 1000004]]
    assert result.tables["timesheets"].columns["TS-Date"].date["format"] == "DAY_FIRST"


# --- blanks and placeholders ---------------------------------------------------------------


def test_empty_and_whitespace_strings_differ_from_null(tmp_path: Path) -> None:
    rows = [comment(i) for i in range(1, 41)]
    rows[0]["user_id"] = ""
    rows[1]["user_id"] = "   "
    rows[2]["user_id"] = None
    rows[3]["team"] = ""  # a text column: only a warning
    result = profile_of(build(tmp_path / "blank.db", comments=rows))
    assert only(result, "EMPTY_STRINGS", "comments", "user_id").severity == "error"
    assert only(result, "WHITESPACE_STRINGS", "comments", "user_id").example_keys == [2]
    assert only(result, "EMPTY_STRINGS", "comments", "team").severity == "warning"
    col = result.tables["comments"].columns["user_id"]
    assert (col.null_count, col.empty_count, col.whitespace_count) == (1, 1, 1)


def test_placeholders_with_leading_space_are_counted_per_token(tmp_path: Path) -> None:
    rows = [ticket(i) for i in range(20)]
    rows[1]["TKT-Assigned To User"] = " PendingAssignment"
    rows[2]["TKT-Assigned To User"] = "PendingAssignment"
    rows[3]["TKT-Root Cause Category"] = "--None--"
    rows[4]["TKT-Actual SLA Achievement"] = "N/A"
    rows[5]["TKT-Team"] = "?"  # a global token in free text: counted, only a warning
    settings = Settings(column_placeholders={"tickets": {"TKT-Platform": ("unknown",)}})
    rows[6]["TKT-Platform"] = "unknown"
    result = profile_of(build(tmp_path / "ph.db", tickets=rows), settings)
    f = only(result, "PLACEHOLDERS", "tickets", "TKT-Assigned To User")
    assert (f.count, f.severity, f.detail["tokens"], f.detail["padded"]) == (2, "error", {"PendingAssignment": 2}, 1)
    assert result.tables["tickets"].columns["TKT-Assigned To User"].placeholder_counts == {"PendingAssignment": 2}
    assert only(result, "PLACEHOLDERS", "tickets", "TKT-Root Cause Category").severity == "error"
    assert only(result, "PLACEHOLDERS", "tickets", "TKT-Actual SLA Achievement").severity == "error"
    assert only(result, "PLACEHOLDERS", "tickets", "TKT-Team").severity == "warning"
    assert only(result, "PLACEHOLDERS", "tickets", "TKT-Platform").severity == "error"
    assert "NOT_A_NUMBER" not in codes(result, "tickets", "TKT-Actual SLA Achievement")


# --- contract checks -----------------------------------------------------------------------


def test_missing_table_empty_table_missing_and_unknown_columns(tmp_path: Path) -> None:
    db = build(
        tmp_path / "shape.db",
        timesheets=[],
        drop={"comments": {"team"}},
        extra={"comments": [("mood", "")]},
        skip={"tickets"},
    )
    result = profile_of(db)
    assert only(result, "MISSING_TABLE", "tickets", None).severity == "critical"
    assert only(result, "EMPTY_TABLE", "timesheets", None).severity == "critical"
    assert only(result, "MISSING_COLUMN", "comments", "team").severity == "critical"
    assert only(result, "UNKNOWN_COLUMN", "comments", "mood").severity == "warning"
    assert result.tables["comments"].missing_columns == ["team"]
    assert result.tables["comments"].extra_columns == ["mood"]
    assert result.verdict == "FIX_SOURCE"
    assert any("MISSING_TABLE" in r for r in result.reasons)
    assert result.quality.score <= 50


def test_null_in_required_not_allowed_pattern_and_range(tmp_path: Path) -> None:
    rows = [ticket(i) for i in range(20)]
    rows[1]["TKT-Status"] = None
    rows[2]["TKT-Status"] = "Resolved"  # the old queries' status that matches nothing
    rows[3]["TKT-Month Created"] = "2025/07"
    rows[4]["TKT-Category"] = "Brand New Category"  # open-ended set: a warning only
    ts = [timesheet(i) for i in range(30)]
    ts[0]["TS-Hours"] = 25.0
    ts[1]["TS-Hours"] = 0
    result = profile_of(build(tmp_path / "rules.db", tickets=rows, timesheets=ts))
    assert only(result, "NULL_IN_REQUIRED", "tickets", "TKT-Status").example_keys == []
    assert only(result, "NULL_IN_REQUIRED", "tickets", "TKT-Status").count == 1
    na = only(result, "NOT_ALLOWED", "tickets", "TKT-Status")
    assert (na.count, na.example_keys, na.severity) == (1, [1000002], "error")
    assert only(result, "PATTERN_MISMATCH", "tickets", "TKT-Month Created").example_keys == [1000003]
    assert only(result, "NOT_ALLOWED", "tickets", "TKT-Category").severity == "warning"
    rng = only(result, "OUT_OF_RANGE", "timesheets", "TS-Hours")
    assert (rng.count, rng.detail["range"]) == (2, "(0, 24]")


def test_duplicate_keys_composite_and_single(tmp_path: Path) -> None:
    cs = [comment(i) for i in range(1, 41)]
    cs.append(comment(5))
    cs.append(comment(5))
    ts = [timesheet(i) for i in range(30)]
    ts.append(timesheet(3))
    result = profile_of(build(tmp_path / "dup.db", comments=cs, timesheets=ts))
    f = only(result, "DUPLICATE_KEYS", "comments", "comment_id")
    assert (f.count, f.example_keys) == (2, [5])
    g = only(result, "DUPLICATE_KEYS", "timesheets", "TS-User Username,TS-Date,TS-Time From,TS-Crm ID")
    assert g.count == 1 and g.example_keys == [["user3", "2025-07-04", "09:00", 1000003]]


def test_orphans_use_the_references_tolerance(tmp_path: Path) -> None:
    cs = [comment(i) for i in range(1, 41)]
    cs[0]["ticket_id"] = 999  # 1 of 40 = 2.5%: within the 5% tolerated
    result = profile_of(build(tmp_path / "orph1.db", comments=cs))
    f = only(result, "ORPHANS", "comments", "ticket_id")
    assert (f.severity, f.count, f.example_keys, f.detail["orphan_values"]) == ("warning", 1, [1], [999])
    for i in range(1, 4):
        cs[i]["ticket_id"] = 999  # 4 of 40 = 10%
    result = profile_of(build(tmp_path / "orph2.db", comments=cs))
    assert only(result, "ORPHANS", "comments", "ticket_id").severity == "error"
    # Timesheets: admin time (0) is no reference; orphans are expected, only warned.
    ts = [timesheet(i, **{"TS-Crm ID": 0 if i < 10 else 1_000_000 + i if i < 12 else 5_000_000 + i}) for i in range(30)]
    result = profile_of(build(tmp_path / "orph3.db", timesheets=ts))
    g = only(result, "ORPHANS", "timesheets", "TS-Crm ID")
    assert (g.severity, g.count, g.detail["references"], g.detail["ignored_values"]) == ("warning", 18, 20, [0])
    assert result.quality.dimensions["integrity"] == 100.0


def test_text_hygiene_in_long_text(tmp_path: Path) -> None:
    cs = [comment(i) for i in range(1, 41)]
    cs[0]["comment_text"] = "bad\x00byte"
    cs[1]["comment_text"] = "line one\r\nline two\nline three"
    cs[2]["comment_text"] = "all\r\nwindows\r\nendings"  # consistent: not a mix
    cs[3]["comment_text"] = "top" + "\n" * 120 + "bottom"
    cs[4]["comment_text"] = "one\n\n\nparagraph gap of two blank lines"  # within max_blank_lines
    result = profile_of(build(tmp_path / "text.db", comments=cs))
    assert only(result, "NUL_BYTES", "comments", "comment_text").example_keys == [1]
    assert only(result, "MIXED_LINE_ENDINGS", "comments", "comment_text").example_keys == [2]
    assert only(result, "BLANK_LINE_RUNS", "comments", "comment_text").example_keys == [4]
    text = result.tables["comments"].columns["comment_text"]
    assert text.min is None and text.max is None  # personal free text never leaves the database


def test_example_keys_are_capped(tmp_path: Path) -> None:
    rows = [comment(i, user_id="") for i in range(1, 41)]
    settings = Settings().with_overrides(**{"profile.example_keys": 3})
    f = only(profile_of(build(tmp_path / "cap.db", comments=rows), settings), "EMPTY_STRINGS", "comments", "user_id")
    assert f.count == 40 and f.example_keys == [1, 2, 3]


# --- tables without a contract -----------------------------------------------------------


def test_table_without_contract_gets_everything_but_contract_checks(tmp_path: Path) -> None:
    db = build(tmp_path / "extra.db")
    conn = sqlite3.connect(db)
    conn.execute('CREATE TABLE "notes table" (id INTEGER, "when" TEXT, amount REAL, label)')
    rows = [(i, f"{i % 9 + 1}/0{i % 9 + 1}/2025", float(i), "N/A" if i % 10 == 0 else " " if i == 3 else f"n{i}") for i in range(1, 51)]
    rows.append((51, None, None, None))
    conn.executemany('INSERT INTO "notes table" VALUES (?, ?, ?, ?)', rows)
    conn.execute("DELETE FROM \"notes table\" WHERE id = 2")  # rowids keep their gaps
    conn.commit()
    conn.close()
    result = profile_of(db)
    t = result.tables["notes table"]
    assert not t.has_contract and t.rows == 50
    assert t.columns["amount"].detected_kind == "integer"
    assert only(result, "INTEGER_AS_REAL", "notes table", "amount").severity == "warning"
    assert only(result, "AMBIGUOUS_DATE_FORMAT", "notes table", "when").count == 49
    ph = only(result, "PLACEHOLDERS", "notes table", "label")
    assert (ph.count, ph.severity, ph.example_keys) == (5, "warning", [10, 20, 30, 40, 50])
    assert only(result, "WHITESPACE_STRINGS", "notes table", "label").example_keys == [3]
    contract_codes = {"NULL_IN_REQUIRED", "NOT_ALLOWED", "PATTERN_MISMATCH", "OUT_OF_RANGE", "DUPLICATE_KEYS", "ORPHANS", "MISSING_COLUMN", "UNKNOWN_COLUMN"}
    assert not codes(result, "notes table") & contract_codes
    assert all(f.severity == "warning" for f in result.findings_for("notes table"))
    assert result.verdict == "PROCEED"


def test_any_sqlite_database_profiles_without_our_tables(tmp_path: Path) -> None:
    db = tmp_path / "foreign.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (a)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    conn.close()
    result = profile_of(db)
    assert result.tables["t"].columns["a"].detected_kind == "integer"
    assert {f.code for f in result.findings} == {"MISSING_TABLE"}
    assert result.verdict == "FIX_SOURCE"  # not a ServiceDesk export: the three tables are missing


# --- circuit breaker -------------------------------------------------------------------------


@pytest.mark.parametrize(("corrupt", "verdict"), [(8, "FIX_SOURCE"), (7, "CLEAN")])
def test_circuit_breaker_on_corrupt_dates(tmp_path: Path, corrupt: int, verdict: str) -> None:
    # 8 of 35 non-NULL values = 22.9% > 20%; 7 of 35 = 20% is not over the limit.
    cs = [comment(i) for i in range(1, 41)]
    for i in range(corrupt):
        cs[i]["created_time"] = f"garbage {i}"
    for i in range(35, 40):
        cs[i]["created_time"] = None
    result = profile_of(build(tmp_path / f"cb{corrupt}.db", comments=cs))
    assert result.verdict == verdict
    if verdict == "FIX_SOURCE":
        assert any("comments.created_time" in r and "corrupt dates" in r for r in result.reasons)
        assert result.quality.score <= 50 and result.quality.grade == "F"
    else:
        assert result.quality.score >= 80


def test_circuit_breaker_on_mismatched_columns(tmp_path: Path) -> None:
    cs = [comment(i, user_id=f"user-{i}") for i in range(1, 41)]  # 1 of the typed columns
    result = profile_of(build(tmp_path / "mm1.db", comments=cs))
    assert result.verdict == "CLEAN"  # 1 of 19 typed columns: 5%
    ts = [timesheet(i, **{"TS-Hours": "one hour", "TS-Costcentre ID": "CC-1"}) for i in range(30)]
    result = profile_of(build(tmp_path / "mm2.db", comments=cs, timesheets=ts))
    assert result.verdict == "FIX_SOURCE"  # 3 of 19: 16%
    assert any("typed columns" in r for r in result.reasons)
    assert result.quality.score <= 50


def test_circuit_breaker_thresholds_are_configurable(tmp_path: Path) -> None:
    cs = [comment(i) for i in range(1, 41)]
    for i in range(5):
        cs[i]["created_time"] = "garbage"
    db = build(tmp_path / "cfg.db", comments=cs)
    assert profile_of(db).verdict == "CLEAN"
    strict = Settings().with_overrides(**{"profile.max_corrupt_date_share": 0.1})
    assert profile_of(db, strict).verdict == "FIX_SOURCE"


# --- bounded batches, distinct estimate ---------------------------------------------------


def test_distinct_count_switches_to_an_estimate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profile, "DISTINCT_EXACT", 100)
    db = tmp_path / "many.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (n, s)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"s{i % 3000}") for i in range(5000)])
    conn.commit()
    conn.close()
    cols = profile_of(db).tables["t"].columns
    assert cols["n"].distinct_estimated and abs(cols["n"].distinct_count - 5000) < 5000 * 0.05
    assert cols["s"].distinct_estimated and abs(cols["s"].distinct_count - 3000) < 3000 * 0.05


def test_batches_shrink_for_long_text(tmp_path: Path) -> None:
    db = tmp_path / "long.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (s)")
    conn.executemany("INSERT INTO t VALUES (?)", [("x" * 100_000,) for _ in range(300)])
    conn.commit()
    conn.close()
    with SQLiteSource(db) as src:
        rows = profile._batch_rows(src, "t", ["s"])
    assert rows * 100_000 <= 2 * profile.BATCH_TARGET_BYTES


# --- stage, JSON and CLI -----------------------------------------------------------------


def test_run_writes_the_versioned_json(tmp_path: Path) -> None:
    cs = [comment(i) for i in range(1, 41)]
    cs[0]["created_time"] = ""
    db = build(tmp_path / "j.db", comments=cs)
    out = tmp_path / "out" / "profile.json"
    result = profile.run(profile.ProfileConfig(source=db, out=out, settings=Settings()))
    data = profile.read_profile(out)
    assert data["format"] == PROFILE_FORMAT
    assert data["verdict"] == result.verdict == "CLEAN"
    assert len(data["source_sha256"]) == 64
    assert set(data["tables"]) == {"tickets", "comments", "timesheets"}
    assert data["quality"]["grade"] in "ABCDF"
    f = next(f for f in data["findings"] if f["code"] == "EMPTY_STRINGS")
    assert f["id"] == "comments::created_time::EMPTY_STRINGS"
    assert Finding.from_json(f).example_keys == [1]
    json.dumps(data, allow_nan=False)  # strict JSON


def _cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    profile.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(("dirty", "code", "verdict"), [(False, 0, "PROCEED"), (True, 1, "CLEAN")])
def test_cli_exit_codes_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture, dirty: bool, code: int, verdict: str) -> None:
    cs = [comment(i) for i in range(1, 41)]
    if dirty:
        cs[0]["created_time"] = ""
    db = build(tmp_path / "cli.db", comments=cs)
    assert profile.command(_cli(["--source", str(db), "--sample-size", "10"]), Settings()) == code
    out = capsys.readouterr().out
    assert f"verdict: {verdict}" in out and "quality" in out


def test_cli_fix_source_exit_code(tmp_path: Path) -> None:
    db = build(tmp_path / "fix.db", skip={"timesheets"})
    assert profile.command(_cli(["--source", str(db)]), Settings()) == 4


def test_cli_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputFileError):
        profile.command(_cli(["--source", str(tmp_path / "absent.db")]), Settings())
    not_db = tmp_path / "x.db"
    not_db.write_text("hello")
    with pytest.raises(InputFileError):
        profile.command(_cli(["--source", str(not_db)]), Settings())
    db = build(tmp_path / "ok.db")
    with pytest.raises(ConfigError):
        profile.command(_cli(["--source", str(db), "--sample-size", "0"]), Settings())
    with pytest.raises(InputFileError):
        profile.command(_cli(["--source", str(db), "--out", str(db)]), Settings())


# --- the memoised date reader agrees with dates.date_readings ----------------------------

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pipeline.dates import date_readings  # noqa: E402

_parts = st.integers(min_value=0, max_value=35)
_sep = st.sampled_from([" ", "  ", "T", ""])


@given(
    st.one_of(
        st.builds(lambda d, m, y, h, mi, s, sp: f"{d}/{m}/{y}{sp}{h}:{mi:02d}{s}", _parts, _parts, st.sampled_from([2025, 1999]), st.integers(0, 30), st.integers(0, 70), st.sampled_from(["", ":05", ":99"]), _sep),
        st.builds(lambda m, d, h, mi, sp: f"2025-{m:02d}-{d:02d}{sp}{h}:{mi:02d}", st.integers(0, 13), st.integers(0, 32), st.sampled_from(["8", "08", "23", "24"]), st.integers(0, 60), _sep),
        st.builds(lambda d, t: f"{d} {t}", st.sampled_from(["45900", "2/07/2025", "2025-05-20", "x"]), st.sampled_from(["4:21 PM", "10:00", "10:00:00.5", ""])),
        st.text(max_size=20),
    )
)
def test_date_reader_agrees_with_date_readings(value: str) -> None:
    reader = profile._DateReader()
    assert reader(value) == date_readings(value)
    assert reader(value) == date_readings(value)  # memoised: the same again

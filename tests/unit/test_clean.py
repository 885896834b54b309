"""The cleaner on small hand-built databases: each rule, the audit, quarantine, safety."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from contracts.schemas import REGISTRY
from pipeline import clean
from pipeline.config import Settings
from pipeline.errors import ConfigError, FixYourData, GateFailed, InputFileError, ResourceExhausted
from pipeline.sources import quote_sqlite, sha256_file

TODAY = date(2025, 10, 15)
# A one-row column with one bad date is "100% corrupt": tiny tests relax the breaker.
LENIENT = Settings().with_overrides(**{"profile.max_corrupt_date_share": 1.0})

TICKET = {
    "TKT-Ticket ID": 1000001,
    "TKT-Created Time": "2025-07-01 09:00:00",
    "TKT-Month Created": "2025-07",
    "TKT-Status": "Closed",
    "TKT-Modified Time": "2025-07-02 10:00:00",
    "TKT-Title": "Printer on fire",
    "TKT-Team": "Cloud - Infrastructure",
    "TKT-Severity": "P3",
}
COMMENT = {
    "comment_id": 1,
    "ticket_id": 1000001,
    "comment_text": "Looked at it.\nAll good.",
    "user_id": 7,
    "user_name": "alice",
    "owner_type": "agent",
    "created_time": "2025-07-01 10:00:00",
    "visible_to_customer": "Yes",
    "comment_type": "comments",
    "team": "Cloud - Infrastructure",
}
TIMESHEET = {
    "TS-User Full Name": "Alice A",
    "TS-User Username": "alice",
    "TS-Date": "2025-07-01",
    "TS-Time From": "09:00",
    "TS-Time To": "10:00",
    "TS-Hours": 1.0,
    "TS-Crm ID": 1000001,
}
IMPORT = {
    "import_id": 1,
    "source_type": "tickets",
    "imported_at": "2025-10-01 12:00:00",
    "file_name": "tickets.xlsx",
    "file_sha256": "0" * 64,
    "rows_read": 1,
    "rows_imported": 1,
}


def make_db(
    path: Path,
    tickets: list[dict[str, Any]] | None = None,
    comments: list[dict[str, Any]] | None = None,
    timesheets: list[dict[str, Any]] | None = None,
    extra_tables: dict[str, list[dict[str, Any]]] | None = None,
) -> Path:
    """A raw database as ingest writes it: contract columns, no declared types."""
    tables = {
        "tickets": [{**TICKET, **r} for r in (tickets if tickets is not None else [{}])],
        "comments": [{**COMMENT, **r} for r in (comments if comments is not None else [{}])],
        "timesheets": [{**TIMESHEET, **r} for r in (timesheets if timesheets is not None else [{}])],
        "import_metadata": [IMPORT],
    }
    conn = sqlite3.connect(path)
    for name, rows in tables.items():
        columns = list(REGISTRY[name].columns)
        for r in rows:
            columns.extend(k for k in r if k not in columns)
        _write(conn, name, columns, rows)
    for name, rows in (extra_tables or {}).items():
        columns = list(dict.fromkeys(k for r in rows for k in r))
        _write(conn, name, columns, rows)
    conn.commit()
    conn.close()
    return path


def _write(conn: sqlite3.Connection, name: str, columns: list[str], rows: list[dict[str, Any]]) -> None:
    conn.execute(f"CREATE TABLE {quote_sqlite(name)} ({', '.join(quote_sqlite(c) for c in columns)})")
    conn.executemany(
        f"INSERT INTO {quote_sqlite(name)} VALUES ({', '.join('?' for _ in columns)})",
        [[r.get(c) for c in columns] for r in rows],
    )


def tickets(*ids: int, **overrides: Any) -> list[dict[str, Any]]:
    return [{"TKT-Ticket ID": i, **overrides} for i in ids]


def run_clean(source: Path, out: Path | None = None, settings: Settings | None = None, **kw: Any) -> clean.CleanResult:
    out = out or source.with_name("clean.db")
    return clean.run(clean.CleanConfig(source=source, out=out, settings=settings or Settings(), today=TODAY, progress=False, **kw))


def rows(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def audit(db: Path, table: str | None = None) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    sql = "SELECT * FROM _audit" + (" WHERE table_name = ?" if table else "") + " ORDER BY rowid"
    out = [dict(r) for r in conn.execute(sql, (table,) if table else ())]
    conn.close()
    return out


def quarantine(db: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    out = [dict(r) for r in conn.execute("SELECT * FROM _quarantine ORDER BY rowid")]
    conn.close()
    return out


@pytest.fixture
def tmp_db(tmp_path: Path):
    """A factory of raw databases whose SHA-256 is asserted unchanged after the test."""
    made: list[tuple[Path, str]] = []

    def factory(name: str = "raw.db", **tables: Any) -> Path:
        path = make_db(tmp_path / name, **tables)
        made.append((path, sha256_file(path)))
        return path

    yield factory
    for path, digest in made:
        assert sha256_file(path) == digest, f"the source {path} was written"


def no_leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if clean.TEMP_MARK in p.name]


# --- dates ---------------------------------------------------------------------------------


def test_dates_become_iso_by_the_columns_decided_order(tmp_db, tmp_path):
    src = tmp_db(
        tickets=[
            {"TKT-Ticket ID": 1, "TKT-Actual Response Date": "20/05/2025 8:42"},
            {"TKT-Ticket ID": 2, "TKT-Actual Response Date": "2/07/2025 16:21"},
            {"TKT-Ticket ID": 3, "TKT-Actual Response Date": "2025-05-20 08:42:00"},
            {"TKT-Ticket ID": 4, "TKT-Actual Response Date": 45841.5},  # Excel serial: 2025-07-03 12:00
            {"TKT-Ticket ID": 5, "TKT-Actual Response Date": ""},
        ],
        timesheets=[{"TS-Date": "2/07/2025"}, {"TS-Date": "15/07/2025", "TS-Time From": "10:00"}],
    )
    result = run_clean(src)
    out = Path(result.out)
    got = dict(rows(out, 'SELECT "TKT-Ticket ID", "TKT-Actual Response Date" FROM tickets'))
    assert got == {1: "2025-05-20 08:42:00", 2: "2025-07-02 16:21:00", 3: "2025-05-20 08:42:00", 4: "2025-07-03 12:00:00", 5: None}
    assert sorted(r[0] for r in rows(out, 'SELECT "TS-Date" FROM timesheets')) == ["2025-07-02", "2025-07-15"]
    rules = {(a["row_key"], a["rule"]) for a in audit(out, "tickets") if a["column_name"] == "TKT-Actual Response Date"}
    assert rules == {("1", "date_iso"), ("2", "date_iso"), ("4", "excel_serial"), ("5", "empty_to_null")}
    first = next(a for a in audit(out, "tickets") if a["row_key"] == "2")
    assert first["old_value"] == "2/07/2025 16:21" and first["new_value"] == "2025-07-02 16:21:00"
    assert result.date_columns["tickets.TKT-Actual Response Date"]["read_as"] == "day-first"


def test_ambiguous_column_follows_the_locale_policy_and_is_listed(tmp_db, tmp_path):
    src = tmp_db(tickets=[{"TKT-Ticket ID": 1, "TKT-Closure Date": "2/07/2025 10:00"}])
    day = run_clean(src, tmp_path / "day.db")
    assert "tickets.TKT-Closure Date" in day.ambiguous_date_columns
    assert rows(Path(day.out), 'SELECT "TKT-Closure Date" FROM tickets') == [("2025-07-02 10:00:00",)]
    month = run_clean(src, tmp_path / "month.db", Settings(date_locale="month-first"))
    assert rows(Path(month.out), 'SELECT "TKT-Closure Date" FROM tickets') == [("2025-02-07 10:00:00",)]


def test_unparseable_dates_are_quarantined_never_guessed(tmp_db, tmp_path):
    src = tmp_db(tickets=[{"TKT-Ticket ID": 1}, {"TKT-Ticket ID": 2, "TKT-Closure Date": "last tuesday"}])
    result = run_clean(src, settings=LENIENT)
    out = Path(result.out)
    assert rows(out, 'SELECT "TKT-Ticket ID" FROM tickets') == [(1,)]
    [q] = quarantine(out)
    assert q["table_name"] == "tickets" and q["rule"] == "unparseable_date" and q["row_key"] == "2"
    assert "TKT-Closure Date" in q["reason"] and "last tuesday" in q["reason"]
    assert json.loads(q["original_row"])["TKT-Closure Date"] == "last tuesday"
    assert result.tables["tickets"].quarantined == 1
    # ... or NULL, when configured
    nulled = run_clean(src, tmp_path / "nulled.db", LENIENT.with_overrides(**{"clean.null_unparseable_dates": True}))
    assert rows(Path(nulled.out), 'SELECT "TKT-Ticket ID", "TKT-Closure Date" FROM tickets') == [(1, None), (2, None)]
    assert [a["rule"] for a in audit(Path(nulled.out))] == ["unparseable_to_null"]


def test_a_column_proving_both_orders_has_its_slash_dates_quarantined(tmp_db):
    src = tmp_db(
        tickets=[
            {"TKT-Ticket ID": 1, "TKT-Closure Date": "20/05/2025 10:00"},
            {"TKT-Ticket ID": 2, "TKT-Closure Date": "05/20/2025 10:00"},
            {"TKT-Ticket ID": 3, "TKT-Closure Date": "2025-05-20 10:00:00"},
        ]
    )
    out = Path(run_clean(src, settings=LENIENT).out)
    assert rows(out, 'SELECT "TKT-Ticket ID" FROM tickets') == [(3,)]
    assert {q["row_key"] for q in quarantine(out)} == {"1", "2"}


def test_future_dates_are_quarantined_or_capped(tmp_db, tmp_path):
    src = tmp_db(timesheets=[{}, {"TS-Date": "2026-10-01", "TS-Time From": "11:00"}])
    out = Path(run_clean(src).out)
    assert rows(out, 'SELECT "TS-Date" FROM timesheets') == [("2025-07-01",)]
    [q] = quarantine(out)
    assert q["rule"] == "future_date" and "2026-10-01" in q["reason"]
    capped = run_clean(src, tmp_path / "capped.db", Settings().with_overrides(**{"clean.out_of_range": "cap"}))
    assert sorted(rows(Path(capped.out), 'SELECT "TS-Date" FROM timesheets')) == [("2025-07-01",), ("2025-11-15",)]
    assert [a["rule"] for a in audit(Path(capped.out))] == ["future_capped"]


# --- missing values and tokens --------------------------------------------------------------


def test_blanks_and_placeholders_become_null_in_typed_columns_only(tmp_db):
    src = tmp_db(
        tickets=[
            {
                "TKT-Ticket ID": 1,
                "TKT-Parent ID": "",
                "TKT-Account Id": "  ",
                "TKT-Closure Date": "N/A",
                "TKT-Root Cause Category": "--None--",
                "TKT-Assigned To User": " PendingAssignment",
                "TKT-Title": "N/A",
                "TKT-Customer Reference": "",
            }
        ]
    )
    out = Path(run_clean(src).out)
    got = rows(
        out,
        'SELECT "TKT-Parent ID", "TKT-Account Id", "TKT-Closure Date", "TKT-Root Cause Category", '
        '"TKT-Assigned To User", "TKT-Title", "TKT-Customer Reference" FROM tickets',
    )
    # text columns keep '' and global tokens; contract tokens of a text column become NULL
    assert got == [(None, None, None, None, None, "N/A", "")]
    by_column = {a["column_name"]: a["rule"] for a in audit(out)}
    assert by_column == {
        "TKT-Parent ID": "empty_to_null",
        "TKT-Account Id": "whitespace_to_null",
        "TKT-Closure Date": "placeholder_to_null",
        "TKT-Root Cause Category": "placeholder_to_null",
        "TKT-Assigned To User": "placeholder_to_null",
    }


def test_text_columns_empty_to_null_when_configured(tmp_db):
    src = tmp_db(tickets=[{"TKT-Ticket ID": 1, "TKT-Customer Reference": "", "TKT-Title": "   "}])
    settings = Settings().with_overrides(**{"clean.text_columns_empty_to_null": True})
    out = Path(run_clean(src, settings=settings).out)
    assert rows(out, 'SELECT "TKT-Customer Reference", "TKT-Title" FROM tickets') == [(None, None)]


def test_rules_switched_off_change_nothing(tmp_db, tmp_path):
    src = tmp_db(tickets=[{"TKT-Ticket ID": 1, "TKT-Parent ID": "", "TKT-Root Cause Category": "--None--"}])
    settings = Settings().with_overrides(**{"clean.null_empty_strings": False, "clean.null_placeholders": False})
    out = Path(run_clean(src, settings=settings, quality_threshold=0).out)
    assert rows(out, 'SELECT "TKT-Parent ID", "TKT-Root Cause Category" FROM tickets') == [("", "--None--")]
    assert audit(out) == []


def test_column_placeholders_from_the_config(tmp_db):
    src = tmp_db(tickets=[{"TKT-Ticket ID": 1, "TKT-Team": "(unassigned)"}])
    settings = Settings(column_placeholders={"tickets": {"TKT-Team": ("(unassigned)",)}})
    out = Path(run_clean(src, settings=settings).out)
    assert rows(out, 'SELECT "TKT-Team" FROM tickets') == [(None,)]


# --- numbers --------------------------------------------------------------------------------


def test_integers_and_numbers_get_their_storage_class(tmp_db):
    src = tmp_db(
        tickets=[{"TKT-Ticket ID": 3652948.0, "TKT-Parent ID": "42", "TKT-Actual SLA Achievement": "97.5"}],
        comments=[{"comment_id": "5", "ticket_id": 3652948.0}],
        timesheets=[{"TS-Hours": "7.5", "TS-Crm ID": "3652948"}],
    )
    out = Path(run_clean(src).out)
    assert rows(out, 'SELECT typeof("TKT-Ticket ID"), "TKT-Ticket ID", typeof("TKT-Parent ID"), typeof("TKT-Actual SLA Achievement") FROM tickets') == [
        ("integer", 3652948, "integer", "real")
    ]
    assert rows(out, "SELECT typeof(comment_id), typeof(ticket_id) FROM comments") == [("integer", "integer")]
    assert rows(out, 'SELECT "TS-Hours", typeof("TS-Crm ID") FROM timesheets') == [(7.5, "integer")]
    rules = {(a["table_name"], a["column_name"]): a["rule"] for a in audit(out)}
    assert rules[("tickets", "TKT-Ticket ID")] == "integer_from_real"
    assert rules[("tickets", "TKT-Parent ID")] == "integer_from_text"
    assert rules[("tickets", "TKT-Actual SLA Achievement")] == "number_from_text"
    # the audit keeps the old value in its own storage class
    assert rows(out, "SELECT typeof(old_value), typeof(new_value) FROM _audit WHERE column_name = 'TKT-Ticket ID'") == [("real", "integer")]


def test_values_that_are_not_numbers_are_quarantined(tmp_db):
    src = tmp_db(comments=[{"comment_id": 1}, {"comment_id": "CMT-x"}, {"comment_id": 3, "user_id": 7.5}])
    out = Path(run_clean(src).out)
    assert rows(out, "SELECT comment_id FROM comments") == [(1,)]
    got = {q["row_key"]: (q["rule"], q["reason"]) for q in quarantine(out)}
    assert got["CMT-x"][0] == "not_an_integer" and "comment_id" in got["CMT-x"][1]
    assert got["3"][0] == "not_an_integer" and "user_id" in got["3"][1]


def test_hours_out_of_range_are_quarantined_or_capped(tmp_db, tmp_path):
    src = tmp_db(
        timesheets=[
            {"TS-Time From": "08:00", "TS-Hours": 24},
            {"TS-Time From": "09:00", "TS-Hours": 0},
            {"TS-Time From": "10:00", "TS-Hours": 25.5},
        ]
    )
    out = Path(run_clean(src).out)
    assert rows(out, 'SELECT "TS-Hours" FROM timesheets') == [(24,)]
    assert sorted(q["rule"] for q in quarantine(out)) == ["out_of_range", "out_of_range"]
    capped = Path(run_clean(src, tmp_path / "cap.db", Settings().with_overrides(**{"clean.out_of_range": "cap"})).out)
    # 25.5 caps to 24; 0 lies beyond an exclusive bound: still quarantined, never invented
    assert rows(capped, 'SELECT "TS-Hours" FROM timesheets ORDER BY rowid') == [(24,), (24.0,)]
    assert [q["rule"] for q in quarantine(capped)] == ["out_of_range"]


def test_a_null_key_after_cleaning_goes_to_quarantine(tmp_db):
    src = tmp_db(tickets=[{"TKT-Ticket ID": 1}, {"TKT-Ticket ID": ""}, {"TKT-Ticket ID": None}])
    out = Path(run_clean(src).out)
    assert rows(out, 'SELECT "TKT-Ticket ID" FROM tickets') == [(1,)]
    assert [q["rule"] for q in quarantine(out)] == ["null_key", "null_key"]
    assert audit(out) == []  # a quarantined row leaves no audit rows: it is not in the output


# --- text -------------------------------------------------------------------------------------


def test_text_hygiene_on_long_text_only(tmp_db):
    noisy = "line one\r\nline two\x00\n" + "\n" * 120 + "end"
    src = tmp_db(comments=[{"comment_text": noisy, "user_name": "a\x00b"}])
    out = Path(run_clean(src).out)
    assert rows(out, "SELECT comment_text, user_name FROM comments") == [("line one\nline two\n\n\nend", "a\x00b")]
    [a] = audit(out)
    assert a["rule"] == "nul_removed+line_endings+blank_lines_capped" and a["old_value"] == noisy


def test_max_blank_lines_is_configurable(tmp_db):
    src = tmp_db(comments=[{"comment_text": "a\n\n\n\nb"}])
    settings = Settings().with_overrides(**{"clean.max_blank_lines": 0})
    assert rows(Path(run_clean(src, settings=settings).out), "SELECT comment_text FROM comments") == [("a\nb",)]


# --- duplicates and orphans --------------------------------------------------------------------


DUPLICATES = [
    {"TKT-Ticket ID": 1, "TKT-Title": "first", "TKT-Modified Time": "2025-07-05 10:00:00"},
    {"TKT-Ticket ID": 1.0, "TKT-Title": "latest", "TKT-Modified Time": "06/07/2025 10:00"},
    {"TKT-Ticket ID": "1", "TKT-Title": "older", "TKT-Modified Time": "2025-07-01 10:00:00"},
    {"TKT-Ticket ID": 2, "TKT-Title": "alone"},
]


@pytest.mark.parametrize("strategy, kept", [("keep_latest", "latest"), ("keep_first", "first")])
def test_duplicate_keys_by_strategy(tmp_db, strategy, kept):
    src = tmp_db(tickets=DUPLICATES)
    result = run_clean(src, settings=Settings().with_overrides(**{"clean.duplicates": strategy}))
    out = Path(result.out)
    assert rows(out, 'SELECT "TKT-Ticket ID", "TKT-Title" FROM tickets ORDER BY 1') == [(1, kept), (2, "alone")]
    dropped = [q for q in quarantine(out) if q["rule"] == "duplicate_dropped"]
    assert len(dropped) == 2 and {q["row_key"] for q in dropped} == {"1"}
    # the quarantine keeps the rows as the source held them
    assert {json.loads(q["original_row"])["TKT-Title"] for q in dropped} == {"first", "latest", "older"} - {kept}
    assert result.tables["tickets"].duplicates_dropped == 2
    # audit rows only describe cells of rows that are in the output
    kept_rowid = rows(out, "SELECT rowid FROM tickets WHERE \"TKT-Ticket ID\" = 1")[0][0]
    assert {a["source_rowid"] for a in audit(out, "tickets")} <= {kept_rowid, 4}


def test_duplicate_strategy_per_table_and_fail(tmp_db):
    src = tmp_db(tickets=DUPLICATES)
    settings = Settings().with_overrides(**{"clean.duplicates_by_table": {"tickets": "fail"}})
    with pytest.raises(FixYourData, match=r"tickets: 1 keys .* more than once"):
        run_clean(src, settings=settings)
    assert not (src.parent / "clean.db").exists() and no_leftovers(src.parent) == []
    with pytest.raises(ConfigError, match="duplicates_by_table.tickets"):
        run_clean(src, settings=Settings().with_overrides(**{"clean.duplicates_by_table": {"tickets": "newest"}}))


def test_orphans_are_counted_and_kept(tmp_db):
    src = tmp_db(comments=[{"comment_id": 1}, {"comment_id": 2, "ticket_id": 999}], timesheets=[{}, {"TS-Crm ID": 0, "TS-Time From": "11:00"}, {"TS-Crm ID": 5, "TS-Time From": "12:00"}])
    result = run_clean(src)
    out = Path(result.out)
    assert rows(out, "SELECT count(*) FROM comments") == [(2,)]
    by_table = {o["table"]: o for o in result.orphans}
    assert by_table["comments"]["orphans"] == 1 and by_table["comments"]["references"] == 2
    assert by_table["timesheets"]["orphans"] == 1 and by_table["timesheets"]["references"] == 2  # 0 = admin time


# --- the output database ----------------------------------------------------------------------


def test_output_has_the_source_tables_and_columns_without_declared_types(tmp_db):
    src = tmp_db(
        tickets=[{"TKT-Ticket ID": 1, "TKT-Extra Column": "kept"}],
        extra_tables={"notes": [{"a": 1, "b": " N/A "}]},
    )
    out = Path(run_clean(src).out)
    names = {r[0] for r in rows(out, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert names == {"tickets", "comments", "timesheets", "import_metadata", "notes", "_audit", "_quarantine"}
    info = rows(out, "PRAGMA table_info(tickets)")
    assert [r[1] for r in info] == [*REGISTRY["tickets"].columns, "TKT-Extra Column"]
    assert {r[2] for r in info} == {""}
    assert rows(out, "SELECT * FROM notes") == [(1, " N/A ")]  # no contract: copied as it is
    assert rows(out, "SELECT import_id, file_name FROM import_metadata") == [(1, "tickets.xlsx")]
    assert [r[1] for r in rows(out, "PRAGMA table_info(_audit)")][:8] == [
        "run_id", "table_name", "row_key", "column_name", "old_value", "new_value", "rule", "changed_at"
    ]


def test_summary_audit_trail_and_result_json(tmp_db, tmp_path):
    src = tmp_db(tickets=[{"TKT-Ticket ID": 1.0, "TKT-Parent ID": ""}, {"TKT-Ticket ID": 2.0}])
    trail = tmp_path / "audit.jsonl"
    result = run_clean(src, audit_trail=trail)
    lines = [json.loads(line) for line in trail.read_text().splitlines()]
    db_rows = audit(Path(result.out))
    assert len(lines) == len(db_rows) == result.audit_rows == 3
    assert [(r["row_key"], r["column_name"], r["rule"]) for r in lines] == [(r["row_key"], r["column_name"], r["rule"]) for r in db_rows]
    assert {r["run_id"] for r in lines} == {result.run_id}
    assert result.rule_totals() == {"integer_from_real": 2, "empty_to_null": 1}
    assert {(c["column"], c["rule"], c["count"]) for c in result.changes} == {
        ("TKT-Ticket ID", "integer_from_real", 2),
        ("TKT-Parent ID", "empty_to_null", 1),
    }
    doc = json.loads(json.dumps(result.to_json()))
    assert set(doc["quality_before"]) >= {"score", "dimensions"} and doc["quality_after"]["dimensions"]
    text = clean.format_summary(result)
    assert "integer_from_real" in text and "quality score" in text


def test_cleaning_a_cleaned_database_changes_nothing(tmp_db, tmp_path):
    src = tmp_db(
        tickets=[{"TKT-Ticket ID": 1.0, "TKT-Closure Date": "2/07/2025 10:00"}, {"TKT-Ticket ID": 1}, {"TKT-Ticket ID": "x"}],
        comments=[{"comment_text": "a\r\nb"}],
    )
    first = run_clean(src, tmp_path / "once.db")
    assert first.audit_rows > 0
    second = run_clean(Path(first.out), tmp_path / "twice.db")
    assert second.audit_rows == 0 and second.quarantine == []
    assert second.quality_after["score"] == first.quality_after["score"]
    for table in ("tickets", "comments", "timesheets"):
        assert rows(Path(first.out), f"SELECT * FROM {table} ORDER BY rowid") == rows(Path(second.out), f"SELECT * FROM {table} ORDER BY rowid")
    # the history of the first run is carried over
    assert rows(Path(second.out), "SELECT count(*), count(DISTINCT run_id) FROM _audit") == [(first.audit_rows, 1)]
    assert len(quarantine(Path(second.out))) == len(quarantine(Path(first.out)))


# --- safety -------------------------------------------------------------------------------------


def test_out_equal_to_the_source_is_refused(tmp_db, tmp_path):
    src = tmp_db()
    (tmp_path / "link.db").symlink_to(src)
    os.link(src, tmp_path / "hard.db")
    (tmp_path / "sub").mkdir()
    for out in (src, tmp_path / "link.db", tmp_path / "hard.db", tmp_path / "sub" / ".." / "raw.db"):
        with pytest.raises(InputFileError, match="source database itself"):
            run_clean(src, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard.db", "link.db", "raw.db", "sub"]


def test_bad_source_and_out_paths(tmp_db, tmp_path):
    src = tmp_db()
    with pytest.raises(InputFileError, match="does not exist"):
        run_clean(tmp_path / "nope.db", tmp_path / "o.db")
    (tmp_path / "text.db").write_text("hello")
    with pytest.raises(InputFileError, match="not a SQLite database"):
        run_clean(tmp_path / "text.db", tmp_path / "o.db")
    with pytest.raises(InputFileError, match="folder .* does not exist"):
        run_clean(src, tmp_path / "missing" / "o.db")
    with pytest.raises(InputFileError, match="same file"):
        run_clean(src, tmp_path / "o.db", audit_trail=tmp_path / "o.db")


def test_quality_gate_failure_leaves_nothing(tmp_db, tmp_path):
    src = tmp_db()
    out = tmp_path / "clean.db"
    with pytest.raises(GateFailed, match="below the threshold 101"):
        run_clean(src, out, quality_threshold=101, audit_trail=tmp_path / "audit.jsonl")
    assert not out.exists() and not (tmp_path / "audit.jsonl").exists()
    assert no_leftovers(tmp_path) == []


def test_a_critical_contract_failure_stops_the_gate(tmp_db, tmp_path):
    # A missing required column cannot be cleaned into existence: critical, nothing written.
    src = tmp_path / "raw.db"
    make_db(src)
    conn = sqlite3.connect(src)
    conn.execute('ALTER TABLE tickets DROP COLUMN "TKT-Status"')
    conn.commit()
    conn.close()
    with pytest.raises(GateFailed, match="critical contract checks fail: tickets::TKT-Status::present"):
        run_clean(src, tmp_path / "clean.db", quality_threshold=0)
    assert not (tmp_path / "clean.db").exists() and no_leftovers(tmp_path) == []


def test_existing_output_is_replaced_only_on_success(tmp_db, tmp_path):
    src = tmp_db()
    out = tmp_path / "clean.db"
    out.write_bytes(b"old")
    with pytest.raises(GateFailed):
        run_clean(src, out, quality_threshold=101)
    assert out.read_bytes() == b"old"
    run_clean(src, out)
    assert out.read_bytes()[:15] == b"SQLite format 3"


def test_stale_temporary_files_of_dead_runs_are_removed(tmp_db, tmp_path):
    src = tmp_db()
    out = tmp_path / "clean.db"
    dead = clean.temp_path_for(out, pid=2**22 + 12345)  # above the default pid_max: never alive
    dead.write_bytes(b"half-written")
    alive = clean.temp_path_for(out, pid=1)
    alive.write_bytes(b"someone else's")
    other = tmp_path / ".other.db.clean-tmp-99999999"
    other.write_bytes(b"not ours")
    run_clean(src, out)
    assert not dead.exists()
    assert alive.exists() and other.exists()  # a live process's file, and another output's, stay


def test_health_checks_name_the_resource(tmp_db, tmp_path):
    src = tmp_db()
    with pytest.raises(ResourceExhausted, match="disk: only .* MB free"):
        run_clean(src, settings=Settings().with_overrides(**{"clean.min_free_disk_mb": 10**9}))
    with pytest.raises(ResourceExhausted, match="memory: the clean uses"):
        run_clean(src, settings=Settings().with_overrides(**{"clean.max_memory_mb": 1}))
    assert no_leftovers(tmp_path) == [] and not (tmp_path / "clean.db").exists()


def test_cli_exit_codes(tmp_db, tmp_path, capsys):
    from pipeline.cli import main

    src = tmp_db(tickets=[{"TKT-Ticket ID": 1.0}])
    out = tmp_path / "clean.db"
    assert main(["clean", "--source", str(src), "--out", str(src)]) == 3
    assert "source database itself" in capsys.readouterr().err
    assert main(["clean", "--source", str(src), "--out", str(out), "--quality-threshold", "101"]) == 4
    assert not out.exists()
    assert main(["clean", "--source", str(src), "--out", str(out), "--json", str(tmp_path / "r.json")]) == 0
    assert "integer_from_real" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["audit_rows"] == 1


def test_a_source_that_trips_the_circuit_breaker_is_refused(tmp_db, tmp_path):
    # Most created times are no date at all: cleaning would quarantine most tickets.
    src = tmp_db(tickets=[{"TKT-Ticket ID": i, "TKT-Created Time": "garbage"} for i in range(1, 5)] + [{"TKT-Ticket ID": 9}])
    with pytest.raises(GateFailed, match="circuit breaker.*TKT-Created Time"):
        run_clean(src)
    assert not (tmp_path / "clean.db").exists() and no_leftovers(tmp_path) == []
    relaxed = Settings().with_overrides(**{"profile.max_corrupt_date_share": 1.0})
    result = run_clean(src, settings=relaxed, quality_threshold=0)
    assert result.tables["tickets"].quarantined == 4


def test_a_damaged_source_is_a_clear_input_error(tmp_path):
    src = make_db(tmp_path / "raw.db", comments=[{"comment_id": i, "comment_text": "x" * 500} for i in range(1, 400)])
    data = src.read_bytes()
    src.write_bytes(data[: len(data) // 2])  # cut mid-file, as a copy interrupted halfway
    with pytest.raises(InputFileError, match="damaged|cannot be opened"):
        run_clean(src, tmp_path / "clean.db")
    assert not (tmp_path / "clean.db").exists() and no_leftovers(tmp_path) == []


def test_health_is_checked_every_n_rows(tmp_db, caplog):
    src = tmp_db(comments=[{"comment_id": i} for i in range(1, 41)])
    settings = Settings().with_overrides(**{"clean.health_check_rows": 10, "clean.batch_rows": 5})
    with caplog.at_level("DEBUG", logger="pipeline.clean"):
        result = run_clean(src, settings=settings)
    checks = [r for r in caplog.records if r.name == "pipeline.clean" and r.getMessage().startswith("health:")]
    rows = sum(t.rows_in for t in result.tables.values())
    assert len(checks) == 1 + rows // 10  # once before writing, then every 10 rows

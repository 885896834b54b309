"""The contract executor on tiny SQLite files: every check kind both ways, chunking,
bounded samples and the masking of personal values."""

from __future__ import annotations

import sqlite3
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Callable

import pandera.pandas as pa
import pytest

from contracts import spec
from contracts.executor import FAILED, PASSED, WARNED, ContractRun, execute
from contracts.schemas import REGISTRY
from pipeline.config import Settings
from pipeline.sources import SQLiteSource, quote_sqlite

TODAY = date(2025, 6, 1)
Row = dict[str, Any]


def ticket(i: int) -> Row:
    return {
        "TKT-Ticket ID": 1000 + i,
        "TKT-Created Time": "2025-05-20 08:42:00",
        "TKT-Month Created": "2025-05",
        "TKT-Status": "Closed",
        "TKT-Severity": "P3",
        "TKT-Account Id": 42,
        "TKT-Actual SLA Achievement": 99.5,
        "TKT-SLA Met": "yes",
        "TKT-Category": "Standard",
        "TKT-Description": "printer on fire",
        "TKT-Assigned To User": "Alice Example",
    }


def comment(i: int, tickets: int) -> Row:
    return {
        "comment_id": i + 1,
        "ticket_id": 1000 + i % tickets,
        "comment_text": "called the customer back",
        "created_time": "2025-05-21 09:00:00",
        "owner_type": "agent",
        "visible_to_customer": "Yes",
        "comment_type": "comments",
        "user_name": "agent1",
    }


def timesheet(i: int, tickets: int) -> Row:
    return {
        "TS-User Username": f"user{i % 3}",
        "TS-Date": "2025-05-20",
        "TS-Time From": f"{i % 24:02d}:{i // 24 % 60:02d}",
        "TS-Hours": 1.5,
        "TS-Crm ID": 0 if i % 4 == 0 else 1000 + i % tickets,
    }


def write_db(path: Path, tables: dict[str, tuple[list[str], list[Row]]]) -> Path:
    con = sqlite3.connect(path)
    for name, (columns, rows) in tables.items():
        con.execute(f"CREATE TABLE {quote_sqlite(name)} ({', '.join(quote_sqlite(c) for c in columns)})")
        marks = ", ".join("?" for _ in columns)
        con.executemany(
            f"INSERT INTO {quote_sqlite(name)} VALUES ({marks})", [[r.get(c) for c in columns] for r in rows]
        )
    con.commit()
    con.close()
    return path


def clean_tables(n: int = 30) -> dict[str, tuple[list[str], list[Row]]]:
    return {
        "tickets": (list(REGISTRY["tickets"].columns), [ticket(i) for i in range(n)]),
        "comments": (list(REGISTRY["comments"].columns), [comment(i, n) for i in range(n * 3)]),
        "timesheets": (list(REGISTRY["timesheets"].columns), [timesheet(i, n) for i in range(n * 2)]),
    }


def run(path: Path, settings: Settings | None = None, **kw: Any) -> ContractRun:
    with SQLiteSource(path) as source:
        return execute(source, settings or Settings(), today=TODAY, **kw)


def by_id(result: ContractRun) -> dict:
    return {r.id: r for r in result.results}


@pytest.fixture
def make(tmp_path: Path) -> Callable[..., ContractRun]:
    """Build the clean tables, let the test change them, run the executor."""

    def _make(change: Callable[[dict], None] | None = None, settings: Settings | None = None, **kw: Any) -> ContractRun:
        tables = clean_tables()
        if change is not None:
            change(tables)
        return run(write_db(tmp_path / "t.db", tables), settings, **kw)

    return _make


def set_value(tables: dict, table: str, index: int, column: str, value: Any) -> None:
    tables[table][1][index][column] = value


# --- the clean database ------------------------------------------------------------------


def test_clean_database_passes_every_check(make) -> None:
    result = make()
    assert result.results, "no checks ran"
    bad = [(r.id, r.message) for r in result.results if r.status != PASSED]
    assert bad == []
    assert result.tables["tickets"].rows == 30


def test_ids_are_unique_stable_and_readable(make) -> None:
    ids = [r.id for r in make().results]
    assert len(ids) == len(set(ids))
    for expected in (
        "tickets::TKT-Created Time::timestamp_parseable",
        "tickets::TKT-Created Time::present",
        "tickets::TKT-Created Time::not_null",
        "tickets::TKT-Created Time::not_future",
        "tickets::*::unique_key",
        "tickets::*::row_count",
        "comments::ticket_id::references",
        "timesheets::TS-Crm ID::orphans",
        "timesheets::TS-Date::date_parseable",
        "timesheets::TS-Hours::numeric",
        "timesheets::TS-Hours::in_range",
        "tickets::TKT-Ticket ID::integer",
        "tickets::TKT-Month Created::pattern",
        "tickets::TKT-Status::allowed_values",
    ):
        assert expected in ids
    # Text kinds get no type check; nullable columns no not_null.
    assert not any(i.startswith("tickets::TKT-Title::") and not i.endswith("::present") for i in ids)
    assert "tickets::TKT-Parent ID::not_null" not in ids


def test_severity_and_tolerance_come_from_the_contract(make) -> None:
    results = by_id(make())
    assert results["tickets::TKT-Category::allowed_values"].severity == "warning"
    assert results["tickets::TKT-Ticket ID::not_null"].severity == "critical"
    assert results["tickets::TKT-Created Time::present"].severity == "critical"
    assert results["comments::ticket_id::references"].tolerance == pytest.approx(0.05)
    rule = spec.rules(REGISTRY["tickets"].columns["TKT-Status"])["allowed_values"]
    assert results["tickets::TKT-Status::allowed_values"].severity == rule.severity


# --- each check kind, both ways -------------------------------------------------------------


@pytest.mark.parametrize(
    "value, fails",
    [
        ("2025-05-20 08:42:00", False),
        ("2025-05-20T08:42", False),
        ("2025-05-20", False),
        ("20/05/2025 8:42", True),
        ("2/07/2025 16:21", True),
        ("", True),
        (45800.5, True),  # an Excel serial
        ("not a date", True),
        (None, False),  # NULL is the not-null check's business
    ],
)
def test_timestamp_parseable(make, value: Any, fails: bool) -> None:
    r = by_id(make(lambda t: set_value(t, "tickets", 5, "TKT-Modified Time", value)))["tickets::TKT-Modified Time::timestamp_parseable"]
    assert (r.failing, r.status) == ((1, FAILED) if fails else (0, PASSED))
    if fails:
        assert r.sample[0].key == 1005 and r.sample[0].value == value and r.sample[0].column == "TKT-Modified Time"


@pytest.mark.parametrize("value, fails", [("2025-05-20", False), ("2025-05-20 10:00:00", True), ("20/05/2025", True), ("", True)])
def test_date_parseable(make, value: Any, fails: bool) -> None:
    r = by_id(make(lambda t: set_value(t, "timesheets", 3, "TS-Date", value)))["timesheets::TS-Date::date_parseable"]
    assert r.failing == (1 if fails else 0)


@pytest.mark.parametrize("value, fails", [(42, False), (3652948.0, True), ("42", True), ("", True), (None, False)])
def test_integer(make, value: Any, fails: bool) -> None:
    r = by_id(make(lambda t: set_value(t, "tickets", 2, "TKT-Account Id", value)))["tickets::TKT-Account Id::integer"]
    assert r.failing == (1 if fails else 0)


@pytest.mark.parametrize("value, fails", [(7.5, False), (8, False), ("7.5", True), ("", True), ("n/a", True)])
def test_numeric(make, value: Any, fails: bool) -> None:
    r = by_id(make(lambda t: set_value(t, "timesheets", 0, "TS-Hours", value)))["timesheets::TS-Hours::numeric"]
    assert r.failing == (1 if fails else 0)


@pytest.mark.parametrize("value, fails", [("Closed", False), (None, True), ("", True), ("   ", True)])
def test_not_null(make, value: Any, fails: bool) -> None:
    r = by_id(make(lambda t: set_value(t, "tickets", 7, "TKT-Status", value)))["tickets::TKT-Status::not_null"]
    assert r.failing == (1 if fails else 0)
    assert r.considered == 30


@pytest.mark.parametrize(
    "value, fails",
    [("Incident Resolved", False), ("Resolved", True), ("closed", True)],
)
def test_allowed_values_runs_the_pandera_check(make, value: str, fails: bool) -> None:
    r = by_id(make(lambda t: set_value(t, "tickets", 4, "TKT-Status", value)))["tickets::TKT-Status::allowed_values"]
    assert (r.failing, r.status) == ((1, FAILED) if fails else (0, PASSED))


def test_open_ended_set_only_warns(make) -> None:
    r = by_id(make(lambda t: set_value(t, "tickets", 4, "TKT-Category", "Brand New Category")))["tickets::TKT-Category::allowed_values"]
    assert (r.failing, r.status, r.severity) == (1, WARNED, "warning")


def test_placeholders_and_blanks_are_not_judged_by_closed_sets(make) -> None:
    def change(t: dict) -> None:
        set_value(t, "tickets", 1, "TKT-Severity", "")
        set_value(t, "tickets", 2, "TKT-Severity", "--None--")
        set_value(t, "tickets", 3, "TKT-Severity", "P7")

    r = by_id(make(change))["tickets::TKT-Severity::allowed_values"]
    assert r.failing == 1 and r.considered == 28  # 30 rows less the blank and the token


@pytest.mark.parametrize("value, fails", [("2025-12", False), ("2025-13", True), ("2025/05", True), ("May 2025", True)])
def test_pattern(make, value: str, fails: bool) -> None:
    r = by_id(make(lambda t: set_value(t, "tickets", 9, "TKT-Month Created", value)))["tickets::TKT-Month Created::pattern"]
    assert r.failing == (1 if fails else 0)


@pytest.mark.parametrize("hours, fails", [(0.25, False), (24, False), (0, True), (24.5, True), (-1, True)])
def test_in_range_half_open(make, hours: float, fails: bool) -> None:
    r = by_id(make(lambda t: set_value(t, "timesheets", 6, "TS-Hours", hours)))["timesheets::TS-Hours::in_range"]
    assert r.failing == (1 if fails else 0)


def test_in_range_skips_values_failing_the_type_check(make) -> None:
    r = by_id(make(lambda t: set_value(t, "timesheets", 6, "TS-Hours", "99")))
    assert r["timesheets::TS-Hours::numeric"].failing == 1
    assert r["timesheets::TS-Hours::in_range"].failing == 0


@pytest.mark.parametrize("days_ahead, fails", [(0, False), (366, False), (367, True), (4000, True)])
def test_not_future(make, days_ahead: int, fails: bool) -> None:
    when = (TODAY + timedelta(days=days_ahead)).isoformat() + " 10:00:00"
    r = by_id(make(lambda t: set_value(t, "tickets", 8, "TKT-Closure Date", when)))["tickets::TKT-Closure Date::not_future"]
    assert r.failing == (1 if fails else 0)


def test_not_future_uses_each_columns_own_horizon(make) -> None:
    when = (TODAY + timedelta(days=40)).isoformat()
    r = by_id(make(lambda t: set_value(t, "timesheets", 8, "TS-Date", when)))["timesheets::TS-Date::not_future"]
    assert r.failing == 1  # timesheets allow 31 days, tickets a year


def test_unique_key_pushed_down(make) -> None:
    def change(t: dict) -> None:
        set_value(t, "tickets", 1, "TKT-Ticket ID", 1000)
        set_value(t, "tickets", 2, "TKT-Ticket ID", 1000)

    r = by_id(make(change))["tickets::*::unique_key"]
    assert (r.failing, r.status) == (2, FAILED)
    assert [s.key for s in r.sample] == [1000]


def test_composite_key(make) -> None:
    def change(t: dict) -> None:
        t["timesheets"][1][1].update({k: t["timesheets"][1][0][k] for k in ("TS-User Username", "TS-Date", "TS-Time From", "TS-Crm ID")})

    r = by_id(make(change))["timesheets::*::unique_key"]
    assert r.failing == 1


@pytest.mark.parametrize("orphans, status", [(0, PASSED), (4, PASSED), (5, FAILED)])
def test_references_with_tolerance(make, orphans: int, status: str) -> None:
    # 90 comments: 4 orphans = 4.4% (tolerated, 5%), 5 = 5.6% (fails).
    def change(t: dict) -> None:
        for i in range(orphans):
            set_value(t, "comments", i, "ticket_id", 99_000 + i)

    r = by_id(make(change))["comments::ticket_id::references"]
    assert (r.failing, r.considered, r.status) == (orphans, 90, status)
    assert r.tolerated == (0 < orphans and status == PASSED)
    assert sorted(s.value for s in r.sample) == [99_000 + i for i in range(orphans)]


def test_timesheet_orphans_are_counted_and_admin_time_ignored(make) -> None:
    def change(t: dict) -> None:
        for row in t["timesheets"][1]:
            if row["TS-Crm ID"] != 0:
                row["TS-Crm ID"] = 555
        # every referencing row is an orphan: over the 99% tolerated -> warned, not failed

    r = by_id(make(change))["timesheets::TS-Crm ID::orphans"]
    assert r.considered == 45  # 60 rows minus 15 of admin time (0)
    assert (r.failing, r.status) == (45, WARNED)


def test_row_count_and_missing_tables(make) -> None:
    result = make(lambda t: (t["tickets"][1].clear(), t.pop("timesheets")))
    results = by_id(result)
    assert results["tickets::*::row_count"].status == FAILED
    assert "no rows" in results["tickets::*::row_count"].message
    missing = results["timesheets::*::row_count"]
    assert missing.status == FAILED and "missing" in missing.message
    # Every check of a missing required table fails: nothing is skipped silently.
    assert all(r.status == FAILED for r in result.for_table("timesheets"))
    assert len(result.for_table("timesheets")) > 21
    # The roster is optional: absent, it has no checks at all.
    assert result.for_table("cloud_team_roster") == []


def test_missing_column_fails_and_fails_its_checks(make) -> None:
    def change(t: dict) -> None:
        t["tickets"][0].remove("TKT-Created Time")

    result = by_id(make(change))
    for check in ("present", "timestamp_parseable", "not_null", "not_future"):
        r = result[f"tickets::TKT-Created Time::{check}"]
        assert r.status == FAILED, check
        assert "column missing" in r.message
    assert result["tickets::TKT-Created Time::present"].severity == "critical"


def test_missing_key_column_fails_unique_key(make) -> None:
    r = by_id(make(lambda t: t["tickets"][0].remove("TKT-Ticket ID")))["tickets::*::unique_key"]
    assert r.status == FAILED and "column missing" in r.message


def test_table_without_contract_gets_no_checks(tmp_path: Path) -> None:
    tables = clean_tables()
    tables["scratch"] = (["a", "b"], [{"a": 1, "b": "x"}])
    result = run(write_db(tmp_path / "x.db", tables))
    assert not result.for_table("scratch")
    assert result.tables["scratch"].has_contract is False and result.tables["scratch"].rows == 1


def test_unknown_extra_column_is_no_failure(make) -> None:
    def change(t: dict) -> None:
        t["tickets"][0].append("TKT-Something New")

    assert not make(change).failed


# --- streaming in chunks ------------------------------------------------------------------


def test_chunk_boundaries_do_not_change_results(tmp_path: Path) -> None:
    tables = clean_tables(40)
    for i in (0, 6, 7, 13, 39):  # around chunk edges of 7 rows
        set_value(tables, "tickets", i, "TKT-Created Time", f"{i + 1}/05/2025 8:42")
        set_value(tables, "tickets", i, "TKT-Status", "Resolved")
    path = write_db(tmp_path / "c.db", tables)
    whole = run(path, Settings().with_overrides(**{"gate.chunk_rows": 100_000}))
    for chunk in (1, 7, 13):
        chunked = run(path, Settings().with_overrides(**{"gate.chunk_rows": chunk}))
        assert [(r.id, r.failing, r.considered, r.sample) for r in chunked.results] == [
            (r.id, r.failing, r.considered, r.sample) for r in whole.results
        ]
    r = by_id(whole)["tickets::TKT-Created Time::timestamp_parseable"]
    assert [s.key for s in r.sample] == [1000, 1006, 1007, 1013, 1039]


def test_samples_are_bounded(tmp_path: Path) -> None:
    tables = clean_tables(60)
    for i in range(60):
        set_value(tables, "tickets", i, "TKT-Severity", "P9")
    settings = Settings().with_overrides(**{"gate.sample_rows": 4, "gate.chunk_rows": 7})
    r = by_id(run(write_db(tmp_path / "b.db", tables), settings))["tickets::TKT-Severity::allowed_values"]
    assert r.failing == 60 and len(r.sample) == 4
    assert [s.key for s in r.sample] == [1000, 1001, 1002, 1003]


# --- masking ----------------------------------------------------------------------------------


def test_personal_values_are_masked_unless_asked(tmp_path: Path) -> None:
    tables = clean_tables()
    tables["cloud_team_roster"] = (
        ["name", "email", "username"],
        [{"name": "Ann Smith", "email": "ann.smith at example", "username": "asmith"}],
    )
    path = write_db(tmp_path / "p.db", tables)
    hidden = by_id(run(path))["cloud_team_roster::email::pattern"]
    assert hidden.failing == 1
    assert "ann.smith" not in repr(hidden.sample) and "asmith" not in repr(hidden.sample)
    assert str(hidden.sample[0].value).startswith("<personal #")
    shown = by_id(run(path, Settings().with_overrides(**{"gate.show_personal": True})))["cloud_team_roster::email::pattern"]
    assert shown.sample[0].value == "ann.smith at example"
    assert shown.sample[0].key == "asmith"


def test_personal_key_parts_are_masked(make) -> None:
    def change(t: dict) -> None:
        t["timesheets"][1][1].update({k: t["timesheets"][1][0][k] for k in ("TS-User Username", "TS-Date", "TS-Time From", "TS-Crm ID")})

    r = by_id(make(change))["timesheets::*::unique_key"]
    key = r.sample[0].key
    assert key[0].startswith("<personal #") and "user0" not in repr(r.sample)
    assert key[1:] == ["2025-05-20", "00:00", 0] or tuple(key[1:]) == ("2025-05-20", "00:00", 0)


def test_long_text_is_masked_and_long_values_shortened(tmp_path: Path) -> None:
    schema = spec.table(
        "notes",
        [
            spec.column("id", "integer", nullable=False),
            spec.column("body", "text", long_text=True, pattern=r"^ok"),
            spec.column("code", "text", pattern=r"^[A-Z]+$"),
        ],
        spec.TableFacts(key=("id",)),
    )
    long = "confidential " * 50
    path = write_db(tmp_path / "n.db", {"notes": (["id", "body", "code"], [{"id": 1, "body": long, "code": "x" * 500}])})
    with SQLiteSource(path) as source:
        result = by_id(execute(source, Settings(), today=TODAY, registry={"notes": schema}, required_tables=("notes",)))
    body = result["notes::body::pattern"].sample[0].value
    assert body == f"<text, {len(long):,} chars>"
    code = result["notes::code::pattern"].sample[0].value
    assert len(code) < 120 and code.startswith("xxxx") and "500 chars" in code


def test_custom_pandera_checks_execute(tmp_path: Path) -> None:
    """The executor runs the pandera Check objects declared, not a copy of their logic."""
    col = spec.column("n", "integer", min_value=10, max_value=20)
    schema = spec.table("nums", [col], spec.TableFacts(key=()))
    assert isinstance(col.checks[0], pa.Check)
    path = write_db(tmp_path / "r.db", {"nums": (["n"], [{"n": v} for v in (5, 10, 15, 20, 21, None)])})
    with SQLiteSource(path) as source:
        r = by_id(execute(source, Settings(), today=TODAY, registry={"nums": schema}, required_tables=("nums",)))["nums::n::in_range"]
    assert (r.failing, r.considered) == (2, 5)
    assert [s.value for s in r.sample] == [5, 21]
    assert [s.key for s in r.sample] == ["row 1", "row 5"]  # no key: rows are located by position


@pytest.mark.parametrize("chunk", [1, 7, 100_000])
def test_typed_integers_judged_at_once_match_the_judgement_of_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    # Batches of ints (no bool) in integer and numeric columns skip the per-value judgement
    # (``_typed_integers``) and the per-value ``to_number`` of in_range; batches with a
    # float, text or NULLs beside them must count the same (SQLite stores a bool as 1).
    import contracts.executor as executor

    tables = clean_tables(40)
    for i, hours in [(0, 8), (1, -3), (2, 30), (9, None), (10, 2**62)]:
        set_value(tables, "timesheets", i, "TS-Hours", hours)
    for i, account in [(3, None), (4, True), (5, -(2**63)), (6, "42"), (20, 7.0)]:
        set_value(tables, "tickets", i, "TKT-Account Id", account)
    for i in range(0, 120, 9):
        set_value(tables, "comments", i, "comment_id", -i)  # out of in_range (min 1)
    set_value(tables, "comments", 4, "comment_id", None)
    path = write_db(tmp_path / "i.db", tables)
    settings = Settings().with_overrides(**{"gate.chunk_rows": chunk})
    called: list[bool] = []
    typed = executor._typed_integers
    monkeypatch.setattr(executor, "_typed_integers", lambda values, kind: called.append(typed(values, kind)) or called[-1])
    fast = run(path, settings)
    monkeypatch.setattr(executor, "_typed_integers", lambda values, kind: False)
    slow = run(path, settings)
    assert any(called)
    assert [r.to_json() for r in fast.results] == [r.to_json() for r in slow.results]
    failing = {r.id: r.failing for r in fast.results if r.failing}
    assert failing["comments::comment_id::in_range"] == 14, failing
    assert failing["tickets::TKT-Account Id::integer"] == 2, failing


def test_runs_of_some_tables_merge_into_the_run_of_them_all(raw_db: Path) -> None:
    """``execute(only=...)`` on parts of the tables, merged (``merged_runs``), is the run
    of every table, order included: the clean's gate judges some tables beside its build."""
    from contracts.executor import merged_runs

    today = date(2026, 11, 28)
    with SQLiteSource(raw_db) as source:
        whole = execute(source, Settings(), today=today)
        beside = execute(source, Settings(), today=today, only=("tickets", "timesheets"))
        rest = execute(source, Settings(), today=today, only=("comments", "import_metadata"))
    assert set(beside.tables) == {"tickets", "timesheets"} and {r.table for r in beside.results} == {"tickets", "timesheets"}
    assert any(r.failing for r in whole.results)  # a run with failures to place
    for parts in ([beside, rest], [rest, beside]):
        assert merged_runs(whole.source, parts).to_json() == whole.to_json()
    with pytest.raises(ValueError, match="more than one"):
        merged_runs(whole.source, [whole, beside])


def test_a_table_of_only_still_checks_its_references_against_every_table(raw_db: Path) -> None:
    today = date(2026, 11, 28)
    with SQLiteSource(raw_db) as source:
        whole = {r.id: r for r in execute(source, Settings(), today=today).results if r.table == "comments"}
        alone = {r.id: r for r in execute(source, Settings(), today=today, only=("comments",)).results}
    references = [i for i in whole if "references" in i]
    assert references and all(alone[i] == whole[i] for i in references)
    assert alone == whole

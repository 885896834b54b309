"""Gate 3 against a real PostgreSQL: types, counts, checksums, rejects, cut-over, rollback."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from conftest import build_clean_db
from pipeline.config import Settings
from pipeline.errors import GateFailed, InputFileError
from pipeline.migrate import (
    LIVE,
    MigrateConfig,
    canary_condition,
    pg_checksum,
    rollback,
    run,
    sqlite_checksum,
    versions,
)
from pipeline.pgschema import TablePlan, create_table, data_table_plans, qualified

pytestmark = pytest.mark.postgres

TICKET_DATES = [
    "TKT-Created Time",
    "TKT-Modified Time",
    "TKT-Actual Response Date",
    "TKT-Actual Resolution Date",
    "TKT-Closure Date",
    "TKT-SLA Closure Date",
    "Chg-Planned Start Date",
    "Chg-Planned End Date",
    "Chg-Actual Start Date",
    "Chg-Actual End Date",
]


@pytest.fixture
def postgresql(postgresql: psycopg.Connection) -> psycopg.Connection:
    """The per-test database's connection in autocommit: no test transaction holds locks."""
    postgresql.autocommit = True
    return postgresql


def migrate(db: Path, dsn: str, tmp_path: Path, **kw) -> object:
    kw.setdefault("contracts", False)
    kw.setdefault("backups_dir", tmp_path / "backups")
    return run(MigrateConfig(source=db, target=dsn, **kw))


def live_checksums(dsn: str, schema: str = "servicedesk") -> dict[str, tuple[int, str]]:
    return {p.name: pg_checksum(dsn, schema, p) for p in data_table_plans()}


def source_counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in ("tickets", "comments", "timesheets")}


def schemas(conn: psycopg.Connection, prefix: str = "servicedesk") -> set[str]:
    return {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (prefix + "%",))}


def test_types_come_from_the_contracts_and_counts_and_checksums_match(small_clean_db: Path, pg_dsn: str, postgresql, tmp_path: Path) -> None:
    result = migrate(small_clean_db, pg_dsn, tmp_path, canary=True)
    assert result.status == LIVE
    assert all(t.matches for t in result.tables)
    assert {t.name: t.loaded_rows for t in result.tables} == source_counts(small_clean_db)
    assert all(t.rejected_rows == 0 for t in result.tables)
    assert result.canary and all(t.matches for t in result.canary)

    types = {
        (r[0], r[1]): r[2]
        for r in postgresql.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'servicedesk'"
        )
    }
    for column in TICKET_DATES:
        assert types[("tickets", column)] == "timestamp without time zone", column
    assert types[("comments", "created_time")] == "timestamp without time zone"
    assert types[("timesheets", "TS-Date")] == "date"
    assert types[("tickets", "TKT-Ticket ID")] == "bigint"
    assert types[("tickets", "TKT-Account Id")] == "bigint"
    assert types[("timesheets", "TS-Hours")] == "numeric"
    assert types[("tickets", "TKT-SLA Met")] == "text"
    assert not any(t == "text" for (table, col), t in types.items() if col in TICKET_DATES)

    # Values survive exactly: an id stored as REAL is its integer, a 16-digit double is
    # kept to 15 significant digits (PostgreSQL's own float8 -> numeric), text with tabs,
    # newlines, backslashes and quotes unchanged.
    row = postgresql.execute(
        'SELECT "TKT-Account Id", "TKT-Title", "TKT-Created Time" FROM servicedesk.tickets ORDER BY "TKT-Ticket ID" LIMIT 1'
    ).fetchone()
    with sqlite3.connect(small_clean_db) as lite:
        src = lite.execute('SELECT "TKT-Account Id", "TKT-Title", "TKT-Created Time" FROM tickets ORDER BY "TKT-Ticket ID" LIMIT 1').fetchone()
    assert isinstance(src[0], float) and row[0] == int(src[0])
    assert row[1] == src[1] and "\t" in row[1] and "\\" in row[1]
    assert row[2].isoformat(sep=" ") == src[2]

    # Keys and the dashboard indexes.
    keys = {
        r[0]: r[1]
        for r in postgresql.execute(
            "SELECT c.conrelid::regclass::text, c.contype FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
            "WHERE n.nspname = 'servicedesk' AND c.contype IN ('p', 'u')"
        )
    }
    assert keys["servicedesk.tickets"] == "p" and keys["servicedesk.comments"] == "p"
    assert "servicedesk.timesheets" in keys
    indexed = postgresql.execute(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = 'servicedesk' AND indexdef NOT LIKE '%UNIQUE%'"
    ).fetchone()[0]
    assert indexed == 10
    plan = postgresql.execute(
        """EXPLAIN SELECT count(*) FROM servicedesk.tickets WHERE "TKT-Status" = 'Closed'"""
    ).fetchall()
    assert plan  # the query runs; index use depends on statistics at this size


def test_same_source_is_not_loaded_twice_unless_forced(small_clean_db: Path, pg_dsn: str, postgresql, tmp_path: Path) -> None:
    first = migrate(small_clean_db, pg_dsn, tmp_path, canary=False)
    again = migrate(small_clean_db, pg_dsn, tmp_path, canary=False)
    assert again.status == "skipped" and "--force" in again.message
    assert again.version_schema == first.version_schema
    forced = migrate(small_clean_db, pg_dsn, tmp_path, canary=False, force=True)
    assert forced.status == LIVE and forced.previous_version == first.version_schema
    assert schemas(postgresql) >= {"servicedesk", first.version_schema}
    rows = versions(pg_dsn, "servicedesk")
    assert [r.status for r in rows] == ["live", "retained"]
    assert rows[0].rows == {t.name: t.loaded_rows for t in forced.tables}
    assert rows[0].source_sha256 == forced.source_sha256


def test_refused_rows_go_to_the_rejects_table_with_the_servers_message(tmp_path: Path, pg_dsn: str, postgresql) -> None:
    db = build_clean_db(tmp_path / "bad.db", tickets=40)
    with sqlite3.connect(db) as lite:
        ids = [r[0] for r in lite.execute('SELECT "TKT-Ticket ID" FROM tickets ORDER BY rowid LIMIT 4')]
        # Day-first text PostgreSQL's DateStyle would read month-first: never sent.
        lite.execute('UPDATE tickets SET "TKT-Actual Response Date" = \'05/07/2025 08:42\' WHERE "TKT-Ticket ID" = ?', (ids[0],))
        # ISO-shaped but impossible: the server refuses it.
        lite.execute('UPDATE tickets SET "TKT-Closure Date" = \'2025-02-30 10:00:00\' WHERE "TKT-Ticket ID" = ?', (ids[1],))
        # A NULL where the contract says NOT NULL.
        lite.execute('UPDATE tickets SET "TKT-Status" = NULL WHERE "TKT-Ticket ID" = ?', (ids[2],))
        # A duplicate ticket id: the later row is refused by the primary key.
        cols = [r[1] for r in lite.execute("PRAGMA table_info(tickets)")]
        lite.execute(f'INSERT INTO tickets SELECT {", ".join(chr(34) + c + chr(34) for c in cols)} FROM tickets WHERE "TKT-Ticket ID" = ?', (ids[3],))
    before = source_counts(db)

    # Not tolerated (the default): the gate fails, nothing goes live, no schema is left.
    with pytest.raises(GateFailed) as info:
        migrate(db, pg_dsn, tmp_path, canary=False)
    assert "refused 4 rows" in str(info.value)
    assert schemas(postgresql) == {"servicedesk_meta"}
    rejects = postgresql.execute(
        "SELECT source_rowid, sqlstate, message FROM servicedesk_meta.rejects ORDER BY source_rowid"
    ).fetchall()
    assert len(rejects) == 4
    messages = " | ".join(r[2] for r in rejects)
    assert "not ISO 8601" in messages  # the DateStyle guard
    assert "date/time field value out of range" in messages  # the server's own words
    assert "null value in column" in messages
    assert "could not create unique index" in messages or "duplicate key" in messages
    assert {r[1] for r in rejects} >= {"22007", "22008", "23502", "23505"}

    # Tolerated by configuration: the rest goes live, counts exact, checksums equal.
    settings = Settings().with_overrides(**{"migrate.tolerated_rejects": 4})
    result = migrate(db, pg_dsn, tmp_path, canary=False, settings=settings)
    assert result.rejects == 4
    tickets = {t.name: t for t in result.tables}["tickets"]
    assert tickets.loaded_rows == before["tickets"] - 4 and tickets.matches
    assert postgresql.execute("SELECT count(*) FROM servicedesk.tickets").fetchone()[0] == before["tickets"] - 4
    # The first of the duplicated rows stays.
    assert postgresql.execute('SELECT count(*) FROM servicedesk.tickets WHERE "TKT-Ticket ID" = %s', (ids[3],)).fetchone()[0] == 1


def test_parts_load_at_once_and_the_first_loaded_duplicate_stays(tmp_path: Path, pg_dsn: str, postgresql, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables cut into many rowid ranges, loaded by three workers at once: every row
    arrives once (counts and checksums), and of duplicated keys the first occurrence
    the server accepted stays, found by its content (the server's row order is not the
    source's), even when its copies sit in other parts."""
    import pipeline.migrate as migrate_module

    monkeypatch.setattr("pipeline.migrate.PART_ROWS", 7)
    split = migrate_module._rowid_parts
    parts: dict[str, int] = {}

    def counted(lite, plan, rows=None):  # noqa: ANN001, ANN202 - a spy on the split
        found = split(lite, plan, rows)
        parts[plan.name] = len(found)
        return found

    monkeypatch.setattr("pipeline.migrate._rowid_parts", counted)
    db = build_clean_db(tmp_path / "dups.db", tickets=40)
    with sqlite3.connect(db) as lite:
        cols = ", ".join(f'"{r[1]}"' for r in lite.execute("PRAGMA table_info(comments)"))
        picked = cols.replace('"comment_text"', "?")  # the other columns copied, a new text
        first, second = [r[0] for r in lite.execute("SELECT comment_id FROM comments WHERE rowid IN (1, 2) ORDER BY rowid")]
        # Copies of an early comment with other texts, at the end of the table (later parts).
        for text in ("later copy one", "later copy two"):
            lite.execute(f"INSERT INTO comments ({cols}) SELECT {picked} FROM comments WHERE rowid = 1", (text,))
        # The first occurrence of another id is refused by the server: its copy stays.
        lite.execute(f"INSERT INTO comments ({cols}) SELECT {picked} FROM comments WHERE rowid = 2", ("the copy that stays",))
        lite.execute("UPDATE comments SET created_time = '2025-02-30 10:00:00' WHERE rowid = 2")
        original = lite.execute("SELECT comment_text FROM comments WHERE rowid = 1").fetchone()[0]
    before = source_counts(db)
    settings = Settings().with_overrides(**{"migrate.tolerated_rejects": 3})
    result = migrate(db, pg_dsn, tmp_path, canary=False, settings=settings, parallel=3)
    comments = {t.name: t for t in result.tables}["comments"]
    assert result.rejects == 3 and all(t.matches for t in result.tables), result.tables
    assert comments.loaded_rows == before["comments"] - 3
    kept = dict(postgresql.execute("SELECT comment_id, comment_text FROM servicedesk.comments WHERE comment_id = ANY(%s)", ([first, second],)).fetchall())
    assert kept == {first: original, second: "the copy that stays"}
    assert postgresql.execute("SELECT count(*) FROM servicedesk_meta.rejects WHERE sqlstate = '23505'").fetchone()[0] == 2
    assert parts["comments"] > 10 and parts["timesheets"] > 10, parts  # many parts, loaded by three workers


def test_a_failing_worker_stops_the_others_and_leaves_no_schema(tmp_path: Path, pg_dsn: str, postgresql, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pipeline.migrate.PART_ROWS", 5)
    db = build_clean_db(tmp_path / "bad.db", tickets=30)
    with sqlite3.connect(db) as lite:
        last = lite.execute("SELECT max(rowid) FROM timesheets").fetchone()[0]
        lite.execute('UPDATE timesheets SET "TS-Date" = \'2025-02-30\' WHERE rowid = ?', (last,))
    with pytest.raises(GateFailed) as info:
        migrate(db, pg_dsn, tmp_path, canary=False, on_error="stop", parallel=3)
    assert "timesheets" in str(info.value) and "out of range" in str(info.value)
    assert schemas(postgresql) == {"servicedesk_meta"}


@pytest.mark.parametrize("mode", ["processes", "threads"])
def test_load_workers_are_processes_unless_a_thread_runs_beside(
    tmp_path: Path, pg_dsn: str, postgresql, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """The load's workers are forked processes where the migration runs alone (no GIL
    shared between them), threads of this process where another thread runs (a fork
    could inherit a lock that thread holds): the same rows and checksums either way."""
    import threading

    import pipeline.migrate as migrate_module

    monkeypatch.setattr("pipeline.migrate.PART_ROWS", 9)
    forked: list[bool] = []
    workers = migrate_module._Workers.__init__

    def spying(self, *args, **kwargs) -> None:  # noqa: ANN001
        workers(self, *args, **kwargs)
        forked.append(self.forked)

    monkeypatch.setattr(migrate_module._Workers, "__init__", spying)
    db = build_clean_db(tmp_path / "w.db", tickets=40)
    stop = threading.Event()
    beside = threading.Thread(target=stop.wait)
    if mode == "threads":
        beside.start()
    try:
        result = migrate(db, pg_dsn, tmp_path, canary=True, parallel=2)
    finally:
        stop.set()
        if beside.ident is not None:
            beside.join()
    assert forked == [mode == "processes"] * 2  # the canary's load, then the version's
    assert all(t.matches for t in result.tables) and all(t.matches for t in result.canary)
    assert {t.name: t.loaded_rows for t in result.tables} == source_counts(db)


def test_a_killed_load_worker_fails_the_run_with_a_remedy(tmp_path: Path, pg_dsn: str, postgresql, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker process killed mid-load (the kernel's OOM killer) stops the others: the
    run fails with a message and a remedy, leaves no schema, and the next run loads."""
    import signal

    import pipeline.migrate as migrate_module
    from pipeline.errors import TryAgain

    monkeypatch.setattr("pipeline.migrate.PART_ROWS", 5)
    db = build_clean_db(tmp_path / "k.db", tickets=30)
    copy = migrate_module._Loader.copy
    parent = os.getpid()

    def killed(self, table, condition, *args, **kwargs):  # noqa: ANN001, ANN202
        if os.getpid() != parent and table.plan.name == "comments" and condition.startswith("rowid >="):
            os.kill(os.getpid(), signal.SIGKILL)
        return copy(self, table, condition, *args, **kwargs)

    monkeypatch.setattr(migrate_module._Loader, "copy", killed)
    with pytest.raises(TryAgain) as info:
        migrate(db, pg_dsn, tmp_path, canary=False, parallel=2)
    assert "load worker" in str(info.value) and "exit code -9" in str(info.value) and "fix:" in str(info.value)
    assert schemas(postgresql) == {"servicedesk_meta"}
    monkeypatch.setattr(migrate_module._Loader, "copy", copy)
    result = migrate(db, pg_dsn, tmp_path, canary=False, parallel=2)
    assert {t.name: t.loaded_rows for t in result.tables} == source_counts(db)


def test_a_table_that_cannot_be_finished_stops_the_load_with_its_own_error(tmp_path: Path, pg_dsn: str, postgresql, monkeypatch: pytest.MonkeyPatch) -> None:
    """A duplicate key with --on-error stop fails the finishing of the table with the most
    parts (finished first) while the other tables load: that GateFailed is what the run
    raises (review: the other tables' missing results raised KeyError instead)."""
    monkeypatch.setattr("pipeline.migrate.PART_ROWS", 20)
    db = build_clean_db(tmp_path / "dup.db", tickets=400, seed=2)
    with sqlite3.connect(db) as lite:
        counts = {t: lite.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("comments", "timesheets")}
        largest = max(counts, key=counts.get)
        cols = ", ".join(f'"{r[1]}"' for r in lite.execute(f"PRAGMA table_info({largest})"))
        lite.execute(f"INSERT INTO {largest} ({cols}) SELECT {cols} FROM {largest} WHERE rowid = 1")
    with pytest.raises(GateFailed) as info:
        migrate(db, pg_dsn, tmp_path, canary=False, on_error="stop", parallel=2, settings=Settings().with_overrides(**{"migrate.batch_rows": 5}))
    assert largest in str(info.value)
    assert schemas(postgresql) == {"servicedesk_meta"}


def test_on_error_stop_fails_at_the_first_refused_row(tmp_path: Path, pg_dsn: str, postgresql) -> None:
    db = build_clean_db(tmp_path / "bad.db", tickets=30)
    with sqlite3.connect(db) as lite:
        lite.execute("UPDATE comments SET created_time = '2025-13-01 00:00:00' WHERE rowid = 3")
    with pytest.raises(GateFailed) as info:
        migrate(db, pg_dsn, tmp_path, canary=False, on_error="stop")
    assert "comments" in str(info.value) and "out of range" in str(info.value)
    assert schemas(postgresql) == {"servicedesk_meta"}


def test_missing_contract_column_fails_loudly(tmp_path: Path, pg_dsn: str) -> None:
    db = build_clean_db(tmp_path / "bad.db", tickets=10)
    with sqlite3.connect(db) as lite:
        lite.execute('ALTER TABLE timesheets DROP COLUMN "TS-Hours"')
    with pytest.raises(InputFileError) as info:
        migrate(db, pg_dsn, tmp_path)
    assert "TS-Hours" in str(info.value)


def test_hostile_identifiers_stay_identifiers(postgresql) -> None:
    """A header with quotes and semicolons is one quoted column name, never SQL."""
    evil = 'x"; DROP TABLE victim; --'
    postgresql.execute("CREATE SCHEMA s")
    postgresql.execute("CREATE TABLE s.victim (a int)")
    plan = TablePlan(name='t"; DROP SCHEMA s CASCADE; --', columns=((evil, "text", True), ("ok", "bigint", False)), key=("ok",), key_is_primary=True, indexes=((evil,),))
    from pipeline.pgschema import add_key, create_indexes

    postgresql.execute(create_table("s", plan))
    postgresql.execute(add_key("s", plan))
    for statement in create_indexes("s", plan):
        postgresql.execute(statement)
    postgresql.execute(sql.SQL("INSERT INTO {} VALUES ('v', 1)").format(qualified("s", plan.name)))
    names = [r[0] for r in postgresql.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = 's' AND table_name = %s ORDER BY ordinal_position", (plan.name,))]
    assert names == [evil, "ok"]
    assert postgresql.execute("SELECT count(*) FROM s.victim").fetchone()[0] == 0  # still there


def test_rollback_restores_the_previous_data_exactly_and_the_reader_follows(tmp_path: Path, pg_dsn: str, postgresql) -> None:
    first_db = build_clean_db(tmp_path / "first.db", tickets=30, seed=1)
    second_db = build_clean_db(tmp_path / "second.db", tickets=45, seed=2)
    migrate(first_db, pg_dsn, tmp_path, canary=False)
    first = live_checksums(pg_dsn)
    postgresql.execute("ALTER ROLE servicedesk_reader LOGIN")
    reader = make_conninfo(pg_dsn, user="servicedesk_reader")

    def read_as_reader() -> int:
        with psycopg.connect(reader) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DELETE FROM servicedesk.tickets")
            conn.rollback()
            return conn.execute("SELECT count(*) FROM servicedesk.tickets").fetchone()[0]

    assert read_as_reader() == 30
    result = migrate(second_db, pg_dsn, tmp_path, canary=False)
    assert read_as_reader() == 45  # after the cut-over
    second = live_checksums(pg_dsn)
    assert second != first

    back = rollback(pg_dsn, "servicedesk")
    assert back.replaced == result.version_schema
    assert live_checksums(pg_dsn) == first  # exactly the previous data
    assert read_as_reader() == 30  # after the rollback
    assert [r.status for r in versions(pg_dsn, "servicedesk")] == ["rolled_back", "live"]

    # Roll forward explicitly to the rolled-back version.
    rollback(pg_dsn, "servicedesk", to=result.version_schema)
    assert live_checksums(pg_dsn) == second


def test_old_versions_beyond_the_retention_are_dropped(tmp_path: Path, pg_dsn: str, postgresql) -> None:
    settings = Settings().with_overrides(**{"migrate.keep_versions": 1})
    made = []
    for seed in range(3):
        db = build_clean_db(tmp_path / f"v{seed}.db", tickets=10, seed=seed)
        made.append(migrate(db, pg_dsn, tmp_path, canary=False, settings=settings).version_schema)
    assert schemas(postgresql) == {"servicedesk", "servicedesk_meta", made[1]}
    history = {r.version_schema: r.status for r in versions(pg_dsn, "servicedesk", include_history=True)}
    assert history == {made[0]: "dropped", made[1]: "retained", made[2]: "live"}


def test_canary_is_a_deterministic_tenth_with_related_rows(small_clean_db: Path) -> None:
    plans = {p.name: p for p in data_table_plans()}
    with sqlite3.connect(small_clean_db) as lite:
        picked = [r[0] for r in lite.execute(f'SELECT "TKT-Ticket ID" FROM tickets WHERE {canary_condition(plans["tickets"], 0.1)}')]
        total = lite.execute("SELECT count(*) FROM tickets").fetchone()[0]
        comments = lite.execute(f"SELECT DISTINCT ticket_id FROM comments WHERE {canary_condition(plans['comments'], 0.1)}").fetchall()
    assert 0 < len(picked) < total / 4
    assert {c[0] for c in comments} <= set(picked)  # comments follow their tickets
    rows, checksum = sqlite_checksum(small_clean_db, plans["tickets"], where=canary_condition(plans["tickets"], 0.1))
    assert rows == len(picked)
    assert sqlite_checksum(small_clean_db, plans["tickets"], where=canary_condition(plans["tickets"], 0.1)) == (rows, checksum)


def test_a_failing_canary_stops_before_the_full_load(tmp_path: Path, pg_dsn: str, postgresql) -> None:
    good = build_clean_db(tmp_path / "good.db", tickets=20)
    migrate(good, pg_dsn, tmp_path, canary=False)
    live_before = live_checksums(pg_dsn)
    bad = build_clean_db(tmp_path / "bad.db", tickets=40, seed=3)
    with sqlite3.connect(bad) as lite:
        lite.execute("UPDATE comments SET created_time = 'yesterday'")  # every comment: canary sees it
    with pytest.raises(GateFailed) as info:
        migrate(bad, pg_dsn, tmp_path, canary=True)
    assert "canary" in str(info.value)
    run_row = postgresql.execute(
        "SELECT status, canary_schema, version_schema, counts FROM servicedesk_meta.migrations ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert run_row[0] == "failed" and run_row[3] is None  # never reached the full load
    assert schemas(postgresql) == {"servicedesk", "servicedesk_meta", *[]} | {
        s for s in schemas(postgresql) if s.startswith("servicedesk_v")
    }
    assert not any(s.startswith("servicedesk_canary") for s in schemas(postgresql))
    assert live_checksums(pg_dsn) == live_before


@pytest.mark.slow
def test_contracts_and_dashboards_run_on_postgres_before_cutover(small_clean_db: Path, pg_dsn: str, tmp_path: Path) -> None:
    pytest.importorskip("contracts.gate")
    result = migrate(small_clean_db, pg_dsn, tmp_path, canary=True, contracts=True)
    assert result.status == LIVE
    assert result.scores["target"] >= result.scores["source"]
    assert result.scores["target"] >= 80
    if result.scores.get("dashboards") is not None:
        assert result.scores["dashboards"] > 0


def test_text_that_is_not_utf8_or_holds_nul_is_refused_by_the_server(tmp_path: Path, pg_dsn: str, postgresql) -> None:
    db = build_clean_db(tmp_path / "bytes.db", tickets=20)
    with sqlite3.connect(db) as lite:
        lite.execute("UPDATE comments SET comment_text = CAST(X'41FF42' AS TEXT) WHERE rowid = 2")
        lite.execute("UPDATE comments SET comment_text = 'a' || char(0) || 'b' WHERE rowid = 3")
    settings = Settings().with_overrides(**{"migrate.tolerated_rejects": 2})
    result = migrate(db, pg_dsn, tmp_path, canary=False, settings=settings)
    assert result.rejects == 2 and all(t.matches for t in result.tables)
    messages = [r[0] for r in postgresql.execute("SELECT message FROM servicedesk_meta.rejects WHERE table_name = 'comments'")]
    assert len(messages) == 2 and all("invalid byte sequence for encoding" in m for m in messages), messages


def _untyped_hours(lite: sqlite3.Connection) -> None:
    """No declared type on TS-Hours, so that SQLite keeps numbers written as text as they are."""
    ddl = lite.execute("SELECT sql FROM sqlite_master WHERE name = 'timesheets'").fetchone()[0]
    lite.execute("ALTER TABLE timesheets RENAME TO timesheets_typed")
    lite.execute(ddl.replace('"TS-Hours" REAL', '"TS-Hours"'))
    lite.execute("INSERT INTO timesheets SELECT * FROM timesheets_typed")
    lite.execute("DROP TABLE timesheets_typed")


def test_a_nul_byte_never_cuts_a_date_or_number_short(tmp_path: Path, pg_dsn: str, postgresql) -> None:
    """length() and GLOB stop at a NUL byte: a date or a number with a NUL tail is refused,
    not loaded without its tail; a NUL in text beside a value holding the line's QUOTE
    never makes a line whose quote count looks right (a review found that with printf)."""
    db = build_clean_db(tmp_path / "nul.db", tickets=20)
    with sqlite3.connect(db) as lite:
        _untyped_hours(lite)
        lite.execute("UPDATE comments SET created_time = '2025-03-01 10:00:00' || char(0) || 'x' WHERE rowid = 1")
        lite.execute("UPDATE comments SET created_time = '2025-03-01 10:00:00.5' || char(0) || '7' WHERE rowid = 2")
        lite.execute("""UPDATE timesheets SET "TS-Date" = '2025-03-01' || char(0) WHERE rowid = 1""")
        lite.execute("""UPDATE timesheets SET "TS-Hours" = '12' || char(0) || '5' WHERE rowid = 2""")
        lite.execute("UPDATE comments SET comment_text = 'p' || char(1) || ',' || char(1) || 'q', user_name = char(0) || 'A' WHERE rowid = 3")
    settings = Settings().with_overrides(**{"migrate.tolerated_rejects": 5})
    result = migrate(db, pg_dsn, tmp_path, canary=False, settings=settings)
    assert result.rejects == 5 and all(t.matches for t in result.tables), result.tables
    rejected = postgresql.execute("SELECT table_name, source_rowid FROM servicedesk_meta.rejects ORDER BY 1, 2").fetchall()
    assert rejected == [("comments", 1), ("comments", 2), ("comments", 3), ("timesheets", 1), ("timesheets", 2)]


@pytest.mark.parametrize("row_hash", ["crc32c", "crc32", "md5"])
def test_every_row_hash_agrees_between_sqlite_and_the_server(
    small_clean_db: Path, pg_dsn: str, tmp_path: Path, row_hash: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CRC-32C (PostgreSQL 18 and later, google-crc32c in C), CRC-32 (the same servers
    where google-crc32c has no C build) and MD5 (older servers): the same checksum
    computed by Python over SQLite's lines and by the server over the rows it stored; a
    migration validates with the choice for its server (CRC-32 and MD5 here by making
    the package or the server look older)."""
    import google_crc32c

    from pipeline import migrate as migrate_module

    assert google_crc32c.implementation == "c" and migrate_module.DEFAULT_ROW_HASH == "crc32c"
    if row_hash == "crc32":
        monkeypatch.setattr("pipeline.migrate.DEFAULT_ROW_HASH", "crc32")
    if row_hash == "md5":
        monkeypatch.setattr("pipeline.migrate.CRC32_SINCE", 10**9)
    result = migrate(small_clean_db, pg_dsn, tmp_path, canary=False)
    assert all(t.matches and t.checksum_source.startswith(row_hash + ":") for t in result.tables), result.tables
    for plan in data_table_plans():
        source = sqlite_checksum(small_clean_db, plan, row_hash=row_hash)
        assert source == pg_checksum(pg_dsn, "servicedesk", plan, row_hash)
        assert source[1].startswith(f"{row_hash}:{source[0]}:")


def test_a_batch_goes_whole_only_when_its_quotes_are_exactly_the_expected(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hashing stage counts the QUOTEs of a joined batch (in slices) against the sum
    expected: a value holding a QUOTE sends the batch to the row-by-row path, where that
    row is rendered by Python; a usable batch is joined, hashed and passed whole."""
    import zlib

    from pipeline.migrate import _hashed, _quotes_in

    monkeypatch.setattr("pipeline.migrate.COUNT_SLICE_BYTES", 3)
    good = [(1, b"5,\x01a\x01,\x01bc\x01", 4, None), (2, b"6,,\x01d\x01", 2, None)]
    assert _quotes_in(b"".join(row[1] for row in good)) == 6
    (rows, hashes, data), = _hashed([good], zlib.crc32)
    assert data == good[0][1] + b"\n" + good[1][1] and hashes == {1: zlib.crc32(good[0][1]), 2: zlib.crc32(good[1][1])}
    inner = [good[0], (2, b"6,,\x01d\x01\x01\x01\x01", 2, None)]  # "d" + a doubled quote would read as d\x01
    (rows, hashes, data), = _hashed([inner], zlib.crc32)
    assert data is None and rows == [(1, good[0][1], None), (2, None, None)] and list(hashes) == [1]


def test_copy_lines_carry_typed_values_first_and_the_long_text_last() -> None:
    """The COPY line's field order (``plan.line_columns``): every column once, typed ones
    first, text after, the contract's long text last (SQLite copies the line built so
    far at each concatenation, so a 2 KB comment at the end is copied once)."""
    for plan in data_table_plans():
        order = plan.line_columns
        assert sorted(order) == sorted(plan.columns)
        kinds = [pgtype == "text" for _, pgtype, _ in order]
        assert kinds == sorted(kinds), plan.name
        longs = [name in plan.long_text for name, _, _ in order]
        assert longs == sorted(longs) and any(longs), plan.name
    comments = {p.name: p for p in data_table_plans()}["comments"]
    assert comments.line_columns[-1][0] == "comment_text"


def test_values_the_copy_lines_must_carry_exactly(tmp_path: Path, pg_dsn: str, postgresql) -> None:
    """SQLite builds each row's CSV COPY line; values it cannot print as PostgreSQL does
    (numbers in other notations), text holding the line's quote character, commas,
    quotes, newlines, empty text next to NULL, and times at the day's edges all arrive
    exactly, and the checksums (the line's hash on both sides) agree."""
    db = build_clean_db(tmp_path / "edges.db", tickets=20)
    hours = ["1.50", ".5", "1e3", "-0", " 2.25 ", "007", 1e20, 0.00001, -0.0, 3, 2.0]
    texts = ["a\x01b", 'say "hi", then\nleave\r\n', "", None, "back\\slash\\N", "\\.", "x\x01\x01y", "t\tab"]
    with sqlite3.connect(db) as lite:
        _untyped_hours(lite)
        ids = [r[0] for r in lite.execute("SELECT rowid FROM timesheets ORDER BY rowid LIMIT ?", (len(hours),))]
        for rowid, hour in zip(ids, hours):
            lite.execute('UPDATE timesheets SET "TS-Hours" = ? WHERE rowid = ?', (hour, rowid))
        cids = [r[0] for r in lite.execute("SELECT rowid FROM comments ORDER BY rowid LIMIT ?", (len(texts),))]
        for rowid, text in zip(cids, texts):
            lite.execute("UPDATE comments SET comment_text = ? WHERE rowid = ?", (text, rowid))
        lite.execute("UPDATE comments SET created_time = '2025-03-01T23:59:59.250000' WHERE rowid = ?", (cids[0],))
        lite.execute("UPDATE comments SET created_time = '2025-03-01 10:15' WHERE rowid = ?", (cids[1],))
        lite.execute("UPDATE comments SET created_time = '2025-03-01 24:00:00' WHERE rowid = ?", (cids[2],))
        comment_ids = [lite.execute("SELECT comment_id FROM comments WHERE rowid = ?", (r,)).fetchone()[0] for r in cids]
        keys = [lite.execute('SELECT "TS-Crm ID", "TS-User Username", "TS-Date", "TS-Time From" FROM timesheets WHERE rowid = ?', (r,)).fetchone() for r in ids]
    settings = Settings().with_overrides(**{"migrate.tolerated_rejects": 1})
    result = migrate(db, pg_dsn, tmp_path, canary=False, settings=settings)
    assert all(t.matches for t in result.tables), result.tables
    rejected = postgresql.execute("SELECT table_name, sqlstate, message FROM servicedesk_meta.rejects").fetchall()
    assert len(rejected) == 1 and rejected[0][0] == "comments" and "24:00:00" in rejected[0][2], rejected

    got = dict(postgresql.execute("SELECT comment_id, comment_text FROM servicedesk.comments WHERE comment_id = ANY(%s)", (comment_ids,)).fetchall())
    for cid, text in zip(comment_ids[:2] + comment_ids[3:], texts[:2] + texts[3:]):
        assert got[cid] == text, (cid, got[cid], text)
    created = postgresql.execute("SELECT created_time::text FROM servicedesk.comments WHERE comment_id = %s", (comment_ids[0],)).fetchone()[0]
    assert created == "2025-03-01 23:59:59.25"
    wanted = ["1.50", "0.5", "1000", "0", "2.25", "7", "100000000000000000000", "0.000010", "0.0", "3", "2.0"]
    for key, want in zip(keys, wanted):
        row = postgresql.execute(
            'SELECT "TS-Hours"::text FROM servicedesk.timesheets WHERE "TS-Crm ID" = %s AND "TS-User Username" = %s AND "TS-Date" = %s::date '
            'AND "TS-Time From" IS NOT DISTINCT FROM %s',
            key,
        ).fetchall()
        assert [r[0] for r in row] == [want], (key, row, want)
    plans = {p.name: p for p in data_table_plans()}
    assert sqlite_checksum(db, plans["timesheets"]) == pg_checksum(pg_dsn, "servicedesk", plans["timesheets"])


@pytest.mark.slow
def test_known_source_score_and_the_validation_gate_files(small_clean_db: Path, pg_dsn: str, tmp_path: Path) -> None:
    """A source score is taken as given only for the file it was computed on; the
    validation's contract run writes its JUnit XML and JSON where asked and comes back
    as ``result.gate``."""
    pytest.importorskip("contracts.gate")
    from pipeline.sources import sha256_file

    sha = sha256_file(small_clean_db)
    junit, report = tmp_path / "gate3-junit.xml", tmp_path / "gate3.json"
    result = migrate(
        small_clean_db, pg_dsn, tmp_path, canary=False, contracts=True,
        source_score=12.5, source_score_sha256=sha, gate_junitxml=junit, gate_report=report,
    )
    assert result.status == LIVE and result.scores["source"] == 12.5
    assert result.gate is not None and result.gate.passed and result.gate.quality == result.scores["target"]
    assert junit.read_text().lstrip().startswith("<?xml") and "testsuite" in junit.read_text()
    assert json.loads(report.read_text()) == result.gate.report
    assert result.as_dict()["gate"]["passed"] is True

    again = migrate(small_clean_db, pg_dsn, tmp_path, canary=False, contracts=True, force=True, source_score=12.5, source_score_sha256="0" * 64)
    assert again.scores["source"] != 12.5 and again.scores["source"] is not None  # computed on the file instead
    assert again.gate is not None and again.gate.passed


def test_a_version_is_vacuumed_and_analysed_before_its_validation(small_clean_db: Path, pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each loaded table is vacuumed and analysed before the validation reads it: its
    pages are all-visible (index-only scans for the dashboard queries) and autovacuum
    has nothing left to do on it while the migration validates."""
    from pipeline import migrate as migrate_module

    seen: dict[str, dict] = {}
    checksums = migrate_module.compare_checksums

    def spying(conninfo: str, schema: str, *args: object) -> object:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:  # the statistics of now, not of a transaction's snapshot
            rows = conn.execute(
                "SELECT c.relname, s.last_vacuum IS NOT NULL, s.last_analyze IS NOT NULL, c.relallvisible = c.relpages "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_stat_user_tables s ON s.relid = c.oid "
                "WHERE n.nspname = %s AND c.relkind = 'r'",
                (schema,),
            ).fetchall()
        seen[schema] = {r[0]: r[1:] for r in rows}
        return checksums(conninfo, schema, *args)

    monkeypatch.setattr(migrate_module, "compare_checksums", spying)
    result = migrate(small_clean_db, pg_dsn, tmp_path, canary=True)
    assert result.status == LIVE
    names = {p.name for p in data_table_plans()}
    assert len(seen) == 2  # the canary and the version, while they were validated
    for tables in seen.values():
        assert {t: v for t, v in tables.items() if t in names} == {t: (True, True, True) for t in names}, tables

"""PostgresSource: the Source protocol on a migrated schema, so the executor runs unchanged."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from pipeline.errors import ConfigError
from pipeline.migrate import MigrateConfig, run
from pipeline.pgsource import PostgresSource
from pipeline.sources import SQLiteSource

pytestmark = pytest.mark.postgres


@pytest.fixture
def migrated(small_clean_db: Path, pg_dsn: str, postgresql: psycopg.Connection, tmp_path: Path) -> str:
    postgresql.autocommit = True
    run(MigrateConfig(source=small_clean_db, target=pg_dsn, canary=False, contracts=False, backups_dir=tmp_path / "b"))
    return pg_dsn


def test_tables_columns_and_counts(migrated: str, small_clean_db: Path) -> None:
    with PostgresSource(migrated, "servicedesk") as pg, SQLiteSource(small_clean_db) as lite:
        assert pg.tables() == ["comments", "tickets", "timesheets"]
        types = dict(pg.columns("tickets"))
        assert types["TKT-Created Time"] == "timestamp" and types["TKT-Ticket ID"] == "bigint"
        assert dict(pg.columns("timesheets"))["TS-Date"] == "date"
        assert [c for c, _ in pg.columns("tickets")] == [c for c, _ in lite.columns("tickets")]
        for table in pg.tables():
            assert pg.row_count(table) == lite.row_count(table)
        assert pg.primary_key("tickets") == ["TKT-Ticket ID"]
        assert "password" not in pg.label


def test_iter_batches_streams_typed_values_in_key_order(migrated: str) -> None:
    with PostgresSource(migrated, "servicedesk") as pg:
        batches = list(pg.iter_batches("tickets", ["TKT-Ticket ID", "TKT-Created Time", "TKT-Actual SLA Achievement"], batch_rows=7))
        assert all(len(b) <= 7 for b in batches) and len(batches) > 1
        rows = [r for b in batches for r in b]
        assert len(rows) == pg.row_count("tickets")
        ids = [r[0] for r in rows]
        assert ids == sorted(ids)
        assert all(isinstance(r[1], datetime) for r in rows)
        assert all(isinstance(r[2], Decimal) for r in rows if r[2] is not None)
        assert len(list(pg.iter_batches("tickets", ["TKT-Ticket ID"], limit=5))[0]) == 5
        # Two iterations may interleave (each on its own connection and snapshot).
        a = pg.iter_batches("comments", ["comment_id"], batch_rows=3)
        b = pg.iter_batches("timesheets", ["TS-Date"], batch_rows=3)
        first_a, first_b, second_a = next(a), next(b), next(a)
        assert isinstance(first_b[0][0], date) and first_a[0][0] < second_a[0][0]
        a.close()
        b.close()


def test_pushed_down_checks(migrated: str, small_clean_db: Path, postgresql: psycopg.Connection) -> None:
    postgresql.execute('CREATE TABLE servicedesk.dups ("k 1" bigint, "k;2" text)')
    postgresql.execute("""INSERT INTO servicedesk.dups VALUES (1, 'a'), (1, 'a'), (1, 'a'), (2, 'b'), (NULL, 'c'), (NULL, 'c')""")
    with PostgresSource(migrated, "servicedesk") as pg, SQLiteSource(small_clean_db) as lite:
        assert pg.duplicate_keys("dups", ["k 1", "k;2"]) == (2, [(1, "a")])
        # A full sample may leave repeated keys out: the total is then counted apart.
        assert pg.duplicate_keys("dups", ["k 1", "k;2"], limit=1) == (2, [(1, "a")])
        assert pg.duplicate_keys("dups", ["k 1"], limit=0) == (2, [])
        assert pg.duplicate_keys("tickets", ["TKT-Ticket ID"]) == (0, [])
        pg_orphans = pg.orphans("timesheets", "TS-Crm ID", "tickets", "TKT-Ticket ID", ignore=(0,))
        lite_orphans = lite.orphans("timesheets", "TS-Crm ID", "tickets", "TKT-Ticket ID", ignore=(0,))
        assert pg_orphans[:2] == lite_orphans[:2] and pg_orphans[0] > 0
        classes = pg.storage_classes("tickets", "TKT-Actual Resolution Date")
        with sqlite3.connect(small_clean_db) as conn:
            filled = conn.execute('SELECT count("TKT-Actual Resolution Date") FROM tickets').fetchone()[0]
            total = conn.execute("SELECT count(*) FROM tickets").fetchone()[0]
        assert classes == {"timestamp": filled, "null": total - filled}


def test_the_contract_executor_runs_unchanged_on_postgres(migrated: str, small_clean_db: Path) -> None:
    executor = pytest.importorskip("contracts.executor")
    with PostgresSource(migrated, "servicedesk") as pg:
        on_pg = executor.execute(pg)
    with SQLiteSource(small_clean_db) as lite:
        on_lite = executor.execute(lite)
    assert {r.id for r in on_pg.results} == {r.id for r in on_lite.results}
    assert not on_pg.failed, [r.id for r in on_pg.failed]
    # The REAL ids of the SQLite file are integers once typed by PostgreSQL.
    assert {r.id for r in on_lite.failed} >= {r.id for r in on_pg.failed}


def test_missing_schema_is_a_config_error(pg_dsn: str) -> None:
    with pytest.raises(ConfigError) as info:
        PostgresSource(pg_dsn, "no_such_schema")
    assert "migrate" in info.value.remedy


class _RowByRow:
    """A PostgresSource without ``value_counts``: the executor then streams every row."""

    def __init__(self, source: PostgresSource) -> None:
        self._source = source

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        if name in ("value_counts", "rows_with_values"):
            raise AttributeError(name)
        return getattr(self._source, name)


@pytest.mark.parametrize("share", ["default", "every column", "too many failing values"])
def test_checks_by_distinct_value_match_the_row_by_row_stream(
    migrated: str, postgresql: psycopg.Connection, monkeypatch: pytest.MonkeyPatch, share: str
) -> None:
    # Failures of every kind the by-value path judges: NULL, blank, placeholder, out of
    # the closed set, out of range, future dates, and numerics spelt two ways.
    executor = pytest.importorskip("contracts.executor")
    postgresql.autocommit = True
    ids = [r[0] for r in postgresql.execute('SELECT "TKT-Ticket ID" FROM servicedesk.tickets ORDER BY 1 DESC LIMIT 40').fetchall()]
    postgresql.execute('UPDATE servicedesk.tickets SET "TKT-Status" = \'  \' WHERE "TKT-Ticket ID" = ANY(%s)', (ids[:5],))
    postgresql.execute('UPDATE servicedesk.tickets SET "TKT-Status" = \'Bogus\' WHERE "TKT-Ticket ID" = ANY(%s)', (ids[5:20],))
    postgresql.execute('UPDATE servicedesk.tickets SET "TKT-Severity" = \'N/A\' WHERE "TKT-Ticket ID" = ANY(%s)', (ids[20:25],))
    postgresql.execute('UPDATE servicedesk.tickets SET "TKT-Created Time" = \'2999-01-01 10:00:00\' WHERE "TKT-Ticket ID" = ANY(%s)', (ids[25:30],))
    postgresql.execute('UPDATE servicedesk.tickets SET "TKT-Actual SLA Achievement" = 1.0 WHERE "TKT-Ticket ID" = ANY(%s)', (ids[30:33],))
    postgresql.execute('UPDATE servicedesk.tickets SET "TKT-Actual SLA Achievement" = 1.00 WHERE "TKT-Ticket ID" = ANY(%s)', (ids[33:36],))
    postgresql.execute('UPDATE servicedesk.tickets SET "TKT-Actual SLA Achievement" = -7 WHERE "TKT-Ticket ID" = ANY(%s)', (ids[36:40],))
    postgresql.execute('UPDATE servicedesk.timesheets SET "TS-Hours" = -3 WHERE ctid IN (SELECT ctid FROM servicedesk.timesheets LIMIT 30)')
    postgresql.execute("UPDATE servicedesk.comments SET created_time = '2999-06-01 08:00:00' WHERE ctid IN (SELECT ctid FROM servicedesk.comments LIMIT 12)")
    postgresql.execute("ANALYZE servicedesk.tickets, servicedesk.timesheets, servicedesk.comments")
    if share != "default":  # unique ids and timestamps too, not only repeating values
        monkeypatch.setattr(executor, "_GROUP_SHARE", float("inf"))
    if share == "too many failing values":  # every failing column falls back to the stream
        monkeypatch.setattr(executor, "_MAX_FAILING_VALUES", 0)
    today = date(2026, 1, 15)
    with PostgresSource(migrated, "servicedesk") as pg:
        by_value = executor.execute(pg, today=today)
        by_row = executor.execute(_RowByRow(pg), today=today)
    assert [r.to_json() for r in by_value.results] == [r.to_json() for r in by_row.results]
    failing = {r.id: r.failing for r in by_value.results if r.failing}
    assert any(k.startswith("tickets::TKT-Status::") for k in failing), failing
    assert any(k.startswith("tickets::TKT-Created Time::not_future") for k in failing), failing


def test_value_counts_interleave_and_match_a_plain_group_by(migrated: str, postgresql: psycopg.Connection) -> None:
    with PostgresSource(migrated, "servicedesk") as pg:
        a = pg.value_counts("tickets", "TKT-Status", batch_rows=1)
        b = pg.value_counts("timesheets", "TS-Hours", batch_rows=1)
        first_a, first_b = next(a), next(b)  # the second reads on a connection of its own
        statuses = {(v, n) for v, _, n in first_a + [row for batch in a for row in batch]}
        hours = first_b + [row for batch in b for row in batch]
        assert pg.row_count("tickets") == sum(n for _, n in statuses)
        assert all(text == str(v) for v, text, _ in hours if v is not None)
        assert not pg._grouping and not pg.conn.info.transaction_status  # idle again
    expected = set(postgresql.execute('SELECT "TKT-Status", count(*) FROM servicedesk.tickets GROUP BY 1').fetchall())
    assert statuses == expected


def _future_dates(postgresql: psycopg.Connection) -> None:
    """Future timestamps and dates in several batches (some settled, some not), and NULLs."""
    postgresql.autocommit = True
    ids = [r[0] for r in postgresql.execute('SELECT "TKT-Ticket ID" FROM servicedesk.tickets ORDER BY 1').fetchall()]
    future = ids[3:5] + ids[20:30] + ids[-3:]
    postgresql.execute('UPDATE servicedesk.tickets SET "TKT-Created Time" = \'2999-01-01 10:00:00\' WHERE "TKT-Ticket ID" = ANY(%s)', (future,))
    postgresql.execute('UPDATE servicedesk.tickets SET "TKT-Modified Time" = NULL WHERE "TKT-Ticket ID" = ANY(%s)', (ids[10:14],))
    postgresql.execute('UPDATE servicedesk.tickets SET "TKT-Modified Time" = now() + interval \'3 days\' WHERE "TKT-Ticket ID" = ANY(%s)', (ids[40:42],))
    postgresql.execute("UPDATE servicedesk.comments SET created_time = '2999-06-01 08:00:00' WHERE ctid IN (SELECT ctid FROM servicedesk.comments LIMIT 12)")
    postgresql.execute('UPDATE servicedesk.timesheets SET "TS-Date" = \'2999-03-01\' WHERE ctid IN (SELECT ctid FROM servicedesk.timesheets LIMIT 9)')
    postgresql.execute("ANALYZE servicedesk.tickets, servicedesk.timesheets, servicedesk.comments")


@pytest.mark.parametrize("batch", [7, 1000])
def test_profile_of_typed_dates_matches_the_full_judgement(
    migrated: str, postgresql: psycopg.Connection, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    # datetime and date values from PostgreSQL are counted by batch (``_typed_dates``); the
    # full judgement (date_readings of every value) must give the same profile.
    import dataclasses

    from pipeline import profile
    from pipeline.config import Settings

    _future_dates(postgresql)
    monkeypatch.setattr(profile, "_batch_rows", lambda *a: batch)
    called = []
    typed_dates = profile._ColumnScan._typed_dates
    monkeypatch.setattr(profile._ColumnScan, "_typed_dates", lambda self, *a: called.append(typed_dates(self, *a)) or called[-1])
    # A sample smaller than the tables: the fast paths are for sampled type detection.
    settings = Settings()
    settings = dataclasses.replace(settings, profile=dataclasses.replace(settings.profile, sample_size=10))
    now = datetime(2026, 1, 15, 12)
    with PostgresSource(migrated, "servicedesk") as pg:
        fast = profile.profile_source(pg, settings, now=now)
        monkeypatch.setattr(profile._ColumnScan, "_typed_dates", lambda self, *a: None)
        full = profile.profile_source(pg, settings, now=now)
    assert any(called) or batch > 100  # batches counted fast (with 7 rows: after the first)
    assert fast.tables == full.tables
    assert fast.findings == full.findings
    assert (fast.quality, fast.verdict, fast.reasons) == (full.quality, full.verdict, full.reasons)
    futures = {(f.table, f.column) for f in fast.findings if "FUTURE" in f.code}
    assert ("tickets", "TKT-Created Time") in futures and ("timesheets", "TS-Date") in futures, futures


def test_contract_checks_of_typed_dates_match_the_untyped_path(
    migrated: str, postgresql: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Typed dates are counted as is, judged once per type and their not_future decided by
    # the latest; counting by (type, repr) and judging each value must agree.
    executor = pytest.importorskip("contracts.executor")
    _future_dates(postgresql)
    monkeypatch.setattr(executor, "_GROUP_SHARE", 0.0)  # every column streamed row by row
    today = date(2026, 1, 15)
    with PostgresSource(migrated, "servicedesk") as pg:
        fast = executor.execute(pg, today=today)
        monkeypatch.setattr(executor, "_DATED_TYPES", executor._PLAIN_TYPES)
        monkeypatch.setattr(executor, "_typed_dates_judged_once", lambda judge, kind: judge)
        monkeypatch.setattr(executor, "_latest_on_time", lambda dated, limit_day: False)
        slow = executor.execute(pg, today=today)
    assert [r.to_json() for r in fast.results] == [r.to_json() for r in slow.results]
    failing = {r.id: r.failing for r in fast.results if r.failing}
    assert failing.get("tickets::TKT-Created Time::not_future") == 15, failing
    assert failing.get("timesheets::TS-Date::not_future") == 9, failing


def test_read_ahead_keeps_order_raises_and_stops_with_its_reader() -> None:
    import threading

    from pipeline.pgsource import _read_ahead

    closed = []

    def batches(fail_at: int | None = None):  # type: ignore[no-untyped-def]
        try:
            for i in range(50):
                if i == fail_at:
                    raise ValueError("boom")
                yield [(i,)]
        finally:
            closed.append(threading.current_thread().name)

    assert [b[0][0] for b in _read_ahead(batches())] == list(range(50))
    with pytest.raises(ValueError, match="boom"):
        list(_read_ahead(batches(fail_at=7)))
    early = _read_ahead(batches())
    assert next(early) == [(0,)]
    early.close()  # a reader that stops: the thread closes the source and ends
    assert closed == ["pg-read-ahead"] * 3
    assert not any(t.name == "pg-read-ahead" for t in threading.enumerate())


def test_iter_batches_read_ahead_matches_a_plain_query(migrated: str, postgresql: psycopg.Connection) -> None:
    expected = postgresql.execute('SELECT "TKT-Ticket ID", "TKT-Created Time" FROM servicedesk.tickets ORDER BY 1').fetchall()
    with PostgresSource(migrated, "servicedesk") as pg:
        batches = list(pg.iter_batches("tickets", ["TKT-Ticket ID", "TKT-Created Time"], batch_rows=7))
        first = next(iter(pg.iter_batches("tickets", ["TKT-Ticket ID"], batch_rows=5)))  # left unfinished
    assert [row for b in batches for row in b] == expected
    assert all(len(b) == 7 for b in batches[:-1])
    assert [r[0] for r in first] == [r[0] for r in expected[:5]]


def test_profile_asks_no_duplicate_keys_of_a_rising_key(migrated: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A single key column read rising row after row repeats no key: the answer without
    # the server's GROUP BY is the one with it.
    from pipeline import profile
    from pipeline.config import Settings

    asked: list[str] = []
    real = PostgresSource.duplicate_keys
    monkeypatch.setattr(PostgresSource, "duplicate_keys", lambda self, table, *a, **k: asked.append(table) or real(self, table, *a, **k))
    now = datetime(2026, 1, 15, 12)
    with PostgresSource(migrated, "servicedesk") as pg:
        fast = profile.profile_source(pg, Settings(), now=now)
        assert "tickets" not in asked, asked
        ahead = profile._DuplicatesAhead.duplicate_keys
        monkeypatch.setattr(profile._DuplicatesAhead, "duplicate_keys", lambda self, table, key, rose=False: ahead(self, table, key))
        asked.clear()
        full = profile.profile_source(pg, Settings(), now=now)
        assert "tickets" in asked, asked
    assert (fast.tables, fast.findings, fast.quality) == (full.tables, full.findings, full.quality)


@pytest.mark.parametrize("share", ["default", "every column"])
def test_typed_integers_judged_at_once_match_the_judgement_of_each(
    migrated: str, postgresql: psycopg.Connection, monkeypatch: pytest.MonkeyPatch, share: str
) -> None:
    # Integers from PostgreSQL are judged usable a batch at a time (``_typed_integers``),
    # streamed and by distinct value; judging each value must give the same results.
    executor = pytest.importorskip("contracts.executor")
    postgresql.autocommit = True
    postgresql.execute("UPDATE servicedesk.comments SET comment_id = -comment_id WHERE comment_id % 7 = 0")
    postgresql.execute("UPDATE servicedesk.comments SET user_id = NULL WHERE comment_id % 5 = 0")
    postgresql.execute('UPDATE servicedesk.timesheets SET "TS-Crm ID" = 0 WHERE ctid IN (SELECT ctid FROM servicedesk.timesheets LIMIT 11)')
    postgresql.execute("ANALYZE servicedesk.comments, servicedesk.timesheets")
    if share != "default":
        monkeypatch.setattr(executor, "_GROUP_SHARE", float("inf"))
    called: list[bool] = []
    typed = executor._typed_integers
    monkeypatch.setattr(executor, "_typed_integers", lambda values, kind: called.append(typed(values, kind)) or called[-1])
    today = date(2026, 1, 15)
    with PostgresSource(migrated, "servicedesk") as pg:
        fast = executor.execute(pg, today=today)
        monkeypatch.setattr(executor, "_typed_integers", lambda values, kind: False)
        slow = executor.execute(pg, today=today)
    assert any(called)
    assert [r.to_json() for r in fast.results] == [r.to_json() for r in slow.results]
    failing = {r.id: r.failing for r in fast.results if r.failing}
    assert failing.get("comments::comment_id::in_range"), failing


class _EveryColumn:
    """A PostgresSource without ``non_null_counts``: the profiler then reads every column."""

    def __init__(self, source: PostgresSource) -> None:
        self._source = source
        self.label = source.label

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        if name == "non_null_counts":
            raise AttributeError(name)
        return getattr(self._source, name)


def test_profile_of_null_only_columns_counted_not_read(migrated: str, postgresql: psycopg.Connection) -> None:
    # Columns holding NULL only are counted (``non_null_counts``) and not read; orphans
    # are counted as ``orphans`` counts them. The profile equals reading every column.
    from pipeline.config import Settings
    from pipeline.profile import profile_source

    postgresql.autocommit = True
    postgresql.execute("UPDATE servicedesk.comments SET user_name = NULL, team = NULL")
    postgresql.execute("UPDATE servicedesk.comments SET ticket_id = -ticket_id WHERE comment_id % 4 = 0")  # orphans
    postgresql.execute('UPDATE servicedesk.timesheets SET "TS-Crm ID" = 424242 WHERE ctid IN (SELECT ctid FROM servicedesk.timesheets LIMIT 7)')
    now = datetime(2026, 1, 15, 12)
    with PostgresSource(migrated, "servicedesk") as pg:
        rows, filled, counted = pg.non_null_counts("comments", ["comment_id", "user_name", "team"], [("ticket_id", "tickets", "TKT-Ticket ID", ())])
        assert (rows, filled) == (pg.row_count("comments"), {"comment_id": rows, "user_name": 0, "team": 0})
        count, total, sample = pg.orphans("comments", "ticket_id", "tickets", "TKT-Ticket ID", (), limit=5)
        assert counted == [(count, total)] and count > 0
        assert pg.orphan_sample("comments", "ticket_id", "tickets", "TKT-Ticket ID", (), limit=5) == sample
        fast = profile_source(pg, Settings(), now=now).to_json()
        whole = profile_source(_EveryColumn(pg), Settings(), now=now).to_json()  # type: ignore[arg-type]
    for doc in (fast, whole):
        doc.pop("created")
    assert fast == whole
    assert any(f["code"] == "ORPHANS" for f in fast["findings"])
    assert fast["tables"]["comments"]["columns"]["team"]["null_count"] == rows


def test_a_key_the_server_keeps_unique_is_not_scanned(migrated: str, postgresql: psycopg.Connection) -> None:
    """Duplicate keys are 0 without a GROUP BY when a valid unique index of the table
    (the primary key, a UNIQUE constraint) covers only key columns; a partial index or
    one over an expression proves nothing, and the rows are counted as before."""
    postgresql.autocommit = True
    postgresql.execute('CREATE TABLE servicedesk.keyed ("a 1" bigint, b text, c bigint, PRIMARY KEY ("a 1", b))')
    postgresql.execute("INSERT INTO servicedesk.keyed VALUES (1, 'x', 5), (1, 'y', 5), (2, 'x', 5)")
    postgresql.execute("CREATE TABLE servicedesk.partial (a bigint, b bigint)")
    postgresql.execute("CREATE UNIQUE INDEX ON servicedesk.partial (a) WHERE b > 0")
    postgresql.execute("CREATE UNIQUE INDEX ON servicedesk.partial (a, (b + 0))")
    postgresql.execute("INSERT INTO servicedesk.partial VALUES (1, 0), (1, -1), (1, -2)")
    with PostgresSource(migrated, "servicedesk") as pg:
        statements: list[str] = []
        execute = pg.conn.execute

        def spying(query, *args, **kwargs):
            statements.append(query.as_string(pg.conn) if hasattr(query, "as_string") else str(query))
            return execute(query, *args, **kwargs)

        pg.conn.execute = spying  # type: ignore[method-assign]
        assert pg.duplicate_keys("keyed", ["a 1", "b"]) == (0, [])
        assert pg.duplicate_keys("keyed", ["c", "b", "a 1"]) == (0, [])
        assert pg.duplicate_keys("timesheets", pg.primary_key("timesheets")) == (0, [])
        assert not any("GROUP BY" in s and "HAVING count(*) > 1" in s for s in statements), statements
        assert pg.duplicate_keys("keyed", ["c"]) == (2, [(5,)])
        assert pg.duplicate_keys("partial", ["a"]) == (2, [(1,)])


@pytest.mark.parametrize("names", [("tickets",), ("comments", "timesheets")])
def test_a_forked_child_shares_the_gate_on_postgres(migrated: str, names: tuple[str, ...]) -> None:
    """The gate on PostgreSQL (``contracts.report``) runs the contract checks and the
    profile of some tables in a forked child, on its own connections: the profile and
    the checks are those made in one process; another schema is not the child's."""
    from contracts import report
    from contracts.executor import execute
    from pipeline.config import Settings
    from pipeline.profile import profile_source, source_origin

    if not report._CAN_FORK:
        pytest.skip("fork is used on Linux only")
    settings, today, now = Settings(), date(2026, 11, 27), datetime(2026, 11, 27, 12, 0, 0)
    with PostgresSource(migrated, "servicedesk") as pg:
        alone = profile_source(pg, settings, now=now)
        expected = execute(pg, settings, today=today)
        origin = source_origin(pg)
    assert origin == ("postgres", migrated, "servicedesk")
    full = settings.profile.full
    with report.ChildExecution(origin, settings, today, profile_tables=names, now=now) as child:
        assert child.pid is not None  # forked
        assert child.apart_tables(("postgres", migrated, "elsewhere"), now, full) == frozenset()
        assert child.apart_tables(origin, now, full) == frozenset(names)
        with PostgresSource(migrated, "servicedesk") as pg:
            shared = profile_source(pg, settings, now=now, apart=child)
        run, digest = child.result()
    assert digest is None  # no file to hash
    assert (shared.tables, shared.findings, shared.quality) == (alone.tables, alone.findings, alone.quality)
    assert run.to_json() == expected.to_json()

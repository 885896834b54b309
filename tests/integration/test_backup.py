"""Backups against real files and a real PostgreSQL: create, verify, restore, prune.

Corruption is real (bytes flipped, files truncated on disk); retention is tested by
writing old timestamps into the catalog, never by moving the clock.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import stat
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pipeline import backup
from pipeline.backup import Catalog, backup_sqlite, dump_schema, prune, restore_dump, restore_sqlite, schema_checksums, verify
from pipeline.config import Retention, Settings
from pipeline.errors import ConfigError, InputFileError, TargetUnavailable
from pipeline.pgschema import ddl
from pipeline.sources import sha256_file

LIVE = "servicedesk"


def _sqlite_db(path: Path, rows: int = 500) -> Path:
    conn = sqlite3.connect(path)
    conn.execute('CREATE TABLE tickets ("TKT-Ticket ID" INTEGER PRIMARY KEY, "TKT-Title" TEXT, "TKT-Created Time" TEXT)')
    conn.executemany(
        "INSERT INTO tickets VALUES (?, ?, ?)",
        [(3_600_000 + i, f"Disk full on host-{i} 'quoted' café\n", f"2025-07-{1 + i % 28:02d} 08:00:00") for i in range(rows)],
    )
    conn.execute("CREATE TABLE comments (comment_id INTEGER, ticket_id INTEGER, comment_text TEXT)")
    conn.executemany("INSERT INTO comments VALUES (?, ?, ?)", [(i, 3_600_000 + i % rows, "x" * (i % 300)) for i in range(rows * 2)])
    conn.commit()
    conn.close()
    return path


def _flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))


def _live_schema(conninfo: str, schema: str = LIVE, tickets: int = 200) -> None:
    """The live schema as the migration builds it (contract DDL), with awkward values."""
    with psycopg.connect(conninfo) as conn:
        for statement in ddl(schema):
            conn.execute(statement)
        q = sql.Identifier(schema)
        conn.execute(
            sql.SQL(
                """INSERT INTO {}.tickets ("TKT-Ticket ID", "TKT-Created Time", "TKT-Status", "TKT-Title", "TKT-Actual SLA Achievement")
                   SELECT 3600000 + g, timestamp '2025-07-01 08:00' + g * interval '37 minutes',
                          CASE WHEN g %% 4 = 0 THEN 'Incident Resolved' ELSE 'Closed' END,
                          CASE WHEN g %% 5 = 0 THEN NULL ELSE 'Tab\there "q" ''s'' \\ café ' || g END,
                          (g %% 100)::numeric + 0.5
                   FROM generate_series(1, %s) AS g"""
            ).format(q),
            (tickets,),
        )
        conn.execute(
            sql.SQL(
                """INSERT INTO {}.comments (comment_id, ticket_id, created_time, visible_to_customer, comment_text)
                   SELECT g, 3600000 + (g %% %s) + 1, timestamp '2025-07-02' + g * interval '1 minute',
                          CASE WHEN g %% 2 = 0 THEN 'Yes' ELSE 'No' END, repeat('line\n', g %% 7)
                   FROM generate_series(1, %s) AS g"""
            ).format(q),
            (tickets, tickets * 3),
        )


def _cli(argv: list[str], settings: Settings | None = None) -> int:
    parser = argparse.ArgumentParser()
    backup.add_arguments(parser)
    return backup.command(parser.parse_args(argv), settings or Settings())


# --- SQLite --------------------------------------------------------------------------------


def test_sqlite_backup_round_trip_with_checksums(tmp_path: Path) -> None:
    source = _sqlite_db(tmp_path / "clean.db")
    folder = tmp_path / "backups"
    record = backup_sqlite(source, folder, kind="pre-clean")
    path = folder / record.file
    assert record.sha256 == sha256_file(path)
    assert record.row_counts == {"comments": 1000, "tickets": 500}
    assert Catalog(folder).records() == [record]
    # The catalog on disk is JSON a person can read.
    on_disk = json.loads((folder / "catalog.json").read_text())
    assert on_disk["backups"][0]["sha256"] == record.sha256
    [result] = verify(folder)
    assert result.ok, result.details
    restored = restore_sqlite(Catalog(folder), record, tmp_path / "restored" / "clean.db")
    assert sha256_file(restored.restored_to) == record.sha256
    assert restored.row_counts == record.row_counts
    with sqlite3.connect(source) as a, sqlite3.connect(restored.restored_to) as b:
        for table in ("tickets", "comments"):
            assert a.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall() == b.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()


def test_sqlite_backup_of_a_database_in_use_is_consistent(tmp_path: Path) -> None:
    """The backup API copies a consistent state even with an open write transaction elsewhere."""
    source = _sqlite_db(tmp_path / "busy.db")
    writer = sqlite3.connect(source)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM comments")  # not committed: must not be in the backup
    try:
        record = backup_sqlite(source, tmp_path / "backups")
    finally:
        writer.rollback()
        writer.close()
    assert record.row_counts["comments"] == 1000


def test_restore_never_overwrites_the_source_without_force(tmp_path: Path) -> None:
    source = _sqlite_db(tmp_path / "clean.db")
    catalog = Catalog(tmp_path / "backups")
    record = backup_sqlite(source, catalog.folder)
    with sqlite3.connect(source) as conn:
        conn.execute("DELETE FROM tickets WHERE rowid % 2 = 0")
    damaged = sha256_file(source)
    with pytest.raises(InputFileError, match="is the database this backup was taken from") as err:
        restore_sqlite(catalog, record, source)
    assert "--force" in err.value.remedy
    assert sha256_file(source) == damaged  # untouched
    restore_sqlite(catalog, record, source, force=True)
    assert sha256_file(source) == record.sha256


def test_corrupted_sqlite_backup_is_detected_and_never_restored(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "backups")
    good = backup_sqlite(_sqlite_db(tmp_path / "a.db"), catalog.folder)
    bad = backup_sqlite(_sqlite_db(tmp_path / "b.db", rows=300), catalog.folder)
    _flip_byte(catalog.file_of(bad), 5000)
    results = {r.id: r for r in verify(catalog.folder)}
    assert results[good.id].ok
    assert not results[bad.id].ok and "SHA-256 mismatch" in results[bad.id].details
    with pytest.raises(InputFileError, match="failed its SHA-256 check"):
        restore_sqlite(catalog, bad, tmp_path / "out.db")
    assert not (tmp_path / "out.db").exists()
    # A missing file is a failure too, not a crash.
    catalog.file_of(good).unlink()
    assert "missing" in {r.id: r for r in verify(catalog.folder)}[good.id].details


# --- PostgreSQL ----------------------------------------------------------------------------

pg = pytest.mark.postgres


@pg
def test_pg_dump_round_trip_restored_schema_equals_original(pg_dsn: str, tmp_path: Path) -> None:
    _live_schema(pg_dsn)
    with psycopg.connect(pg_dsn) as conn:
        original = schema_checksums(conn, LIVE)
    record = dump_schema(pg_dsn, LIVE, tmp_path / "backups", content_checksums=True)
    assert record.format == "pg_dump" and record.kind == "pre-cutover" and record.schema == LIVE
    dump = tmp_path / "backups" / record.file
    assert dump.read_bytes()[:5] == b"PGDMP"  # custom format
    assert record.sha256 == sha256_file(dump)
    assert record.row_counts == {t: n for t, (n, _) in original.items()}
    assert record.content_checksums == {t: d for t, (_, d) in original.items()}
    [checked] = verify(tmp_path / "backups")
    assert checked.ok and "pg_restore --list" in checked.details

    result = restore_dump(Catalog(tmp_path / "backups"), record, pg_dsn, "servicedesk_restored")
    assert result.checksums_match is True
    with psycopg.connect(pg_dsn) as conn:
        assert schema_checksums(conn, "servicedesk_restored") == original
        assert schema_checksums(conn, LIVE) == original  # the original never moved for good
        types = conn.execute(
            """SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns
               WHERE table_schema = %s ORDER BY table_name, ordinal_position""",
            ("servicedesk_restored",),
        ).fetchall()
        live_types = conn.execute(
            """SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns
               WHERE table_schema = %s ORDER BY table_name, ordinal_position""",
            (LIVE,),
        ).fetchall()
        assert types == live_types
        keys = conn.execute(
            "SELECT count(*) FROM information_schema.table_constraints WHERE table_schema = %s AND constraint_type = 'PRIMARY KEY'",
            ("servicedesk_restored",),
        ).fetchone()[0]
        assert keys == 3  # tickets, comments, timesheets (composite)


@pg
def test_restore_refuses_an_existing_schema_and_force_moves_it_aside(pg_dsn: str, tmp_path: Path) -> None:
    _live_schema(pg_dsn)
    catalog = Catalog(tmp_path / "backups")
    record = dump_schema(pg_dsn, LIVE, catalog.folder, kind="manual", content_checksums=True)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        before = schema_checksums(conn, LIVE)
        conn.execute('DELETE FROM servicedesk.comments WHERE comment_id % 2 = 0')  # the accident
        damaged = schema_checksums(conn, LIVE)
    with pytest.raises(InputFileError, match="already exists"):
        restore_dump(catalog, record, pg_dsn)
    result = restore_dump(catalog, record, pg_dsn, force=True)
    assert result.restored_to == LIVE and result.moved_aside and result.checksums_match
    with psycopg.connect(pg_dsn) as conn:
        assert schema_checksums(conn, LIVE) == before
        assert schema_checksums(conn, result.moved_aside) == damaged  # kept, not dropped


@pg
def test_failed_restore_changes_nothing(pg_dsn: str, tmp_path: Path) -> None:
    """The restore runs in one transaction: a failure part-way (here a GRANT to a role this
    server does not have, after the tables and rows are in) leaves no trace."""
    _live_schema(pg_dsn)
    role = f"sd_reader_gone_{os.getpid()}"
    catalog = Catalog(tmp_path / "backups")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA servicedesk TO {0}; GRANT SELECT ON ALL TABLES IN SCHEMA servicedesk TO {0}").format(sql.Identifier(role)))
        record = dump_schema(pg_dsn, LIVE, catalog.folder)
        conn.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA servicedesk FROM {0}; REVOKE ALL ON SCHEMA servicedesk FROM {0}; DROP ROLE {0}").format(sql.Identifier(role)))
        before = schema_checksums(conn, LIVE)
    with pytest.raises(TargetUnavailable, match="nothing changed") as err:
        restore_dump(catalog, record, pg_dsn, "servicedesk_copy")
    assert role in str(err.value) and "--no-privileges" in err.value.remedy
    with psycopg.connect(pg_dsn) as conn:
        assert schema_checksums(conn, LIVE) == before
        names = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace")}
    assert "servicedesk_copy" not in names and not any("_hold_" in n for n in names)
    # Without the grants it restores, and equals the original.
    result = restore_dump(catalog, record, pg_dsn, "servicedesk_copy", privileges=False)
    with psycopg.connect(pg_dsn) as conn:
        assert schema_checksums(conn, "servicedesk_copy") == before
    assert result.checksums_match is None  # no content checksums recorded for this dump
    assert result.row_counts == record.row_counts


@pg
def test_corrupted_or_truncated_dump_fails_verify(pg_dsn: str, tmp_path: Path) -> None:
    _live_schema(pg_dsn)
    catalog = Catalog(tmp_path / "backups")
    flipped = dump_schema(pg_dsn, LIVE, catalog.folder)
    truncated = dump_schema(pg_dsn, LIVE, catalog.folder)
    _flip_byte(catalog.file_of(flipped), catalog.file_of(flipped).stat().st_size // 2)
    # Truncate the second and re-record its checksum: only pg_restore --list can tell.
    path = catalog.file_of(truncated)
    path.write_bytes(path.read_bytes()[:200])
    with catalog.locked() as records:
        records[:] = [r if r.id != truncated.id else replace(r, sha256=sha256_file(path)) for r in records]
    results = {r.id: r for r in verify(catalog.folder)}
    assert not results[flipped.id].ok and "SHA-256" in results[flipped.id].details
    assert not results[truncated.id].ok and "pg_restore --list fails" in results[truncated.id].details
    with pytest.raises(InputFileError, match="SHA-256"):
        restore_dump(catalog, flipped, pg_dsn, "never")
    assert _cli(["--dir", str(catalog.folder), "verify"]) == 1


@pg
def test_dump_refuses_a_pg_dump_older_than_the_server(pg_dsn: str, tmp_path: Path) -> None:
    _live_schema(pg_dsn, tickets=5)
    fake = tmp_path / "pg_dump"
    fake.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 13.4'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(ConfigError, match="older than the server") as err:
        dump_schema(pg_dsn, LIVE, tmp_path / "backups", pg_dump=fake)
    assert "pg_dump 18" in err.value.remedy
    assert not list((tmp_path / "backups").glob("*.dump*"))


@pg
def test_dump_never_records_or_prints_a_password(pg_dsn: str, embedded_postgres, tmp_path: Path, capsys) -> None:
    _live_schema(pg_dsn, tickets=5)
    dbname = psycopg.conninfo.conninfo_to_dict(pg_dsn)["dbname"]
    # trust authentication ignores the password, so the dump works and we can look for leaks
    uri = f"postgresql://postgres:Sup3rSecret@/{dbname}?host={embedded_postgres.host}&port={embedded_postgres.port}"
    folder = tmp_path / "backups"
    assert _cli(["--dir", str(folder), "create", "--schema", LIVE, "--target", uri]) == 0
    assert _cli(["--dir", str(folder), "list"]) == 0
    printed = capsys.readouterr()
    assert "Sup3rSecret" not in printed.out + printed.err
    assert "Sup3rSecret" not in (folder / "catalog.json").read_text()


@pg
def test_cli_create_list_verify_restore(pg_dsn: str, tmp_path: Path, capsys) -> None:
    _live_schema(pg_dsn, tickets=20)
    folder = tmp_path / "backups"
    assert _cli(["--dir", str(folder), "create", "--schema", LIVE, "--target", pg_dsn, "--archival", "--content-checksums"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["retention"] == "archival" and created["content_checksums"]
    source = _sqlite_db(tmp_path / "clean.db", rows=10)
    assert _cli(["--dir", str(folder), "create", "--source", str(source)]) == 0
    sqlite_id = json.loads(capsys.readouterr().out)["id"]
    assert _cli(["--dir", str(folder), "list", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    assert _cli(["--dir", str(folder), "verify"]) == 0
    capsys.readouterr()
    assert _cli(["--dir", str(folder), "restore", created["id"], "--schema", "sd_copy", "--target", pg_dsn]) == 0
    assert json.loads(capsys.readouterr().out)["checksums_match"] is True
    with pytest.raises(ConfigError, match="--to"):
        _cli(["--dir", str(folder), "restore", sqlite_id])
    assert _cli(["--dir", str(folder), "restore", sqlite_id, "--to", str(tmp_path / "copy.db")]) == 0


# --- retention ------------------------------------------------------------------------------


def _age(catalog: Catalog, ages: dict[str, float]) -> None:
    """Rewrite created_at in the catalog: the backup is ``days`` old."""
    now = datetime.now(timezone.utc)
    with catalog.locked() as records:
        records[:] = [
            replace(r, created_at=(now - timedelta(days=ages[r.id])).isoformat(timespec="seconds")) if r.id in ages else r
            for r in records
        ]


def test_prune_removes_expired_backups_and_keeps_the_newest_of_each_series(tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    catalog = Catalog(folder)
    a = _sqlite_db(tmp_path / "a.db", rows=5)
    b = _sqlite_db(tmp_path / "b.db", rows=5)
    c = _sqlite_db(tmp_path / "c.db", rows=5)
    a1, a2, a3 = (backup_sqlite(a, folder) for _ in range(3))
    b0 = backup_sqlite(b, folder, retention="archival")
    b1 = backup_sqlite(b, folder, retention="archival")
    c1 = backup_sqlite(c, folder)
    _age(catalog, {a1.id: 10, a2.id: 8, a3.id: 1, b0.id: 40, b1.id: 20, c1.id: 15})

    retention = Retention(operational_days=7, archival_days=30)
    preview = prune(folder, retention, dry_run=True)
    assert {r.id for r in preview.removed} == {a1.id, a2.id, b0.id}
    assert len(catalog.records()) == 6 and catalog.file_of(a1).exists()  # dry run: nothing gone

    result = prune(folder, retention)
    assert {r.id for r in result.removed} == {a1.id, a2.id, b0.id}
    assert {r.id for r in result.kept_as_latest} == {c1.id}  # expired, but the only backup of c.db
    assert {r.id for r in catalog.records()} == {a3.id, b1.id, c1.id}
    for gone in (a1, a2, b0):
        assert not catalog.file_of(gone).exists()
    for kept in (a3, b1, c1):
        assert catalog.file_of(kept).exists()
    # With a shorter configured retention, the archival one at 20 days goes too.
    assert {r.id for r in prune(folder, Retention(operational_days=7, archival_days=14), keep_last=0).removed} == {b1.id, c1.id}


def test_prune_cli_reports_what_it_removed(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "backups"
    source = _sqlite_db(tmp_path / "a.db", rows=5)
    old = backup_sqlite(source, folder)
    new = backup_sqlite(source, folder)
    _age(Catalog(folder), {old.id: 9})
    settings = Settings().with_overrides(**{"retention.operational_days": 7})
    assert _cli(["--dir", str(folder), "prune"], settings) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in report["removed"]] == [old.id]
    assert report["kept"] == 1
    assert [r.id for r in Catalog(folder).records()] == [new.id]


def test_damaged_catalog_is_an_error_with_a_remedy(tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    (folder / "catalog.json").write_text("{not json")
    with pytest.raises(InputFileError, match="damaged") as err:
        Catalog(folder).records()
    assert err.value.remedy


def test_unknown_backup_id_names_the_known_ones(tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    record = backup_sqlite(_sqlite_db(tmp_path / "a.db", rows=5), folder)
    with pytest.raises(InputFileError, match="not in the catalog") as err:
        Catalog(folder).get("nope")
    assert record.id in err.value.remedy
    assert Catalog(folder).get(record.id[:20]) == record  # a unique prefix is enough


def test_prune_removes_leftovers_of_interrupted_backups_but_not_running_ones(tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    backup_sqlite(_sqlite_db(tmp_path / "a.db", rows=5), folder)
    old = folder / ".20250101T000000-a-abcdef.db.partial"
    fresh = folder / ".20250101T000001-a-123456.dump.partial"
    old.write_bytes(b"half a backup")
    fresh.write_bytes(b"a backup being written")
    hours_ago = datetime.now().timestamp() - 7 * 3600
    os.utime(old, (hours_ago, hours_ago))
    result = prune(folder, Retention())
    assert result.stale_partials == (old.name,)
    assert not old.exists() and fresh.exists()
    assert len(Catalog(folder).records()) == 1

"""Preflight checks that need no PostgreSQL server: source, disk, memory, tools, unreachable server.

Tool versions are read from small scripts standing in for ``pg_dump`` (a test double of
a client program, not of PostgreSQL); disk and memory are measured on this machine.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import stat
from pathlib import Path

import pytest

from pipeline import preflight
from pipeline.backup import find_pg_tool, tool_version
from pipeline.config import Settings
from pipeline.errors import ConfigError, GateFailed
from pipeline.preflight import FAIL, PASS, WARN, PreflightConfig, check_disk, check_memory, check_pg_dump, check_source, check_workbooks


def _db(path: Path, tables: tuple[str, ...] = ("tickets", "comments", "timesheets"), rows: int = 3) -> Path:
    conn = sqlite3.connect(path)
    for t in tables:
        conn.execute(f"CREATE TABLE {t} (a INTEGER, b TEXT)")
        conn.executemany(f"INSERT INTO {t} VALUES (?, ?)", [(i, "x" * 100) for i in range(rows)])
    conn.commit()
    conn.close()
    return path


def _tool(path: Path, line: str, code: int = 0) -> Path:
    path.write_text(f"#!/bin/sh\necho '{line}'\nexit {code}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


# --- source -------------------------------------------------------------------------------


def test_good_source_passes_with_row_counts(tmp_path: Path) -> None:
    check, size = check_source(_db(tmp_path / "clean.db"))
    assert check.status == PASS
    assert check.data["rows"] == {"tickets": 3, "comments": 3, "timesheets": 3}
    assert size == (tmp_path / "clean.db").stat().st_size


def test_workbooks_before_ingest_give_the_uncompressed_size_as_the_estimate(sample_dir: Path) -> None:
    import zipfile

    books = tuple(sample_dir / f"{n}.xlsx" for n in ("tickets", "comments", "timesheets"))
    check, size = check_workbooks(books)
    assert check.status == PASS
    expected = sum(i.file_size for b in books for i in zipfile.ZipFile(b).infolist())
    assert size == check.data["estimated_bytes"] == expected
    assert size > sum(b.stat().st_size for b in books)  # the parts are compressed in the file


def test_missing_workbook_fails_and_unreadable_one_warns(tmp_path: Path) -> None:
    check, size = check_workbooks((tmp_path / "tickets.xlsx",))
    assert check.status == FAIL and "does not exist" in check.details and check.remedy and size == 0
    (tmp_path / "tickets.xlsx").write_text("TKT-Ticket ID\n1\n")
    check, size = check_workbooks((tmp_path / "tickets.xlsx",))
    # ingest gives the precise message (not a zip, encrypted, corrupt); the size still counts
    assert check.status == WARN and "not readable as XLSX" in check.details and check.remedy
    assert size == (tmp_path / "tickets.xlsx").stat().st_size


def test_run_with_workbooks_checks_disk_against_the_estimate(sample_dir: Path, tmp_path: Path) -> None:
    books = tuple(sample_dir / f"{n}.xlsx" for n in ("tickets", "comments", "timesheets"))
    result = preflight.run(
        PreflightConfig(source=None, workbooks=books, target="postgresql://u@127.0.0.1:1/db", settings=Settings(), work_dirs=(tmp_path,), connect_timeout=1)
    )
    disk = result.check("disk")
    assert disk.data["needed_bytes"] == 2 * result.check("source").data["estimated_bytes"]


@pytest.mark.parametrize(
    "make, status, words",
    [
        (lambda p: p, FAIL, "does not exist"),
        (lambda p: (p.mkdir(), p)[1], FAIL, "is a folder"),
        (lambda p: (p.write_text("TKT-Ticket ID,TKT-Status\n1,Closed\n"), p)[1], FAIL, "not a SQLite database"),
        (lambda p: _db(p, tables=("cloud_team_roster",)), FAIL, "holds none of the tables"),
        (lambda p: _db(p, tables=("tickets",)), WARN, "lacks the tables comments, timesheets"),
    ],
    ids=["missing", "folder", "csv", "no-data-tables", "some-tables"],
)
def test_bad_source_fails_with_a_remedy(tmp_path: Path, make, status: str, words: str) -> None:
    check, _ = check_source(make(tmp_path / "source.db"))
    assert check.status == status
    assert words in check.details
    assert check.remedy


def test_truncated_sqlite_file_fails(tmp_path: Path) -> None:
    path = _db(tmp_path / "clean.db", rows=2000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    check, _ = check_source(path)
    assert check.status == FAIL


# --- disk and memory ----------------------------------------------------------------------


def test_disk_checked_once_per_filesystem_at_the_nearest_existing_folder(tmp_path: Path) -> None:
    checks = check_disk([tmp_path / "not" / "yet" / "backups", tmp_path / "pg"], 1000, 2.0)
    assert len(checks) == 1  # same filesystem
    [check] = checks
    assert check.status == PASS
    assert check.data["measured_at"] == str(tmp_path) and check.data["needed_bytes"] == 2000


def test_disk_fails_when_twice_the_source_does_not_fit(tmp_path: Path) -> None:
    import shutil

    free = shutil.disk_usage(tmp_path).free
    [check] = check_disk([tmp_path], free, 2.0)  # a source as large as the free space
    assert check.status == FAIL
    assert "MiB needed (2x the source)" in check.details
    assert "free" in check.remedy


def test_memory_thresholds() -> None:
    assert check_memory(1, 2).status == PASS
    huge = 10**9  # MiB: more than any machine here
    assert check_memory(1, huge).status == WARN
    failed = check_memory(huge, huge)
    assert failed.status == FAIL and failed.remedy and failed.data["available_mb"] > 0


# --- pg_dump ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, major",
    [
        ("pg_dump (PostgreSQL) 18.6", 18),
        ("pg_dump (PostgreSQL) 16.2 (Debian 16.2-1.pgdg120+2)", 16),
        ("pg_dump (PostgreSQL) 9.6.24", 9),
        ("pg_dump (PostgreSQL) 19devel", 19),
    ],
)
def test_tool_version_reads_the_major(tmp_path: Path, line: str, major: int) -> None:
    assert tool_version(_tool(tmp_path / "pg_dump", line)) == (major, line)


def test_pg_dump_older_than_the_server_fails_with_a_remedy(tmp_path: Path) -> None:
    old = _tool(tmp_path / "pg_dump", "pg_dump (PostgreSQL) 15.8")
    check = check_pg_dump(18, old)
    assert check.status == FAIL
    assert "older than the server" in check.details and check.data["major"] == 15
    assert "pg_dump 18 or newer" in check.remedy and "--pg-dump" in check.remedy
    assert check_pg_dump(15, old).status == PASS
    assert check_pg_dump(None, old).status == WARN  # server not reached: unknown


def test_pg_dump_that_is_not_pg_dump_fails(tmp_path: Path) -> None:
    assert "printed no PostgreSQL version" in check_pg_dump(18, _tool(tmp_path / "pg_dump", "hello")).details
    assert check_pg_dump(18, _tool(tmp_path / "pg_dump2", "pg_dump (PostgreSQL) 18.1", code=1)).status == FAIL
    missing = check_pg_dump(18, tmp_path / "nowhere" / "pg_dump")
    assert missing.status == FAIL and "not found" in missing.details


def test_the_wheels_pg_dump_is_found_and_is_a_real_one() -> None:
    tool = find_pg_tool("pg_dump")
    assert tool.path.name == "pg_dump" and tool.major >= 18


def test_find_pg_tool_explains_a_missing_override(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        find_pg_tool("pg_dump", override=tmp_path / "pg_dump")


# --- the whole run, no server ---------------------------------------------------------------


def _config(tmp_path: Path, source: Path, target: str) -> PreflightConfig:
    return PreflightConfig(source=source, target=target, settings=Settings(), work_dirs=(tmp_path / "backups",), env={}, connect_timeout=2)


def test_unreachable_server_fails_without_showing_the_password(tmp_path: Path) -> None:
    empty_socket_dir = tmp_path / "no-server-here"
    empty_socket_dir.mkdir()
    target = f"postgresql://etl:Hunter2Secret@/servicedesk?host={empty_socket_dir}"
    result = preflight.run(_config(tmp_path, _db(tmp_path / "clean.db"), target))
    assert not result.ok and result.status == FAIL
    server = result.check("server")
    assert server.status == FAIL and "cannot connect" in server.details
    assert "--target" in server.remedy
    assert result.check("create_schema").status == FAIL
    assert result.check("source").status == PASS and result.check("disk").status == PASS
    assert "Hunter2Secret" not in json.dumps(result.as_dict())
    assert "***" in result.target


def test_invalid_target_is_a_failed_check_not_a_crash(tmp_path: Path) -> None:
    result = preflight.run(_config(tmp_path, _db(tmp_path / "clean.db"), "this is not = a uri = at all"))
    assert result.check("server").status == FAIL and result.check("server").remedy


def test_cli_prints_json_and_exits_non_zero_with_the_remedy(tmp_path: Path, capsys) -> None:
    parser = argparse.ArgumentParser()
    preflight.add_arguments(parser)
    args = parser.parse_args(
        ["--source", str(tmp_path / "missing.db"), "--target", f"postgresql://etl:pw123456@/x?host={tmp_path}", "--backups-dir", str(tmp_path / "b")]
    )
    with pytest.raises(GateFailed) as err:
        preflight.command(args, Settings())
    assert err.value.exit_code != 0
    assert "source" in err.value.message and "give the path of a SQLite database" in err.value.remedy
    printed = capsys.readouterr().out
    report = json.loads(printed)
    assert report["status"] == FAIL
    assert {c["name"].split(":")[0] for c in report["checks"]} == {"source", "disk", "memory", "server", "pg_dump", "create_schema"}
    assert all({"name", "status", "details", "remedy"} <= set(c) for c in report["checks"])
    assert "pw123456" not in printed + str(err.value)

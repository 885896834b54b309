"""``profile --dry-run-postgres``: the sample's typed values cast on a real PostgreSQL server.

The generated sample's manifest is the ground truth: every injected ``''`` in a
timestamp column, every unparseable date, every id written ``3652948.0`` and every
day-first date with a day above 12 must come back refused with the server's message;
day-first dates with a day of 12 or less must come back as SILENT_MISREAD (the server
takes them month-first under its default ``DateStyle``).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from contracts.schemas import contract_for
from contracts.spec import pg_type
from pipeline import dryrun
from pipeline.config import Settings
from pipeline.dates import slash_parts
from pipeline.pgserver import Target, connect

pytestmark = pytest.mark.postgres


def _profile(db: Path):
    from pipeline.profile import profile_source
    from pipeline.sources import SQLiteSource

    with SQLiteSource(db) as source:
        return profile_source(source, Settings())


@pytest.fixture(scope="module")
def raw_profile(raw_db: Path):
    return _profile(raw_db)


@pytest.fixture(scope="module", params=["builtin", "function"])
def raw_trial(request, raw_db: Path, raw_profile, embedded_postgres) -> dryrun.DryRunResult:
    """The dry run of the defective sample, once with pg_input_error_info, once with the
    PL/pgSQL fallback servers before 16 get."""
    target = Target(embedded_postgres.conninfo(), "cli")
    return dryrun.run(dryrun.DryRunConfig(source=raw_db, profile=raw_profile, target=target, capture=request.param))


def _by_cell(trial: dryrun.DryRunResult) -> dict[tuple[str, str, str], list[dryrun.Problem]]:
    out: dict[tuple[str, str, str], list[dryrun.Problem]] = {}
    for p in trial.problems:
        out.setdefault((p.table, p.column, json.dumps(p.key)), []).append(p)
    return out


def _defects(manifest: dict, kind: str, pgtypes: tuple[str, ...]) -> list[tuple[str, str, object]]:
    cells = []
    for d in manifest["defects"]:
        if d["kind"] != kind:
            continue
        col = contract_for(d["table"]).columns[d["column"]]
        if pg_type(col) in pgtypes:
            cells += [(d["table"], d["column"], key) for key in d["example_keys"]]
    assert cells, f"the sample injects no {kind}"
    return cells


def _raw_value(db: Path, table: str, column: str, key: object) -> object:
    keys = contract_for(table).metadata["contract"].key
    parts = key if isinstance(key, list) else [key]
    where = " AND ".join(f'"{k}" IS ?' for k in keys)
    with sqlite3.connect(db) as conn:
        return conn.execute(f'SELECT "{column}" FROM "{table}" WHERE {where}', parts).fetchone()[0]


def _the_problem(cells, table: str, column: str, key: object) -> dryrun.Problem:
    found = cells.get((table, column, json.dumps(key)))
    assert found, f"{table}.{column} key {key!r} not reported"
    assert len({p.kind for p in found}) == 1
    return found[0]


def test_empty_and_blank_timestamps_are_refused_with_the_servers_message(raw_trial, manifest) -> None:
    cells = _by_cell(raw_trial)
    for table, column, key in _defects(manifest, "empty_string", ("timestamp",)) + _defects(manifest, "whitespace_string", ("timestamp",)):
        p = _the_problem(cells, table, column, key)
        assert p.kind == dryrun.REFUSED
        assert p.message.startswith("invalid input syntax for type timestamp: ")
        assert p.sqlstate == "22007"
        assert p.value.strip() == ""


def test_empty_ids_and_float_ids_are_refused_as_bigint(raw_trial, manifest) -> None:
    cells = _by_cell(raw_trial)
    floats = _defects(manifest, "float_id", ("bigint",))
    for table, column, key in floats + _defects(manifest, "empty_string", ("bigint",)):
        p = _the_problem(cells, table, column, key)
        assert p.kind == dryrun.REFUSED
        assert p.message == f'invalid input syntax for type bigint: "{p.value}"'
        assert p.sqlstate == "22P02"
    assert all(_the_problem(cells, *cell).value.endswith(".0") for cell in floats)


def test_unparseable_dates_are_refused(raw_trial, manifest) -> None:
    cells = _by_cell(raw_trial)
    for table, column, key in _defects(manifest, "unparseable_date", ("timestamp", "date")):
        p = _the_problem(cells, table, column, key)
        assert p.kind == dryrun.REFUSED
        assert p.pg_type in ("timestamp", "date")
        assert p.sqlstate and p.sqlstate.startswith("22")


def test_day_first_dates_are_refused_or_silently_misread(raw_trial, raw_db: Path, manifest) -> None:
    assert raw_trial.datestyle == "ISO, MDY"  # the server's default, not the ISO setting of `connect`
    cells = _by_cell(raw_trial)
    refused = misread = 0
    for table, column, key in _defects(manifest, "day_first_date", ("timestamp", "date")):
        value = _raw_value(raw_db, table, column, key)
        parts = slash_parts(value)
        assert parts is not None, value
        day, month = parts.first, parts.second
        found = cells.get((table, column, json.dumps(key)), [])
        if day > 12:
            refused += 1
            assert [p.kind for p in found] == [dryrun.REFUSED], (table, column, key, value)
            assert found[0].message == f'date/time field value out of range: "{value}"'
            assert found[0].hint and "datestyle" in found[0].hint.lower()
        elif day != month:
            misread += 1
            assert [p.kind for p in found] == [dryrun.SILENT_MISREAD], (table, column, key, value)
            p = found[0]
            # The server read month and day swapped; the pipeline reads day-first.
            assert p.read_as is not None and p.expected is not None
            assert p.read_as[:10] == f"{parts.year:04d}-{day:02d}-{month:02d}"
            assert p.expected[:10] == f"{parts.year:04d}-{month:02d}-{day:02d}"
        else:  # 5/05/2025 reads the same both ways
            assert found == []
    assert refused and misread


def test_known_misread_example(raw_trial) -> None:
    """A value of the shape in the reference (``2/07/2025 16:21``) is reported misread."""
    misreads = [p for p in raw_trial.problems if p.kind == dryrun.SILENT_MISREAD and p.pg_type == "timestamp" and " " in p.value]
    assert misreads
    p = misreads[0]
    parts = slash_parts(p.value)
    assert parts.first <= 12
    assert p.message.startswith(f"PostgreSQL accepts {p.value!r} as timestamp ")


def test_flagged_rows_are_always_tried(raw_db: Path, raw_profile, embedded_postgres, manifest) -> None:
    """A sample of 5 rows per table still tries every row the profiler flagged."""
    target = Target(embedded_postgres.conninfo(), "cli")
    trial = dryrun.run(dryrun.DryRunConfig(source=raw_db, profile=raw_profile, target=target, sample_size=5))
    assert trial.sample_size == 5
    flagged = {f.table: set() for f in raw_profile.findings}
    for f in raw_profile.findings:
        flagged[f.table] |= {json.dumps(k) for k in f.example_keys}
    cells = _by_cell(trial)
    for table, column, key in _defects(manifest, "empty_string", ("timestamp",)):
        assert json.dumps(key) in flagged[table]
        assert _the_problem(cells, table, column, key).flagged
    # 5 spread rows plus the flagged ones (a duplicated key flags two rows), not the table
    assert trial.rows["tickets"] <= 5 + 2 * len(flagged["tickets"]) < raw_profile.tables["tickets"].rows
    again = dryrun.run(dryrun.DryRunConfig(source=raw_db, profile=raw_profile, target=target, sample_size=5))
    assert again.problems == trial.problems  # deterministic


def test_sample_is_spread_over_the_table(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (a)")
        conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1000)])
        conn.execute("DELETE FROM t WHERE rowid BETWEEN 400 AND 600")  # a hole
    lite = sqlite3.connect(db)
    rows = dryrun._evenly_spread(lite, "t", "rowid, a", 10)
    rowids = [r[0] for r in rows]
    assert rowids[0] == 1 and rowids[-1] == 1000
    assert rowids == sorted(set(rowids)) and 8 <= len(rowids) <= 10
    assert all(not 400 <= r <= 600 for r in rowids)
    assert len(dryrun._evenly_spread(lite, "t", "rowid", 5000)) == 799


def test_clean_sample_has_nothing_refused(clean_raw_db: Path, embedded_postgres) -> None:
    profile = _profile(clean_raw_db)
    target = Target(embedded_postgres.conninfo(), "cli")
    trial = dryrun.run(dryrun.DryRunConfig(source=clean_raw_db, profile=profile, target=target))
    assert trial.tried > 1000
    assert trial.refused == 0, trial.to_json()["problems"][:3]
    assert trial.misread == 0
    assert trial.to_json()["verdict"] == "PASS"


def test_nothing_is_left_on_the_server(raw_trial, embedded_postgres) -> None:
    assert raw_trial.refused  # the run did load and cast
    with connect(embedded_postgres.conninfo(), autocommit=True) as conn:
        temp = conn.execute("SELECT relname FROM pg_class WHERE relpersistence = 't' OR relname = %s", (dryrun.TEMP_TABLE,)).fetchall()
        funcs = conn.execute("SELECT proname FROM pg_proc WHERE proname = %s", (dryrun.CAST_FUNCTION,)).fetchall()
    assert temp == [] and funcs == []


def test_the_servers_datestyle_decides(raw_db: Path, raw_profile, pg_dsn: str) -> None:
    """Under a day-first DateStyle the day-first dates are no longer refused or misread."""
    from psycopg.conninfo import conninfo_to_dict

    dbname = conninfo_to_dict(pg_dsn)["dbname"]
    with connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{dbname}" SET DateStyle = \'ISO, DMY\'')
    trial = dryrun.run(dryrun.DryRunConfig(source=raw_db, profile=raw_profile, target=Target(pg_dsn, "cli"), sample_size=200))
    assert trial.datestyle == "ISO, DMY"
    dates = [p for p in trial.problems if p.column in ("created_time", "TS-Date")]
    assert not [p for p in dates if p.kind == dryrun.SILENT_MISREAD]
    assert {p.message.split(":")[0] for p in dates} <= {"invalid input syntax for type timestamp", "date/time field value out of range"}
    assert trial.refused  # '' and 3652948.0 are refused under any DateStyle


def test_cli_writes_the_dry_run_into_the_profile_and_fails(raw_db: Path, embedded_postgres, tmp_path: Path, capsys) -> None:
    from pipeline.cli import main

    out = tmp_path / "profile.json"
    code = main(["profile", "--source", str(raw_db), "--out", str(out), "--dry-run-postgres", "--target", embedded_postgres.conninfo(), "--dry-run-sample", "50"])
    assert code == 1  # the profile's CLEAN
    report = json.loads(out.read_text())
    dry = report["dry_run_postgres"]
    assert dry["verdict"] == "FAIL" and dry["refused"] > 0 and dry["misread"] > 0
    assert dry["sample_size"] == 50
    assert report["verdict"] == "CLEAN"
    printed = capsys.readouterr().out
    assert "SILENT_MISREAD" in printed and "REFUSED" in printed and "dry run: FAIL" in printed


def test_cli_on_clean_data_passes(clean_raw_db: Path, embedded_postgres, capsys) -> None:
    from pipeline.cli import main

    code = main(["profile", "--source", str(clean_raw_db), "--dry-run-postgres", "--target", embedded_postgres.conninfo(), "--dry-run-sample", "100"])
    assert code == 0
    assert "dry run: PASS" in capsys.readouterr().out


def test_unreachable_target_is_one_line_without_password(raw_db: Path, capsys) -> None:
    from pipeline.cli import main

    target = "postgresql://etl:s3cret-pw@127.0.0.1:1/servicedesk?connect_timeout=3"
    code = main(["profile", "--source", str(raw_db), "--dry-run-postgres", "--target", target, "--dry-run-sample", "5"])
    err = capsys.readouterr().err
    assert code == 5
    assert "s3cret-pw" not in err and "Traceback" not in err
    first, *rest = err.strip().splitlines()
    assert first.startswith("error: cannot connect to PostgreSQL at postgresql://etl:***@127.0.0.1:1/servicedesk")
    assert all(line.startswith("  fix: ") for line in rest) and len(rest) <= 1


def test_personal_values_are_masked_in_value_and_message() -> None:
    value = dryrun._Value("t", "c", "bigint", 7, "Jane Doe", personal=True, flagged=False, order=None, pair_id=0)
    answers = {0: ('invalid input syntax for type bigint: "Jane Doe"', None, None, "22P02", None)}
    [p] = dryrun._judge([value], answers)
    assert p.kind == dryrun.REFUSED
    assert "Jane" not in p.value and "Jane" not in p.message
    assert p.value == "<personal: 8 characters>"


def test_default_target_is_the_embedded_server(raw_db: Path, monkeypatch, capsys) -> None:
    """No --target, no config, no PG*: the embedded server under ./.servicedesk/pg."""
    import shutil
    import tempfile

    from pipeline.cli import main
    from pipeline.pgserver import EmbeddedServer

    # Under /tmp, not tmp_path: as root the server runs as another account (conftest).
    folder = Path(tempfile.mkdtemp(prefix="sdetl-dryrun-", dir="/tmp"))
    for var in ("SERVICEDESK_TARGET", "PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(folder)
    server = EmbeddedServer(folder / ".servicedesk" / "pg")
    try:
        code = main(["profile", "--source", str(raw_db), "--dry-run-postgres", "--dry-run-sample", "20"])
        out = capsys.readouterr().out
        assert code == 1
        assert f"embedded server at {server.data_dir}" in out and "dry run: FAIL" in out
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_role_without_temporary_privilege_gets_a_remedy(raw_db: Path, raw_profile, pg_dsn: str) -> None:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from pipeline.errors import TargetUnavailable

    dbname = conninfo_to_dict(pg_dsn)["dbname"]
    with connect(pg_dsn, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS dryrun_no_temp")
        conn.execute("CREATE ROLE dryrun_no_temp LOGIN")
        conn.execute(f'REVOKE TEMPORARY ON DATABASE "{dbname}" FROM PUBLIC')
    try:
        target = Target(make_conninfo(pg_dsn, user="dryrun_no_temp"), "cli")
        with pytest.raises(TargetUnavailable) as caught:
            dryrun.run(dryrun.DryRunConfig(source=raw_db, profile=raw_profile, target=target, sample_size=5))
        assert "permission denied to create temporary tables" in caught.value.message
        assert "GRANT TEMPORARY" in caught.value.remedy
    finally:
        with connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f'GRANT TEMPORARY ON DATABASE "{dbname}" TO PUBLIC')
            conn.execute("DROP ROLE dryrun_no_temp")

"""The executor counts each distinct value of a batch once, weighted by its rows: the
counts, statuses and samples equal a judgement of every row, one by one."""

from __future__ import annotations

import sqlite3
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from contracts import spec
from contracts.executor import TYPE_CHECKS, _as_date, _jsonable, _judge, _TableChecker, execute
from contracts.schemas import REGISTRY
from pipeline.config import GateSettings, Settings
from pipeline.sources import SQLiteSource, quote_sqlite

TODAY = date(2025, 6, 1)

# Values that judge differently although they look or compare alike.
ODD = [
    None, "", " ", "N/A", " N/A ", "?", "--None--", "x", "\x00", b"bytes", 5, 5.0, True, False, 0, -0.0, 0.0, 1.5,
    float("inf"), 2**63 - 1, "5", "5.0", " 5", "2025-05-20 08:42:00", "2025-05-20T08:42:00",
    "2025-05-20 08:42", "2025-05-20 08:42:00.5", "2025-02-30 10:00:00", "2025-05-20 24:00:00", "2025-05-20 8:42:00",
    "２０２５-05-20 08:42:00", "2025-05-20 ٠٨:٤٢:٠٠", "2025-05-20", "20/05/2025 08:42", "2027-01-01 00:00:00",
    "2026-06-02 00:00:00", "2026-06-01 23:59:59", "45000", "2025-05", "2025-13", "Closed", "closed", "P3", "yes",
    "Yes", "agent", "comments", " 2025-05-20 08:42:00", "2025-05-20 08:42:00 ",
]


def _rows(table: str, n: int) -> tuple[list[str], list[list[Any]]]:
    """Every contract column of ``table`` cycling through ``ODD`` at different speeds,
    with unique timestamps and ids mixed in (the day-remembering paths)."""
    columns = list(REGISTRY[table].columns)
    rows = []
    for i in range(n):
        row = []
        for j, _ in enumerate(columns):
            pick = (i * (j + 1) + j) % (len(ODD) + 3)
            if pick == len(ODD):
                value: Any = f"2025-{1 + i % 12:02d}-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}"
            elif pick == len(ODD) + 1:
                value = 1000 + i
            elif pick == len(ODD) + 2:
                value = f"2026-06-{1 + i % 3:02d} {i % 24:02d}:00:00"  # around the future limit
            else:
                value = ODD[pick]
            row.append(value)
        rows.append(row)
    return columns, rows


def _write(path: Path, n: int) -> Path:
    con = sqlite3.connect(path)
    for table in ("tickets", "comments", "timesheets"):
        columns, rows = _rows(table, n)
        con.execute(f"CREATE TABLE {quote_sqlite(table)} ({', '.join(quote_sqlite(c) for c in columns)})")
        con.executemany(f"INSERT INTO {quote_sqlite(table)} VALUES ({', '.join('?' for _ in columns)})", rows)
    con.commit()
    con.close()
    return path


def _row_by_row(checker: _TableChecker, name: str, values: list[Any], keys: list[Any]) -> dict[str, tuple]:
    """Every check of one column judged row by row over the whole table (the reference):
    {check: (considered, failing, [(key, shown value)] of the first failing rows)}."""
    col = checker.schema.columns[name]
    k = spec.kind(col)
    mask = checker._masker(col)
    tallies = {t.check: t for t in checker._column_plan()[name]}
    type_tally = tallies.get(TYPE_CHECKS.get(k, ""))
    null_tally = tallies.get("not_null")
    limit = checker.limit
    out = {c: [0, 0, []] for c in tallies}

    def fail(check: str, i: int) -> None:
        out[check][1] += 1
        if len(out[check][2]) < limit:
            out[check][2].append((keys[i], mask(values[i])))

    usable = []
    for i, v in enumerate(values):
        if null_tally is not None:
            out["not_null"][0] += 1
        if v is None:
            if null_tally is not None:
                fail("not_null", i)
            continue
        if type_tally is not None:
            out[type_tally.check][0] += 1
        blank, bad_type, ok = _judge(v, k, type_tally is not None, checker.tokens[name])
        if blank and null_tally is not None:
            fail("not_null", i)
        if bad_type:
            fail(type_tally.check, i)  # type: ignore[union-attr]
        elif ok:
            usable.append(i)
    for check in col.checks:
        for i in usable:
            positions, failed = checker._pandera_outcome(check, [values[i]], [0])
            out[check.name][0] += len(positions)
            if failed:
                fail(check.name, i)
    days = spec.not_future_days(col)
    if days is not None and k in spec.DATE_KINDS:
        for i in usable:
            d = _as_date(values[i])
            if d is None:
                continue
            out["not_future"][0] += 1
            if d > TODAY + timedelta(days=days):
                fail("not_future", i)
    return {c: (v[0], v[1], v[2]) for c, v in out.items()}


@pytest.mark.parametrize("chunk_rows,sample_rows", [(7, 3), (64, 10), (50_000, 10)])
def test_counts_and_samples_equal_the_row_by_row_judgement(tmp_path: Path, chunk_rows: int, sample_rows: int) -> None:
    path = _write(tmp_path / "odd.db", 400)
    settings = Settings(gate=GateSettings(chunk_rows=chunk_rows, sample_rows=sample_rows))
    with SQLiteSource(path) as source:
        run = execute(source, settings, today=TODAY)
        results = {r.id: r for r in run.results}
        compared = 0
        for table in ("tickets", "comments", "timesheets"):
            schema = REGISTRY[table]
            checker = _TableChecker(source, table, schema, settings, TODAY, set(source.tables()))
            key = list(checker.facts.key)
            names = list(schema.columns)
            rows = [r for b in source.iter_batches(table, names, 10_000) for r in b]
            for name in names:
                values = [r[names.index(name)] for r in rows]
                def shown(r: tuple, c: str) -> Any:
                    v = r[names.index(c)]
                    return checker._mask_key(v) if spec.is_personal(schema.columns[c]) else _jsonable(v)

                keys = [shown(r, key[0]) if len(key) == 1 else tuple(shown(r, c) for c in key) for r in rows]
                for check, (considered, failing, sample) in _row_by_row(checker, name, values, keys).items():
                    got = results[f"{table}::{name}::{check}"]
                    assert (got.considered, got.failing) == (considered, failing), got.id
                    assert [(s.key, s.value) for s in got.sample] == sample, got.id
                    compared += 1
    assert compared >= 70


@hsettings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.text(alphabet="0123456789-: T", min_size=17, max_size=21),
    st.sampled_from(["2025-05-20 08:42:00", "2024-02-29 23:59:59", "2025-02-29 12:00:00", "N/A", "0000-00-00 00:00:00"]),
), max_size=20))
def test_timestamp_judgement_by_day_is_the_whole_judgement(values: list[str]) -> None:
    settings = Settings(placeholder_tokens=("N/A", "2025-05-20 08:42:00"))
    schema = REGISTRY["comments"]

    class _NoSource:
        def columns(self, table: str) -> list:
            return []

    checker = _TableChecker(_NoSource(), "comments", schema, settings, TODAY, set())  # type: ignore[arg-type]
    judge = checker._judge_of("created_time", "timestamp", True, checker.tokens["created_time"])
    for v in values * 2:  # the second time from the remembered day
        assert judge(v) == _judge(v, "timestamp", True, checker.tokens["created_time"]), v


@pytest.mark.parametrize("ids,repeats", [([1, 2, 3, 10, 11], 0), ([1, 2, 2, 3], 1), ([3, 2, 1], 0), ([1, None, 2], 0), ([1, 2, 5, 5.0], 1), ([1, True, 2], 1), (["1", "2"], 0)])
def test_unique_key_from_a_rising_key_or_by_sql(tmp_path: Path, ids: list, repeats: int, monkeypatch) -> None:
    """A single integer key that rises row after row repeats no key: no GROUP BY is asked;
    any other key column (falling, NULL, REAL, bool, text) is asked as before."""
    path = tmp_path / "k.db"
    con = sqlite3.connect(path)
    columns = list(REGISTRY["comments"].columns)
    con.execute(f"CREATE TABLE comments ({', '.join(quote_sqlite(c) for c in columns)})")
    con.executemany(f"INSERT INTO comments ({quote_sqlite('comment_id')}) VALUES (?)", [(i,) for i in ids])
    con.commit()
    con.close()
    asked = []
    real = SQLiteSource.duplicate_keys
    monkeypatch.setattr(SQLiteSource, "duplicate_keys", lambda self, *a, **k: asked.append(a) or real(self, *a, **k))
    settings = Settings(gate=GateSettings(chunk_rows=2))
    with SQLiteSource(path) as source:
        result = {r.id: r for r in execute(source, settings, today=TODAY, required_tables=()).results}
    assert result["comments::*::unique_key"].failing == repeats
    assert result["comments::*::row_count"].considered == len(ids)
    rising = all(type(i) is int for i in ids) and ids == sorted(set(ids))
    assert bool(asked) != rising


def test_references_counted_by_the_stream_as_by_their_own_scan(raw_db, monkeypatch) -> None:
    """The contract run with the orphans counted in the stream's scan
    (``iter_batches_with_orphans``) equals the run with ``orphans``' own scan per
    reference: counts, totals, samples and messages (the defective sample has orphans)."""
    from datetime import date

    from contracts.executor import execute
    from pipeline.config import Settings
    from pipeline.sources import SQLiteSource

    with SQLiteSource(raw_db) as source:
        streamed = execute(source, Settings(), today=date(2026, 11, 27))
    orphaned = [r for r in streamed.results if r.check.startswith("references") or "orphan" in r.message or "refer to no" in r.message]
    assert any(r.failing for r in orphaned)
    monkeypatch.delattr(SQLiteSource, "iter_batches_with_orphans")
    with SQLiteSource(raw_db) as source:
        scanned = execute(source, Settings(), today=date(2026, 11, 27))
    assert streamed.to_json() == scanned.to_json()

"""``SQLiteSource.iter_batches``: text that is not valid UTF-8 reads as the lenient
decoder gives it, wherever it sits in the table, whatever the batch size."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pipeline.sources import LENIENT_TEXT, SQLiteSource


def _db(path: Path, bad_at: list[int], n: int = 50) -> Path:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (a, b)")
    for i in range(n):
        text = f"row {i} é"
        if i in bad_at:
            con.execute("INSERT INTO t VALUES (?, CAST(? AS TEXT))", (i, b"\xff\xfe bad " + text.encode()))
        else:
            con.execute("INSERT INTO t VALUES (?, ?)", (i, text))
    con.commit()
    con.close()
    return path


def _lenient(path: Path, limit: int | None = None) -> list[tuple]:
    con = sqlite3.connect(path)
    con.text_factory = LENIENT_TEXT
    sql = "SELECT a, b FROM t ORDER BY rowid" + ("" if limit is None else f" LIMIT {limit}")
    rows = con.execute(sql).fetchall()
    con.close()
    return rows


@pytest.mark.parametrize("bad_at", [[], [0], [17], [49], [3, 4, 30]])
@pytest.mark.parametrize("batch_rows", [1, 7, 50, 1000])
@pytest.mark.parametrize("limit", [None, 20])
def test_invalid_utf8_reads_as_the_lenient_decoder(tmp_path: Path, bad_at: list[int], batch_rows: int, limit: int | None) -> None:
    path = _db(tmp_path / "t.db", bad_at)
    with SQLiteSource(path) as source:
        batches = list(source.iter_batches("t", ["a", "b"], batch_rows, limit=limit))
        assert [r for b in batches for r in b] == _lenient(path, limit)
        assert all(0 < len(b) <= batch_rows for b in batches)
        # The lenient connection still serves the other questions.
        assert source.row_count("t") == 50


REFERENCES = [1, 5, 0, None, 99, "7", "x", 7.0, 19, 20, 0, None, 3]  # t.ref, five times over


def _references_db(path: Path) -> Path:
    """A table ``t`` (ref, empty, txt) whose refs hit, miss, are NULL or ignored, against a
    ``target`` with a NULL id and a "7" beside the 7."""
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE target (id, other)")
    con.executemany("INSERT INTO target VALUES (?, ?)", [(i, None) for i in range(1, 20)] + [(None, 1), ("7", 2)])
    con.execute("CREATE TABLE t (ref, empty, txt)")
    con.executemany("INSERT INTO t VALUES (?, NULL, ?)", [(v, f"r{i}") for i, v in enumerate(REFERENCES * 5)])
    con.commit()
    con.close()
    return path


@pytest.mark.parametrize("ignore", [(), (0,), (0, "x")])
def test_non_null_counts_count_orphans_as_orphans_does(tmp_path: Path, ignore: tuple) -> None:
    path = _references_db(tmp_path / "o.db")
    with SQLiteSource(path) as source:
        rows, filled, counted = source.non_null_counts("t", ["ref", "empty", "txt"], [("ref", "target", "id", ignore), ("txt", "target", "id", ())])
        assert (rows, filled) == (len(REFERENCES) * 5, {"ref": 55, "empty": 0, "txt": 65})
        expected = [source.orphans("t", "ref", "target", "id", ignore, limit=3), source.orphans("t", "txt", "target", "id", (), limit=3)]
        assert counted == [(count, total) for count, total, _ in expected]
        assert source.orphan_sample("t", "ref", "target", "id", ignore, limit=3) == expected[0][2]
        assert source.non_null_counts("t", []) == (65, {}, [])


@pytest.mark.parametrize("ignore", [(), (0,), (0, "x")])
@pytest.mark.parametrize("batch_rows", [1, 6, 1000])
def test_the_streams_orphan_flags_count_as_orphans_does(tmp_path: Path, ignore: tuple, batch_rows: int) -> None:
    """``iter_batches_with_orphans``: the rows of ``iter_batches`` followed by one flag per
    reference, whose sums are ``orphans``' counts (NULL, ignored values, 7 / 7.0 / "7",
    a NULL target), also through the lenient re-read of invalid UTF-8."""
    path = _references_db(tmp_path / "o.db")
    con = sqlite3.connect(path)
    con.execute("INSERT INTO t VALUES (42, NULL, CAST(? AS TEXT))", (b"\xff bad",))
    con.commit()
    con.close()
    refs = [("ref", "target", "id", ignore), ("txt", "target", "id", ())]
    with SQLiteSource(path) as source:
        plain = [r for b in source.iter_batches("t", ["ref", "txt"], batch_rows) for r in b]
        flagged = [r for b in source.iter_batches_with_orphans("t", ["ref", "txt"], refs, batch_rows) for r in b]
        assert [r[:2] for r in flagged] == plain
        for j, (column, target, target_column, ign) in enumerate(refs):
            flags = [r[2 + j] for r in flagged]
            count, total, _ = source.orphans("t", column, target, target_column, ign)
            assert (flags.count(1), len(flags) - flags.count(None)) == (count, total)
            assert set(flags) <= {0, 1, None}

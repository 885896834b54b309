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

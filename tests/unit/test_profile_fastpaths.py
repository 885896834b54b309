"""The profiler's fast paths judge exactly as the whole judgement does."""

from __future__ import annotations

import collections
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from contracts.schemas import contract_for
from pipeline.config import Settings
from pipeline.profile import _ColumnScan, _Spec

NOW = datetime(2026, 11, 27, 12, 0, 0)


def _scan(table: str, column: str) -> _ColumnScan:
    col = dict(contract_for(table).columns)[column]
    return _ColumnScan(_Spec(table, column, "TEXT", col, Settings(), NOW), 5)


def _same(a, b) -> None:
    assert (a.hits, a.kind, a.num, a.text, a.dt, a.hash) == (b.hits, b.kind, b.num, b.text, b.dt, b.hash)


DATE_TEXTS = [
    "2025-05-20 08:42:00", "2025-05-20", "2025-05-20T08:42:00", "2025-02-30 10:00:00", "2025-05-20 8:42:00",
    "20/05/2025 8:42", "2/07/2025 16:21", "07/02/2025 16:21", "5/20/2025 8:42 PM", "31/31/2025", "13/13/2025 10:00",
    "45000", "45000.5", "not a date", "", " ", "  2025-05-20 08:42:00", "2025-05-20 08:42:00 ", "N/A", "--None--",
    "?", " N/A ", "2025-05-20\x0008:42:00", "2099-01-01 00:00:00", "28/11/2026 13:00", "2026-11-27 12:00:01",
    "2026-12-30 00:00:00", "2027-01-30 10:00:00", "25:61", "2025-05-20 24:00:00",
]


@pytest.mark.parametrize("table,column", [("tickets", "TKT-Created Time"), ("comments", "created_time"), ("timesheets", "TS-Date")])
@pytest.mark.parametrize("value", DATE_TEXTS)
def test_date_text_fast_judgement_is_the_whole_judgement(table: str, column: str, value: str) -> None:
    fast, whole = _scan(table, column), _scan(table, column)
    assert fast.spec.simple_date
    _same(fast.judge_date_text(value), whole.judge(value))


@hsettings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789/-: T.APMapm \t\x00", max_size=22))
def test_date_text_fast_judgement_on_any_text(value: str) -> None:
    _same(_scan("tickets", "TKT-Created Time").judge_date_text(value), _scan("tickets", "TKT-Created Time").judge(value))


def _slash(d: datetime) -> str:
    return f"{d.day}/{d.month:02d}/{d.year}"


@pytest.mark.parametrize("table,column", [("tickets", "TKT-Created Time"), ("comments", "created_time"), ("timesheets", "TS-Date")])
def test_date_text_remembered_slash_day_is_the_whole_judgement(table: str, column: str) -> None:
    """Once a slash day and a time of day have been read, later ``day time`` texts take
    the remembered judgement of the day: the same as the whole judgement, also on the
    day of the future limit (per value there) and on days either side of it."""
    fast = _scan(table, column)
    limit = fast.spec.future_limit or NOW
    days = [datetime(2025, 7, 2), datetime(2025, 2, 7), datetime(2025, 12, 25), datetime(2025, 2, 30 - 2)]
    days += [limit.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=k) for k in (-1, 0, 1)]
    times = ["0:00", "00:00", "8:42", "16:21", "23:59", "23:59:59", f"{limit.hour}:{limit.minute:02d}", f"{limit.hour}:{limit.minute:02d}:{limit.second:02d}", "24:00", "7:5"]
    values = [f"{_slash(d)} {t}" for _ in range(3) for d in days for t in times]
    values += [f"{d:%Y-%m-%d} {t}" for _ in range(3) for d in days for t in times]
    values += ["2025-02-29 10:00", "2025-02-29 11:00", "2025-05-20 08:42:00.5", "2025-05-20 08:42:00", "2025-05-20 8:42"]
    values += ["20-05-2025 10:00", "20-05-2025 11:00", "2025-05-20T08:42 10:00", "2025-05-20 ٠٨:٤٢", "2025-05-20 08:42 PM"]
    values += ["31/02/2025 10:00", "31/02/2025 11:00", "13/13/2025 10:00", "13/13/2025 11:00", "2/07/2025 4:21 PM", "2/07/2025 16:21"]
    for value in values:
        _same(fast.judge_date_text(value), _scan(table, column).judge(value))
    assert fast.slash_days, "the remembered path was taken"
    if fast.spec.future_limit is not None:  # the limit's day is judged per value
        assert any(entry and entry[3] is None for entry in fast.slash_days.values())


@hsettings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="0123456789/-: T", max_size=20), max_size=12))
def test_date_text_remembered_slash_day_on_any_text(values: list[str]) -> None:
    for table, column in (("comments", "created_time"), ("timesheets", "TS-Date")):
        fast = _scan(table, column)
        for value in values * 2:
            _same(fast.judge_date_text(value), _scan(table, column).judge(value))


def test_long_text_fast_path_counts_as_the_whole_judgement() -> None:
    """Comment texts on the fast path (no judgement) are exactly those the whole
    judgement finds nothing in: ASCII and 2-byte text, with NUL, CR, blank-line runs."""
    base = ["plain text", "ünïcödé text", "中文 text", "emoji \U0001F600 text"]
    extras = ["", "\x00", "a\x00b", "\r\n", "\n\n\n\n", "\n \n\t\n\n", "\n\n\n", "\n\r\n\r\n\n", "\n\n x \n\n", " pad "]
    values = [b + e + b for b in base for e in extras] + [e + b for b in base for e in extras] + ["N/A", "?", "", " "]
    scan = _scan("comments", "comment_text")
    assert scan.spec.plain_long_text
    col = tuple(values * 3)
    scan.feed(col, lambda i: i, 0, 7)  # stride > 1: the fast paths are on
    expected: dict[str, int] = {}
    for value in col:
        for h in _scan("comments", "comment_text").judge(value).hits:
            expected[h] = expected.get(h, 0) + 1
    assert dict(scan.counts) == expected
    assert {"nul", "blank_run", "crlf_mix"} <= set(expected)


@pytest.mark.parametrize(
    "col",
    [
        ("a", None, "b", "a", None) * 60,
        (None, b"x", "x", None, "y") * 60,
        (5, 5.0, True, None, "5", 1, 1.0) * 40,
        (None,) * 300,
        ("only",) * 300,
        tuple(str(i) for i in range(300)),
    ],
)
def test_nulls_and_storage_classes_from_the_distinct_values(col: tuple) -> None:
    """NULLs and storage classes counted on the distinct values (text) equal those
    counted on every value, in the same order (ties in the profile keep it)."""
    scan = _scan("comments", "comment_text")
    scan.feed(col, lambda i: i, 0, 7)
    scan.feed(col, lambda i: i, 0, 7)  # a second batch, after the unique-heavy decision
    expected = collections.Counter()
    for _ in range(2):
        expected.update(t for t in map(type, col) if t is not type(None))
        if None in col:
            expected[type(None)] += col.count(None)
    assert scan.nulls == 2 * col.count(None)
    assert list(scan.storage.items()) == list(expected.items())


def _unique_timestamps(n: int, limit: datetime) -> tuple:
    """Unique ``YYYY-MM-DD HH:MM:SS`` text over a few days, the future limit's day among
    them, with the odd values a column of timestamps may hold."""
    start = limit.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
    values: list = [f"{start + timedelta(seconds=97 * i):%Y-%m-%d %H:%M:%S}" for i in range(n)]
    odd = [None, "", "N/A", "2025-02-30 10:00:00", "2025-05-20 24:00:00", "2025-05-20T08:42:00", "２０２５-05-20 08:42:00",
           "2025-05-20 08:42", "20/05/2025 08:42", " 2025-05-20 08:42:00", "2025-05-20 08:42:00\x00", "1999-12-31 23:59:59"]
    for j, v in enumerate(odd * 5):
        values.insert((j * 37) % len(values), v)
    return tuple(values)


@pytest.mark.parametrize("table,column", [("tickets", "TKT-Created Time"), ("comments", "created_time")])
def test_unique_timestamps_by_day_count_as_the_whole_judgement(table: str, column: str, monkeypatch) -> None:
    """``feed``'s pass over unique ISO timestamps (settled days counted by the day) gives
    the counts, examples, distinct count, earliest and latest readings, NULLs and storage
    of the whole judgement, batch after batch, also on the day of the future limit and
    with a placeholder token that is a timestamp."""
    settings = Settings(placeholder_tokens=("N/A", "1999-12-31 23:59:59"))
    col_ = dict(contract_for(table).columns)[column]
    fast = _ColumnScan(_Spec(table, column, "TEXT", col_, settings, NOW), 5)
    whole = _ColumnScan(_Spec(table, column, "TEXT", col_, settings, NOW), 5)
    taken = []
    real = _ColumnScan._iso_timestamps

    def counted(self, *a):
        rest = real(self, *a)
        taken.append(rest)
        return rest

    values = _unique_timestamps(6000, fast.spec.future_limit or NOW)
    for start in range(0, len(values), 1000):
        batch = values[start:start + 1000]
        monkeypatch.setattr(_ColumnScan, "_iso_timestamps", counted)
        fast.feed(batch, lambda i, s=start: s + i, 0, 7)
        monkeypatch.setattr(_ColumnScan, "_iso_timestamps", lambda self, *a: None)
        whole.feed(batch, lambda i, s=start: s + i, 0, 7)
    assert any(rest for rest in taken), "the pass by day was taken, values left for the whole judgement"
    assert any(rest == [] for rest in taken), "whole batches were counted by day"
    assert dict(fast.counts) == dict(whole.counts)
    assert fast.examples == whole.examples
    assert (fast.nulls, dict(fast.storage), dict(fast.kinds), fast.sampled) == (whole.nulls, dict(whole.storage), dict(whole.kinds), whole.sampled)
    assert (fast.dt_min, fast.dt_max) == (whole.dt_min, whole.dt_max)
    assert fast.distinct.count() == whole.distinct.count()
    assert fast.distinct.registers == whole.distinct.registers


@hsettings(max_examples=300, deadline=None)
@given(st.one_of(
    st.text(alphabet="0123456789-: T", min_size=18, max_size=20),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(["2025-05-20 08:42:00", "2024-02-29 23:59:59", "2025-02-29 12:00:00", "N/A", "1999-12-31 23:59:59"]),
))
def test_kind_detection_fast_path_is_detect(value) -> None:
    from pipeline.profile import _detect

    settings = Settings(placeholder_tokens=("N/A", "1999-12-31 23:59:59"))
    col_ = dict(contract_for("comments").columns)["created_time"]
    scan = _ColumnScan(_Spec("comments", "created_time", "TEXT", col_, settings, NOW), 5)
    for _ in range(2):  # the second time from the remembered day
        assert scan.kind_of(value) == _detect(value, scan.spec.tokens)


def test_null_only_columns_counted_not_read(tmp_path) -> None:
    """A column holding NULL only is counted by ``non_null_counts`` and not read: the
    profile equals the one of a source that reads every column."""
    import sqlite3

    from pipeline.profile import profile_source
    from pipeline.sources import SQLiteSource, quote_sqlite

    path = tmp_path / "t.db"
    con = sqlite3.connect(path)
    for table, n in (("tickets", 300), ("comments", 700), ("timesheets", 500), ("extra", 40)):
        names = list(contract_for(table).columns) if contract_for(table) is not None else ["a", "b", "c"]
        con.execute(f"CREATE TABLE {quote_sqlite(table)} ({', '.join(quote_sqlite(c) for c in names)})")
        rows = []
        for i in range(n):
            # Every third column NULL throughout, the others filled now and then.
            rows.append([None if j % 3 == 0 else (i if j % 2 else f"v{i % 7}") if i % (j + 2) else None for j in range(len(names))])
        con.executemany(f"INSERT INTO {quote_sqlite(table)} VALUES ({', '.join('?' for _ in names)})", rows)
    con.commit()
    con.close()

    class EveryColumn:
        """The same file, without ``non_null_counts``."""

        def __init__(self, inner: SQLiteSource) -> None:
            self.inner = inner
            self.label = inner.label

        def __getattr__(self, name: str):
            if name == "non_null_counts":
                raise AttributeError(name)
            return getattr(self.inner, name)

    with SQLiteSource(path) as source:
        fast = profile_source(source, Settings(), now=NOW).to_json()
        whole = profile_source(EveryColumn(source), Settings(), now=NOW).to_json()  # type: ignore[arg-type]
    for doc in (fast, whole):
        doc.pop("created")
    assert fast["tables"]["tickets"]["columns"]["TKT-Ticket ID"]["null_count"] == 300
    assert fast == whole


@pytest.mark.parametrize("ids,repeats", [(list(range(1, 900)), 0), ([*range(1, 600), 5, *range(600, 900)], 1), ([*range(900, 1, -1)], 0), ([*range(1, 400), None, *range(400, 900)], 0), ([*range(1, 900), 899.0], 1)])
def test_duplicate_keys_of_a_rising_key_not_asked(tmp_path, ids: list, repeats: int, monkeypatch) -> None:
    """A single integer key read rising throughout repeats no key: the profile asks no
    GROUP BY; a key that falls back, holds NULL or REAL is asked (beside the pass)."""
    import sqlite3

    from pipeline.profile import profile_source
    from pipeline.sources import SQLiteSource, quote_sqlite

    path = tmp_path / "k.db"
    con = sqlite3.connect(path)
    columns = list(contract_for("comments").columns)
    con.execute(f"CREATE TABLE comments ({', '.join(quote_sqlite(c) for c in columns)})")
    con.executemany(f"INSERT INTO comments ({quote_sqlite('comment_id')}, {quote_sqlite('team')}) VALUES (?, ?)", [(i, "t" * 20_000) for i in ids])
    con.commit()
    con.close()
    asked = []
    real = SQLiteSource.duplicate_keys
    monkeypatch.setattr(SQLiteSource, "duplicate_keys", lambda self, *a, **k: asked.append(a) or real(self, *a, **k))
    with SQLiteSource(path) as source:
        result = profile_source(source, Settings(), now=NOW)
    found = [f for f in result.findings if f.code == "DUPLICATE_KEYS"]
    assert (found[0].count if found else 0) == repeats
    rising = all(type(i) is int for i in ids) and ids == sorted(set(ids))
    assert bool(asked) != rising

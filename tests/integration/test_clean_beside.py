"""The last table built beside the others (``clean._Beside``) against the build of every
table by one connection: the same output, audit and quarantine rows, summary; nothing
left behind when either side fails."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from pipeline import clean
from pipeline.config import Settings


def _digest(db: Path) -> dict[str, tuple[int, str]]:
    """Every table, rows by rowid with their storage classes (run id and times aside)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.text_factory = bytes
    out = {}
    try:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall():
            name = name.decode()
            cols = [r[1].decode() for r in conn.execute(f'PRAGMA table_info("{name}")')]
            skip = {"run_id", "changed_at", "quarantined_at"}
            sel = ", ".join(f'typeof("{c}"), "{c}"' for c in cols if c not in skip)
            h, n = hashlib.sha256(), 0
            for row in conn.execute(f'SELECT rowid, {sel} FROM "{name}" ORDER BY rowid'):
                h.update(repr(row).encode())
                n += 1
            out[name] = (n, h.hexdigest())
    finally:
        conn.close()
    return out


def _run(source: Path, out: Path, beside: bool, monkeypatch: pytest.MonkeyPatch, settings: Settings | None = None) -> clean.CleanResult:
    monkeypatch.setattr(clean, "BESIDE_ROWS", 0 if beside else 10**12)
    return clean.run(clean.CleanConfig(source=source, out=out, settings=settings or Settings(), progress=False))


def _summary(r: clean.CleanResult) -> tuple:
    return (r.tables, r.changes, r.quarantine, r.audit_rows, r.date_columns, r.ambiguous_date_columns, r.orphans, r.quality_after["score"])


@pytest.mark.parametrize("strategy", ["keep_latest", "keep_first"])
def test_the_table_built_beside_gives_the_same_output(raw_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategy: str):
    settings = Settings().with_overrides(**{"clean.duplicates": strategy, "clean.batch_rows": 97, "clean.health_check_rows": 50})
    one = _run(raw_db, tmp_path / "one.db", False, monkeypatch, settings)
    built: list[str] = []
    real_init = clean._Beside.__init__

    def counted(self: clean._Beside, owner: clean._Builder, tables: list[str], *rest: object) -> None:
        built.extend(tables)
        real_init(self, owner, tables, *rest)

    monkeypatch.setattr(clean._Beside, "__init__", counted)
    two = _run(raw_db, tmp_path / "two.db", True, monkeypatch, settings)
    assert built == ["tickets", "timesheets"]  # the tables to clean after the first, beside comments
    assert _summary(two) == _summary(one)
    assert one.audit_rows > 0 and sum(q["count"] for q in one.quarantine) > 0
    assert _digest(tmp_path / "two.db") == _digest(tmp_path / "one.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.db", "two.db"]  # no scratch file left


def test_the_table_built_beside_on_a_cleaned_file_keeps_the_history(raw_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    first = tmp_path / "first.db"
    _run(raw_db, first, False, monkeypatch)
    _run(first, tmp_path / "one.db", False, monkeypatch)
    _run(first, tmp_path / "two.db", True, monkeypatch)
    assert _digest(tmp_path / "two.db") == _digest(tmp_path / "one.db")


def _fail_in(monkeypatch: pytest.MonkeyPatch, beside: bool) -> None:
    real = clean._Builder._clean_table

    def failing(self: clean._Builder, table: str, schema: object) -> None:
        if self.temp.name.endswith(clean.BESIDE_SUFFIX) == beside:
            raise sqlite3.OperationalError("database or disk is full")
        real(self, table, schema)

    monkeypatch.setattr(clean._Builder, "_clean_table", failing)


@pytest.mark.parametrize("where", ["beside", "main"])
def test_a_failure_on_either_side_leaves_nothing(raw_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str):
    _fail_in(monkeypatch, where == "beside")
    with pytest.raises(clean.ResourceExhausted, match="disk: the disk holding"):
        _run(raw_db, tmp_path / "clean.db", True, monkeypatch)
    assert list(tmp_path.iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name.startswith("clean-") and t.is_alive()]


@pytest.mark.parametrize("beside", ["process", "thread"])
def test_the_main_build_failing_stops_the_table_beside(raw_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, beside: str):
    """The main builder fails while the builder beside is still cleaning: a forked one is
    killed and reaped, a thread is told to stop (between chunks, or its statement
    interrupted) and joined, before the error is raised; nothing is left behind."""
    import psutil

    import pipeline.child

    if beside == "thread":  # as where another thread runs beside the clean: no fork
        monkeypatch.setattr(pipeline.child, "alone", lambda: False)
    started = tmp_path.parent / f"{tmp_path.name}-beside-started"  # a file: seen from a forked builder too
    real = clean._Builder._clean_table

    def slow_beside(self: clean._Builder, table: str, schema: object) -> None:
        if self.temp.name.endswith(clean.BESIDE_SUFFIX):
            started.touch()
            real(self, table, schema)
        else:
            deadline = time.monotonic() + 30
            while not started.exists():
                assert time.monotonic() < deadline
                time.sleep(0.01)
            raise KeyboardInterrupt

    monkeypatch.setattr(clean._Builder, "_clean_table", slow_beside)
    with pytest.raises(KeyboardInterrupt):
        _run(raw_db, tmp_path / "clean.db", True, monkeypatch, Settings().with_overrides(**{"clean.batch_rows": 10, "clean.health_check_rows": 10}))
    assert list(tmp_path.iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name.startswith("clean-") and t.is_alive()]
    assert psutil.Process().children() == []  # the forked builder reaped


def test_a_scratch_file_of_a_killed_run_is_removed(raw_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    out = tmp_path / "clean.db"
    dead = 2**22 + 12345  # above the default pid_max: no such process
    stale = Path(f"{clean.temp_path_for(out, dead)}{clean.BESIDE_SUFFIX}")
    stale.write_bytes(b"partial")
    _run(raw_db, out, True, monkeypatch)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.db"]


@pytest.mark.parametrize("refused", [{"clean.duplicates": "fail"}, {"clean.duplicates_by_table": {"tickets": "fail"}}])
def test_duplicates_refused_beside_are_the_same_error(raw_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refused: dict):
    """Strategy ``fail`` is checked by the main builder, table by table in order, for the
    tables built beside too: the same error (the first table's, or the one built beside)."""
    settings = Settings().with_overrides(**refused)
    errors = []
    for beside in (False, True):
        with pytest.raises(clean.FixYourData) as err:
            _run(raw_db, tmp_path / "clean.db", beside, monkeypatch, settings)
        errors.append(str(err.value))
    assert errors[0] == errors[1]
    assert list(tmp_path.iterdir()) == []


def test_no_duplicates_to_refuse_beside(clean_raw_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    settings = Settings().with_overrides(**{"clean.duplicates": "fail"})
    one = _run(clean_raw_db, tmp_path / "one.db", False, monkeypatch, settings)
    two = _run(clean_raw_db, tmp_path / "two.db", True, monkeypatch, settings)
    assert _summary(two) == _summary(one)
    assert _digest(tmp_path / "two.db") == _digest(tmp_path / "one.db")

"""``contracts.report.ChildExecution``: the contract checks in a child process beside
the caller's profile (forked on Linux, a new Python elsewhere)."""

from __future__ import annotations

import os

import pytest


def _child_db(tmp_path):
    import sqlite3

    path = tmp_path / "c.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE tickets (\"TKT-Ticket ID\")")
    con.executemany("INSERT INTO tickets VALUES (?)", [(i,) for i in range(1, 50)])
    con.commit()
    con.close()
    return path


@pytest.mark.parametrize("fork", [True, False])
def test_child_execution_judges_as_in_process_forked_or_spawned(tmp_path, monkeypatch, fork: bool) -> None:
    """The contract checks in a child (forked on Linux, else a new Python) give the
    in-process results and the file's SHA-256; the caller's finalizers never run in a
    forked child; a failing child raises in the caller with its message."""
    import gc
    import hashlib
    from datetime import date

    from contracts import report as report_module
    from contracts.executor import execute
    from pipeline.config import Settings
    from pipeline.sources import SQLiteSource

    if fork and not report_module._CAN_FORK:
        pytest.skip("fork is used on Linux only")
    monkeypatch.setattr(report_module, "_CAN_FORK", fork)
    path = _child_db(tmp_path)
    marker = tmp_path / "finalized"

    class Garbage:  # a cycle with a finalizer, left for the collector
        def __del__(self) -> None:
            marker.write_text("finalized in the child" if os.getpid() != parent else "parent")

    parent = os.getpid()
    gc.disable()
    try:
        g = Garbage()
        g.self = g  # type: ignore[attr-defined]
        del g
        with report_module.ChildExecution(path, Settings(), date(2025, 6, 1)) as child:
            run, digest = child.result()
    finally:
        gc.enable()
        gc.collect()
    with SQLiteSource(path) as source:
        expected = execute(source, Settings(), today=date(2025, 6, 1))
    assert run.to_json() == expected.to_json()
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert marker.read_text() == "parent"
    with pytest.raises(Exception, match="no-such|does not exist|cannot"):
        with report_module.ChildExecution(tmp_path / "no-such.db", Settings(), date(2025, 6, 1)) as child:
            child.result()


def test_child_execution_left_early_leaves_no_child(tmp_path) -> None:
    from datetime import date

    from contracts import report as report_module
    from pipeline.config import Settings

    with report_module.ChildExecution(_child_db(tmp_path), Settings(), date(2025, 6, 1)) as child:
        pid = child.pid if child.pid is not None else child.child.pid
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped: no zombie, no running checker


def test_no_fork_beside_another_thread(tmp_path, monkeypatch) -> None:
    """A fork copies the locks other threads hold (a thread inside SQLite left a forked
    checker waiting forever): with another thread running, a new Python is started."""
    import threading
    from datetime import date

    from contracts import report as report_module
    from pipeline.config import Settings

    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        with report_module.ChildExecution(_child_db(tmp_path), Settings(), date(2025, 6, 1)) as child:
            assert child.pid is None and child.child is not None  # spawned
            child.result()
    finally:
        stop.set()
        other.join()
    if report_module._CAN_FORK:
        with report_module.ChildExecution(tmp_path / "c.db", Settings(), date(2025, 6, 1)) as child:
            assert child.pid is not None  # alone again: forked
            child.result()


def test_fork_beside_a_thread_marked_fork_safe(tmp_path) -> None:
    import threading
    from datetime import date

    from contracts import report as report_module
    from pipeline.config import Settings

    if not report_module._CAN_FORK:
        pytest.skip("fork is used on Linux only")
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.fork_safe = True  # type: ignore[attr-defined]
    other.start()
    try:
        with report_module.ChildExecution(_child_db(tmp_path), Settings(), date(2025, 6, 1)) as child:
            assert child.pid is not None  # forked
            child.result()
    finally:
        stop.set()
        other.join()


def test_a_failing_fork_leaks_no_descriptor(tmp_path, monkeypatch) -> None:
    """os.fork failing (no memory, no process slot) raises in the caller and leaves no
    pipe end or errors file open: __exit__ never runs when __enter__ fails."""
    from datetime import date

    from contracts import report as report_module
    from pipeline.config import Settings

    if not report_module._CAN_FORK:
        pytest.skip("fork is used on Linux only")

    def no_fork() -> int:
        raise OSError(11, "Resource temporarily unavailable")

    path = _child_db(tmp_path)
    before = set(os.listdir("/proc/self/fd"))
    monkeypatch.setattr(report_module.os, "fork", no_fork)
    with pytest.raises(OSError, match="Resource temporarily unavailable"):
        with report_module.ChildExecution(path, Settings(), date(2026, 1, 1)):
            pass
    assert set(os.listdir("/proc/self/fd")) == before


def _made_alone(request, db):
    """(path, settings, today, now, the profile and the contract run made in one process)
    of the fixture database ``db``; skipped where the checkers are not forked."""
    from datetime import date, datetime

    from contracts import report as report_module
    from contracts.executor import execute
    from pipeline.config import Settings
    from pipeline.profile import profile_source
    from pipeline.sources import SQLiteSource

    if not report_module._CAN_FORK:
        pytest.skip("fork is used on Linux only")
    path = request.getfixturevalue(db)
    settings, today, now = Settings(), date(2026, 11, 27), datetime(2026, 11, 27, 12, 0, 0)
    with SQLiteSource(path) as source:
        alone = profile_source(source, settings, now=now)
        expected_run = execute(source, settings, today=today)
    return path, settings, today, now, alone, expected_run


def _profile_json(result) -> dict:
    data = result.to_json()
    data.pop("created")
    return data


@pytest.mark.parametrize("names", [("tickets",), ("comments", "timesheets"), ("tickets", "no-such-table")])
@pytest.mark.parametrize("db", ["raw_db", "clean_raw_db"])
def test_tables_profiled_by_the_child_make_the_same_profile(request, db, names, monkeypatch) -> None:
    """``profile_source(..., apart=child)``: the tables the forked checker profiles
    (``profile_tables``) and the caller's make the profile the caller makes alone, findings
    and their order, scores and verdict included; the checker's results are unchanged.
    The multi-column key of a table the caller profiles (timesheets) is asked by the
    child only (repeated keys in the defective sample, none in the clean one)."""
    from contracts import report as report_module
    from pipeline.profile import profile_source
    from pipeline.sources import SQLiteSource

    path, settings, today, now, alone, expected_run = _made_alone(request, db)
    asked_here = []
    own = SQLiteSource.duplicate_keys

    def duplicate_keys(self, table, key, limit=10):
        asked_here.append((table, tuple(key)))
        return own(self, table, key, limit)

    with report_module.ChildExecution(path, settings, today, with_sha256=False, profile_tables=names, now=now) as child:
        assert child.pid is not None  # forked
        monkeypatch.setattr(SQLiteSource, "duplicate_keys", duplicate_keys)  # the caller's only
        assert child.apart_tables(path, now, settings.profile.full) == frozenset(names)
        with SQLiteSource(path) as source:
            shared = profile_source(source, settings, now=now, apart=child)
        run, _ = child.result()
    assert _profile_json(shared) == _profile_json(alone)
    assert run.to_json() == expected_run.to_json()
    assert [job for job in asked_here if len(job[1]) > 1] == []


@pytest.mark.parametrize("db", ["raw_db", "clean_raw_db"])
def test_a_second_child_that_only_profiles_makes_the_same_profile(request, db) -> None:
    """The cleaner's output gate: the checker profiles the tickets, a second forked child
    (``checks=False``) the timesheets, the caller the comments (``Apart``): the profile
    the caller makes alone and the checker's results; the second child checks nothing;
    where it cannot fork it starts nothing."""
    import threading

    from contracts import report as report_module
    from pipeline.profile import profile_source
    from pipeline.sources import SQLiteSource

    path, settings, today, now, alone, expected_run = _made_alone(request, db)
    with (
        report_module.ChildExecution(path, settings, today, with_sha256=False, profile_tables=("tickets",), now=now) as checker,
        report_module.ChildExecution(path, settings, today, with_sha256=False, profile_tables=("timesheets",), now=now, checks=False) as second,
    ):
        assert checker.pid is not None and second.pid is not None  # both forked
        apart = report_module.Apart(checker, second)
        assert apart.apart_tables(path, now, settings.profile.full) == frozenset({"tickets", "timesheets"})
        with SQLiteSource(path) as source:
            shared = profile_source(source, settings, now=now, apart=apart)
        run, _ = checker.result()
        assert second.result() == (None, None)
    assert _profile_json(shared) == _profile_json(alone)
    assert run.to_json() == expected_run.to_json()
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        with report_module.ChildExecution(path, settings, today, with_sha256=False, profile_tables=("timesheets",), now=now, checks=False) as second:
            assert second.pid is None and second.call is None  # not forked beside a thread: nothing started
            assert second.apart_tables(path, now, settings.profile.full) == frozenset()
    finally:
        stop.set()
        other.join()


def test_the_child_profiles_nothing_for_another_clock_file_or_mode(raw_db, tmp_path) -> None:
    """A profile of another clock, file or detection mode than the child's is made whole
    by the caller (``apart_tables`` names none); a spawned child profiles nothing."""
    import shutil
    import threading
    from datetime import date, datetime

    from contracts import report as report_module
    from pipeline.config import Settings

    settings, today, now = Settings(), date(2026, 11, 27), datetime(2026, 11, 27, 12, 0, 0)
    copy = shutil.copy(raw_db, tmp_path / "copy.db")
    full = settings.profile.full
    with report_module.ChildExecution(raw_db, settings, today, with_sha256=False, profile_tables=("tickets",), now=now) as child:
        forked = child.pid is not None
        assert child.apart_tables(raw_db, now.replace(second=1), full) == frozenset()
        assert child.apart_tables(copy, now, full) == frozenset()
        assert child.apart_tables(raw_db, now, not full) == frozenset()
        assert child.apart_tables(raw_db, now, full) == (frozenset({"tickets"}) if forked else frozenset())
        child.result()
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        with report_module.ChildExecution(raw_db, settings, today, with_sha256=False, profile_tables=("tickets",), now=now) as child:
            assert child.pid is None  # a new Python: its string hashes are not the caller's
            assert child.apart_tables(raw_db, now, full) == frozenset()
            child.result()
    finally:
        stop.set()
        other.join()


def test_a_failing_profile_in_the_child_raises_in_the_callers_profile(raw_db, monkeypatch) -> None:
    """The child's profile error is raised by the caller's ``profile_source``; its
    contract results still arrive. A child that dies raises in both."""
    from datetime import date, datetime

    from contracts import report as report_module
    from pipeline import profile as profile_module
    from pipeline.config import Settings
    from pipeline.profile import profile_source
    from pipeline.sources import SQLiteSource

    if not report_module._CAN_FORK:
        pytest.skip("fork is used on Linux only")
    settings, today, now = Settings(), date(2026, 11, 27), datetime(2026, 11, 27, 12, 0, 0)

    def broken(*_a, **_k):
        raise ValueError("profile broke in the child")

    monkeypatch.setattr(profile_module, "profile_tables", broken)  # seen by the forked child only
    with report_module.ChildExecution(raw_db, settings, today, with_sha256=False, profile_tables=("tickets",), now=now) as child:
        monkeypatch.undo()
        with SQLiteSource(raw_db) as source, pytest.raises(ValueError, match="profile broke in the child"):
            profile_source(source, settings, now=now, apart=child)
        run, _ = child.result()
    assert run.results
    monkeypatch.setattr(report_module, "_executed", lambda *a, **k: os._exit(3))
    with report_module.ChildExecution(raw_db, settings, today, with_sha256=False, profile_tables=("tickets",), now=now) as child:
        with SQLiteSource(raw_db) as source, pytest.raises(RuntimeError, match="exit code 3"):
            profile_source(source, settings, now=now, apart=child)
        with pytest.raises(RuntimeError, match="exit code 3"):
            child.result()


def test_the_child_profile_takes_the_orphans_its_checks_counted(raw_db, monkeypatch) -> None:
    """``_executed`` checks first; the orphans their stream counted are not counted again
    by the profile after them (``non_null_counts`` asked without the references), and
    the profile is the one made alone."""
    import json
    import pickle
    from datetime import date, datetime

    from contracts import report
    from pipeline.config import Settings
    from pipeline.profile import profile_tables
    from pipeline.sources import SQLiteSource

    settings, now = Settings(), datetime(2026, 11, 28, 12)
    with SQLiteSource(raw_db) as source:
        alone = profile_tables(source, ("timesheets", "comments"), settings, now=now)
    asked: list[tuple[str, int]] = []
    real = SQLiteSource.non_null_counts

    def recorded(self, table, columns, references=()):
        asked.append((table, len(references)))
        return real(self, table, columns, references)

    monkeypatch.setattr(SQLiteSource, "non_null_counts", recorded)
    status, _, profiled = pickle.loads(report._executed(str(raw_db), settings, date(2026, 11, 28), False, (("timesheets", "comments"), now)))
    assert status == "ok" and profiled[0] == "ok"
    assert ("timesheets", 0) in asked and ("comments", 0) in asked and not [a for a in asked if a[1]]

    def as_json(tables):
        return {t: (json.dumps(p, default=lambda o: getattr(o, "__dict__", str(o)), sort_keys=True), [f.to_json() for f in fs]) for t, (p, fs) in tables.items()}

    assert as_json(profiled[1][0]) == as_json(alone)
    assert any(r["orphans"] for r in alone["timesheets"][0].references)  # orphans there to count


def test_the_child_profile_groups_no_key_its_checks_found_unrepeated(clean_raw_db, monkeypatch) -> None:
    """On a file without repeated keys each key is grouped once, by the checks: the
    profile after them takes their answer (the timesheets' four-column key included)."""
    import pickle
    from collections import Counter
    from datetime import date, datetime

    from contracts import report
    from pipeline.config import Settings
    from pipeline.sources import SQLiteSource

    grouped: Counter = Counter()
    real = SQLiteSource.duplicate_keys

    def counted(self, table, key, limit=10):
        answer = real(self, table, key, limit)
        grouped[(table, tuple(key))] += 1
        assert answer[0] == 0  # the defect-free sample
        return answer

    monkeypatch.setattr(SQLiteSource, "duplicate_keys", counted)
    names = ("tickets", "comments", "timesheets")
    status, _, profiled = pickle.loads(report._executed(str(clean_raw_db), Settings(), date(2026, 11, 28), False, (names, datetime(2026, 11, 28, 12))))
    assert status == "ok" and profiled[0] == "ok"
    assert grouped[("timesheets", ("TS-User Username", "TS-Date", "TS-Time From", "TS-Crm ID"))] == 1
    assert max(grouped.values()) == 1

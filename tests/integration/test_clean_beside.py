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


# --- the tables judged beside the build (``_Beside.gated``) ---------------------------------


def _profile_json(profile) -> dict:
    import json

    data = json.loads(json.dumps(profile.to_json(), default=str))
    data.pop("created")  # the time the profile was made
    return data


@pytest.mark.parametrize("parallel", [True, False], ids=["checker-process", "in-process"])
def test_the_tables_judged_beside_give_the_gate_of_every_table(raw_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parallel: bool):
    """The builder beside profiles and checks the tables it built on its scratch file;
    the output's gate judges the others and takes these: the same profile and contract
    run as a gate judging every table of the output."""
    monkeypatch.setattr(clean, "PARALLEL_GATE_ROWS", 0 if parallel else 10**12)
    seen: dict[str, object] = {}
    real = clean._gate_output

    def both(temp, settings, today, progress, rows, phases, *, now=None, beside=None):
        after, contract = real(temp, settings, today, progress, rows, phases, now=now, beside=beside)
        seen["gated"] = set(beside.gated) if beside is not None else set()
        seen["split"] = (_profile_json(after), contract.to_json())
        whole, run = real(temp, settings, today, progress, rows, {}, now=now)
        seen["whole"] = (_profile_json(whole), run.to_json())
        return after, contract

    monkeypatch.setattr(clean, "_gate_output", both)
    result = _run(raw_db, tmp_path / "clean.db", True, monkeypatch)
    # comments refer to tickets: judged on the output; the tickets by the output's checker there
    assert seen["gated"] == {"timesheets"}
    assert seen["split"] == seen["whole"]
    assert seen["whole"][1]["results"] and seen["whole"][0]["findings"]
    assert result.quality_after["score"] == seen["whole"][0]["quality"]["score"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.db"]  # the scratch file removed


def test_the_pipeline_gate_judges_every_table_itself(raw_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """With the pytest gate of ``run`` (gate files asked for) nothing is judged beside."""
    gates: list[object] = []
    real_init = clean._Beside.__init__

    def recorded(self, owner, tables, gate_now=None):
        gates.append(gate_now)
        real_init(self, owner, tables, gate_now)

    monkeypatch.setattr(clean._Beside, "__init__", recorded)
    monkeypatch.setattr(clean, "BESIDE_ROWS", 0)
    config = clean.CleanConfig(source=raw_db, out=tmp_path / "clean.db", settings=Settings(), progress=False, gate_report=tmp_path / "gate.json")
    clean.run(config)
    assert gates == [None]


def _judging_fails(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    import os
    import signal

    import contracts.report

    real = contracts.report._executed

    def failing(path, *args, **kwargs):
        if not str(path).endswith(clean.BESIDE_SUFFIX):
            return real(path, *args, **kwargs)
        if how == "killed":
            os.kill(os.getpid(), signal.SIGKILL)
        if how == "raised":  # outside the answer: the process fails, its traceback on stderr
            raise RuntimeError("no answer pickled")
        from pipeline import profile

        monkeypatch.setattr(profile, "profile_tables", lambda *a, **k: (_ for _ in ()).throw(ValueError("the profile stopped")))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(contracts.report, "_executed", failing)


@pytest.mark.parametrize("how", ["killed", "raised", "error"])
def test_the_judging_beside_failing_fails_the_clean_and_leaves_nothing(raw_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str):
    import psutil

    _judging_fails(monkeypatch, how)
    if how == "killed":
        with pytest.raises(clean.TryAgain, match=r"the gate of timesheets \(a process beside the clean\) ended without an answer \(exit code -9\)"):
            _run(raw_db, tmp_path / "clean.db", True, monkeypatch)
    elif how == "raised":
        with pytest.raises(clean.TryAgain, match=r"the gate of timesheets \(a process beside the clean\) stopped \(exit code 1\): RuntimeError: no answer pickled"):
            _run(raw_db, tmp_path / "clean.db", True, monkeypatch)
    else:
        with pytest.raises(ValueError, match="the profile stopped"):  # raised again here
            _run(raw_db, tmp_path / "clean.db", True, monkeypatch)
    assert list(tmp_path.iterdir()) == []
    assert psutil.Process().children() == []


def test_the_gate_failing_while_the_tables_beside_are_judged_stops_them(raw_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The output's own profile fails while the builder beside still judges its tables:
    that process is killed and reaped, its scratch file removed, the error raised."""
    import psutil

    import contracts.report

    real = contracts.report._executed

    def slow(path, *args, **kwargs):
        if str(path).endswith(clean.BESIDE_SUFFIX):
            time.sleep(60)  # killed long before
        return real(path, *args, **kwargs)

    monkeypatch.setattr(contracts.report, "_executed", slow)

    real_profile = clean._profile

    def interrupted(path, *args, **kwargs):
        if Path(path) == raw_db:  # the source's profile
            return real_profile(path, *args, **kwargs)
        assert [p for p in psutil.Process().children() if p.is_running()]  # the builder beside, judging
        raise KeyboardInterrupt

    monkeypatch.setattr(clean, "_profile", interrupted)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        _run(raw_db, tmp_path / "clean.db", True, monkeypatch)
    assert time.monotonic() - started < 50  # not waited for
    assert list(tmp_path.iterdir()) == []
    assert psutil.Process().children() == []


def test_a_builder_beside_in_a_thread_judges_nothing(raw_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Beside a thread that is not fork-safe the builder beside is a thread: it builds
    only, and the output's gate judges every table."""
    import pipeline.child

    monkeypatch.setattr(pipeline.child, "alone", lambda: False)
    seen: list[object] = []
    real = clean._gate_output

    def recorded(temp, settings, today, progress, rows, phases, *, now=None, beside=None):
        seen.append(beside)
        return real(temp, settings, today, progress, rows, phases, now=now, beside=beside)

    monkeypatch.setattr(clean, "_gate_output", recorded)
    threaded = _run(raw_db, tmp_path / "two.db", True, monkeypatch)
    assert seen == [None]
    monkeypatch.undo()
    forked = _run(raw_db, tmp_path / "one.db", True, monkeypatch)
    assert _summary(threaded) == _summary(forked)
    assert threaded.quality_after == forked.quality_after and threaded.contract_failures == forked.contract_failures


@pytest.mark.parametrize(
    ("tables", "judged"),
    [
        (["tickets", "timesheets"], ["tickets", "timesheets"]),
        (["timesheets"], []),  # its tickets are built elsewhere
        (["comments", "timesheets"], []),
        (["tickets", "comments"], ["tickets", "comments"]),
        (["tickets", "import_metadata"], ["tickets", "import_metadata"]),
        (["tickets", "roster"], ["tickets"]),  # no contract: nothing to judge
    ],
)
def test_the_tables_judged_beside_are_those_whose_references_stay_beside(tables: list[str], judged: list[str]):
    assert clean._judged_alone(tables) == judged

"""The anonymiser: keyed pseudonyms, every quirk and storage class kept, closed samples.

Most tests run on a small hand-built raw-like database (``raw_like``) whose personal
strings are known; the last ones run on the generated ``raw_db`` once the sample
generator and ingest exist, and compare the profiler's verdicts once it exists.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sqlite3
import stat
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from contracts.schemas import REGISTRY
from pipeline.anonymize import (
    DEFAULT_KEY_FILE,
    NAME,
    TEXT,
    AnonymizeConfig,
    Pseudonymizer,
    column_policy,
    reshape,
    run,
)
from pipeline.config import Settings
from pipeline.errors import ConfigError, InputFileError
from pipeline.values import to_integer

TICKETS = list(REGISTRY["tickets"].columns)
COMMENTS = list(REGISTRY["comments"].columns)
TIMESHEETS = list(REGISTRY["timesheets"].columns)
ROSTER = list(REGISTRY["cloud_team_roster"].columns)

PEOPLE = ["Alice Johnson", "Bartholomew Okafor", "Chen Wei-Ling", "Dana O'Reilly", "Eoin MacGabhann", "Fatima Zahra Benali"]
USERS = ["ajohnson", "bokafor", "cweiling", "doreilly", "emacgabhann", "fbenali"]
CLIENTS = ["Northwind Traders", "Contoso Pharmaceuticals", "Fabrikam Holdings", "Tailspin Toys"]
TEXTS = [
    "Customer reports the VPN is down since 8am.\r\nRebooted the firewall, please confirm.",
    "Called Alice Johnson on 0412 345 678 about the outage\n\n\n\n\nno answer",
    "  leading and trailing spaces kept  ",
    "NUL\x00inside the text\x00 and a CR only\rline",
    "Escalated to L2 as discussed with bokafor; mail sent to ajohnson@northwind.com.au",
]


def _create(conn: sqlite3.Connection, table: str, columns: list[str]) -> None:
    # Untyped columns, as a faithful ingest writes them: SQLite keeps every storage class.
    conn.execute(f'CREATE TABLE "{table}" ({", ".join(chr(34) + c + chr(34) for c in columns)})')


def _insert(conn: sqlite3.Connection, table: str, columns: list[str], rows: list[dict]) -> None:
    marks = ", ".join("?" for _ in columns)
    names = ", ".join(f'"{c}"' for c in columns)
    conn.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', [[r.get(c) for c in columns] for r in rows])


def build_raw_like(path: Path, tickets: int = 200) -> dict:
    """A raw-like database with every quirk the anonymiser must keep; returns its facts."""
    conn = sqlite3.connect(path)
    for table, cols in (("tickets", TICKETS), ("comments", COMMENTS), ("timesheets", TIMESHEETS), ("cloud_team_roster", ROSTER)):
        _create(conn, table, cols)
    conn.execute('CREATE TABLE "import_metadata" (import_id INTEGER, source_type TEXT, file_name TEXT, notes TEXT)')
    ticket_rows, comment_rows, ts_rows = [], [], []
    for i in range(tickets):
        tid = 3_600_000 + i
        who = PEOPLE[i % len(PEOPLE)]
        row = {
            # ids stored as REAL for some rows, as the exports do
            "TKT-Ticket ID": float(tid) if i % 7 == 0 else tid,
            "TKT-Parent ID": float(tid - 1) if i % 50 == 0 else None,
            "TKT-Created Time": f"{2 + i % 27}/07/2025 {i % 24}:0{i % 10}" if i % 20 == 0 else f"2025-07-{1 + i % 28:02d} 08:42:00",
            "TKT-Month Created": "2025-07",
            "TKT-Account Id": float(900 + i % 5),
            "TKT-Account Name": CLIENTS[i % len(CLIENTS)],
            "TKT-Client Name": CLIENTS[(i + 1) % len(CLIENTS)],
            "TKT-Title": "" if i % 30 == 0 else f"Server {i} unreachable",
            "TKT-Description": TEXTS[i % len(TEXTS)],
            "TKT-Status": "Incident Resolved" if i % 4 == 0 else "Closed",
            "TKT-Severity": "P3",
            "TKT-Assigned To User": " PendingAssignment" if i % 9 == 0 else who,
            "TKT-Assigned To Userid": 1000 + i % len(PEOPLE),
            "TKT-Team": "Cloud - Infrastructure",
            "TKT-Category": "Support Tickets",
            "TKT-Root Cause Category": "--None--" if i % 3 == 0 else "Security",
            "TKT-Created By User": PEOPLE[(i + 2) % len(PEOPLE)],
            "TKT-SLA Met": "yes" if i % 10 else "no",
            "TKT-Actual Response Date": "" if i % 11 == 0 else "2025-07-03 09:00:00",
            "TKT-Solution": None if i % 2 else "Restarted the service.\n\n\nCustomer happy.",
            "Chg-Approver": PEOPLE[i % 2] if i % 40 == 0 else None,
        }
        ticket_rows.append(row)
        for j in range(3):
            cid = tid * 10 + j
            comment_rows.append(
                {
                    "comment_id": cid,
                    "ticket_id": tid,
                    "comment_text": TEXTS[(i + j) % len(TEXTS)] if j else "",
                    "user_id": 1000 + (i + j) % len(USERS),
                    "user_name": USERS[(i + j) % len(USERS)],
                    "owner_type": "agent",
                    "created_time": "20/07/2025 8:42",
                    "visible_to_customer": "Yes" if j == 1 else "No",
                    "comment_type": "comments",
                    "team": "Cloud - Infrastructure",
                }
            )
        for j in range(2):
            ts_rows.append(
                {
                    "TS-User Full Name": PEOPLE[(i + j) % len(PEOPLE)],
                    "TS-User Username": USERS[(i + j) % len(USERS)],
                    "TS-Title": f"Ticket {tid} work for {CLIENTS[i % len(CLIENTS)]}",
                    "TS-Date": f"{1 + i % 28}/07/2025",
                    "TS-Time From": f"{8 + j}:00",
                    "TS-Time To": f"{9 + j}:00",
                    "TS-Hours": 1.0,
                    "TS-Crm ID": tid if j == 0 else float(tid),
                    "TS-Account Name": CLIENTS[i % len(CLIENTS)],
                    "TS-Sub Category": "",
                }
            )
    # duplicates: a ticket twice, a comment id on two rows, a timesheet key twice
    ticket_rows.append(dict(ticket_rows[5]))
    comment_rows.append(dict(comment_rows[40], comment_text="a different text for the same id"))
    ts_rows.append(dict(ts_rows[10]))
    # orphans: comments on a missing ticket (one non-numeric), timesheets on missing tickets, admin time
    for k in range(30):
        comment_rows.append(dict(comment_rows[k], comment_id=9_000_000 + k, ticket_id=4_999_000 + k))
    comment_rows.append(dict(comment_rows[0], comment_id=9_100_000, ticket_id="INC-77"))
    for k in range(120):
        ts_rows.append(dict(ts_rows[k % 20], **{"TS-Crm ID": 0 if k % 3 == 0 else 5_000_000 + k, "TS-Time From": f"{k % 24}:15"}))
    _insert(conn, "tickets", TICKETS, ticket_rows)
    _insert(conn, "comments", COMMENTS, comment_rows)
    _insert(conn, "timesheets", TIMESHEETS, ts_rows)
    roster = [{"name": p, "email": f"{u}@northwind.com.au", "username": u} for p, u in zip(PEOPLE, USERS)]
    roster.append({"name": "Odd Entry", "email": "not an address", "username": "oddentry"})
    _insert(conn, "cloud_team_roster", ROSTER, roster)
    conn.execute("INSERT INTO import_metadata VALUES (1, 'tickets', 'tickets.xlsx', 'scoping off')")
    conn.commit()
    conn.close()
    return {"people": PEOPLE, "users": USERS, "clients": CLIENTS, "texts": TEXTS, "tickets": tickets}


@pytest.fixture(scope="module")
def raw_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("anon") / "raw.db"
    build_raw_like(path)
    return path


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("keys")
    a, b = folder / "a.key", folder / "b.key"
    a.write_bytes(bytes(range(32)))
    b.write_bytes(bytes(range(32, 64)))
    a.chmod(0o600)
    b.chmod(0o600)
    return a, b


@pytest.fixture(scope="module")
def full(raw_like: Path, keys: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("anon_out") / "sample.db"
    run(AnonymizeConfig(source=raw_like, out=out, key_file=keys[0]))
    return out


def _cells(path: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(path)
    conn.text_factory = lambda b: b.decode("utf-8", "replace")
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
    data = {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall() for t in tables}
    conn.close()
    return data


def _column(path: Path, table: str, column: str) -> list:
    conn = sqlite3.connect(path)
    values = [r[0] for r in conn.execute(f'SELECT "{column}" FROM "{table}" ORDER BY rowid')]
    conn.close()
    return values


def _typeofs(path: Path, table: str) -> dict[str, Counter]:
    conn = sqlite3.connect(path)
    cols = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
    out = {c: Counter(dict(conn.execute(f'SELECT typeof("{c}"), count(*) FROM "{table}" GROUP BY 1').fetchall())) for c in cols}
    conn.close()
    return out


def _personal_originals(path: Path, policies: tuple[str, ...] = (NAME, TEXT)) -> set[str]:
    """Every trimmed value of a column that gets pseudonymised (placeholders aside).

    A short value that the source also holds in a kept column (a timesheet titled
    ``Leave`` like the category ``Leave``) is no personal string: it is left out.
    """
    conn = sqlite3.connect(path)
    originals, kept = set(), set()
    for table in [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]:
        for col in [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]:
            policy = column_policy(table, col)
            target = originals if policy in policies else kept if policy == "keep" else None
            if target is None:
                continue
            for (value,) in conn.execute(f'SELECT DISTINCT "{col}" FROM "{table}" WHERE typeof("{col}") = \'text\''):
                core = value.strip()
                if core and core not in {"PendingAssignment", "--None--"}:
                    target.add(core)
    conn.close()
    return originals - kept


def assert_nothing_survives(source: Path, out: Path) -> None:
    """Scan every cell of ``out``: no personal value of ``source`` whole, no name inside any text."""
    originals = _personal_originals(source)
    names = sorted((o for o in _personal_originals(source, (NAME,)) if len(o) >= 5), key=len, reverse=True)
    assert originals and names
    inside = re.compile("|".join(re.escape(n) for n in names))
    for table, rows in _cells(out).items():
        for row in rows:
            for cell in row:
                if isinstance(cell, str):
                    assert cell.strip() not in originals, (table, cell)
                    found = inside.search(cell)
                    assert found is None, (table, found and found.group(0), cell)


# --- the pieces ------------------------------------------------------------------------------


def test_policies_follow_the_contracts() -> None:
    assert column_policy("tickets", "TKT-Assigned To User") == NAME
    assert column_policy("tickets", "TKT-Description") == TEXT
    assert column_policy("tickets", "TKT-Title") == TEXT
    assert column_policy("tickets", "TKT-Account Name") == NAME
    assert column_policy("comments", "user_name") == NAME
    assert column_policy("comments", "comment_text") == TEXT
    assert column_policy("timesheets", "TS-User Username") == NAME
    assert column_policy("cloud_team_roster", "email") == NAME
    for kept in ("TKT-Ticket ID", "TKT-Created Time", "TKT-Status", "TKT-Team", "TKT-Category", "TKT-SLA Met"):
        assert column_policy("tickets", kept) == "keep"
    assert column_policy("tickets", "Unnamed: 61") == "loose"
    assert column_policy("some_table", "x") == "loose"


@pytest.mark.parametrize(
    "text",
    ["Hello World", "a\x00b\r\nc\n\n\n\nd", "  padded  ", "Ünïcödé straße 42", "tabs\tand\x0bvt", "emoji 🎉 ok", "x"],
)
def test_reshape_keeps_length_and_shape(text: str) -> None:
    out, changed = reshape(text, b"seed")
    assert len(out) == len(text)
    assert changed == sum(ch.isalnum() for ch in text if ord(ch) < 0x10000)
    for a, b in zip(text, out):
        if a.isalnum() and ord(a) < 0x10000:
            assert b.isascii() and b.isalnum()
            assert a.isdigit() == b.isdigit()
            assert a.isupper() == b.isupper()
        else:
            assert a == b
    assert reshape(text, b"seed") == (out, changed)


def test_name_pseudonyms_are_consistent_and_collision_free() -> None:
    p = Pseudonymizer(b"k" * 32, ["--None--", "PendingAssignment"])
    names = [f"user{i}" for i in range(300)] + ["al", "bo", "jo", "Jane Smith", "jsmith@corp.com.au", "jsmith"]
    p.prepare_names(names)
    mapped = [p.name(n) for n in names]
    assert len(set(mapped)) == len(names)
    assert not set(mapped) & set(names)
    assert p.name(" Jane Smith ") == " " + p.name("Jane Smith") + " "
    assert p.name(" PendingAssignment") == " PendingAssignment"
    email = p.name("jsmith@corp.com.au")
    assert email.startswith(p.name("jsmith") + "@") and email.endswith(".au")
    # the same key in a new run: the same pseudonyms; another key: others
    again = Pseudonymizer(b"k" * 32, [])
    again.prepare_names(names)
    assert [again.name(n) for n in names] == mapped
    other = Pseudonymizer(b"o" * 32, [])
    other.prepare_names(names)
    assert [other.name(n) for n in names] != mapped


def test_name_keeps_the_storage_class_of_numbers_and_blobs() -> None:
    p = Pseudonymizer(b"k" * 32, [])
    assert isinstance(p.name(123456), int) and p.name(123456) != 123456
    assert isinstance(p.name(1234.0), float)
    assert p.name(b"\x00ab") [:1] == b"\x00" and len(p.name(b"\x00ab")) == 3
    assert p.name("") == "" and p.name("   ") == "   " and p.name(None) is None


def test_text_keeps_quirks_and_leaves_dates_and_placeholders() -> None:
    p = Pseudonymizer(b"k" * 32, ["--None--", "N/A"])
    text = "line one\r\nline two\n\n\n\n\nthird\x00end  "
    out = p.text(text)
    assert out != text and len(out) == len(text)
    assert [i for i, c in enumerate(out) if c in "\r\n\x00 "] == [i for i, c in enumerate(text) if c in "\r\n\x00 "]
    for kept in ("", "   ", "--None--", " N/A", "2025-07-01 08:00:00", "20/05/2025 8:42"):
        assert p.text(kept) == kept
    number = p.text("0412345678")
    assert number.isdigit() and len(number) == 10 and number != "0412345678"
    assert p.text(42) == 42 and p.text(4.5) == 4.5


# --- the stage on a raw-like database -----------------------------------------------------------


def test_no_personal_string_survives(raw_like: Path, full: Path) -> None:
    originals = _personal_originals(raw_like)
    assert {"Alice Johnson", "ajohnson", "Northwind Traders", TEXTS[0]} <= originals
    assert_nothing_survives(raw_like, full)


def test_the_key_never_reaches_the_output(full: Path, keys: tuple[Path, Path]) -> None:
    key = keys[0].read_bytes()
    data = full.read_bytes()
    assert key not in data and key.hex().encode() not in data


def test_same_person_same_pseudonym_across_tables(raw_like: Path, full: Path) -> None:
    mapping: dict[str, set[str]] = {}
    for table, column in (
        ("tickets", "TKT-Assigned To User"),
        ("tickets", "TKT-Created By User"),
        ("timesheets", "TS-User Full Name"),
        ("comments", "user_name"),
        ("timesheets", "TS-User Username"),
        ("cloud_team_roster", "name"),
        ("cloud_team_roster", "username"),
        ("tickets", "TKT-Account Name"),
        ("tickets", "TKT-Client Name"),
        ("timesheets", "TS-Account Name"),
    ):
        for before, after in zip(_column(raw_like, table, column), _column(full, table, column)):
            mapping.setdefault(before, set()).add(after)
    assert all(len(v) == 1 for v in mapping.values()), {k: v for k, v in mapping.items() if len(v) > 1}
    pseudonyms = [next(iter(v)) for k, v in mapping.items() if k.strip() != "PendingAssignment"]
    assert len(set(pseudonyms)) == len(pseudonyms)  # no two people merged
    assert mapping[" PendingAssignment"] == {" PendingAssignment"}
    # e-mail addresses follow the username's pseudonym
    for user, email in zip(_column(full, "cloud_team_roster", "username"), _column(full, "cloud_team_roster", "email")):
        if "@" in email:
            assert email.startswith(user + "@") and email.endswith(".au")
    assert "not an address" not in _column(full, "cloud_team_roster", "email")


def test_storage_classes_and_kept_columns_exact(raw_like: Path, full: Path) -> None:
    for table in ("tickets", "comments", "timesheets", "cloud_team_roster", "import_metadata"):
        assert _typeofs(raw_like, table) == _typeofs(full, table), table
        for column in [r[0] for r in sqlite3.connect(raw_like).execute(f'SELECT name FROM pragma_table_info("{table}")')]:
            before, after = _column(raw_like, table, column), _column(full, table, column)
            assert len(before) == len(after)
            if column_policy(table, column) == "keep":
                assert before == after, (table, column)
                assert [type(v) for v in before] == [type(v) for v in after]
            else:
                # placeholders, NULL and empty or blank strings stay exactly as they were
                for b, a in zip(before, after):
                    if b is None or (isinstance(b, str) and (not b.strip() or b.strip() in ("--None--", "PendingAssignment"))):
                        assert a == b
                    elif isinstance(b, str):
                        assert len(a) == len(b)
    declared = sqlite3.connect(full).execute("SELECT sql FROM sqlite_master WHERE name = 'import_metadata'").fetchone()[0]
    assert "INTEGER" in declared  # the source's own CREATE statement, declared types included


def test_text_quirks_survive(raw_like: Path, full: Path) -> None:
    for table, column in (("comments", "comment_text"), ("tickets", "TKT-Description"), ("tickets", "TKT-Solution")):
        for before, after in zip(_column(raw_like, table, column), _column(full, table, column)):
            if before is None:
                assert after is None
                continue
            assert len(after) == len(before)
            for quirk in ("\x00", "\r\n", "\n\n\n"):
                assert after.count(quirk) == before.count(quirk)
            assert after.startswith(" ") == before.startswith(" ") and after.endswith(" ") == before.endswith(" ")
            if before.strip():
                assert after != before


def test_deterministic_with_a_key_different_with_another(
    raw_like: Path, full: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    again = tmp_path / "again.db"
    run(AnonymizeConfig(source=raw_like, out=again, key_file=keys[0]))
    assert _cells(again) == _cells(full)
    other = tmp_path / "other.db"
    run(AnonymizeConfig(source=raw_like, out=other, key_file=keys[1]))
    assert _column(other, "comments", "user_name") != _column(full, "comments", "user_name")
    assert _column(other, "comments", "comment_id") == _column(full, "comments", "comment_id")


def _norm(value):
    n = to_integer(value)
    return n if n is not None else value


@pytest.mark.parametrize("fraction", [0.1, 0.5])
def test_fraction_keeps_referential_closure_duplicates_and_orphans(
    raw_like: Path, keys: tuple[Path, Path], tmp_path: Path, fraction: float
) -> None:
    out = tmp_path / "sample.db"
    result = run(AnonymizeConfig(source=raw_like, out=out, key_file=keys[0], fraction=fraction))
    source_tickets = {_norm(v) for v in _column(raw_like, "tickets", "TKT-Ticket ID")}
    kept_tickets = Counter(_norm(v) for v in _column(out, "tickets", "TKT-Ticket ID"))
    all_tickets = Counter(_norm(v) for v in _column(raw_like, "tickets", "TKT-Ticket ID"))
    n = len(all_tickets)
    assert 0 < len(kept_tickets) < n
    assert abs(len(kept_tickets) / n - fraction) < 0.12
    assert result.rows_written("tickets") == sum(kept_tickets.values())
    # duplicates of a kept ticket come along
    for ident, count in kept_tickets.items():
        assert count == all_tickets[ident]

    # every child row naming an existing ticket names a kept one; its siblings all came
    src_comments = Counter((_norm(c), _norm(t)) for c, t in zip(_column(raw_like, "comments", "comment_id"), _column(raw_like, "comments", "ticket_id")))
    out_comments = Counter((_norm(c), _norm(t)) for c, t in zip(_column(out, "comments", "comment_id"), _column(out, "comments", "ticket_id")))
    for (cid, tid), count in out_comments.items():
        if tid in source_tickets:
            assert tid in kept_tickets
        assert count == src_comments[(cid, tid)]
    for (cid, tid), count in src_comments.items():
        if tid in kept_tickets:
            assert out_comments[(cid, tid)] == count  # a kept ticket keeps all its comments
    src_ids = Counter(c for c, _ in src_comments.elements())
    out_ids = Counter(c for c, _ in out_comments.elements())
    for cid, count in out_ids.items():
        assert count == src_ids[cid]  # both rows of a duplicate comment id go together
    orphan_comments = [t for _, t in out_comments if t not in source_tickets]
    assert orphan_comments, "orphan comments must remain in a sample"

    key_cols = ("TS-User Username", "TS-Date", "TS-Time From", "TS-Crm ID")
    src_ts = list(zip(*(_column(raw_like, "timesheets", c) for c in key_cols)))
    out_ts = list(zip(*(_column(out, "timesheets", c) for c in key_cols)))
    out_crm = [_norm(k[3]) for k in out_ts]
    assert all(c in kept_tickets for c in out_crm if c in source_tickets)
    kept_ticket_ts = sum(1 for k in src_ts if _norm(k[3]) in kept_tickets)
    assert sum(1 for c in out_crm if c in source_tickets) == kept_ticket_ts
    orphans_before = sum(1 for k in src_ts if _norm(k[3]) not in source_tickets)
    orphans_after = sum(1 for c in out_crm if c not in source_tickets)
    assert 0 < orphans_after < orphans_before
    assert 0 in out_crm  # admin time is sampled, not dropped
    # the duplicated timesheet key: both or none (usernames are pseudonymised: count by position)
    dup_key = Counter((k[1], k[2], _norm(k[3])) for k in src_ts)
    out_keys = Counter((k[1], k[2], _norm(k[3])) for k in out_ts)
    for key, count in out_keys.items():
        assert count == dup_key[key] or dup_key[key] > count == 0

    # small tables come whole
    assert result.rows_written("cloud_team_roster") == 7
    assert result.rows_written("import_metadata") == 1

    # the same key, fraction and seed: the same sample; another seed: another sample
    again = tmp_path / "again.db"
    run(AnonymizeConfig(source=raw_like, out=again, key_file=keys[0], fraction=fraction))
    assert _cells(again) == _cells(out)
    reseeded = tmp_path / "reseeded.db"
    run(AnonymizeConfig(source=raw_like, out=reseeded, key_file=keys[0], fraction=fraction, seed=1))
    assert _column(reseeded, "tickets", "TKT-Ticket ID") != _column(out, "tickets", "TKT-Ticket ID")


def test_pseudonyms_do_not_depend_on_the_fraction(raw_like: Path, full: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "tenth.db"
    run(AnonymizeConfig(source=raw_like, out=out, key_file=keys[0], fraction=0.1))
    full_map = dict(zip(_column(full, "comments", "comment_id"), _column(full, "comments", "user_name")))
    for cid, name in zip(_column(out, "comments", "comment_id"), _column(out, "comments", "user_name")):
        assert full_map[cid] == name


# --- refusals, the key, the atomic write -------------------------------------------------------------


def test_out_equal_to_source_is_refused(raw_like: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="is the source"):
        run(AnonymizeConfig(source=raw_like, out=raw_like, key_file=keys[0]))
    link = tmp_path / "link.db"
    link.symlink_to(raw_like)
    with pytest.raises(InputFileError, match="is the source"):
        run(AnonymizeConfig(source=raw_like, out=link, key_file=keys[0]))


def test_bad_inputs_are_one_line_errors(raw_like: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="does not exist"):
        run(AnonymizeConfig(source=tmp_path / "missing.db", out=tmp_path / "o.db", key_file=keys[0]))
    not_db = tmp_path / "x.db"
    not_db.write_text("hello")
    with pytest.raises(InputFileError, match="not a SQLite"):
        run(AnonymizeConfig(source=not_db, out=tmp_path / "o.db", key_file=keys[0]))
    with pytest.raises(InputFileError, match="--key-file"):
        run(AnonymizeConfig(source=raw_like, out=tmp_path / "o.db", key_file=tmp_path / "nokey"))
    short = tmp_path / "short.key"
    short.write_bytes(b"abc")
    with pytest.raises(InputFileError, match="fewer than"):
        run(AnonymizeConfig(source=raw_like, out=tmp_path / "o.db", key_file=short))
    for fraction in (0.0, -1.0, 1.5):
        with pytest.raises(ConfigError, match="--fraction"):
            run(AnonymizeConfig(source=raw_like, out=tmp_path / "o.db", key_file=keys[0], fraction=fraction))
    assert not (tmp_path / "o.db").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_key_generated_private_and_reused(raw_like: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    first = run(AnonymizeConfig(source=raw_like, out=tmp_path / "one.db"))
    key_file = tmp_path / DEFAULT_KEY_FILE
    assert first.key_generated and first.key_file == DEFAULT_KEY_FILE
    assert len(key_file.read_bytes()) == 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    second = run(AnonymizeConfig(source=raw_like, out=tmp_path / "two.db"))
    assert not second.key_generated
    assert _cells(tmp_path / "one.db") == _cells(tmp_path / "two.db")
    assert key_file.read_bytes() not in (tmp_path / "one.db").read_bytes()


def test_failure_leaves_the_previous_output(raw_like: Path, keys: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "sample.db"
    out.write_bytes(b"previous")
    import pipeline.anonymize as anonymize

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(anonymize, "_write", boom)
    with pytest.raises(RuntimeError):
        run(AnonymizeConfig(source=raw_like, out=out, key_file=keys[0]))
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample.db"]


def test_source_is_not_written(raw_like: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    before = (raw_like.stat().st_mtime_ns, raw_like.read_bytes())
    os.chmod(raw_like, 0o444)
    try:
        run(AnonymizeConfig(source=raw_like, out=tmp_path / "o.db", key_file=keys[0]))
    finally:
        os.chmod(raw_like, 0o644)
    assert (raw_like.stat().st_mtime_ns, raw_like.read_bytes()) == before


def test_cli(raw_like: Path, keys: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline import cli
    from pipeline.cli import main

    # Only this command: other stages' modules are not this test's business.
    monkeypatch.setattr(cli, "COMMANDS", {"anonymize": cli.COMMANDS["anonymize"]})
    out = tmp_path / "cli.db"
    code = main(["anonymize", "--source", str(raw_like), "--out", str(out), "--fraction", "0.5", "--key-file", str(keys[0])])
    assert code == 0
    printed = capsys.readouterr().out
    assert "comments" in printed and str(out) in printed
    assert keys[0].read_bytes().hex() not in printed
    code = main(["anonymize", "--source", str(raw_like), "--out", str(raw_like), "--key-file", str(keys[0])])
    assert code == 3
    assert "is the source" in capsys.readouterr().err


# --- on the generated sample, and the profiler's verdicts ------------------------------------------------

_HAVE_INGEST = importlib.util.find_spec("pipeline.ingest") is not None and importlib.util.find_spec("pipeline.sample") is not None
_HAVE_PROFILER = importlib.util.find_spec("pipeline.profile") is not None
needs_ingest = pytest.mark.skipif(not _HAVE_INGEST, reason="pipeline.sample / pipeline.ingest not built yet")
needs_profiler = pytest.mark.skipif(not _HAVE_PROFILER, reason="pipeline.profile not built yet")


@pytest.fixture(scope="module")
def raw_anon(request: pytest.FixtureRequest, keys: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    raw_db = request.getfixturevalue("raw_db")
    out = tmp_path_factory.mktemp("raw_anon") / "sample.db"
    run(AnonymizeConfig(source=raw_db, out=out, key_file=keys[0]))
    return raw_db, out


@needs_ingest
def test_generated_sample_anonymised(raw_anon: tuple[Path, Path]) -> None:
    raw_db, out = raw_anon
    assert_nothing_survives(raw_db, out)
    tables = sorted(_cells(raw_db))
    assert sorted(_cells(out)) == tables
    for table in tables:
        assert _typeofs(raw_db, table) == _typeofs(out, table), table


NOW = datetime(2025, 10, 15)


def _verdicts(source: Path) -> tuple[dict, str]:
    from pipeline.profile import profile_source
    from pipeline.sources import SQLiteSource

    with SQLiteSource(source) as db:
        result = profile_source(db, Settings(), full=True, now=NOW)
    # code -> count per table and column: the same defects, counted the same
    codes: dict[tuple, dict[str, int]] = {}
    for f in result.findings:
        codes.setdefault((f.table, f.column), {})[f.code] = f.count
    return codes, result.verdict


@needs_ingest
@needs_profiler
def test_profiler_gives_the_same_verdicts(raw_anon: tuple[Path, Path]) -> None:
    raw_db, out = raw_anon
    before, verdict_before = _verdicts(raw_db)
    after, verdict_after = _verdicts(out)
    assert after == before
    assert verdict_after == verdict_before


@needs_profiler
def test_profiler_same_verdicts_on_raw_like(raw_like: Path, full: Path) -> None:
    before, verdict_before = _verdicts(raw_like)
    after, verdict_after = _verdicts(full)
    assert after == before
    assert verdict_after == verdict_before


@needs_ingest
def test_contract_gate_gives_the_same_verdicts(raw_anon: tuple[Path, Path]) -> None:
    """The pytest gate itself: the same items fail and warn, with the same counts."""
    from contracts.gate import run_gate

    raw_db, out = raw_anon
    before, after = run_gate(raw_db), run_gate(out)
    assert before.failed or before.warned  # the defective sample gives the gate something to say
    assert (after.passed, after.exit_code, after.verdict) == (before.passed, before.exit_code, before.verdict)
    assert sorted(after.failed) == sorted(before.failed)
    assert sorted(after.warned) == sorted(before.warned)
    assert after.quality == pytest.approx(before.quality)


@needs_ingest
def test_generated_sample_at_a_tenth_is_closed(raw_db: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "tenth.db"
    result = run(AnonymizeConfig(source=raw_db, out=out, key_file=keys[0], fraction=0.1))
    source_tickets = {_norm(v) for v in _column(raw_db, "tickets", "TKT-Ticket ID")}
    kept = Counter(_norm(v) for v in _column(out, "tickets", "TKT-Ticket ID"))
    every = Counter(_norm(v) for v in _column(raw_db, "tickets", "TKT-Ticket ID"))
    assert 0.03 < len(kept) / len(every) < 0.2
    assert all(every[t] == n for t, n in kept.items())  # duplicate tickets together
    for table, ref in (("comments", "ticket_id"), ("timesheets", "TS-Crm ID")):
        refs_before = [_norm(v) for v in _column(raw_db, table, ref)]
        refs_after = [_norm(v) for v in _column(out, table, ref)]
        assert all(r in kept for r in refs_after if r in source_tickets), table
        assert sum(r in kept for r in refs_after) == sum(r in kept for r in refs_before), table
        orphans_before = sum(r not in source_tickets for r in refs_before)
        if orphans_before:
            assert sum(r not in source_tickets for r in refs_after) > 0, f"{table}: orphans must remain"
        assert result.rows_written(table) == len(refs_after)
    ids_before = Counter(_norm(v) for v in _column(raw_db, "comments", "comment_id"))
    for cid, n in Counter(_norm(v) for v in _column(out, "comments", "comment_id")).items():
        assert n == ids_before[cid]  # duplicate comment ids together
    assert_nothing_survives(raw_db, out)


@pytest.mark.parametrize("length", [1, 39, 40, 41, 300, 2100])
@pytest.mark.parametrize("digits_only", [False, True])
def test_reshape_paths_agree(length: int, digits_only: bool) -> None:
    """Short ASCII (plain Python), long ASCII (numpy bytes) and non-ASCII (numpy code points)
    draw from the same stream with the same formula: one value, one pseudonym."""
    import pipeline.anonymize as anonymize

    text = ("Ticket 42 for J. Smith\r\n\n\x00 ok; " * 80)[:length]
    got = reshape(text, b"seed", digits_only=digits_only)
    for short in (0, 10_000):  # force each ASCII path
        saved = anonymize._SHORT
        anonymize._SHORT = short
        try:
            assert reshape(text, b"seed", digits_only=digits_only) == got
        finally:
            anonymize._SHORT = saved
    wide = text + "é"  # the non-ASCII path: the same characters before the last one
    out, _ = reshape(wide, b"seed", digits_only=digits_only)
    assert out[:-1] == got[0]


def test_a_truncated_source_is_an_input_error(raw_like: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.db"
    broken.write_bytes(raw_like.read_bytes()[:8192])  # the header survives, the tables do not
    with pytest.raises(InputFileError, match="cannot be read as SQLite"):
        run(AnonymizeConfig(source=broken, out=tmp_path / "o.db", key_file=keys[0]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.db"]

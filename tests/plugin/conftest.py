"""Tiny SQLite databases for the plugin tests, written into pytester's empty folder.

``pytester`` itself is enabled in the test modules (``pytest_plugins``): declaring it
here, in a conftest below the root, aborts the whole suite ("Defining 'pytest_plugins'
in a non-top-level conftest is no longer supported").
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Callable

import pytest

from contracts.schemas import REGISTRY
from pipeline.sources import quote_sqlite

Row = dict[str, Any]
Tables = dict[str, tuple[list[str], list[Row]]]


def ticket(i: int) -> Row:
    return {
        "TKT-Ticket ID": 1000 + i,
        "TKT-Created Time": "2025-05-20 08:42:00",
        "TKT-Month Created": "2025-05",
        "TKT-Status": "Closed",
        "TKT-Severity": "P3",
        "TKT-Category": "Standard",
        "TKT-SLA Met": "yes",
        "TKT-Description": "printer on fire",
    }


def comment(i: int, tickets: int) -> Row:
    return {
        "comment_id": i + 1,
        "ticket_id": 1000 + i % tickets,
        "comment_text": "called the customer back",
        "created_time": "2025-05-21 09:00:00",
        "owner_type": "agent",
        "visible_to_customer": "Yes",
        "comment_type": "comments",
        "user_name": "agent1",
    }


def timesheet(i: int, tickets: int) -> Row:
    return {
        "TS-User Username": f"user{i % 3}",
        "TS-Date": "2025-05-20",
        "TS-Time From": f"{i % 24:02d}:{i // 24 % 60:02d}",
        "TS-Hours": 1.5,
        "TS-Crm ID": 0 if i % 4 == 0 else 1000 + i % tickets,
    }


def clean_tables(n: int = 20) -> Tables:
    return {
        "tickets": (list(REGISTRY["tickets"].columns), [ticket(i) for i in range(n)]),
        "comments": (list(REGISTRY["comments"].columns), [comment(i, n) for i in range(n * 3)]),
        "timesheets": (list(REGISTRY["timesheets"].columns), [timesheet(i, n) for i in range(n * 2)]),
    }


def write_db(path: Path, tables: Tables) -> Path:
    con = sqlite3.connect(path)
    for name, (columns, rows) in tables.items():
        con.execute(f"CREATE TABLE {quote_sqlite(name)} ({', '.join(quote_sqlite(c) for c in columns)})")
        marks = ", ".join("?" for _ in columns)
        con.executemany(f"INSERT INTO {quote_sqlite(name)} VALUES ({marks})", [[r.get(c) for c in columns] for r in rows])
    con.commit()
    con.close()
    return path


@pytest.fixture
def gate_db(pytester: pytest.Pytester) -> Callable[..., Path]:
    """``gate_db(change=None, name="gate.db")``: a clean tiny database, changed by ``change``."""

    def make(change: Callable[[Tables], None] | None = None, name: str = "gate.db") -> Path:
        tables = clean_tables()
        if change is not None:
            change(tables)
        return write_db(pytester.path / name, tables)

    return make

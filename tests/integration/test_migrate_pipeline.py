"""The generated sample exports: ingest -> clean -> migrate with zero manual steps."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from pipeline.config import Settings
from pipeline.migrate import LIVE, MigrateConfig, pg_checksum, run, sqlite_checksum
from pipeline.pgschema import data_table_plans

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def cleaned_sample(raw_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    clean = pytest.importorskip("pipeline.clean")
    out = tmp_path_factory.mktemp("cleaned") / "clean.db"
    clean.run(clean.CleanConfig(source=raw_db, out=out, settings=Settings(), progress=False))
    return out


def test_defective_sample_goes_ingest_clean_migrate_untouched_by_hand(
    cleaned_sample: Path, pg_dsn: str, postgresql: psycopg.Connection, tmp_path: Path
) -> None:
    postgresql.autocommit = True
    result = run(MigrateConfig(source=cleaned_sample, target=pg_dsn, canary=True, contracts=True, backups_dir=tmp_path / "b"))
    assert result.status == LIVE
    assert result.rejects == 0
    assert all(t.matches for t in result.tables)
    for plan in data_table_plans():
        assert pg_checksum(pg_dsn, "servicedesk", plan) == sqlite_checksum(cleaned_sample, plan)
    types = dict(
        postgresql.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'servicedesk' AND table_name = 'tickets'"
        ).fetchall()
    )
    dated = [c for c, t in types.items() if t == "timestamp without time zone"]
    assert len(dated) == 10
    assert types["TKT-Ticket ID"] == "bigint" and types["TKT-Actual SLA Achievement"] == "numeric"
    assert result.scores["target"] >= result.scores["source"]

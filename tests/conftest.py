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

"""The report of a real run opens and renders in a real browser (headless Chromium).

Two real runs of ``pipeline.run`` on the generated sample exports: one all the way into
the test PostgreSQL (every file of a run folder), one stopped at Gate 1 because
``--auto-clean`` was not given (an early stop: no clean, no migration, no metrics).
Chromium loads each ``report.html`` from disk with networking off and prints the DOM
it rendered; the sections, the charts and the escaping are checked on that DOM.
"""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pipeline import report

if TYPE_CHECKING:
    from pipeline.run import RunResult

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium; .ci/run installs it)"),
]


class _Rendered(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.ids.extend(v for k, v in attrs if k == "id" and v)


def render_in_chromium(page: Path, profile: Path) -> tuple[str, str]:
    """The DOM Chromium built from ``page`` (and its log), loaded as a file with networking off."""
    proc = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, proc.stderr


def _run(sample_dir: Path, workdir: Path, target: str, auto_clean: bool) -> "RunResult":
    from pipeline.config import Settings
    from pipeline.run import RunConfig, run

    return run(
        RunConfig(
            tickets=sample_dir / "tickets.xlsx",
            comments=sample_dir / "comments.xlsx",
            timesheets=sample_dir / "timesheets.xlsx",
            settings=Settings(),
            target=target,
            auto_clean=auto_clean,
            workdir=workdir,
        )
    )


def _check_rendered(dom: str, log: str) -> _Rendered:
    rendered = _Rendered()
    rendered.feed(dom)
    sections = [i for i in rendered.ids if i in {sid for sid, _ in report.SECTIONS}]
    assert sections == [sid for sid, _ in report.SECTIONS], sections
    assert "svg" in rendered.tags and "rect" in rendered.tags
    # The page fetched nothing: no content-security-policy refusal, no failed load.
    assert "Refused to" not in log and "net::ERR" not in log, log[-2000:]
    return rendered


@pytest.mark.postgres
@pytest.mark.slow
def test_report_of_a_full_run_renders_in_chromium(sample_dir: Path, pg_dsn: str, tmp_path: Path) -> None:
    result = _run(sample_dir, tmp_path / "runs", pg_dsn, auto_clean=True)
    assert result.exit_code == 0, result.message
    page = result.run_dir / "report.html"
    assert page.is_file()  # written by the run itself
    dom, log = render_in_chromium(page, tmp_path / "chromium")
    rendered = _check_rendered(dom, log)
    assert "table" in rendered.tags
    for text in ("migrated and validated", "before cleaning", "after migration", "TKT-Created Time", "servicedesk_v", "SLA compliance"):
        assert text in dom, text
    assert 'class="missing"' not in dom
    assert "metric-1.1" in rendered.ids and "metric-4.3" in rendered.ids


@pytest.mark.postgres
@pytest.mark.slow
def test_report_of_a_run_stopped_at_gate1_renders_in_chromium(sample_dir: Path, pg_dsn: str, tmp_path: Path) -> None:
    # Gate 1 says CLEAN and --auto-clean is not given: no clean, no migration, no metrics.
    result = _run(sample_dir, tmp_path / "runs", pg_dsn, auto_clean=False)
    assert result.exit_code == 12, result.message
    assert not (result.run_dir / "migrate.json").exists()
    dom, log = render_in_chromium(result.run_dir / "report.html", tmp_path / "chromium")
    _check_rendered(dom, log)
    assert "--auto-clean was not given" in dom
    assert "No dashboard metrics" in dom
    assert "Gate 1 says the data needs cleaning" in dom

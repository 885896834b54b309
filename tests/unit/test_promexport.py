"""Prometheus textfile metrics: read back with the Prometheus client's own parser."""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path

import pytest

from pipeline.findings import QualityScore
from pipeline.promexport import (
    GATE,
    LAST_SUCCESS,
    PEAK_MEMORY,
    QUALITY,
    ROWS,
    STAGE_DURATION,
    MetricsRegistry,
    PipelineMetrics,
    escape_label_value,
    format_value,
    read_sample,
    write_textfile,
)

parser = pytest.importorskip("prometheus_client.parser", reason="prometheus-client is in the test extra")


def parse(text: str) -> dict[str, object]:
    """Family name -> family, as Prometheus reads it (counters lose their _total)."""
    return {f.name: f for f in parser.text_string_to_metric_families(text)}


def samples(text: str, name: str) -> dict[tuple, float]:
    out = {}
    for family in parser.text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def filled() -> PipelineMetrics:
    m = PipelineMetrics()
    m.from_trace({"stage": "ingest", "seconds": 12.5, "rows": 260_000, "peak_rss_mb": 290.0, "outcome": "ok"})
    m.stage("profile", 3.25, peak_bytes=120 * 1024 * 1024)
    m.rows_counted("tickets", "read", 10_939)
    m.rows_counted("tickets", "written", 10_930)
    m.rows_counted("tickets", "quarantined", 9)
    m.rows_counted("comments", "rejected", 0)
    m.quality_score("raw", QualityScore(score=71.5, grade="C", dimensions={"completeness": 90.0, "validity": 55.25}))
    m.quality_score("clean", {"score": 96.0, "dimensions": {"completeness": 99.0, "validity": 98.0}})
    m.gate_outcome("gate1", True)
    m.gate_outcome("gate2", False)
    m.finished(success=True, now=1_760_000_000.0)
    return m


def test_pipeline_metrics_parse_with_names_labels_and_values() -> None:
    text = filled().render()
    families = parse(text)
    assert families[STAGE_DURATION].type == "gauge"
    assert families[ROWS.removesuffix("_total")].type == "counter"
    assert families[QUALITY].type == "gauge"
    assert families[GATE].type == "gauge"
    assert families[LAST_SUCCESS].type == "gauge"
    assert families[PEAK_MEMORY].type == "gauge"
    assert all(f.documentation for f in families.values())

    assert samples(text, STAGE_DURATION) == {(("stage", "ingest"),): 12.5, (("stage", "profile"),): 3.25}
    assert samples(text, PEAK_MEMORY) == {
        (("stage", "ingest"),): 290.0 * 1024 * 1024,
        (("stage", "profile"),): 120 * 1024 * 1024,
    }
    rows = samples(text, ROWS)
    assert rows[(("direction", "read"), ("table", "tickets"))] == 10_939
    assert rows[(("direction", "quarantined"), ("table", "tickets"))] == 9
    assert rows[(("direction", "rejected"), ("table", "comments"))] == 0
    quality = samples(text, QUALITY)
    assert quality[(("dimension", "overall"), ("stage", "raw"))] == 71.5
    assert quality[(("dimension", "validity"), ("stage", "raw"))] == 55.25
    assert quality[(("dimension", "overall"), ("stage", "clean"))] == 96.0
    assert samples(text, GATE) == {(("gate", "gate1"),): 1, (("gate", "gate2"),): 0}
    assert samples(text, LAST_SUCCESS) == {(): 1_760_000_000.0}


def test_help_and_type_precede_each_family_once() -> None:
    lines = filled().render().splitlines()
    names = [line.split()[2] for line in lines if line.startswith("# TYPE")]
    assert len(names) == len(set(names))
    for name in names:
        help_at = lines.index(next(line for line in lines if line.startswith(f"# HELP {name} ")))
        type_at = lines.index(next(line for line in lines if line.startswith(f"# TYPE {name} ")))
        assert type_at == help_at + 1
        first_sample = next(i for i, line in enumerate(lines) if line.startswith(name) and not line.startswith("#"))
        assert first_sample == type_at + 1


@pytest.mark.parametrize(
    "value",
    ['plain', 'back\\slash', 'quote"d', "new\nline", 'all \\ " \n three', "ünïcödé", "trailing\\", ""],
)
def test_label_values_escaped_and_read_back(value: str) -> None:
    reg = MetricsRegistry()
    reg.gauge("x_gauge", "help with \\ and\nnewline", ("label",)).set(1, label=value)
    text = reg.render()
    assert len(text.splitlines()) == 3  # HELP, TYPE, one sample: no raw newline leaked
    family = parse(text)["x_gauge"]
    assert family.samples[0].labels == {"label": value}
    assert family.documentation == "help with \\ and\nnewline"


def test_escape_rules() -> None:
    assert escape_label_value('a\\b"c\nd') == 'a\\\\b\\"c\\nd'


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (3, "3"), (2.0, "2"), (0.25, "0.25"), (True, "1"), (math.inf, "+Inf"), (-math.inf, "-Inf"), (math.nan, "NaN"), (1e20, "1e+20"), (1234567.0, "1234567"), (1.5e300, "1.5e+300")],
)
def test_values_formatted(value: float, text: str) -> None:
    assert format_value(value) == text
    reg = MetricsRegistry()
    reg.gauge("v", "v").set(value)
    parsed = parse(reg.render())["v"].samples[0].value
    assert (math.isnan(parsed) and math.isnan(float(value))) or parsed == float(value)


def test_declarations_are_checked() -> None:
    reg = MetricsRegistry()
    with pytest.raises(ValueError, match="invalid metric name"):
        reg.gauge("bad-name", "x")
    with pytest.raises(ValueError, match="invalid label name"):
        reg.gauge("ok", "x", ("__reserved",))
    with pytest.raises(ValueError, match="_total"):
        reg.counter("rows", "x")
    g = reg.gauge("g", "x", ("stage",))
    with pytest.raises(ValueError, match="takes labels"):
        g.set(1, table="t")
    reg.counter("g_total", "x")
    assert reg.counter("g_total", "x") is reg.get("g_total")  # declaring again: the same metric
    with pytest.raises(ValueError, match="already declared"):
        reg.gauge("g_total", "x")
    c = reg.counter("c_total", "x", ("t",))
    c.inc(2, t="a")
    c.inc(3, t="a")
    assert c.value(t="a") == 5
    with pytest.raises(ValueError):
        c.inc(-1, t="a")
    with pytest.raises(ValueError, match="direction"):
        PipelineMetrics().rows_counted("tickets", "lost", 1)
    with pytest.raises(ValueError, match="stage"):
        PipelineMetrics().quality_score("staging", {"score": 1, "dimensions": {}})


def test_families_without_samples_are_left_out() -> None:
    m = PipelineMetrics()
    m.gate_outcome("gate1", True)
    families = parse(m.render())
    assert set(families) == {GATE}
    assert MetricsRegistry().render() == ""


def test_atomic_write_to_a_prom_file(tmp_path: Path) -> None:
    target = tmp_path / "textfile" / "servicedesk_etl.prom"
    m = filled()
    written = m.write(target)
    assert written == target
    assert target.read_text() == m.render()
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ["servicedesk_etl.prom"]
    # a second write replaces the file (a new inode renamed in, not a rewrite in place)
    inode = target.stat().st_ino
    m.gate_outcome("gate3", True)
    m.write(target)
    assert target.stat().st_ino != inode
    assert samples(target.read_text(), GATE)[(("gate", "gate3"),)] == 1
    with pytest.raises(ValueError, match=".prom"):
        write_textfile("x 1\n", tmp_path / "metrics.txt")


def test_failed_write_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "servicedesk_etl.prom"
    target.write_text("old 1\n")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        filled().write(target)
    assert target.read_text() == "old 1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["servicedesk_etl.prom"]


def test_failed_run_keeps_the_last_success(tmp_path: Path) -> None:
    target = tmp_path / "servicedesk_etl.prom"
    filled().write(target)
    assert read_sample(target, LAST_SUCCESS) == 1_760_000_000.0
    failed = PipelineMetrics()
    failed.gate_outcome("gate1", False)
    failed.finished(success=False, now=1_760_086_400.0, previous=target)
    failed.write(target)
    text = target.read_text()
    assert samples(text, LAST_SUCCESS) == {(): 1_760_000_000.0}
    assert samples(text, "servicedesk_etl_last_run_timestamp_seconds") == {(): 1_760_086_400.0}
    # a first run that fails has no success to carry: the sample is absent, not zero
    first = PipelineMetrics()
    first.finished(success=False, now=1.0, previous=tmp_path / "absent.prom")
    assert LAST_SUCCESS not in parse(first.render())


# --- the suggested alert rules and the CI examples --------------------------------------------------

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "docs" / "alerts.rules.yml"
WORKFLOW = REPO / "examples" / "github-actions" / "contracts-gate.yml"
HOOKS = REPO / "examples" / "pre-commit" / ".pre-commit-hooks.yaml"


def test_alert_rules_name_only_metrics_we_write() -> None:
    import re

    declared = {m.name for m in PipelineMetrics().registry}
    used = set(re.findall(r"servicedesk_etl_[a-z_]+", RULES.read_text()))
    assert used and used <= declared, used - declared
    monitoring = (REPO / "docs" / "monitoring.md").read_text()
    for name in declared:
        assert name in monitoring, f"{name} is not documented in docs/monitoring.md"


def test_yaml_files_parse() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    rules = yaml.safe_load(RULES.read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"]]
    assert {"alert", "expr", "labels", "annotations"} <= set(alerts[0])
    assert all(r["labels"]["severity"] in ("warning", "critical") for r in alerts)
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = workflow["jobs"]["contracts-gate"]["steps"]
    gate = next(s for s in steps if s.get("name") == "Contract gate")
    assert "pytest --source sample.db" in gate["run"] and "--junitxml=contracts.xml" in gate["run"]
    publish = next(s for s in steps if "junit" in s.get("uses", ""))
    assert publish["if"] == "${{ !cancelled() }}" and publish["with"]["report_paths"] == "contracts.xml"
    hooks = yaml.safe_load(HOOKS.read_text())
    assert hooks[0]["language"] == "system" and hooks[0]["entry"].startswith("pytest --source")
    assert hooks[0]["pass_filenames"] is False


def _series(text: str, minutes: int) -> list[dict[str, str]]:
    """promtool input series from an exposition text: each sample held for ``minutes``."""
    out = []
    for family in parser.text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in sorted(s.labels.items()))
            out.append({"series": f"{s.name}{{{labels}}}", "values": f"{format_value(s.value)}x{minutes}"})
    return out


def test_alert_rules_fire_on_written_metrics(tmp_path: Path) -> None:
    """promtool evaluates the rules on series as node_exporter would serve our file."""
    import json
    import shutil
    import subprocess

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    # Annotations are compared in full by promtool: keep them (and so test their
    # templates) on three alerts, drop them elsewhere.
    rules = yaml.safe_load(RULES.read_text())
    templated = {"ServiceDeskEtlGateFailed", "ServiceDeskEtlRowsRejected", "ServiceDeskEtlNoRecentSuccess"}
    described = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule["alert"] in templated:
                described[rule["alert"]] = rule["annotations"]["description"]
            else:
                rule.pop("annotations", None)
    failed = PipelineMetrics()
    failed.gate_outcome("gate1", True)
    failed.gate_outcome("gate2", False)
    failed.quality_score("raw", {"score": 72.0, "dimensions": {"validity": 60.0}})
    failed.quality_score("clean", {"score": 78.0, "dimensions": {"validity": 95.0}})
    failed.quality_score("postgres", {"score": 78.0, "dimensions": {"validity": 90.0}})
    failed.rows_counted("tickets", "read", 1000)
    failed.rows_counted("tickets", "quarantined", 20)
    failed.rows_counted("comments", "read", 1000)
    failed.rows_counted("comments", "quarantined", 5)
    failed.rows_counted("comments", "rejected", 3)
    failed.stage("ingest", 20.0, peak_bytes=300 * 1024 * 1024)
    failed.stage("gate1", 420.0, peak_bytes=3 * 1024**3)
    failed.stage("clean", 60.0, peak_bytes=100 * 1024 * 1024)
    failed.stage("migrate", 1200.0, peak_bytes=100 * 1024 * 1024)
    failed.last_success.set(0)
    failed.last_run.set(1000)
    healthy = PipelineMetrics()
    healthy.gate_outcome("gate1", True)
    healthy.quality_score("postgres", {"score": 97.0, "dimensions": {"validity": 99.0}})
    healthy.rows_counted("tickets", "rejected", 0)
    healthy.finished(success=True, now=0)
    (tmp_path / "alerts.rules.yml").write_text(yaml.safe_dump(rules))
    tests = {
        "rule_files": ["alerts.rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": _series(failed.render(), 30),
                "alert_rule_test": [
                    {
                        "eval_time": "10m",
                        "alertname": "ServiceDeskEtlGateFailed",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "critical", "gate": "gate2"},
                                "exp_annotations": {"summary": "servicedesk-etl gate2 failed", "description": described["ServiceDeskEtlGateFailed"]},
                            }
                        ],
                    },
                    {"eval_time": "10m", "alertname": "ServiceDeskEtlLatestRunFailed", "exp_alerts": [{"exp_labels": {"severity": "critical"}}]},
                    {
                        "eval_time": "10m",
                        "alertname": "ServiceDeskEtlQualityBelowGate",
                        "exp_alerts": [
                            {"exp_labels": {"severity": "critical", "stage": stage, "dimension": "overall"}}
                            for stage in ("clean", "postgres")
                        ],
                    },
                    {"eval_time": "10m", "alertname": "ServiceDeskEtlRawQualityLow", "exp_alerts": []},
                    {"eval_time": "10m", "alertname": "ServiceDeskEtlQualityDroppedInMigration", "exp_alerts": [{"exp_labels": {"severity": "critical", "dimension": "validity"}}]},
                    {
                        "eval_time": "10m",
                        "alertname": "ServiceDeskEtlRowsRejected",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", "table": "comments", "direction": "rejected"},
                                "exp_annotations": {
                                    "summary": "3 comments rows were rejected by PostgreSQL",
                                    "description": described["ServiceDeskEtlRowsRejected"],
                                },
                            }
                        ],
                    },
                    {"eval_time": "10m", "alertname": "ServiceDeskEtlQuarantineHigh", "exp_alerts": [{"exp_labels": {"severity": "warning", "table": "tickets"}}]},
                    {
                        "eval_time": "10m",
                        "alertname": "ServiceDeskEtlStageOverServiceLevel",
                        "exp_alerts": [
                            {"exp_labels": {"severity": "warning", "stage": "gate1"}},
                            {"exp_labels": {"severity": "warning", "stage": "migrate"}},
                            {"exp_labels": {"severity": "warning"}},  # 1,700 s in all: over 25 min
                        ],
                    },
                    {"eval_time": "10m", "alertname": "ServiceDeskEtlPeakMemoryHigh", "exp_alerts": [{"exp_labels": {"severity": "warning", "stage": "gate1"}}]},
                    {"eval_time": "10m", "alertname": "ServiceDeskEtlMetricsMissing", "exp_alerts": []},
                ],
            },
            {
                # nothing written at all
                "interval": "1m",
                "input_series": [{"series": 'up{job="node"}', "values": "1x600"}],
                "alert_rule_test": [
                    {"eval_time": "7h", "alertname": "ServiceDeskEtlMetricsMissing", "exp_alerts": [{"exp_labels": {"severity": "warning"}}]},
                ],
            },
        ],
    }
    # The quarterly horizon needs a coarse evaluation interval (promtool steps through it).
    quarterly = {
        "rule_files": ["alerts.rules.yml"],
        "evaluation_interval": "1h",
        "tests": [
            {
                # a healthy file, held for 100 days: silent until the last success is 95 days old
                "interval": "1h",
                "input_series": _series(healthy.render(), 100 * 24),
                "alert_rule_test": [
                    {"eval_time": "94d", "alertname": "ServiceDeskEtlNoRecentSuccess", "exp_alerts": []},
                    {
                        "eval_time": "96d",
                        "alertname": "ServiceDeskEtlNoRecentSuccess",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning"},
                                "exp_annotations": {
                                    "summary": "servicedesk-etl has not completed a migration in 96d 0h 0m 0s",
                                    "description": described["ServiceDeskEtlNoRecentSuccess"],
                                },
                            }
                        ],
                    },
                    {"eval_time": "96d", "alertname": "ServiceDeskEtlGateFailed", "exp_alerts": []},
                    {"eval_time": "96d", "alertname": "ServiceDeskEtlRowsRejected", "exp_alerts": []},
                    {"eval_time": "96d", "alertname": "ServiceDeskEtlLatestRunFailed", "exp_alerts": []},
                ],
            },
        ],
    }
    # JSON is YAML: no PyYAML needed.
    (tmp_path / "alerts.test.yml").write_text(json.dumps(tests, indent=1))
    (tmp_path / "quarterly.test.yml").write_text(json.dumps(quarterly, indent=1))
    done = subprocess.run(
        [promtool, "test", "rules", "alerts.test.yml", "quarterly.test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr

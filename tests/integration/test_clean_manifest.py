"""The cleaner on the generated exports: every injected defect fixed or quarantined.

Ground truth is the generator's ``manifest.json``. Each defect is counted back from the
output: audit rows whose old value has the defect, plus quarantined rows whose original
row has it, must equal the manifest's count exactly; each example key is found among
them. Every difference between source and output is an audit row, and every audit row
describes a cell that really changed; the source's SHA-256 never moves.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable

import pytest

from contracts import spec
from contracts.schemas import DATA_TABLES, REGISTRY
from pipeline import clean
from pipeline.config import Settings
from pipeline.dates import DateParseError, Order, Shape, parse_date, shape_of
from pipeline.sources import quote_sqlite, sha256_file
from pipeline.values import is_placeholder, placeholder_set, to_integer

SETTINGS = Settings()
BLANK_RUN = re.compile(r"(?:\r?\n[ \t]*){%d,}" % (SETTINGS.clean.max_blank_lines + 2))


def _mixed_line_endings(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    crlf = v.count("\r\n")
    return (crlf > 0) + (v.count("\n") - crlf > 0) + (v.count("\r") - crlf > 0) >= 2


def _reads_as(v: Any, order: Order) -> bool:
    try:
        parse_date(v, order)
    except (DateParseError, ValueError, OverflowError):
        return False
    return True


def _tokens(table: str, column: str) -> frozenset[str]:
    col = REGISTRY[table].columns[column]
    own = placeholder_set(spec.placeholders(col))
    return own | placeholder_set(SETTINGS.placeholder_tokens) if spec.kind(col) != "text" else own


# kind -> (is the raw value defective?, audit rules that fix it; None: only quarantine fixes it)
DEFECTS: dict[str, tuple[Callable[[Any, str, str], bool], set[str] | None]] = {
    "day_first_date": (lambda v, t, c: _reads_as(v, Order.DAY_FIRST) and shape_of(v) is Shape.SLASH, {"date_iso"}),
    "excel_serial_date": (lambda v, t, c: shape_of(v) is Shape.SERIAL, {"excel_serial"}),
    "unparseable_date": (
        lambda v, t, c: v is not None and str(v).strip() != "" and not _reads_as(v, Order.DAY_FIRST) and not _reads_as(v, Order.MONTH_FIRST),
        None,
    ),
    "empty_string": (lambda v, t, c: v == "", {"empty_to_null"}),
    "whitespace_string": (lambda v, t, c: isinstance(v, str) and v != "" and not v.strip(), {"whitespace_to_null"}),
    "float_id": (
        lambda v, t, c: (isinstance(v, float) or (isinstance(v, str) and "." in v)) and to_integer(v) is not None,
        {"integer_from_real", "integer_from_text"},
    ),
    "non_numeric_id": (lambda v, t, c: isinstance(v, str) and v.strip() != "" and to_integer(v) is None, None),
    "placeholder": (lambda v, t, c: is_placeholder(v, _tokens(t, c)), {"placeholder_to_null"}),
    "nul_byte": (lambda v, t, c: isinstance(v, str) and "\x00" in v, {"nul_removed"}),
    "crlf_mix": (lambda v, t, c: _mixed_line_endings(v), {"line_endings"}),
    "blank_line_run": (lambda v, t, c: isinstance(v, str) and bool(BLANK_RUN.search(v.replace("\x00", ""))), {"blank_lines_capped"}),
}
# Kinds judged at row level: (quarantine rule, on the table)
ROW_DEFECTS = {"duplicate_key": "duplicate_dropped", "future_date": "future_date", "out_of_range_hours": "out_of_range"}


@pytest.fixture(scope="module")
def cleaned(raw_db: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("cleaned")
    digest = sha256_file(raw_db)
    result = clean.run(
        clean.CleanConfig(source=raw_db, out=folder / "clean.db", settings=SETTINGS, audit_trail=folder / "audit.jsonl", progress=False)
    )
    assert sha256_file(raw_db) == digest
    out = Path(result.out)
    conn = sqlite3.connect(out)
    conn.row_factory = sqlite3.Row
    audit = [dict(r) for r in conn.execute("SELECT * FROM _audit WHERE run_id = ? ORDER BY rowid", (result.run_id,))]
    quarantine = [dict(r) for r in conn.execute("SELECT * FROM _quarantine WHERE run_id = ? ORDER BY rowid", (result.run_id,))]
    conn.close()
    for q in quarantine:
        q["original"] = json.loads(q["original_row"])
    return {"result": result, "out": out, "audit": audit, "quarantine": quarantine, "folder": folder}


@pytest.fixture(autouse=True)
def source_is_never_written(raw_db: Path):
    digest = sha256_file(raw_db)
    yield
    assert sha256_file(raw_db) == digest, "the raw database was written"


def _source_rowids(raw_db: Path, table: str, key_values: Any) -> set[int]:
    """Rowids of the source rows holding an example key (as the manifest spells it)."""
    key = spec.facts(REGISTRY[table]).key
    values = key_values if isinstance(key_values, list) else [key_values]
    conn = sqlite3.connect(raw_db)
    try:
        where = " AND ".join(f"{quote_sqlite(k)} = ?" for k in key)
        found = {r[0] for r in conn.execute(f"SELECT rowid FROM {quote_sqlite(table)} WHERE {where}", values)}
        if not found and len(values) == 1:  # ids written as text or REAL in the raw file
            for alt in (str(values[0]), float(values[0]) if isinstance(values[0], int) else None):
                if alt is not None:
                    found |= {r[0] for r in conn.execute(f"SELECT rowid FROM {quote_sqlite(table)} WHERE {where}", [alt])}
        return found
    finally:
        conn.close()


def _cell_defects(manifest: dict) -> list[dict]:
    return [d for d in manifest["defects"] if d["kind"] in DEFECTS]


@pytest.mark.parametrize("kind", sorted(DEFECTS))
def test_every_injected_cell_defect_is_fixed_or_quarantined(kind, manifest, cleaned, raw_db):
    defects = [d for d in _cell_defects(manifest) if d["kind"] == kind]
    if not defects:
        pytest.skip(f"the generator injected no {kind} in this sample")
    is_defect, rules = DEFECTS[kind]
    for d in defects:
        table, column = d["table"], d["column"]
        fixed = [
            a for a in cleaned["audit"]
            if a["table_name"] == table and a["column_name"] == column and is_defect(a["old_value"], table, column)
        ]
        if rules is None:
            assert fixed == [], f"{kind} in {table}.{column} must not be rewritten"
        else:
            assert all(set(a["rule"].split("+")) & rules for a in fixed), {a["rule"] for a in fixed}
        held = [
            q for q in cleaned["quarantine"]
            if q["table_name"] == table and is_defect(q["original"].get(column), table, column)
        ]
        assert len(fixed) + len(held) == d["count"], f"{kind} in {table}.{column}: {len(fixed)} fixed + {len(held)} quarantined"
        covered = {a["source_rowid"] for a in fixed} | {q["source_rowid"] for q in held}
        for example in d["example_keys"]:
            assert _source_rowids(raw_db, table, example) & covered, f"{kind} example {example!r} in {table}.{column} not accounted for"


@pytest.mark.parametrize("kind", sorted(ROW_DEFECTS))
def test_every_injected_row_defect_is_quarantined(kind, manifest, cleaned, raw_db):
    defects = [d for d in manifest["defects"] if d["kind"] == kind]
    if not defects:
        pytest.skip(f"the generator injected no {kind} in this sample")
    rule = ROW_DEFECTS[kind]
    for d in defects:
        held = [q for q in cleaned["quarantine"] if q["table_name"] == d["table"] and q["rule"] == rule]
        assert len(held) == d["count"], f"{kind} in {d['table']}"
        assert all(d["column"] in q["reason"] or kind == "duplicate_key" for q in held)
        rowids = {q["source_rowid"] for q in held}
        for example in d["example_keys"]:
            holders = _source_rowids(raw_db, d["table"], example)
            assert holders, f"example {example!r} not found in the source"
            if kind == "duplicate_key":
                # one row of the key stays, the others are in quarantine
                assert len(holders - rowids) == 1 and holders & rowids
            else:
                assert holders <= rowids


def test_orphans_are_counted_and_never_removed(manifest, cleaned, raw_db):
    result = cleaned["result"]
    orphans = {(o["table"], o["column"]): o for o in result.orphans}
    conn = sqlite3.connect(cleaned["out"])
    try:
        real = conn.execute(
            'SELECT count(*) FROM comments c WHERE ticket_id IS NOT NULL AND NOT EXISTS '
            '(SELECT 1 FROM tickets t WHERE t."TKT-Ticket ID" = c.ticket_id)'
        ).fetchone()[0]
        kept_rowids = {r[0] for r in conn.execute("SELECT rowid FROM comments")}
    finally:
        conn.close()
    assert orphans[("comments", "ticket_id")]["orphans"] == real > 0
    quarantined = {q["source_rowid"] for q in cleaned["quarantine"] if q["table_name"] == "comments"}
    for d in manifest["defects"]:
        if d["kind"] == "orphan_comment":
            for example in d["example_keys"]:
                for rowid in _source_rowids(raw_db, "comments", example):
                    assert rowid in kept_rowids or rowid in quarantined  # quarantined only for another defect
                    if rowid in quarantined:
                        assert not any(q["rule"] == "orphan" for q in cleaned["quarantine"])
    assert orphans[("timesheets", "TS-Crm ID")]["orphans"] > 0
    # taken from the output's profile: what counting them on the output gives
    assert result.orphans == clean._orphans(Path(cleaned["out"]))


def test_orphans_are_counted_again_where_the_profile_sample_is_too_short(cleaned):
    """A profile whose orphan samples stop short of the five values shown (example_keys
    below 5, with more orphan values than that) is not used: the output is counted."""
    from datetime import datetime

    from pipeline.profile import profile_source
    from pipeline.sources import SQLiteSource

    out = Path(cleaned["out"])
    short = Settings().with_overrides(**{"profile.example_keys": 2})
    with SQLiteSource(out) as source:
        profile = profile_source(source, short, now=datetime(2026, 11, 28, 12))
    assert clean._orphans_of_profile(out, profile, 2) is None
    assert clean._orphans(out, profile, 2) == clean._orphans(out)
    with SQLiteSource(out) as source:
        full = profile_source(source, Settings(), now=datetime(2026, 11, 28, 12))
    assert clean._orphans_of_profile(out, full, 5) == clean._orphans(out)


def test_every_change_is_audited_and_every_audit_row_is_a_change(cleaned, raw_db):
    """Source and output compared cell by cell: the differences are exactly the audit."""
    out = cleaned["out"]
    audited = {(a["table_name"], a["source_rowid"], a["column_name"]): a for a in cleaned["audit"]}
    quarantined = defaultdict(set)
    for q in cleaned["quarantine"]:
        quarantined[q["table_name"]].add(q["source_rowid"])
    src = sqlite3.connect(f"file:{raw_db}?mode=ro", uri=True)
    dst = sqlite3.connect(out)
    seen = set()
    try:
        for table in DATA_TABLES:
            columns = [r[1] for r in dst.execute(f"PRAGMA table_info({quote_sqlite(table)})")]
            cols = ", ".join(quote_sqlite(c) for c in columns)
            source_rows = {r[0]: r[1:] for r in src.execute(f"SELECT rowid, {cols} FROM {quote_sqlite(table)}")}
            output_rows = {r[0]: r[1:] for r in dst.execute(f"SELECT rowid, {cols} FROM {quote_sqlite(table)}")}
            # every source row is in the output or in quarantine, never both, never lost
            assert set(output_rows) | quarantined[table] == set(source_rows)
            assert not set(output_rows) & quarantined[table]
            for rowid, new in output_rows.items():
                old = source_rows[rowid]
                for column, o, n in zip(columns, old, new):
                    if o == n and type(o) is type(n):
                        assert (table, rowid, column) not in audited
                        continue
                    a = audited.get((table, rowid, column))
                    assert a is not None, f"unaudited change {table} rowid {rowid} {column}: {o!r} -> {n!r}"
                    assert a["old_value"] == o and type(a["old_value"]) is type(o)
                    assert a["new_value"] == n and type(a["new_value"]) is type(n)
                    seen.add((table, rowid, column))
    finally:
        src.close()
        dst.close()
    assert seen == set(audited), "audit rows that describe no change in the output"


def test_quarantine_keeps_the_original_rows(cleaned, raw_db):
    src = sqlite3.connect(f"file:{raw_db}?mode=ro", uri=True)
    try:
        for q in cleaned["quarantine"]:
            table = q["table_name"]
            columns = list(q["original"])
            row = src.execute(
                f"SELECT {', '.join(quote_sqlite(c) for c in columns)} FROM {quote_sqlite(table)} WHERE rowid = ?", (q["source_rowid"],)
            ).fetchone()
            assert list(row) == [q["original"][c] for c in columns]
            assert q["reason"] and q["rule"]
    finally:
        src.close()


def test_audit_trail_file_matches_the_audit_table(cleaned):
    result = cleaned["result"]
    lines = [json.loads(line) for line in Path(result.audit_trail).read_text(encoding="utf-8").splitlines()]
    assert len(lines) == len(cleaned["audit"]) == result.audit_rows
    for line, row in zip(lines, cleaned["audit"]):
        assert {k: line[k] for k in ("row_key", "column_name", "rule", "new_value")} == {k: row[k] for k in ("row_key", "column_name", "rule", "new_value")}
    per_rule_column = Counter((a["table_name"], a["column_name"], a["rule"]) for a in cleaned["audit"])
    assert {(c["table"], c["column"], c["rule"]): c["count"] for c in result.changes} == dict(per_rule_column)


def test_output_values_have_the_storage_class_of_their_kind(cleaned):
    conn = sqlite3.connect(cleaned["out"])
    try:
        for table in DATA_TABLES:
            for name, col in REGISTRY[table].columns.items():
                k = spec.kind(col)
                classes = {r[0] for r in conn.execute(f"SELECT DISTINCT typeof({quote_sqlite(name)}) FROM {quote_sqlite(table)}")}
                allowed = {"integer": {"integer"}, "numeric": {"integer", "real"}}.get(k, {"text"}) | {"null"}
                assert classes <= allowed, f"{table}.{name} ({k}) holds {classes}"
                if k in spec.DATE_KINDS:
                    pattern = r"^\d{4}-\d{2}-\d{2}$" if k == "date" else r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{6})?$"
                    values = [r[0] for r in conn.execute(f"SELECT {quote_sqlite(name)} FROM {quote_sqlite(table)} WHERE {quote_sqlite(name)} IS NOT NULL")]
                    assert all(re.match(pattern, v) for v in values), f"{table}.{name}"
    finally:
        conn.close()


def test_the_cleaned_sample_passes_the_pytest_gate(cleaned):
    from contracts.gate import run_gate

    verdict = run_gate(source=cleaned["out"])
    assert verdict.passed and verdict.exit_code == 0, verdict.failed
    result = cleaned["result"]
    assert result.quality_after["score"] >= max(result.quality_before["score"], SETTINGS.gate.quality_threshold)
    for dim, before in result.quality_before["dimensions"].items():
        assert result.quality_after["dimensions"][dim] >= before, dim


def test_the_raw_sample_fails_the_pytest_gate(raw_db):
    from contracts.gate import run_gate

    assert not run_gate(source=raw_db).passed


def test_cleaning_the_cleaned_sample_changes_nothing(cleaned):
    first = cleaned["result"]
    again = clean.run(clean.CleanConfig(source=cleaned["out"], out=cleaned["folder"] / "again.db", settings=SETTINGS, progress=False))
    assert again.audit_rows == 0 and again.quarantine == []
    assert again.quality_after["score"] == first.quality_after["score"]
    assert {t: s.rows_out for t, s in again.tables.items()} == {t: s.rows_in for t, s in again.tables.items()}


def test_the_defect_free_sample_loses_no_row(clean_raw_db, tmp_path):
    result = clean.run(clean.CleanConfig(source=clean_raw_db, out=tmp_path / "c.db", settings=SETTINGS, progress=False))
    assert result.quarantine == []
    assert all(t.rows_in == t.rows_out for t in result.tables.values())
    assert result.rule_totals().keys() <= {"date_iso", "excel_serial"}  # its dates are the exports' own day-first text

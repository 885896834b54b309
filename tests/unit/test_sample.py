"""The sample export generator: real headers, real proportions, and a manifest that is true.

The manifest is checked against the workbooks themselves: every defect is re-counted
here by reading the files back with openpyxl (read-only), with classification rules
written independently of the generator. The clean sample must satisfy every contract.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from contracts import spec
from contracts.headers import default_mappings
from contracts.schemas import REGISTRY
from pipeline import sample
from pipeline.cli import main
from pipeline.values import conforms

TICKETS = list(REGISTRY["tickets"].columns)
COMMENTS = list(REGISTRY["comments"].columns)
TIMESHEETS = list(REGISTRY["timesheets"].columns)

ISO_TS = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
DAY_FIRST_TS = re.compile(r"^(\d{1,2})/(\d{2})/(\d{4}) (\d{1,2}):(\d{2})$")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DAY_FIRST_DATE = re.compile(r"^(\d{1,2})/(\d{2})/(\d{4})$")
FLOAT_TEXT = re.compile(r"^\d+\.0$")


# --- reading the workbooks back ------------------------------------------------------------


def read_sheet(path: Path, width: int | None = None) -> tuple[list[Any], list[tuple[Any, ...]]]:
    """Header row (all of it) and the data rows (``width`` columns) of the first sheet."""
    wb = openpyxl.load_workbook(path, read_only=True)
    try:
        ws = wb.worksheets[0]
        header = list(next(ws.iter_rows(max_row=1, values_only=True)))
        rows = list(ws.iter_rows(min_row=2, max_col=width, values_only=True))
    finally:
        wb.close()
    return header, rows


class Exports:
    """The three workbooks of one folder as lists of dicts keyed by the SQLite column name."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.manifest = json.loads((folder / "manifest.json").read_text())
        self.headers: dict[str, list[Any]] = {}
        self.rows: dict[str, list[dict[str, Any]]] = {}
        mapping = default_mappings()["comments"]
        for table, columns in (("tickets", TICKETS), ("comments", COMMENTS), ("timesheets", TIMESHEETS)):
            headers, rows = read_sheet(folder / f"{table}.xlsx", len(columns))
            self.headers[table] = headers
            names = [mapping.get(h, h) if table == "comments" else h for h in headers[: len(columns)]]
            self.rows[table] = [dict(zip(names, row)) for row in rows]


@pytest.fixture(scope="module")
def dirty(sample_dir: Path) -> Exports:
    return Exports(sample_dir)


@pytest.fixture(scope="module")
def clean(clean_sample_dir: Path) -> Exports:
    return Exports(clean_sample_dir)


# --- an independent re-count of the defects ------------------------------------------------


def _date_kind(value: Any, *, date_only: bool = False) -> str | None:
    """The defect a stored date value carries, or None for a good (ISO or native) value."""
    if value is None or isinstance(value, datetime):
        return None
    if isinstance(value, (int, float)):
        return "excel_serial_date"
    if value == "":
        return "empty_string"
    if not value.strip():
        return "whitespace_string"
    if (ISO_TS if not date_only else ISO_DATE).match(value):
        try:
            datetime.fromisoformat(value)
            return None
        except ValueError:
            return "unparseable_date"
    m = (DAY_FIRST_DATE if date_only else DAY_FIRST_TS).match(value)
    if m:
        try:
            datetime(int(m.group(3)), int(m.group(2)), int(m.group(1)))
            return "day_first_date"
        except ValueError:
            return "unparseable_date"
    return "unparseable_date"


def _typed_kind(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    if value == "":
        return "empty_string"
    if not value.strip():
        return "whitespace_string"
    if FLOAT_TEXT.match(value):
        return "float_id"
    if value in ("N/A",):
        return "placeholder"
    return "non_numeric_id"


def recount(ex: Exports) -> dict[tuple[str, str, str], list[Any]]:
    """(table, column, kind) -> keys of the rows carrying that defect, from the workbooks."""
    found: dict[tuple[str, str, str], list[Any]] = {}

    def hit(table: str, column: str, kind: str | None, key: Any) -> None:
        if kind:
            found.setdefault((table, column, kind), []).append(key)

    ticket_ids = set()
    seen: set[Any] = set()
    date_cols = spec.date_columns(REGISTRY["tickets"])
    typed = [c for c, col in REGISTRY["tickets"].columns.items() if spec.kind(col) in ("integer", "numeric")]
    for row in ex.rows["tickets"]:
        key = row["TKT-Ticket ID"]
        ticket_ids.add(key)
        hit("tickets", "TKT-Ticket ID", "duplicate_key" if key in seen else None, key)
        seen.add(key)
        for c in date_cols:
            hit("tickets", c, _date_kind(row[c]), key)
        for c in typed:
            hit("tickets", c, _typed_kind(row[c]), key)
        if row["TKT-Root Cause Category"] == "--None--":
            hit("tickets", "TKT-Root Cause Category", "placeholder", key)
        user = row["TKT-Assigned To User"]
        if isinstance(user, str) and user.strip() == "PendingAssignment":
            hit("tickets", "TKT-Assigned To User", "placeholder", key)
    seen = set()
    for row in ex.rows["comments"]:
        key = row["comment_id"]
        hit("comments", "comment_id", "duplicate_key" if key in seen else None, key)
        seen.add(key)
        hit("comments", "comment_id", "non_numeric_id" if isinstance(key, str) else None, key)
        ticket = row["ticket_id"]
        if isinstance(ticket, str):
            hit("comments", "ticket_id", "non_numeric_id", key)
        elif ticket not in ticket_ids:
            hit("comments", "ticket_id", "orphan_comment", key)
        text = row["comment_text"] or ""
        # openpyxl leaves the OOXML escape of NUL as the literal text _x0000_.
        hit("comments", "comment_text", "nul_byte" if "_x0000_" in text or "\x00" in text else None, key)
        mixed = "\r\n" in text and "\n" in text.replace("\r\n", "")
        hit("comments", "comment_text", "crlf_mix" if mixed else None, key)
        hit("comments", "comment_text", "blank_line_run" if "\n" * 100 in text else None, key)
        hit("comments", "user_id", _typed_kind(row["user_id"]), key)
        hit("comments", "created_time", _date_kind(row["created_time"]), key)
    seen = set()
    horizon = date.today() + timedelta(days=31)
    for row in ex.rows["timesheets"]:
        key = [row["TS-User Username"], row["TS-Date"], row["TS-Time From"], row["TS-Crm ID"]]
        hit("timesheets", "TS-Crm ID", "duplicate_key" if tuple(key) in seen else None, key)
        seen.add(tuple(key))
        kind = _date_kind(row["TS-Date"], date_only=True)
        hit("timesheets", "TS-Date", kind, key)
        if kind == "day_first_date":
            d, m, y = (int(p) for p in DAY_FIRST_DATE.match(row["TS-Date"]).groups())
            hit("timesheets", "TS-Date", "future_date" if date(y, m, d) > horizon else None, key)
        hours = row["TS-Hours"]
        hit("timesheets", "TS-Hours", None if 0 < hours <= 24 else "out_of_range_hours", key)
        hit("timesheets", "TS-Costcentre ID", _typed_kind(row["TS-Costcentre ID"]), key)
    return found


# --- headers and shape -------------------------------------------------------------------


def test_headers_are_the_real_ones_in_contract_order(dirty: Exports) -> None:
    assert dirty.headers["tickets"] == TICKETS and len(TICKETS) == 60
    assert dirty.headers["timesheets"] == TIMESHEETS and len(TIMESHEETS) == 21
    assert dirty.headers["comments"][:10] == [
        "CT-COMMENT-ID", "CT-TKT-ID", "CT-COMMENT", "CT-USERID", "CT-USERIDNAME",
        "CT-OWNERTYPE", "CT-DATEAMDTIME", "CT-VISIBLE-CUSTOMER", "CT-TYPE", "CT-TKT-TEAM",
    ]


def test_comments_workbook_has_empty_trailing_columns(dirty: Exports) -> None:
    trailing = dirty.manifest["facts"]["empty_trailing_columns"]
    assert trailing == 40
    assert dirty.headers["comments"][10:] == [None] * trailing
    _, rows = read_sheet(dirty.folder / "comments.xlsx")
    assert {len(r) for r in rows} == {10 + trailing}
    assert all(v is None for r in rows for v in r[10:])  # no value beyond the real columns


def test_rows_in_manifest_are_the_rows_in_the_workbooks(dirty: Exports, clean: Exports) -> None:
    for ex in (dirty, clean):
        assert ex.manifest["rows"] == {t: len(ex.rows[t]) for t in ("tickets", "comments", "timesheets")}
        assert ex.manifest["files"] == {t: f"{t}.xlsx" for t in ("tickets", "comments", "timesheets")}
        assert ex.manifest["format"] == "servicedesk-etl/sample-manifest/1"


def test_manifest_shape(dirty: Exports) -> None:
    m = dirty.manifest
    assert (m["seed"], m["tickets"], m["clean"], m["comment_headers"]) == (7, 300, False, "CT")
    assert set(m["facts"]) >= {"incident_resolved", "excel_date_cells", "timesheet_admin_rows", "timesheet_orphans", "empty_trailing_columns"}
    slots = [(d["table"], d["column"], d["kind"]) for d in m["defects"]]
    assert len(slots) == len(set(slots)), "one entry per table + column + kind"
    for d in m["defects"]:
        assert d["count"] > 0 and 1 <= len(d["example_keys"]) <= 5
        assert d["column"] in REGISTRY[d["table"]].columns


# --- the manifest is the truth ---------------------------------------------------------------


def test_every_defect_in_the_manifest_is_in_the_workbooks_with_its_count(dirty: Exports) -> None:
    found = recount(dirty)
    declared = {(d["table"], d["column"], d["kind"]): d for d in dirty.manifest["defects"]}
    assert {slot: len(keys) for slot, keys in found.items()} == {slot: d["count"] for slot, d in declared.items()}
    for slot, d in declared.items():
        keys = [list(k) if isinstance(k, list) else k for k in found[slot]]
        for example in d["example_keys"]:
            assert example in keys, (slot, example)


def test_every_kind_of_the_reference_is_injected(dirty: Exports) -> None:
    kinds = {d["kind"] for d in dirty.manifest["defects"]}
    assert kinds == {
        "day_first_date", "excel_serial_date", "unparseable_date", "empty_string", "whitespace_string",
        "float_id", "non_numeric_id", "placeholder", "nul_byte", "crlf_mix", "blank_line_run",
        "duplicate_key", "orphan_comment", "future_date", "out_of_range_hours",
    }
    by_slot = {(d["table"], d["column"], d["kind"]): d["count"] for d in dirty.manifest["defects"]}
    assert by_slot[("comments", "ticket_id", "non_numeric_id")] == 1
    assert by_slot[("timesheets", "TS-Date", "future_date")] == 1
    assert by_slot[("timesheets", "TS-Hours", "out_of_range_hours")] == 2
    # Whole columns in day-first text, as in the reference.
    unparseable = by_slot[("comments", "created_time", "unparseable_date")]
    assert by_slot[("comments", "created_time", "day_first_date")] == len(dirty.rows["comments"]) - unparseable
    assert by_slot[("timesheets", "TS-Date", "day_first_date")] == len(dirty.rows["timesheets"])
    # Every date column of the tickets holds empty strings (the third problem of the first migration).
    for c in spec.date_columns(REGISTRY["tickets"]):
        assert by_slot[("tickets", c, "empty_string")] >= 2


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_manifest_is_exact_at_the_smallest_size_for_other_seeds(tmp_path: Path, seed: int) -> None:
    """40 tickets hold every defect kind at its minimum count, with exact counts."""
    manifest = sample.generate(tmp_path, tickets=sample.MIN_TICKETS, seed=seed, comment_chars=60)
    ex = Exports(tmp_path)
    found = {slot: len(keys) for slot, keys in recount(ex).items()}
    assert found == {(d["table"], d["column"], d["kind"]): d["count"] for d in manifest["defects"]}
    assert len({d["kind"] for d in manifest["defects"]}) == 15


def test_day_first_columns_are_decidable(dirty: Exports) -> None:
    """Each column with day-first text holds a value whose day is above 12."""
    for d in dirty.manifest["defects"]:
        if d["kind"] != "day_first_date" or d["table"] != "tickets":
            continue
        days = [
            int(DAY_FIRST_TS.match(r[d["column"]]).group(1))
            for r in dirty.rows["tickets"]
            if isinstance(r[d["column"]], str) and DAY_FIRST_TS.match(r[d["column"]])
        ]
        assert len(days) >= 3 and max(days) > 12


def test_facts_are_true(dirty: Exports) -> None:
    facts = dirty.manifest["facts"]
    statuses = Counter(r["TKT-Status"] for r in dirty.rows["tickets"])
    assert facts["incident_resolved"] == statuses["Incident Resolved"]
    for table, columns in facts["excel_date_cells"].items():
        for column, count in columns.items():
            assert count == sum(isinstance(r[column], datetime) for r in dirty.rows[table]), column
    assert sum(facts["excel_date_cells"]["tickets"].values()) > 0
    ids = {r["TKT-Ticket ID"] for r in dirty.rows["tickets"]}
    crm = [r["TS-Crm ID"] for r in dirty.rows["timesheets"]]
    assert facts["timesheet_admin_rows"] == crm.count(0)
    assert facts["timesheet_orphans"] == sum(1 for c in crm if c != 0 and c not in ids)


def test_clean_timesheet_dates_include_date_only_cells(clean: Exports) -> None:
    native = [r["TS-Date"] for r in clean.rows["timesheets"] if isinstance(r["TS-Date"], datetime)]
    assert native and all(d.time() == datetime.min.time() for d in native)
    assert clean.manifest["facts"]["excel_date_cells"]["timesheets"]["TS-Date"] == len(native)


# --- realistic proportions -------------------------------------------------------------------


def _share(values: list[Any], predicate) -> float:
    return sum(1 for v in values if predicate(v)) / len(values)


def test_proportions_follow_the_reference(clean: Exports) -> None:
    tickets, comments, times = clean.rows["tickets"], clean.rows["comments"], clean.rows["timesheets"]
    assert 8.5 <= len(comments) / len(tickets) <= 11.5
    assert 12.5 <= len(times) / len(tickets) <= 13.3
    statuses = [t["TKT-Status"] for t in tickets]
    assert 0.65 <= _share(statuses, lambda s: s == "Closed") <= 0.81
    assert 0.18 <= _share(statuses, lambda s: s == "Incident Resolved") <= 0.32
    assert any(s not in ("Closed", "Incident Resolved") for s in statuses)
    assert 0.60 <= _share(tickets, lambda t: t["TKT-SLA"] is not None) <= 0.76
    for t in tickets:  # SLA Met: lower-case yes/no, NULL exactly when there is no SLA
        assert (t["TKT-SLA Met"] is None) == (t["TKT-SLA"] is None)
        assert t["TKT-SLA Met"] in (None, "yes", "no")
    assert 0.0 < _share(tickets, lambda t: t["TKT-Parent ID"] is not None) <= 0.06
    assert 0.55 <= _share(tickets, lambda t: t["TKT-Actual Response Date"] is not None) <= 0.71
    assert 0.45 <= _share(tickets, lambda t: t["TKT-Actual Resolution Date"] is not None) <= 0.61
    assert _share(tickets, lambda t: t["Chg-Type"] is not None) < 0.03
    assert {t["TKT-Team"] for t in tickets} >= {"Cloud - Infrastructure", "Cloud - BAU Support"}
    assert {t["TKT-Severity"] for t in tickets} == {"P1", "P2", "P3", "P4", "Alert"}
    # Comments: the automation account writes ~61%; Yes/No visibility; long text.
    assert 0.55 <= _share(comments, lambda c: c["user_name"] == "sdautomation") <= 0.67
    assert {c["visible_to_customer"] for c in comments} <= {"Yes", "No", None}
    lengths = [len(c["comment_text"]) for c in comments]
    mean = sum(lengths) / len(lengths)
    assert 0.85 * 2100 <= mean <= 1.15 * 2100
    assert max(lengths) > 4 * mean  # a long tail
    # Timesheets: admin time 10-30%, ~90% of the rest orphans, hours in (0, 24].
    ids = {t["TKT-Ticket ID"] for t in tickets}
    crm = [r["TS-Crm ID"] for r in times]
    assert 0.10 <= _share(crm, lambda c: c == 0) <= 0.30
    work = [c for c in crm if c != 0]
    assert 0.80 <= _share(work, lambda c: c not in ids) <= 0.97
    assert all(0 < r["TS-Hours"] <= 24 for r in times)
    assert all(r["TS-Sub Category"] is None for r in times)


# --- the clean sample ------------------------------------------------------------------------


def test_clean_sample_has_no_defects(clean: Exports) -> None:
    assert clean.manifest["clean"] is True
    assert clean.manifest["defects"] == []
    assert recount(clean) == {}
    assert clean.manifest["facts"]["empty_trailing_columns"] == 0


def _as_ingested(value: Any, kind: str) -> Any:
    """What ingest stores: a date cell becomes ISO text (a whole day in a date-only
    column as ``YYYY-MM-DD``); everything else as read."""
    if isinstance(value, datetime):
        return value.date().isoformat() if kind == "date" else value.isoformat(" ")
    return value


@pytest.mark.parametrize("table", ["tickets", "comments", "timesheets"])
def test_clean_sample_satisfies_every_contract(clean: Exports, table: str) -> None:
    schema = REGISTRY[table]
    rows = clean.rows[table]
    problems: list[str] = []
    today = datetime.now()
    for name, col in schema.columns.items():
        kind = spec.kind(col)
        stats = {check.name: check.statistics for check in col.checks}
        future = spec.not_future_days(col)
        tokens = set(spec.placeholders(col)) | {"--None--", "PendingAssignment", "N/A"}
        for row in rows:
            value = _as_ingested(row[name], kind)
            if value is None:
                if not col.nullable:
                    problems.append(f"{name}: NULL")
                continue
            if not conforms(kind, value):
                problems.append(f"{name}: {value!r} is not {kind}")
            if isinstance(value, str) and (value.strip() in tokens or not value.strip()):
                problems.append(f"{name}: placeholder or blank {value!r}")
            if "allowed_values" in stats and value not in stats["allowed_values"]["allowed_values"]:
                problems.append(f"{name}: {value!r} not allowed")
            if "pattern" in stats and not re.match(stats["pattern"]["pattern"], value):
                problems.append(f"{name}: {value!r} does not match")
            if "in_range" in stats:
                r = stats["in_range"]
                low_ok = value > r["min_value"] or (r["include_min"] and value == r["min_value"])
                high_ok = value < r["max_value"] or (r["include_max"] and value == r["max_value"])
                if not (low_ok and high_ok):
                    problems.append(f"{name}: {value!r} out of range")
            if future is not None and datetime.fromisoformat(value) > today + timedelta(days=future):
                problems.append(f"{name}: {value!r} in the future")
    keys = [tuple(r[k] for k in spec.facts(schema).key) for r in rows]
    if len(keys) != len(set(keys)):
        problems.append("duplicate keys")
    if table == "comments":
        ids = {t["TKT-Ticket ID"] for t in clean.rows["tickets"]}
        problems += [f"orphan comment {r['comment_id']}" for r in rows if r["ticket_id"] not in ids]
    assert problems == []


def test_clean_and_dirty_samples_share_their_values(dirty: Exports, clean: Exports) -> None:
    """--clean writes the same data: only the defects differ."""
    dirty_ids = [t["TKT-Ticket ID"] for t in dirty.rows["tickets"]]
    assert [t["TKT-Ticket ID"] for t in clean.rows["tickets"]] == list(dict.fromkeys(dirty_ids))
    assert [t["TKT-Status"] for t in clean.rows["tickets"]] == [
        t["TKT-Status"] for t in dict((t["TKT-Ticket ID"], t) for t in dirty.rows["tickets"]).values()
    ]
    assert dirty.manifest["facts"]["incident_resolved"] == clean.manifest["facts"]["incident_resolved"]


# --- the XML of '' versus an absent cell ------------------------------------------------------


def test_empty_string_is_an_explicit_empty_cell_and_absent_is_no_cell(dirty: Exports, sample_dir: Path) -> None:
    entry = next(d for d in dirty.manifest["defects"] if d["kind"] == "empty_string" and d["column"] == "TKT-Created Time")
    row_index = next(i for i, r in enumerate(dirty.rows["tickets"]) if r["TKT-Ticket ID"] == entry["example_keys"][0])
    assert dirty.rows["tickets"][row_index]["TKT-Created Time"] == ""
    with zipfile.ZipFile(sample_dir / "tickets.xlsx") as z:
        xml = z.read("xl/worksheets/sheet1.xml").decode()
    row_number = row_index + 2
    assert f'<c r="D{row_number}" t="inlineStr"><is><t></t></is></c>' in xml
    # An absent value (no Parent ID on most tickets) is no cell at all.
    absent = next(i for i, r in enumerate(dirty.rows["tickets"]) if r["TKT-Parent ID"] is None) + 2
    assert f'<c r="B{absent}"' not in xml


def test_calamine_reads_the_awkward_cells(sample_dir: Path, dirty: Exports) -> None:
    from python_calamine import CalamineWorkbook

    rows = CalamineWorkbook.from_path(str(sample_dir / "comments.xlsx")).get_sheet_by_index(0).to_python()
    texts = [r[2] for r in rows[1:]]
    nul = next(d for d in dirty.manifest["defects"] if d["kind"] == "nul_byte")["count"]
    crlf = next(d for d in dirty.manifest["defects"] if d["kind"] == "crlf_mix")["count"]
    assert sum("\x00" in t for t in texts) == nul
    assert sum("\r\n" in t for t in texts) == crlf
    tickets = CalamineWorkbook.from_path(str(sample_dir / "tickets.xlsx")).get_sheet_by_index(0).to_python()
    assigned = [r[TICKETS.index("TKT-Assigned To User")] for r in tickets[1:]]
    assert " PendingAssignment" in assigned  # the leading space survives
    modified = [r[TICKETS.index("TKT-Modified Time")] for r in tickets[1:]]
    assert "  " in modified


@pytest.mark.parametrize(
    ("text", "xml"),
    [
        ("plain", "plain"),
        ("", ""),
        ("a & b < c > d", "a &amp; b &lt; c &gt; d"),
        ("line\r\nnext", "line&#13;\nnext"),
        ("nul\x00here", "nul_x0000_here"),
        ("bell\x07", "bell_x0007_"),
        ("literal _x0041_ text", "literal _x005F_x0041_ text"),
        ("tab\tand\nnewline", "tab\tand\nnewline"),
    ],
)
def test_xml_text(text: str, xml: str) -> None:
    assert sample.xml_text(text) == xml


@pytest.mark.parametrize("large", [False, True], ids=["zip", "zip64"])
def test_sheet_writer_round_trip(tmp_path: Path, large: bool) -> None:
    from python_calamine import CalamineWorkbook

    path = tmp_path / "w.xlsx"
    writer = sample.SheetWriter(path, ["text", "number", "when", "day"], rows=2, large=large, empty_trailing=2)
    writer.write(["a & b\r\nc", 3652948, datetime(2025, 7, 1, 8, 30), date(2025, 7, 2)])
    writer.write([" PendingAssignment", 7.25, None, ""])
    writer.close()
    header, rows = read_sheet(path)
    assert header == ["text", "number", "when", "day", None, None]
    assert rows == [
        ("a & b\r\nc", 3652948, datetime(2025, 7, 1, 8, 30), datetime(2025, 7, 2), None, None),
        (" PendingAssignment", 7.25, None, "", None, None),
    ]
    grid = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()
    assert grid[1][:3] == ["a & b\r\nc", 3652948.0, datetime(2025, 7, 1, 8, 30)]
    assert grid[2][:2] == [" PendingAssignment", 7.25]


def test_sheet_writer_checks_the_planned_row_count(tmp_path: Path) -> None:
    writer = sample.SheetWriter(tmp_path / "w.xlsx", ["a"], rows=2)
    writer.write(["only one"])
    with pytest.raises(AssertionError, match="wrote 1 rows, planned 2"):
        writer.close()


def test_column_letters() -> None:
    assert [sample.column_letter(i) for i in (0, 25, 26, 51, 59, 701, 702)] == ["A", "Z", "AA", "AZ", "BH", "ZZ", "AAA"]


# --- determinism, options, CLI -----------------------------------------------------------------


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    first = sample.generate(tmp_path / "a", tickets=40, seed=3, comment_chars=200)
    second = sample.generate(tmp_path / "b", tickets=40, seed=3, comment_chars=200)
    assert first == second
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert read_sheet(tmp_path / "a" / "comments.xlsx") == read_sheet(tmp_path / "b" / "comments.xlsx")
    sample.generate(tmp_path / "c", tickets=40, seed=4, comment_chars=200)
    assert _digest(tmp_path / "c")["tickets.xlsx"] != _digest(tmp_path / "a")["tickets.xlsx"]


def test_two_workers_write_the_same_bytes_as_one(tmp_path: Path) -> None:
    one = sample.generate(tmp_path / "one", tickets=60, seed=5, comment_chars=150, workers=1)
    two = sample.generate(tmp_path / "two", tickets=60, seed=5, comment_chars=150, workers=2)
    assert one == two
    assert _digest(tmp_path / "one") == _digest(tmp_path / "two")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failure_leaves_the_output_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    from pipeline.errors import ConfigError

    sample.generate(tmp_path, tickets=40, seed=1, comment_chars=60, workers=1)
    before = _digest(tmp_path)

    def broken(self, plan):
        yield from ()
        raise ConfigError("timesheets broke", "nothing to fix: a test")

    # Forked workers inherit the patched class, so the failure happens in the child.
    monkeypatch.setattr(sample._Generator, "timesheet_rows", broken)
    with pytest.raises(ConfigError, match="timesheets broke"):
        sample.generate(tmp_path, tickets=40, seed=2, comment_chars=60, workers=workers)
    assert _digest(tmp_path) == before  # no temp file left, nothing replaced


def test_second_generation_comment_headers(tmp_path: Path) -> None:
    manifest = sample.generate(tmp_path, tickets=40, comment_headers="TKTCT", comment_chars=100)
    headers, _ = read_sheet(tmp_path / "comments.xlsx")
    assert headers[:10] == [
        "TKTCT-CommentID", "TKTCT-TicketID", "TKTCT-Comment", "TKTCT-UserID", "TKTCT-Username",
        "TKTCT-OwnerType", "TKTCT-Created Time", "TKTCT-VisibleCustomer", "TKTCT-Type", "TKTCT-Team",
    ]
    assert manifest["comment_headers"] == "TKTCT"
    # The manifest still names the SQLite columns.
    assert {d["column"] for d in manifest["defects"] if d["table"] == "comments"} <= set(COMMENTS)


def test_comment_chars_sets_the_mean_length(tmp_path: Path) -> None:
    sample.generate(tmp_path, tickets=40, comment_chars=300, clean=True)
    _, rows = read_sheet(tmp_path / "comments.xlsx")
    mean = sum(len(r[2]) for r in rows) / len(rows)
    assert 240 <= mean <= 360


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tickets": 39}, "out of range"),
        ({"tickets": 10**6}, "out of range"),
        ({"tickets": 40, "comment_headers": "XX"}, "unknown comment header generation"),
        ({"tickets": 40, "comment_chars": 5}, "out of range"),
        ({"tickets": 40, "workers": 0}, "at least 1"),
    ],
)
def test_bad_options_are_config_errors(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        sample.generate(tmp_path, **kwargs)
    assert not list(tmp_path.iterdir())


def test_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["sample", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--out", "--tickets", "--seed", "--clean", "--comment-headers", "--comment-chars", "--workers"):
        assert flag in out


def test_cli_small_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sample", "--out", str(tmp_path / "s"), "--tickets", "40", "--seed", "1", "--comment-chars", "150", "--clean"])
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["comments.xlsx", "manifest.json", "tickets.xlsx", "timesheets.xlsx"]
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["clean"] is True and manifest["seed"] == 1
    assert "wrote" in capsys.readouterr().out


def test_cli_bad_tickets_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sample", "--out", str(tmp_path), "--tickets", "3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --tickets 3 is out of range") and "Traceback" not in err

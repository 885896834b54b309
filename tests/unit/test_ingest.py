"""Ingest: faithful values, header mapping, scoping, bad input, atomic output."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import zipfile
from datetime import date, datetime
from pathlib import Path
from typing import Any, Sequence

import pytest

from contracts.schemas import contract_for
from pipeline.cli import main
from pipeline.config import Scoping, Settings
from pipeline.errors import InputFileError
from pipeline.ingest import IngestConfig, plan_columns, run

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
TICKETS = list(contract_for("tickets").columns)  # type: ignore[union-attr]
TIMESHEETS = list(contract_for("timesheets").columns)  # type: ignore[union-attr]
CT = ["CT-COMMENT-ID", "CT-TKT-ID", "CT-COMMENT", "CT-USERID", "CT-USERIDNAME", "CT-OWNERTYPE",
      "CT-DATEAMDTIME", "CT-VISIBLE-CUSTOMER", "CT-TYPE", "CT-TKT-TEAM"]
TKTCT = ["TKTCT-CommentID", "TKTCT-TicketID", "TKTCT-Comment", "TKTCT-UserID", "TKTCT-Username",
         "TKTCT-OwnerType", "TKTCT-Created Time", "TKTCT-VisibleCustomer", "TKTCT-Type", "TKTCT-Team"]
COMMENT_COLUMNS = list(contract_for("comments").columns)  # type: ignore[union-attr]


# --- a small exact workbook writer: every cell form under the test's control ------------


def _text(text: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    return "".join(f"_x{ord(ch):04X}_" if ord(ch) < 32 and ch not in "\t\n" else ch for ch in text)


def _letter(i: int) -> str:
    out = ""
    i += 1
    while i:
        i, rem = divmod(i - 1, 26)
        out = chr(65 + rem) + out
    return out


def _cell(ref: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{_text(value)}</t></is></c>'
    if isinstance(value, datetime):  # an Excel date cell: serial + built-in format 22
        serial = (value - datetime(1899, 12, 30)).total_seconds() / 86400
        return f'<c r="{ref}" s="1"><v>{serial!r}</v></c>'
    if isinstance(value, date):  # built-in format 14 (date only)
        return f'<c r="{ref}" s="2"><v>{(value - date(1899, 12, 30)).days}</v></c>'
    return f'<c r="{ref}"><v>{value!r}</v></c>'


def write_workbook(path: Path, header: Sequence[Any], rows: Sequence[Sequence[Any]], sheet: str = "Export") -> Path:
    body = []
    for r, values in enumerate([header, *rows], start=1):
        body.append(f'<row r="{r}">' + "".join(_cell(f"{_letter(i)}{r}", v) for i, v in enumerate(values)) + "</row>")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr(
            "xl/workbook.xml",
            f'<workbook xmlns="{MAIN}" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
            f'<sheets><sheet name="{sheet}" sheetId="1" r:id="rId1"/></sheets></workbook>',
        )
        zf.writestr(
            "xl/_rels/workbook.xml.rels",
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
            "</Relationships>",
        )
        zf.writestr("xl/styles.xml", f'<styleSheet xmlns="{MAIN}"><cellXfs><xf numFmtId="0"/><xf numFmtId="22"/><xf numFmtId="14"/></cellXfs></styleSheet>')
        zf.writestr("xl/worksheets/sheet1.xml", f'<worksheet xmlns="{MAIN}"><sheetData>{"".join(body)}</sheetData></worksheet>')
    return path


def ticket(ticket_id: Any, **values: Any) -> list[Any]:
    row: list[Any] = [None] * len(TICKETS)
    row[0] = ticket_id
    for name, value in values.items():
        row[TICKETS.index(name.replace("_", " ").replace("TKT ", "TKT-"))] = value
    return row


def comment(comment_id: Any, ticket_id: Any, user: Any = "alice", when: Any = "2/07/2025 16:21", text: Any = "hello") -> list[Any]:
    return [comment_id, ticket_id, text, 101, user, "agent", when, "Yes", "comments", "Cloud - BAU Support"]


def timesheet(user: str = "alice", day: Any = "2/07/2025", crm: Any = 3600001, hours: Any = 1.5) -> list[Any]:
    row: list[Any] = [None] * len(TIMESHEETS)
    values = {"TS-User Username": user, "TS-Date": day, "TS-Time From": "09:00", "TS-Crm ID": crm, "TS-Hours": hours}
    for name, value in values.items():
        row[TIMESHEETS.index(name)] = value
    return row


@pytest.fixture
def exports(tmp_path: Path) -> dict[str, Path]:
    """Three small valid exports (and a roster) in tmp_path."""
    folder = tmp_path / "in"
    folder.mkdir()
    return {
        "tickets": write_workbook(folder / "tickets.xlsx", TICKETS, [ticket(3600001), ticket(3600002)]),
        "comments": write_workbook(folder / "comments.xlsx", CT, [comment(1, 3600001), comment(2, 3600002, user="bob")]),
        "timesheets": write_workbook(folder / "timesheets.xlsx", TIMESHEETS, [timesheet()]),
        "roster": write_workbook(folder / "roster.xlsx", ["Name", "Email", "Username"], [["Alice A", "alice@example.org", "alice"]]),
    }


def ingest(exports: dict[str, Path], out: Path, settings: Settings | None = None, roster: Path | None = None):
    return run(
        IngestConfig(
            tickets=exports["tickets"],
            comments=exports["comments"],
            timesheets=exports["timesheets"],
            out=out,
            settings=settings or Settings(),
            roster=roster,
        )
    )


def query(db: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


# --- faithfulness -----------------------------------------------------------------


def test_values_are_stored_as_the_workbook_holds_them(exports: dict[str, Path], tmp_path: Path) -> None:
    write_workbook(
        exports["tickets"],
        TICKETS,
        [
            ticket(
                3600001,
                **{
                    "TKT-Title": "  text with spaces ",
                    "TKT-Created Time": datetime(2025, 7, 2, 16, 21),  # a native date cell
                    "TKT-Modified Time": "2/07/2025 16:21",  # day-first text stays text
                    "TKT-Actual Response Date": "",  # '' stays ''
                    "TKT-Parent ID": "3652948.0",  # text stays text
                    "TKT-Account Id": 3652948,
                    "TKT-Actual SLA Achievement": 97.5,
                    "TKT-Assigned To User": " PendingAssignment",
                    "TKT-Description": "line\r\nmixed\nends\rand NUL \x00 kept",
                    "TKT-Closure Date": date(2025, 7, 3),
                    "TKT-Customer Reference": "123",
                },
            )
        ],
    )
    db = ingest(exports, tmp_path / "raw.db").out
    cols = ["TKT-Title", "TKT-Created Time", "TKT-Modified Time", "TKT-Actual Response Date", "TKT-Parent ID",
            "TKT-Account Id", "TKT-Actual SLA Achievement", "TKT-Assigned To User", "TKT-Description",
            "TKT-Closure Date", "TKT-Customer Reference", "TKT-SLA", "TKT-Ticket ID"]
    select = ", ".join(f'"{c}", typeof("{c}")' for c in cols)
    row = query(db, f"SELECT {select} FROM tickets")[0]
    got = dict(zip(cols, zip(row[0::2], row[1::2])))
    assert got == {
        "TKT-Title": ("  text with spaces ", "text"),
        "TKT-Created Time": ("2025-07-02 16:21:00", "text"),
        "TKT-Modified Time": ("2/07/2025 16:21", "text"),
        "TKT-Actual Response Date": ("", "text"),
        "TKT-Parent ID": ("3652948.0", "text"),
        "TKT-Account Id": (3652948, "integer"),
        "TKT-Actual SLA Achievement": (97.5, "real"),
        "TKT-Assigned To User": (" PendingAssignment", "text"),
        "TKT-Description": ("line\r\nmixed\nends\rand NUL \x00 kept", "text"),
        "TKT-Closure Date": ("2025-07-03", "text"),
        "TKT-Customer Reference": ("123", "text"),  # no affinity: '123' is not made 123
        "TKT-SLA": (None, "null"),  # absent cell
        "TKT-Ticket ID": (3600001, "integer"),
    }


def test_columns_have_no_declared_type_and_contract_order(exports: dict[str, Path], tmp_path: Path) -> None:
    db = ingest(exports, tmp_path / "raw.db").out
    for table in ("tickets", "comments", "timesheets", "import_metadata"):
        info = query(db, f'PRAGMA table_info("{table}")')
        assert [r[1] for r in info] == list(contract_for(table).columns)  # type: ignore[union-attr]
        assert {r[2] for r in info} == {""}


@pytest.mark.parametrize("headers", [CT, TKTCT], ids=["CT", "TKTCT"])
def test_both_comment_header_generations_import(exports: dict[str, Path], tmp_path: Path, headers: list[str]) -> None:
    write_workbook(exports["comments"], headers, [comment(7, 3600001, text="x\r\ny")])
    db = ingest(exports, tmp_path / "raw.db").out
    assert [r[1] for r in query(db, "PRAGMA table_info(comments)")] == COMMENT_COLUMNS
    assert query(db, "SELECT comment_id, ticket_id, comment_text, user_name, created_time FROM comments") == [
        (7, 3600001, "x\r\ny", "alice", "2/07/2025 16:21")
    ]


def test_header_cells_are_trimmed_and_config_mappings_apply(exports: dict[str, Path], tmp_path: Path) -> None:
    headers = [f"  {h} " for h in CT]
    headers[2] = "Comment Body"
    write_workbook(exports["comments"], headers, [comment(7, 3600001)])
    settings = Settings(headers={"comments": {"Comment Body": "comment_text"}})
    db = ingest(exports, tmp_path / "raw.db", settings).out
    assert query(db, "SELECT comment_text FROM comments") == [("hello",)]


def test_unknown_extra_column_kept_and_reported(exports: dict[str, Path], tmp_path: Path) -> None:
    write_workbook(exports["tickets"], [*TICKETS[:5], "TKT-Brand New", *TICKETS[5:]], [[*ticket(3600001)[:5], "new", *ticket(3600001)[5:]]])
    result = ingest(exports, tmp_path / "raw.db")
    assert result.extra_columns["tickets"] == ("TKT-Brand New",)
    assert result.extra_columns["comments"] == ()
    columns = [r[1] for r in query(result.out, "PRAGMA table_info(tickets)")]
    assert columns == [*TICKETS, "TKT-Brand New"]
    assert query(result.out, 'SELECT "TKT-Brand New" FROM tickets') == [("new",)]
    (notes,) = query(result.out, "SELECT notes FROM import_metadata WHERE source_type = 'tickets'")[0]
    assert "TKT-Brand New" in notes


def test_import_metadata_one_row_per_workbook(exports: dict[str, Path], tmp_path: Path) -> None:
    write_workbook(exports["timesheets"], TIMESHEETS + [None, None], [timesheet(), timesheet(day="5/07/2025")])
    result = ingest(exports, tmp_path / "raw.db", roster=exports["roster"])
    rows = query(result.out, "SELECT * FROM import_metadata ORDER BY import_id")
    columns = [r[1] for r in query(result.out, "PRAGMA table_info(import_metadata)")]
    assert columns == list(contract_for("import_metadata").columns)  # type: ignore[union-attr]
    meta = {r[columns.index("source_type")]: dict(zip(columns, r)) for r in rows}
    assert sorted(meta) == ["comments", "roster", "tickets", "timesheets"]
    ts = meta["timesheets"]
    assert ts["file_name"] == "timesheets.xlsx"
    assert ts["file_sha256"] == hashlib.sha256(exports["timesheets"].read_bytes()).hexdigest()
    assert ts["sheet_name"] == "Export"
    assert (ts["rows_read"], ts["rows_imported"]) == (2, 2)
    assert ts["date_range"] == "2025-07-02 00:00:00 .. 2025-07-05 00:00:00"
    assert ts["filter_applied"] is None
    assert meta["tickets"]["filter_applied"].startswith("tickets a roster member commented on")
    assert [r[0] for r in query(result.out, "SELECT import_id FROM import_metadata")] == [1, 2, 3, 4]


# --- header errors -------------------------------------------------------------------


def _error(exports: dict[str, Path], tmp_path: Path) -> str:
    with pytest.raises(InputFileError) as info:
        ingest(exports, tmp_path / "raw.db")
    assert not (tmp_path / "raw.db").exists()
    return str(info.value)


def test_missing_required_header_names_file_header_and_headers_found(exports: dict[str, Path], tmp_path: Path) -> None:
    headers = [h for h in CT if h != "CT-DATEAMDTIME"]
    write_workbook(exports["comments"], headers, [comment(1, 3600001)[:9]])
    message = _error(exports, tmp_path)
    assert "--comments" in message and str(exports["comments"]) in message
    assert "'CT-DATEAMDTIME' or 'TKTCT-Created Time'" in message
    assert "headers found: 'CT-COMMENT-ID'" in message


def test_swapped_files_are_named(exports: dict[str, Path], tmp_path: Path) -> None:
    exports["tickets"], exports["comments"] = exports["comments"], exports["tickets"]
    message = _error(exports, tmp_path)
    # Comments are read first (the roster scoping needs them): the comments slot complains.
    assert "--comments" in message and "looks like the tickets export" in message
    assert "swapped" in message and "this one to --tickets" in message


def test_header_row_missing(exports: dict[str, Path], tmp_path: Path) -> None:
    write_workbook(exports["timesheets"], timesheet(), [timesheet()])
    message = _error(exports, tmp_path)
    assert "header row is missing" in message and "--timesheets" in message


def test_two_headers_for_one_column(exports: dict[str, Path], tmp_path: Path) -> None:
    write_workbook(exports["comments"], [*CT, "TKTCT-Comment"], [[*comment(1, 3600001), "again"]])
    message = _error(exports, tmp_path)
    assert "'CT-COMMENT' and 'TKTCT-Comment' both give column 'comment_text'" in message


def test_plan_columns_puts_extras_after_contract_order(tmp_path: Path) -> None:
    plan = plan_columns("comments", ["zz", *reversed(CT)], tmp_path / "c.xlsx", "--comments", Settings())
    assert plan.columns == (*COMMENT_COLUMNS, "zz")
    assert plan.positions[0] == len(CT)  # comment_id is the last sheet column
    assert plan.extras == ("zz",)


# --- scoping -------------------------------------------------------------------------


def test_scoping_is_off_by_default(exports: dict[str, Path], tmp_path: Path) -> None:
    write_workbook(exports["comments"], CT, [comment(1, 3600001, when="2/01/2020 10:00")])
    result = ingest(exports, tmp_path / "raw.db")
    assert result.rows_imported == {"tickets": 2, "comments": 1, "timesheets": 1}
    assert "cloud_team_roster" not in {r[0] for r in query(result.out, "SELECT name FROM sqlite_master")}


def test_cutoff_drops_earlier_comments_and_timesheets_keeps_unparseable(exports: dict[str, Path], tmp_path: Path) -> None:
    write_workbook(
        exports["comments"],
        CT,
        [
            comment(1, 3600001, when="30/06/2025 23:59"),  # before: dropped
            comment(2, 3600001, when="1/07/2025 00:00"),  # on the day: kept
            comment(3, 3600001, when="2025-06-30 10:00:00"),  # ISO before: dropped
            comment(4, 3600001, when=datetime(2025, 6, 1, 9, 0)),  # date cell before: dropped
            comment(5, 3600001, when=datetime(2025, 8, 1, 9, 0)),  # date cell after: kept
            comment(6, 3600001, when="not a date"),  # unparseable: kept
            comment(7, 3600001, when=""),  # empty: kept
            comment(8, 3600001, when=None),  # absent: kept
            comment(9, 3600001, when="7/06/2025 10:00"),  # day-first: 7 June, dropped
        ],
    )
    write_workbook(
        exports["timesheets"],
        TIMESHEETS,
        [timesheet(day="30/06/2025"), timesheet(day="1/07/2025"), timesheet(day=date(2025, 6, 2)), timesheet(day="??")],
    )
    settings = Settings(scoping=Scoping(cutoff=date(2025, 7, 1)))
    result = ingest(exports, tmp_path / "raw.db", settings)
    assert [r[0] for r in query(result.out, "SELECT comment_id FROM comments ORDER BY 1")] == [2, 5, 6, 7, 8]
    assert query(result.out, 'SELECT "TS-Date" FROM timesheets') == [("1/07/2025",), ("??",)]
    assert result.rows_read == {"tickets": 2, "comments": 9, "timesheets": 4}
    assert result.rows_imported == {"tickets": 2, "comments": 5, "timesheets": 2}
    (applied,) = query(result.out, "SELECT filter_applied FROM import_metadata WHERE source_type = 'comments'")[0]
    assert "2025-07-01" in applied


def test_roster_keeps_tickets_commented_by_members_and_all_their_comments(exports: dict[str, Path], tmp_path: Path) -> None:
    write_workbook(exports["tickets"], TICKETS, [ticket(t) for t in (3600001, 3600002, 3600003, 3600004)])
    write_workbook(
        exports["comments"],
        CT,
        [
            comment(1, 3600001, user="alice"),
            comment(2, 3600001, user="bob"),  # bob's, on alice's ticket: kept
            comment(3, 3600002, user="bob"),  # only bob: ticket and comment dropped
            comment(4, "3600003", user=" ALICE "),  # id as text, name padded/cased: kept
            comment(5, 3600004, user="alice", when="1/01/2024 10:00"),  # before the cut-off
            comment(6, 3600004, user="bob"),
        ],
    )
    write_workbook(exports["timesheets"], TIMESHEETS, [timesheet(crm=3600002), timesheet(crm=0)])
    settings = Settings(scoping=Scoping(cutoff=date(2025, 7, 1)))
    result = ingest(exports, tmp_path / "raw.db", settings, roster=exports["roster"])
    assert [r[0] for r in query(result.out, 'SELECT "TKT-Ticket ID" FROM tickets ORDER BY 1')] == [3600001, 3600003]
    assert [r[0] for r in query(result.out, "SELECT comment_id FROM comments ORDER BY 1")] == [1, 2, 4]
    assert result.rows_imported["timesheets"] == 2  # timesheets are all kept
    assert query(result.out, "SELECT name, email, username FROM cloud_team_roster") == [("Alice A", "alice@example.org", "alice")]


def test_roster_usernames_from_settings(exports: dict[str, Path], tmp_path: Path) -> None:
    settings = Settings(scoping=Scoping(roster=("bob",)))
    result = ingest(exports, tmp_path / "raw.db", settings)
    assert query(result.out, 'SELECT "TKT-Ticket ID" FROM tickets') == [(3600002,)]
    assert query(result.out, "SELECT username FROM cloud_team_roster") == [("bob",)]


def test_roster_as_csv(exports: dict[str, Path], tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text("username,name\nbob,Bob B\n")
    result = ingest(exports, tmp_path / "raw.db", roster=roster)
    assert query(result.out, "SELECT name, email, username FROM cloud_team_roster") == [("Bob B", None, "bob")]
    assert result.rows_imported["tickets"] == 1


def test_roster_without_usernames_is_an_error(exports: dict[str, Path], tmp_path: Path) -> None:
    empty = write_workbook(tmp_path / "empty_roster.xlsx", ["name", "email", "username"], [["Alice", "a@x.org", None]])
    with pytest.raises(InputFileError, match="holds no username"):
        ingest(exports, tmp_path / "raw.db", roster=empty)
    assert not (tmp_path / "raw.db").exists()


def test_unwritable_out_folder(exports: dict[str, Path], tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(InputFileError, match="cannot write"):
            ingest(exports, folder / "raw.db")
    finally:
        folder.chmod(0o700)


# --- bad input through the CLI: one message, an exit code, nothing at --out -------------


def _cli(exports: dict[str, Path], out: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = main(
        ["ingest", "--tickets", str(exports["tickets"]), "--comments", str(exports["comments"]),
         "--timesheets", str(exports["timesheets"]), "--out", str(out), *extra]
    )
    captured = capsys.readouterr()
    return code, captured.err


def _corrupt(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _encrypt(path: Path) -> None:
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512 + "EncryptionInfo".encode("utf-16-le") + b"\x00" * 512)


def _empty_sheet(path: Path) -> None:
    write_workbook(path, [None], [])


BAD_INPUTS = {
    "missing file": (lambda p: p.unlink(), "does not exist"),
    "not an xlsx": (lambda p: p.write_text("a,b\n1,2\n"), "not an XLSX workbook"),
    "encrypted": (_encrypt, "encrypted"),
    "corrupt zip": (_corrupt, "corrupt"),
    "empty sheet": (_empty_sheet, "is empty"),
    "header row missing": (lambda p: write_workbook(p, timesheet(), [timesheet()]), "header row is missing"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_one_message_nonzero_exit_nothing_written(
    exports: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    spoil, words = BAD_INPUTS[case]
    spoil(exports["timesheets"])
    out = tmp_path / "raw.db"
    code, err = _cli(exports, out, capsys)
    assert code == InputFileError.exit_code
    # One error line (plus its remedy); log lines (the stage trace) may precede it.
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and words in errors[0] and "--timesheets" in errors[0]
    assert "\n  fix: " in err and "Traceback" not in err
    assert not out.exists()
    assert list(tmp_path.glob(".raw.db.tmp-*")) == []


@pytest.mark.parametrize("link", ["same path", "symlink", "hardlink"])
def test_out_equal_to_an_input_is_refused(
    exports: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], link: str
) -> None:
    target = exports["comments"]
    before = target.read_bytes()
    if link == "same path":
        out = target
    else:
        out = tmp_path / "raw.db"
        (os.symlink if link == "symlink" else os.link)(target, out)
    code, err = _cli(exports, out, capsys)
    assert code == InputFileError.exit_code
    assert "is the same file as --comments" in err and "Traceback" not in err
    assert target.read_bytes() == before


def test_cli_success_prints_a_summary(exports: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "raw.db"
    code = main(["ingest", "--tickets", str(exports["tickets"]), "--comments", str(exports["comments"]),
                 "--timesheets", str(exports["timesheets"]), "--out", str(out), "--cutoff", "2025-07-01",
                 "--roster", str(exports["roster"])])
    text = capsys.readouterr().out
    assert code == 0 and out.exists()
    assert "tickets" in text and "wrote" in text


def test_cli_rejects_a_bad_cutoff(exports: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["ingest", "--tickets", "t", "--comments", "c", "--timesheets", "s", "--out", str(tmp_path / "o.db"), "--cutoff", "1/07/2025"])
    assert info.value.code == 2


# --- atomic output -------------------------------------------------------------------


def test_failure_late_in_the_run_leaves_nothing_and_keeps_an_old_out(exports: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "raw.db"
    out.write_bytes(b"previous database")
    # The timesheets are read last; their sheet XML breaks after valid rows.
    good = write_workbook(tmp_path / "t.xlsx", TIMESHEETS, [timesheet() for _ in range(50)])
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(exports["timesheets"], "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("sheet1.xml"):
                data = data.replace(b"</row></sheetData>", b"</rw></sheetData>")
            dst.writestr(item, data)
    with pytest.raises(InputFileError, match="corrupt"):
        ingest(exports, out)
    assert out.read_bytes() == b"previous database"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "raw.db", "t.xlsx"]


def test_success_replaces_an_old_out(exports: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "raw.db"
    out.write_bytes(b"previous database")
    ingest(exports, out)
    assert query(out, "SELECT count(*) FROM tickets") == [(2,)]


def test_temp_file_of_a_killed_run_is_removed_live_ones_kept(exports: dict[str, Path], tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".raw.db.tmp-{dead.pid}"
    stale.write_bytes(b"half a database")
    live = tmp_path / f".raw.db.tmp-{os.getppid()}"
    live.write_bytes(b"another ingest still running")
    ingest(exports, tmp_path / "raw.db")
    assert not stale.exists()
    assert live.exists()


# --- on generated sample exports -------------------------------------------------------


def test_sample_exports_ingest_with_manifest_row_counts(raw_db: Path, manifest: dict) -> None:
    counts = {t: query(raw_db, f'SELECT count(*) FROM "{t}"')[0][0] for t in ("tickets", "comments", "timesheets")}
    # Ingest does not clean: duplicates and every other defect arrive as written.
    assert counts == manifest["rows"]
    meta = {r[0]: r[1:] for r in query(raw_db, "SELECT source_type, rows_read, rows_imported, notes FROM import_metadata")}
    for table, rows in manifest["rows"].items():
        assert meta[table][:2] == (rows, rows)
    trailing = manifest["facts"].get("empty_trailing_columns", 0)
    if trailing:
        assert f"{trailing} empty trailing column(s)" in meta["comments"][2]


def test_sample_defects_arrive_as_written(raw_db: Path, manifest: dict) -> None:
    """Empty strings, NUL bytes and CR/LF survive ingest in the exact injected counts."""
    checks = {
        "empty_string": "{c} = ''",
        "whitespace_string": "typeof({c}) = 'text' AND {c} <> '' AND trim({c}) = ''",
        "nul_byte": "instr({c}, char(0)) > 0",
    }
    seen = 0
    for defect in manifest["defects"]:
        where = checks.get(defect["kind"])
        if where is None:
            continue
        column = '"' + defect["column"] + '"'
        (count,) = query(raw_db, f'SELECT count(*) FROM "{defect["table"]}" WHERE {where.format(c=column)}')[0]
        assert count == defect["count"], defect
        seen += 1
    assert seen >= 5
    (crlf,) = query(raw_db, "SELECT count(*) FROM comments WHERE instr(comment_text, char(13)) > 0")[0]
    expected = sum(d["count"] for d in manifest["defects"] if d["kind"] == "crlf_mix")
    assert crlf == expected


# --- the timesheets worker ----------------------------------------------------------------


def _tables(db: Path) -> dict[str, list[tuple]]:
    """Every table's rows with each value's storage class (import time left out)."""
    conn = sqlite3.connect(db)
    try:
        out: dict[str, list[tuple]] = {"sqlite_master": conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY rowid").fetchall()}
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")') if r[1] != "imported_at"]
            picked = ", ".join(f'"{c}", typeof("{c}")' for c in columns)
            out[table] = conn.execute(f'SELECT rowid, {picked} FROM "{table}" ORDER BY rowid').fetchall()
        return out
    finally:
        conn.close()


@pytest.mark.parametrize("scoped", [False, True])
def test_worker_process_writes_what_one_process_writes(sample_dir: Path, tmp_path: Path, scoped: bool) -> None:
    settings = Settings().with_overrides(**{"scoping.cutoff": date(2025, 7, 1)}) if scoped else Settings()
    results = {}
    for workers in (1, 2):
        out = tmp_path / f"raw{workers}.db"
        run(IngestConfig(sample_dir / "tickets.xlsx", sample_dir / "comments.xlsx", sample_dir / "timesheets.xlsx", out, settings, workers=workers))
        results[workers] = _tables(out)
    assert results[1] == results[2]
    assert len(results[2]["timesheets"]) > 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw1.db", "raw2.db"]  # no worker file left


def test_first_bad_workbook_in_reading_order_is_reported(exports: dict[str, Path], tmp_path: Path) -> None:
    """Comments and timesheets both broken: comments are reported, as when one process reads all."""
    _corrupt(exports["comments"])
    _corrupt(exports["timesheets"])
    out = tmp_path / "raw.db"
    with pytest.raises(InputFileError, match="--comments"):
        ingest(exports, out)
    assert not out.exists()
    assert list(tmp_path.glob(".raw.db.tmp-*")) == []

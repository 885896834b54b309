"""The workbook reader: exact values, absent vs empty, date cells, bad files.

Workbooks here are written byte by byte (``write_xlsx``), so each test controls the
exact XML a cell is stored as; openpyxl would normalise some of these forms away.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import InputFileError
from pipeline.xlsx import column_index, column_letter, open_first_sheet

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    "</Types>"
)
ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)
WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId7" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId8" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>'
    '<Relationship Id="rId9" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>'
    "</Relationships>"
)
# Styles: 0 general, 1 built-in 14 (date), 2 built-in 22 (date time), 3 custom date-time,
# 4 custom time-only, 5 elapsed hours, 6 custom date-only with escapes, 7 two decimals.
STYLES = (
    f'<styleSheet xmlns="{MAIN}"><numFmts count="4">'
    '<numFmt numFmtId="164" formatCode="yyyy\\-mm\\-dd\\ hh:mm:ss"/>'
    '<numFmt numFmtId="165" formatCode="h:mm"/>'
    '<numFmt numFmtId="166" formatCode="[h]:mm:ss"/>'
    '<numFmt numFmtId="167" formatCode="dd/mm/yyyy;@"/>'
    "</numFmts><cellXfs>"
    '<xf numFmtId="0"/><xf numFmtId="14"/><xf numFmtId="22"/><xf numFmtId="164"/>'
    '<xf numFmtId="165"/><xf numFmtId="166"/><xf numFmtId="167"/><xf numFmtId="2"/>'
    "</cellXfs></styleSheet>"
)


def write_xlsx(
    path: Path,
    rows_xml: str,
    *,
    shared: list[str] | None = None,
    sheet_name: str = "Export",
    date1904: bool = False,
    prefix: str = "",
) -> Path:
    """A workbook whose sheetData is ``rows_xml`` verbatim (``<row>`` elements)."""
    pr = '<workbookPr date1904="1"/>' if date1904 else "<workbookPr/>"
    workbook = (
        f'<workbook xmlns="{MAIN}" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        f'{pr}<sheets><sheet name="{sheet_name}" sheetId="1" r:id="rId7"/></sheets></workbook>'
    )
    if prefix:
        p = prefix + ":"
        rows_xml = re.sub(r"<(/?)(row|c|v|is|t|r|f)\b", lambda m: f"<{m.group(1)}{p}{m.group(2)}", rows_xml)
        sheet = f'<{p}worksheet xmlns:{prefix}="{MAIN}"><{p}sheetData>{rows_xml}</{p}sheetData></{p}worksheet>'
    else:
        sheet = f'<worksheet xmlns="{MAIN}"><sheetData>{rows_xml}</sheetData></worksheet>'
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", CONTENT_TYPES)
        zf.writestr("_rels/.rels", ROOT_RELS)
        zf.writestr("xl/workbook.xml", workbook)
        zf.writestr("xl/_rels/workbook.xml.rels", WORKBOOK_RELS)
        zf.writestr("xl/styles.xml", STYLES)
        zf.writestr("xl/worksheets/sheet1.xml", sheet)
        if shared is not None:
            items = "".join(f"<si>{s}</si>" for s in shared)
            zf.writestr("xl/sharedStrings.xml", f'<sst xmlns="{MAIN}" count="{len(shared)}">{items}</sst>')
    return path


def read_all(path: Path, **kw) -> tuple[tuple, list[tuple]]:
    with open_first_sheet(path, "--tickets", **kw) as sheet:
        rows = [row for batch in sheet.batches(2) for row in batch]
        return sheet.header, rows


def xml_text(text: str) -> str:
    """Escape text the way a careful writer does (entities, CR, controls, ``_x`` literals)."""
    text = re.sub(r"_x[0-9A-Fa-f]{4}_", lambda m: "_x005F" + m.group(0), text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]", lambda m: f"_x{ord(m.group(0)):04X}_", text)


def inline(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{xml_text(text)}</t></is></c>'


HEADER = '<row r="1">' + inline("A1", "id") + inline("B1", "value") + "</row>"


def one_cell(tmp_path: Path, cell_xml: str, **kw) -> object:
    path = write_xlsx(tmp_path / "one.xlsx", HEADER + f'<row r="2"><c r="A2"><v>1</v></c>{cell_xml}</row>', **kw)
    _, rows = read_all(path)
    assert len(rows) == 1
    return rows[0][1]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ('<c r="B2" t="inlineStr"><is><t>text</t></is></c>', "text"),
        ('<c r="B2" t="inlineStr"><is><t></t></is></c>', ""),
        ('<c r="B2" t="inlineStr"/>', ""),  # openpyxl's way of writing ''
        ('<c r="B2" t="str"><f>""</f><v></v></c>', ""),  # a formula giving ''
        ('<c r="B2" t="str"><f>A1&amp;"x"</f><v>1x</v></c>', "1x"),
        ('<c r="B2" s="1"/>', None),  # a styled blank is absent
        ('<c r="B2"/>', None),
        ('<c r="B2"><v></v></c>', None),  # a number cell with no number
        ("", None),  # no cell at all
        ('<c r="B2"><v>3652948</v></c>', 3652948),
        ('<c r="B2" t="n"><v>3652948.0</v></c>', 3652948),
        ('<c r="B2"><v>7.5</v></c>', 7.5),
        ('<c r="B2" s="7"><v>0.1</v></c>', 0.1),  # a number format that is not a date
        ('<c r="B2"><v>1E+20</v></c>', 1e20),  # beyond bigint: stays a float
        ('<c r="B2"><v>-0.25</v></c>', -0.25),
        ('<c r="B2" t="b"><v>1</v></c>', 1),
        ('<c r="B2" t="b"><v>0</v></c>', 0),
        ('<c r="B2" t="e"><v>#N/A</v></c>', "#N/A"),
        ('<c r="B2" t="inlineStr"><is><t xml:space="preserve"> PendingAssignment</t></is></c>', " PendingAssignment"),
        ('<c r="B2" t="inlineStr"><is><t>a&#13;\nb\nc&#13;d</t></is></c>', "a\r\nb\nc\rd"),
        ('<c r="B2" t="inlineStr"><is><t>nul_x0000_byte</t></is></c>', "nul\x00byte"),
        ('<c r="B2" t="inlineStr"><is><t>cr_x000D_lf</t></is></c>', "cr\rlf"),
        ('<c r="B2" t="inlineStr"><is><t>literal _x005F_x0000_</t></is></c>', "literal _x0000_"),
        ('<c r="B2" t="inlineStr"><is><t>&lt;b&gt; &amp; &#233;</t></is></c>', "<b> & \u00e9"),
        ('<c r="B2" t="inlineStr"><is><r><t>rich </t></r><r><rPr/><t>text</t></r><rPh><t>PHON</t></rPh></is></c>', "rich text"),
        ('<c r="B2" t="inlineStr"><is><t>  </t></is></c>', "  "),
        ('<c r="B2" t="inlineStr"><is><t>2/07/2025 16:21</t></is></c>', "2/07/2025 16:21"),  # text dates stay text
        ('<c r="B2" t="inlineStr"><is><t>3652948.0</t></is></c>', "3652948.0"),  # text numbers stay text
    ],
)
def test_cell_values_are_faithful(tmp_path: Path, cell: str, expected: object) -> None:
    value = one_cell(tmp_path, cell)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ('<c r="B2" s="1"><v>45840</v></c>', "2025-07-02"),  # built-in date-only format, midnight
        ('<c r="B2" s="1"><v>45840.68125</v></c>', "2025-07-02 16:21:00"),  # date format, time kept
        ('<c r="B2" s="2"><v>45840</v></c>', "2025-07-02 00:00:00"),  # date-time format
        ('<c r="B2" s="3"><v>45840.354166666664</v></c>', "2025-07-02 08:30:00"),  # custom, rounded to the second
        ('<c r="B2" s="3"><v>45840.99999999</v></c>', "2025-07-03 00:00:00"),
        ('<c r="B2" s="6"><v>45840</v></c>', "2025-07-02"),  # dd/mm/yyyy;@ is a date format
        ('<c r="B2" s="4"><v>0.395833333333333</v></c>', "09:30:00"),  # time-only format
        ('<c r="B2" s="5"><v>1.5</v></c>', 1.5),  # elapsed [h]:mm:ss stays a number
        ('<c r="B2" t="d" s="2"><v>2025-07-02T16:21:00</v></c>', "2025-07-02 16:21:00"),
        ('<c r="B2" t="d" s="1"><v>2025-07-02T00:00:00</v></c>', "2025-07-02"),
        ('<c r="B2" t="d"><v>2025-07-02T16:21:00.6</v></c>', "2025-07-02 16:21:01"),
        ('<c r="B2"><v>45840</v></c>', 45840),  # a serial with no date style is just a number
    ],
)
def test_date_cells_become_iso_text(tmp_path: Path, cell: str, expected: object) -> None:
    value = one_cell(tmp_path, cell)
    assert value == expected
    assert type(value) is type(expected)


def test_1904_date_system(tmp_path: Path) -> None:
    # 2025-07-02 is serial 45840 in the 1900 system and 45840 - 1462 in the 1904 one.
    assert one_cell(tmp_path, '<c r="B2" s="2"><v>44378</v></c>', date1904=True) == "2025-07-02 00:00:00"


def test_shared_strings_absent_and_empty(tmp_path: Path) -> None:
    shared = ["<t>id</t>", "<t>value</t>", "<t/>", "<t>a_x000D_&#13;b</t>", "<r><t>ri</t></r><r><t>ch</t></r>", "<t xml:space='preserve'> x </t>"]
    rows = (
        '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>'
        '<row r="2"><c r="A2"><v>1</v></c><c r="B2" t="s"><v>2</v></c></row>'
        '<row r="3"><c r="A3"><v>2</v></c></row>'
        '<row r="4"><c r="A4"><v>3</v></c><c r="B4" t="s"><v>3</v></c></row>'
        '<row r="5"><c r="A5"><v>4</v></c><c r="B5" t="s"><v>4</v></c></row>'
        '<row r="6"><c r="A6"><v>5</v></c><c r="B6" t="s"><v>5</v></c></row>'
    )
    path = write_xlsx(tmp_path / "sst.xlsx", rows, shared=shared)
    expected = [(1, ""), (2, None), (3, "a\r\rb"), (4, "rich"), (5, " x ")]
    header, got = read_all(path)
    assert header == ("id", "value")
    assert got == expected
    # Spilling long shared strings to disk gives the same values.
    assert read_all(path, sst_memory_bytes=0)[1] == expected


def test_spilled_shared_strings_round_trip_long_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.xlsx as xlsx

    monkeypatch.setattr(xlsx, "SPILL_CHARS", 4)
    texts = [f"comment {i} " + "x" * i for i in range(50)]
    shared = ["<t>id</t>", "<t>text</t>"] + [f"<t>{t}</t>" for t in texts]
    rows = '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>' + "".join(
        f'<row r="{i + 2}"><c r="A{i + 2}"><v>{i}</v></c><c r="B{i + 2}" t="s"><v>{i + 2}</v></c></row>' for i in range(50)
    )
    path = write_xlsx(tmp_path / "long.xlsx", rows, shared=shared)
    assert read_all(path, sst_memory_bytes=0)[1] == [(i, t) for i, t in enumerate(texts)]


def test_trailing_empty_columns_dropped_and_counted(tmp_path: Path) -> None:
    rows = (
        '<row r="1">' + inline("A1", "id") + '<c r="C1" t="inlineStr"><is><t> </t></is></c>' + inline("D1", "name")
        + '<c r="E1" s="0"/><c r="F1" t="inlineStr"><is><t></t></is></c><c r="AB1" s="0"/></row>'
        '<row r="2"><c r="A2"><v>1</v></c>' + inline("D2", "x") + '<c r="AC2" s="1"/></row>'
        '<row r="3"><c r="A3"><v>2</v></c>' + inline("G3", "lost") + "</row>"
    )
    path = write_xlsx(tmp_path / "wide.xlsx", rows)
    with open_first_sheet(path, "--comments") as sheet:
        # B (absent) and C (blank) between named headers are kept under their letters.
        assert sheet.header == ("id", "(column B)", "(column C)", "name")
        got = [row for batch in sheet.batches() for row in batch]
        assert got == [(1, None, None, "x"), (2, None, None, None)]
        # The header row's cells reach AB (28 columns); later rows count by their values.
        assert sheet.dropped_columns == 28 - 4
        assert sheet.dropped_values == 1  # G3 held a value under no header


def test_header_is_first_row_with_a_value_and_blank_rows_skipped(tmp_path: Path) -> None:
    rows = (
        '<row r="1"><c r="A1" s="1"/></row><row r="2"></row>'
        + '<row r="3">' + inline("A3", "  id  ") + inline("B3", "value") + "</row>"
        + '<row r="4"><c r="A4" s="1"/></row>'
        + '<row r="5"><c r="A5"><v>5</v></c></row>'
        + '<row r="6"><c r="B6" t="inlineStr"/></row>'
    )
    path = write_xlsx(tmp_path / "gaps.xlsx", rows)
    with open_first_sheet(path) as sheet:
        assert sheet.header == ("  id  ", "value")  # trimming is the mapper's business
        assert sheet.header_row_number == 3
        got = [row for batch in sheet.batches() for row in batch]
        assert got == [(5, None), (None, "")]
        assert sheet.blank_rows == 1
        assert sheet.rows_read == 2


def test_cells_without_references_and_prefixed_namespace(tmp_path: Path) -> None:
    rows = '<row><c t="inlineStr"><is><t>id</t></is></c><c t="inlineStr"><is><t>value</t></is></c></row><row><c><v>1</v></c><c s="1"/><c><v>2</v></c></row>'
    path = write_xlsx(tmp_path / "noref.xlsx", rows.replace("value</t></is></c></row>", "value</t></is></c><c t='inlineStr'><is><t>third</t></is></c></row>"), prefix="x")
    header, got = read_all(path)
    assert header == ("id", "value", "third")
    assert got == [(1, None, 2)]


@pytest.mark.parametrize("prefix", ["", "x"])
@pytest.mark.parametrize("chunk", [7, 37, 64, 1 << 18])
def test_blank_cells_cut_before_parsing_change_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, prefix: str
) -> None:
    """Styled blanks are cut from the bytes after the header; any chunk size reads the same."""
    import pipeline.xlsx as xlsx

    monkeypatch.setattr(xlsx, "CHUNK_BYTES", chunk)
    header = '<row r="1">' + inline("A1", "a") + inline("B1", "b") + inline("C1", "c") + '<c r="D1" s="0"/><c r="E1" s="1" /></row>'
    rows = [header]
    expected = []
    for r in range(2, 60):
        rows.append(
            f'<row r="{r}"><c r="A{r}" s="1"/><c r="B{r}"><v>{r}</v></c><c r="C{r}" s="0"/>'
            f'<c r="D{r}" t="inlineStr"/><c r="E{r}"/><c r="XFD{r}" s="3"/></row>'
        )
        expected.append((None, r, None))
    path = write_xlsx(tmp_path / "blanks.xlsx", "".join(rows), prefix=prefix)
    with open_first_sheet(path) as sheet:
        got = [row for batch in sheet.batches() for row in batch]
        assert sheet.header == ("a", "b", "c")
        assert got == expected
        assert sheet.dropped_columns == 2  # D1 and E1 in the header row
        assert sheet.dropped_values == 58  # the '' in column D of every row


def test_batches_bound_the_rows_held(tmp_path: Path) -> None:
    rows = HEADER + "".join(f'<row r="{i}"><c r="A{i}"><v>{i}</v></c></row>' for i in range(2, 25))
    path = write_xlsx(tmp_path / "many.xlsx", rows)
    with open_first_sheet(path) as sheet:
        sizes = [len(b) for b in sheet.batches(5)]
    assert sizes == [5, 5, 5, 5, 3]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(st.characters(exclude_categories=("Cs",))), min_size=1, max_size=5))
def test_any_text_round_trips(tmp_path_factory: pytest.TempPathFactory, texts: list[str]) -> None:
    folder = tmp_path_factory.mktemp("prop")
    rows = HEADER + "".join(
        f'<row r="{i + 2}"><c r="A{i + 2}"><v>{i}</v></c>{inline(f"B{i + 2}", t)}</row>' for i, t in enumerate(texts)
    )
    _, got = read_all(write_xlsx(folder / "p.xlsx", rows))
    assert [r[1] for r in got] == texts


@pytest.mark.parametrize(("index", "letters"), [(0, "A"), (25, "Z"), (26, "AA"), (701, "ZZ"), (702, "AAA"), (16383, "XFD")])
def test_column_letters(index: int, letters: str) -> None:
    assert column_letter(index) == letters
    assert column_index(f"{letters}17") == index


# --- bad files: one clear error each --------------------------------------------------


def _error(path: Path) -> str:
    with pytest.raises(InputFileError) as info:
        read_all(path)
    return str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    assert "does not exist" in _error(tmp_path / "nope.xlsx")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.xlsx").write_bytes(b"")
    assert "empty (0 bytes)" in _error(tmp_path / "e.xlsx")


def test_csv_is_not_xlsx(tmp_path: Path) -> None:
    (tmp_path / "t.xlsx").write_text("TKT-Ticket ID,TKT-Title\n1,x\n")
    message = _error(tmp_path / "t.xlsx")
    assert "not an XLSX workbook" in message and "CSV" in message


def test_encrypted_workbook(tmp_path: Path) -> None:
    # An encrypted OOXML file is an OLE2 compound file holding an EncryptionInfo stream.
    body = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 1000 + "EncryptionInfo".encode("utf-16-le") + b"\x00" * 100
    (tmp_path / "locked.xlsx").write_bytes(body)
    message = _error(tmp_path / "locked.xlsx")
    assert "encrypted" in message and "password" in message


def test_legacy_xls(tmp_path: Path) -> None:
    (tmp_path / "old.xlsx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 2000 + "Workbook".encode("utf-16-le"))
    assert "legacy .xls" in _error(tmp_path / "old.xlsx")


def test_truncated_workbook_is_corrupt(tmp_path: Path) -> None:
    rows = HEADER + "".join(f'<row r="{i}"><c r="A{i}"><v>{i}</v></c>{inline(f"B{i}", "x" * 50 + str(i))}</row>' for i in range(2, 400))
    good = write_xlsx(tmp_path / "good.xlsx", rows).read_bytes()
    (tmp_path / "cut.xlsx").write_bytes(good[: len(good) // 2])
    assert "corrupt" in _error(tmp_path / "cut.xlsx")


def test_damaged_sheet_data_is_corrupt(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "bad.xlsx", HEADER + '<row r="2"><c r="A2"><v>1</v></row>')
    assert "corrupt" in _error(path)


def test_zip_that_is_not_a_workbook(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "doc.xlsx", "w") as zf:
        zf.writestr("word/document.xml", "<w/>")
    assert "no xl/workbook.xml" in _error(tmp_path / "doc.xlsx")


def test_empty_sheet(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "blank.xlsx", '<row r="1"><c r="A1" s="1"/></row>')
    message = _error(path)
    assert "empty" in message and "'Export'" in message


# --- differential: the same workbooks through openpyxl ----------------------------------


def _as_openpyxl_sees_it(value: object) -> object:
    """Our value in openpyxl's terms: openpyxl leaves ``_xHHHH_`` escapes undecoded."""
    if isinstance(value, str):
        return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", lambda m: f"_x{ord(m.group(0)):04X}_", value)
    return value


def _from_openpyxl(value: object) -> object:
    from datetime import datetime

    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@pytest.mark.parametrize("workbook", ["tickets", "comments", "timesheets"])
def test_generated_sample_reads_as_openpyxl_reads_it(sample_dir: Path, workbook: str) -> None:
    """Every cell of the generated exports equals openpyxl's reading of it.

    openpyxl is the slow reference: it is exact about absent cells and ``''`` for the
    inline strings the generator writes, so any disagreement is a bug of ours.
    """
    import openpyxl

    path = sample_dir / f"{workbook}.xlsx"
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        theirs = book.worksheets[0].iter_rows(values_only=True)
        header = next(theirs)
        with open_first_sheet(path) as sheet:
            width = sheet.width
            assert sheet.header == tuple(header[:width])
            assert all(h is None for h in header[width:])
            compared = 0
            for batch in sheet.batches(500):
                for ours in batch:
                    expected = tuple(_from_openpyxl(v) for v in next(theirs)[:width])
                    expected += (None,) * (width - len(expected))
                    assert tuple(_as_openpyxl_sees_it(v) for v in ours) == expected
                    compared += 1
        assert next(theirs, None) is None
        assert compared > 100
    finally:
        book.close()


# --- the row scanner reads what expat reads -----------------------------------------------


def _read_both(path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int = 1 << 18) -> tuple[object, object]:
    import pipeline.xlsx as xlsx

    monkeypatch.setattr(xlsx, "CHUNK_BYTES", chunk)
    got = []
    for fast in (True, False):
        monkeypatch.setattr(xlsx, "FAST_ROWS", fast)
        with open_first_sheet(path) as sheet:
            rows = [row for batch in sheet.batches(7) for row in batch]
            got.append((sheet.header, rows, sheet.dropped_columns, sheet.dropped_values, sheet.blank_rows, sheet.header_row_number))
    return got[0], got[1]


ODD_ROWS = [
    '<row r="2"><c r="A2"><v>1</v></c>' + inline("B2", "plain") + "</row>",
    '<row r="3" spans="1:2" ht="15"><c r="A3"><v>2</v></c><c r="B3" t="inlineStr"><is><t>a&amp;lt;b &#233;&#x1F600; q&quot;&apos;</t></is></c></row>',
    '<row><c r="A4"><v>3</v></c><c r="B4" t="inlineStr"><is><t>cr\r\nlf\rx</t></is></c></row>',  # no r: counts on
    '<row r="6"><c r="A6"><v>4</v></c><c r="B6" t="str"><f>A1</f><v>formula</v></c></row>',  # expat reads it
    '<row><c r="A7"><v>5</v></c>' + inline("B7", "after an expat row") + "</row>",
    '<row r="8">\n  <c r="A8"><v>6</v></c>\n</row>',  # whitespace between tags
    '<row r="9"><c r="B9" t="inlineStr"><is><t xml:space="preserve"/></is></c><c r="A9"><v>7</v></c></row>',  # out of order
    '<row r="10"><c r="A10" s="1"><v>45840.5</v></c><c r="B10" t="inlineStr"><is><r><t>ri</t></r><r><t>ch</t></r></is></c></row>',
    '<row r="11"><c r="A11"><v>8</v></c><c r="B11" t="inlineStr"></c></row>',
    '<row r="12"/>',
    '<row r="13"><c r="A13" t="e"><v>#N/A</v></c><c r="B13" t="b"><v>1</v></c></row>',
    '<row r="14"><c r="A14"><v>1E+20</v></c><c r="B14" t="inlineStr"><is><t>_x0000_ and _x005F_x0000_</t></is></c></row>',
    '<row r="15"><c r="A15" t="n"><v>3652948.0</v></c><c r="B15" t="s"></c></row>',
    "<row r=\"16\"><c r='A16'><v>9</v></c></row>",
    '<!-- <row r="90"><c r="A90"><v>99</v></c></row><row r="91"><c r="A91"><v>98</v></c></row> --><row r="17"><c r="A17"><v>10</v></c><c r="B17" t="inlineStr"><is><t><![CDATA[<raw>]]></t></is></c></row>',
]


@pytest.mark.parametrize("prefix", ["", "x"])
@pytest.mark.parametrize("chunk", [64, 300, 1 << 18])
def test_row_scanner_reads_as_expat_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, prefix: str) -> None:
    """Plain rows are read by regular expressions, the odd ones by expat: same values either way."""
    path = write_xlsx(tmp_path / "odd.xlsx", HEADER + "".join(ODD_ROWS) * 3, prefix=prefix)
    fast, slow = _read_both(path, monkeypatch, chunk)
    assert fast == slow
    assert len(fast[1]) == 3 * (len(ODD_ROWS) - 1)  # the empty row 12 is a blank row, skipped


@pytest.mark.parametrize(
    "bad_row",
    [
        '<row r="2"><c r="A2" t="inlineStr"><is><t>a &bogus; b</t></is></c></row>',
        '<row r="2"><c r="A2" t="inlineStr"><is><t>a & b</t></is></c></row>',
        '<row r="2"><c r="A2" t="inlineStr"><is><t>nul &#0; ref</t></is></c></row>',
        '<row r="2"><c r="A2" t="inlineStr"><is><t>raw \x01 control</t></is></c></row>',
        '<row r="2" r="3"><c r="A2"><v>1</v></c></row>',
        '<row r="2"><c r="A2"><v>1</v></c></row></row>',
    ],
)
def test_row_scanner_leaves_malformed_rows_to_expat(tmp_path: Path, bad_row: str) -> None:
    path = write_xlsx(tmp_path / "bad.xlsx", HEADER + bad_row)
    assert "corrupt" in _error(path)


@pytest.mark.parametrize("workbook", ["tickets", "comments", "timesheets"])
def test_row_scanner_reads_the_generated_sample_as_expat_reads_it(sample_dir: Path, workbook: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast, slow = _read_both(sample_dir / f"{workbook}.xlsx", monkeypatch, chunk=4096)
    assert fast == slow

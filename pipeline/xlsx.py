"""Stream the first sheet of an XLSX workbook, faithfully and in bounded memory.

``open_first_sheet(path)`` returns a ``SheetStream``: the header row, then the data rows
in batches of value tuples. Values are what the workbook holds:

- text stays text, byte for byte after XML decoding: leading spaces, tabs, ``_xHHHH_``
  escapes (Excel's way of storing control characters: ``_x0000_`` is NUL, ``_x000D_``
  is CR) are decoded to the characters they stand for. A raw CR in the XML is read as
  LF, as XML 1.0 demands of every reader (so a writer must escape CR to keep it);
- a number stays a number: an integral value becomes ``int``, any other ``float``
  (XLSX stores every number as a double; ``3652948`` and ``3652948.0`` are the same
  cell, so the distinction cannot be kept);
- a number in a cell with a date format (built-in or custom, ``yyyy``/``d``/``h``...) is
  a date cell and becomes ISO text: ``YYYY-MM-DD HH:MM:SS``; a date-only format
  (no hour/minute/second tokens) holding a whole day becomes ``YYYY-MM-DD``; a
  time-only format below one day becomes ``HH:MM:SS``. Seconds are rounded, as Excel
  stores times as binary fractions of a day. Elapsed-time formats (``[h]:mm``) stay
  numbers. ISO date cells (``t="d"``) are rewritten the same way. The 1904 date
  system is honoured;
- a boolean cell becomes the integer ``1`` or ``0`` (SQLite's own convention);
- an error cell becomes its text (``#N/A``, ``#DIV/0!``), as the sheet shows it;
- an ABSENT cell (no ``<c>`` element, or one with no value and no string type, e.g.
  a styled blank) is ``None``; a string cell holding nothing (``<c t="inlineStr"/>``,
  a shared string ``""``, a formula result ``""``) is ``''``. Readers built on a value
  grid (python-calamine, fastexcel) report both as ``''``; openpyxl reports both as
  ``None``: this is why we parse the sheet XML ourselves.

Columns: the header row is the first row holding any value. Columns after the last
non-blank header cell are dropped (exports carry thousands of empty trailing columns)
and counted (``SheetStream.dropped_columns``: the header row's cells, blank or not,
and any later cell holding a value), with the number of values they held
(``dropped_values``). A blank header cell between named ones is kept, named after its
column letter (``"(column K)"``). A row with no value at all is skipped and counted.

Reader chosen by measurement, on the generated sample exports (``pipeline.sample``,
seed 7) at 2,000 and 10,000 tickets: one process per reader and workbook, CPU seconds
(the machine was shared, so wall time was noisy) and peak RSS of the whole process,
every row of the first sheet pulled into Python:

==========================  ================  =================  ==================
2,000 tickets (47K rows)    tickets 2K x 60   comments 19K x 10  timesheets 26K x 21
                            (0.9 MB / 5 MB    (3.8 MB / 50 MB    (4.3 MB / 31 MB
                            xlsx / XML)       xlsx / XML)        xlsx / XML)
==========================  ================  =================  ==================
openpyxl 3.1 read-only      1.07 s,  37 MB    2.22 s,  38 MB     6.17 s,  39 MB
python-calamine 0.9         0.08 s,  22 MB    0.35 s,  67 MB     0.47 s,  64 MB
expat (this module)         0.43 s,  46 MB    1.04 s, 117 MB     1.68 s,  70 MB
==========================  ================  =================  ==================

==========================  ================  =================  ==================
10,000 tickets (237K rows)  tickets 10K x 60  comments 98K x 10  timesheets 129K x 21
                            (4.3 / 27 MB)     (19.6 / 255 MB)    (21.8 / 156 MB)
==========================  ================  =================  ==================
openpyxl 3.1 read-only      4.38 s,  38 MB    10.03 s,  45 MB    28.36 s,  48 MB
python-calamine 0.9         0.42 s,  61 MB     1.75 s, 293 MB     2.85 s, 272 MB
expat (this module)         1.44 s,  75 MB     4.51 s, 124 MB     7.33 s,  71 MB
==========================  ================  =================  ==================

Whole ``ingest`` (three workbooks into SQLite, interpreter start and imports
included): 4.0 s CPU and 210 MB peak at 2,000 tickets; 15.6 s CPU and 213 MB at
10,000 tickets (88 MB of it is the imports: pandas and pandera through the
contracts), i.e. 0.36x the time of a bare openpyxl read-only pass (42.8 s).

At a million rows (``generate(tickets=77_600, comment_chars=40)``: 1,001,679 timesheet
rows in 1.2 GB of sheet XML, 784,029 comments, 77,755 tickets) ingest peaked at 176 MB
RSS (107 s CPU, 367 s wall on the shared machine; a 525 MB database), while
python-calamine alone peaked at 2,029 MB reading the 1M-row timesheet workbook.

Styled blank cells (``<c r="K2" s="0"/>``: exports may carry thousands per row) are cut
out of the XML bytes by a regular expression before expat sees them: a sheet of 3,000
rows x (10 values + 1,000 trailing blank cells) reads in 0.5 s CPU instead of 3.5 s.

Since then, rows in the plain form exports write are read by ``_RowScanner`` (one
regular expression per run of rows, one Python step per cell) instead of expat's
three to five handler calls per cell; expat still reads everything else, in document
order (see ``_RowScanner``). On the 260K-row sample (10,900 tickets) the three sheets
read in 9.6 s CPU instead of 12.7 s; ``FAST_ROWS = False`` reads with expat alone, and
the tests compare both readings.

Also tried on 50,000 x 21 and 20,000 x 10 openpyxl-written sheets: fastexcel 0.21
(0.9 s, 166 MB and 0.5 s, 223 MB) builds typed Arrow columns, so a column mixing
text and date cells is coerced and ``''`` is read as null; an ElementTree pull parser
(3.2 s, 15 MB) and a regular-expression scanner (1.6 s, 21 MB, but slower on long
text and fragile) lost to expat (2.4 s, 13 MB).

The choice: python-calamine is about 2.6x faster, but it loads the whole sheet into
memory (about 2.1 KB per timesheet row and 3 KB per comment row: a 1M-row workbook
needs 2-3 GB) and returns ``''`` for an absent cell, so the NULL/``''`` distinction the
profiler depends on would be lost. openpyxl read-only is flat in memory but 3-4x
slower than this module and reads ``''`` as ``None``. The expat parser here is exact
and flat in memory (one 256 KB chunk of XML and one batch of rows: peak memory does
not grow with the workbook), so it is the reader. openpyxl stays where it is the right
tool: its number-format classification (``is_datetime``) decides which cells are dates.

Shared strings must be held for random access. When the shared-string part is larger
than ``sst_memory_bytes`` (64 MB uncompressed by default), strings longer than
``SPILL_CHARS`` go to a temporary SQLite file and are read back by index, so a
workbook of a million long comments stays bounded too.
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import sqlite3
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterator
from xml.etree import ElementTree as ET
from xml.parsers import expat

from pipeline.errors import InputFileError

OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = b"PK\x03\x04"
SQLITE_MAGIC = b"SQLite format 3\x00"
_ENCRYPTION_INFO = "EncryptionInfo".encode("utf-16-le")

MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"

SPILL_CHARS = 256
DEFAULT_SST_MEMORY_BYTES = 64 * 1024 * 1024
CHUNK_BYTES = 1 << 18
# Rows are read by _RowScanner where they are plain (see there); False: expat reads all.
FAST_ROWS = True
# A sheet with no row end in this many bytes is read by expat alone.
SCAN_LIMIT_BYTES = 64 << 20

_EXCEL_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_ROOT_PREFIX = re.compile(rb"<(?:([A-Za-z_][\w.-]*):)?worksheet[\s>]")
_DIMENSION = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?dimension\s+ref=\"\$?[A-Z]+\$?\d+:\$?[A-Z]+\$?(\d+)\"")

# Kinds of number format.
_PLAIN, _DATE, _DATETIME, _TIME = 0, 1, 2, 3


def _unescape_excel(text: str) -> str:
    """Decode Excel's ``_xHHHH_`` escapes (``_x005F_`` is a literal underscore)."""
    if "_x" not in text:
        return text
    return _EXCEL_ESCAPE.sub(_escaped_char, text)


def _escaped_char(match: re.Match[str]) -> str:
    code = int(match.group(1), 16)
    # A lone surrogate cannot be stored as UTF-8 text: U+FFFD marks where it was.
    return "\ufffd" if 0xD800 <= code <= 0xDFFF else chr(code)


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


_COLUMN_CACHE: dict[str, int] = {}


def column_index(ref: str) -> int:
    """The 0-based column of a cell reference (``"AB12"`` -> 27)."""
    letters = ref.rstrip("0123456789$").lstrip("$")
    try:
        return _COLUMN_CACHE[letters]
    except KeyError:
        pass
    value = 0
    for ch in letters.upper():
        value = value * 26 + ord(ch) - 64
    if len(_COLUMN_CACHE) < 20_000:
        _COLUMN_CACHE[letters] = value - 1
    return value - 1


# --- the package: validation, parts, styles, shared strings ---------------------------


def check_workbook_file(path: Path, what: str) -> None:
    """Fail with a remedy unless ``path`` looks like an XLSX workbook (zip container)."""
    if not path.exists():
        raise InputFileError(f"{what} {path} does not exist", f"give the path of the {what.lstrip('-')} export (.xlsx)")
    if path.is_dir():
        raise InputFileError(f"{what} {path} is a folder, not a workbook", "give the path of the .xlsx file itself")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if head == OLE2_MAGIC:
                encrypted = _looks_encrypted(fh)
    except OSError as exc:
        raise InputFileError(f"{what} {path} cannot be read: {exc.strerror}", "check the file's permissions") from None
    if not head:
        raise InputFileError(f"{what} {path} is empty (0 bytes)", "export the workbook again; the file was not written completely")
    if head == OLE2_MAGIC:
        if encrypted:
            raise InputFileError(
                f"{what} {path} is an encrypted (password-protected) workbook",
                "open it in Excel, remove the password (File > Info > Protect Workbook) and save it as .xlsx",
            )
        raise InputFileError(
            f"{what} {path} is a legacy .xls (OLE2) file, not an XLSX workbook",
            "open it in Excel and save it as Excel Workbook (.xlsx), without a password",
        )
    if head.startswith(SQLITE_MAGIC[:8]):
        raise InputFileError(f"{what} {path} is a SQLite database, not an XLSX workbook", "give the exported .xlsx file")
    if not head.startswith(ZIP_MAGIC) and not head.startswith(b"PK\x05\x06"):
        hint = " (it looks like text: CSV is not supported)" if _looks_like_text(head) else ""
        raise InputFileError(
            f"{what} {path} is not an XLSX workbook{hint}",
            "export the data from ServiceDesk as XLSX and give that file",
        )


def _looks_encrypted(fh: io.BufferedReader, limit: int = 8 << 20) -> bool:
    # An encrypted OOXML package is an OLE2 file with an "EncryptionInfo" stream; a
    # legacy .xls has none. The directory entry names are UTF-16 in the first MBs.
    fh.seek(0)
    tail = b""
    read = 0
    while read < limit and (block := fh.read(1 << 20)):
        read += len(block)
        if _ENCRYPTION_INFO in tail + block:
            return True
        tail = block[-len(_ENCRYPTION_INFO):]
    return False


def _looks_like_text(head: bytes) -> bool:
    return all(32 <= b < 127 or b in (9, 10, 13) for b in head)


def _corrupt(path: Path, what: str, detail: str) -> InputFileError:
    return InputFileError(
        f"{what} {path} is a corrupt workbook ({detail})",
        "export the workbook again, or open and re-save it in Excel; the file may have been truncated in transfer",
    )


class _SharedStrings:
    """The shared-string table; long strings spill to SQLite when the table is big."""

    def __init__(self) -> None:
        self.items: list[str | None] = []
        self._spill: sqlite3.Connection | None = None
        self._spill_dir: tempfile.TemporaryDirectory | None = None
        self._pending: list[tuple[int, str]] = []

    def load(self, stream: io.BufferedIOBase, spill: bool) -> None:
        if spill:
            self._spill_dir = tempfile.TemporaryDirectory(prefix="servicedesk-sst-")
            self._spill = sqlite3.connect(os.path.join(self._spill_dir.name, "sst.db"))
            self._spill.execute("PRAGMA journal_mode = OFF")
            self._spill.execute("PRAGMA synchronous = OFF")
            self._spill.execute("CREATE TABLE sst (i INTEGER PRIMARY KEY, s TEXT)")
        parser = expat.ParserCreate()
        parser.buffer_text = True
        parts: list[str] = []
        state = {"in_t": False, "in_rph": False}

        def start(name: str, attrs: dict) -> None:
            local = name.rpartition(":")[2]
            if local == "t" and not state["in_rph"]:
                state["in_t"] = True
            elif local == "si":
                parts.clear()
            elif local == "rPh":
                state["in_rph"] = True

        def end(name: str) -> None:
            local = name.rpartition(":")[2]
            if local == "t":
                state["in_t"] = False
            elif local == "rPh":
                state["in_rph"] = False
            elif local == "si":
                self._add(_unescape_excel("".join(parts)))

        def chars(data: str) -> None:
            if state["in_t"]:
                parts.append(data)

        parser.StartElementHandler = start
        parser.EndElementHandler = end
        parser.CharacterDataHandler = chars
        while block := stream.read(CHUNK_BYTES):
            parser.Parse(block, False)
        parser.Parse(b"", True)
        self._flush()

    def _add(self, text: str) -> None:
        if self._spill is not None and len(text) > SPILL_CHARS:
            self._pending.append((len(self.items), text))
            self.items.append(None)
            if len(self._pending) >= 2_000:
                self._flush()
        else:
            self.items.append(text)

    def _flush(self) -> None:
        if self._spill is not None and self._pending:
            self._spill.executemany("INSERT INTO sst VALUES (?, ?)", self._pending)
            self._pending.clear()

    def __getitem__(self, index: int) -> str:
        text = self.items[index]
        if text is None:
            assert self._spill is not None
            return self._spill.execute("SELECT s FROM sst WHERE i = ?", (index,)).fetchone()[0]
        return text

    def __len__(self) -> int:
        return len(self.items)

    def close(self) -> None:
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        if self._spill_dir is not None:
            self._spill_dir.cleanup()
            self._spill_dir = None


def _format_kind(code: str | None) -> int:
    from openpyxl.styles.numbers import is_datetime, is_timedelta_format

    if not code or is_timedelta_format(code):
        return _PLAIN
    found = is_datetime(code)
    return {"date": _DATE, "datetime": _DATETIME, "time": _TIME}.get(found or "", _PLAIN)


def _style_kinds(root: ET.Element | None) -> list[int]:
    """Number-format kind of every cell style (``s`` attribute index)."""
    from openpyxl.styles.numbers import BUILTIN_FORMATS

    if root is None:
        return []
    custom = {}
    for fmt in root.iter(f"{{{MAIN_NS}}}numFmt"):
        try:
            custom[int(fmt.get("numFmtId", "-1"))] = fmt.get("formatCode")
        except ValueError:
            continue
    kinds = []
    xfs = root.find(f"{{{MAIN_NS}}}cellXfs")
    for xf in xfs if xfs is not None else ():
        try:
            fmt_id = int(xf.get("numFmtId", "0"))
        except ValueError:
            fmt_id = 0
        code = custom.get(fmt_id, BUILTIN_FORMATS.get(fmt_id))
        if code is None and (27 <= fmt_id <= 36 or 50 <= fmt_id <= 58):
            kinds.append(_DATE)  # East Asian built-in date formats with no fixed code
        else:
            kinds.append(_format_kind(code))
    return kinds


def _serial_to_iso(serial: float, kind: int, epoch: datetime) -> Any:
    if serial < 0 or serial > 2_958_465:  # beyond 9999-12-31: not a date, keep the number
        return int(serial) if serial.is_integer() else serial
    if kind == _TIME and serial < 1:
        seconds = round(serial * 86400)
        if seconds >= 86400:
            seconds = 86399
        return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    if epoch.year == 1899 and serial < 61:
        # Excel's 1900 system counts a 29 February 1900 that never was.
        epoch = datetime(1899, 12, 31)
    moment = epoch + timedelta(seconds=round(serial * 86400))
    if kind == _DATE and moment.hour == moment.minute == moment.second == 0:
        return moment.strftime("%Y-%m-%d")
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _iso_cell(text: str, kind: int) -> str:
    try:
        moment = datetime.fromisoformat(text.strip().rstrip("Z"))
    except ValueError:
        return text
    if moment.microsecond:
        moment = (moment + timedelta(microseconds=500_000)).replace(microsecond=0)
    if kind == _TIME and moment.date() in (datetime(1899, 12, 30).date(), datetime(1899, 12, 31).date()):
        return moment.strftime("%H:%M:%S")
    if kind == _DATE and moment.hour == moment.minute == moment.second == 0:
        return moment.strftime("%Y-%m-%d")
    return moment.strftime("%Y-%m-%d %H:%M:%S")


# --- the sheet ---------------------------------------------------------------------


@dataclass
class SheetStream:
    """The first sheet of one workbook, read once, row batch by row batch.

    ``header`` holds the header cells as found (``None`` for absent, text otherwise;
    a numeric header cell is kept as its value); the trailing blank ones are gone.
    Counters fill as the batches are read.
    """

    path: Path
    sheet_name: str
    header: tuple[Any, ...]
    header_row_number: int
    dropped_columns: int = 0
    dropped_values: int = 0
    rows_read: int = 0
    blank_rows: int = 0
    last_row: int | None = None  # from the sheet's <dimension>, when it declares one
    _book: "_Workbook | None" = None
    _rows: Iterator[tuple[int, list[Any], int]] | None = None

    @property
    def width(self) -> int:
        return len(self.header)

    def batches(self, batch_rows: int = 10_000) -> Iterator[list[tuple[Any, ...]]]:
        """Data rows as tuples of ``width`` values, ``batch_rows`` at a time."""
        assert self._rows is not None, "batches() can be read once"
        rows, self._rows = self._rows, None
        width = self.width
        batch: list[tuple[Any, ...]] = []
        pad = (None,) * width
        for _number, values, _extent in rows:
            # Past the header, a column counts as dropped only when a value lies in it.
            if len(values) > width:
                self.dropped_columns = max(self.dropped_columns, len(values) - width)
                self.dropped_values += sum(1 for v in values[width:] if v is not None)
                del values[width:]
            if values.count(None) == len(values):  # in C: values are None, str, int, float
                self.blank_rows += 1
                continue
            if len(values) < width:
                values.extend(pad[len(values):])
            batch.append(tuple(values))
            self.rows_read += 1
            if len(batch) >= batch_rows:
                yield batch
                batch = []
        if batch:
            yield batch

    def close(self) -> None:
        if self._book is not None:
            self._book.close()
            self._book = None

    def __enter__(self) -> "SheetStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Workbook:
    def __init__(self, path: Path, what: str, sst_memory_bytes: int) -> None:
        self.path = path
        self.what = what
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
            raise _corrupt(path, what, f"not a readable zip archive: {exc}") from None
        names = set(self.zip.namelist())
        if "xl/workbook.xml" not in names:
            kind = "an OpenDocument spreadsheet" if "content.xml" in names else "a zip archive"
            raise InputFileError(
                f"{what} {path} is {kind}, not an XLSX workbook (no xl/workbook.xml)",
                "export the data from ServiceDesk as XLSX and give that file",
            )
        workbook = self._xml("xl/workbook.xml")
        pr = workbook.find(f"{{{MAIN_NS}}}workbookPr")
        date1904 = pr is not None and pr.get("date1904", "0").lower() in ("1", "true")
        self.epoch = datetime(1904, 1, 1) if date1904 else datetime(1899, 12, 30)
        sheets = workbook.find(f"{{{MAIN_NS}}}sheets")
        first = sheets[0] if sheets is not None and len(sheets) else None
        if first is None:
            raise _corrupt(path, what, "the workbook lists no sheet")
        self.sheet_name = first.get("name", "")
        rel_id = first.get(f"{{{REL_NS}}}id")
        self.sheet_part = self._resolve(rel_id)
        if self.sheet_part not in names:
            raise _corrupt(path, what, f"sheet part {self.sheet_part} is missing")
        if "/worksheets/" not in self.sheet_part:
            raise InputFileError(
                f"{what} {path}: the first sheet {self.sheet_name!r} is not a worksheet (a chart or macro sheet)",
                "move the data sheet to the first position and save again",
            )
        self.style_kinds = _style_kinds(self._xml("xl/styles.xml") if "xl/styles.xml" in names else None)
        self.strings = _SharedStrings()
        sst_part = self._find_part(names, "sharedStrings")
        if sst_part:
            info = self.zip.getinfo(sst_part)
            try:
                with self.zip.open(sst_part) as fh:
                    self.strings.load(fh, spill=info.file_size > sst_memory_bytes)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
                raise _corrupt(path, what, f"shared strings unreadable: {exc}") from None
            except expat.ExpatError as exc:
                raise _corrupt(path, what, f"shared strings are not well-formed XML: {exc}") from None

    def _xml(self, part: str) -> ET.Element:
        try:
            return ET.fromstring(self.zip.read(part))
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise _corrupt(self.path, self.what, f"{part} unreadable: {exc}") from None
        except ET.ParseError as exc:
            raise _corrupt(self.path, self.what, f"{part} is not well-formed XML: {exc}") from None

    def _resolve(self, rel_id: str | None) -> str:
        rels = self._xml("xl/_rels/workbook.xml.rels") if "xl/_rels/workbook.xml.rels" in self.zip.namelist() else None
        if rels is not None and rel_id:
            for rel in rels.iter(f"{{{PKG_REL_NS}}}Relationship"):
                if rel.get("Id") == rel_id:
                    target = rel.get("Target", "")
                    if target.startswith("/"):
                        return target.lstrip("/")
                    return posixpath.normpath(posixpath.join("xl", target))
        return "xl/worksheets/sheet1.xml"

    def _find_part(self, names: set[str], kind: str) -> str | None:
        rels_name = "xl/_rels/workbook.xml.rels"
        if rels_name in names:
            for rel in self._xml(rels_name).iter(f"{{{PKG_REL_NS}}}Relationship"):
                if rel.get("Type", "").endswith("/" + kind):
                    target = rel.get("Target", "")
                    part = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))
                    if part in names:
                        return part
        fallback = f"xl/{kind}.xml"
        return fallback if fallback in names else None

    def last_row(self) -> int | None:
        """The last row number the sheet's ``<dimension>`` declares (for progress only)."""
        try:
            with self.zip.open(self.sheet_part) as fh:
                head = fh.read(4096)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError):
            return None
        m = _DIMENSION.search(head)
        return int(m.group(1)) if m else None

    def rows(self) -> Iterator[tuple[int, list[Any], int]]:
        """(row number, values by column index with ``None`` for absent, extent) per row.

        ``extent`` counts the columns up to the row's last ``<c>`` element, blank or
        not; it is exact up to the header row (later rows may have blanks cut out).
        """
        try:
            with self.zip.open(self.sheet_part) as fh:
                yield from _parse_sheet(fh, self.strings, self.style_kinds, self.epoch)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise _corrupt(self.path, self.what, f"sheet data unreadable: {exc}") from None
        except expat.ExpatError as exc:
            raise _corrupt(self.path, self.what, f"sheet XML is not well-formed: {exc}") from None
        except (IndexError, ValueError) as exc:
            raise _corrupt(self.path, self.what, f"a cell cannot be read: {exc}") from None

    def close(self) -> None:
        self.strings.close()
        self.zip.close()


_ABSENT = object()  # a cell that holds no value: it stays None in the row


def _cell_value(t: str | None, raw: str, kind: int, strings: "_SharedStrings", epoch: datetime) -> Any:
    """The value of a cell of type ``t`` whose ``<v>``/``<t>`` text is ``raw``.

    The one place cell text becomes a value: the expat handlers and the row scanner
    (``_RowScanner``) both call it, so both readings agree by construction.
    """
    if t is None or t == "n":
        if not kind and raw.isdigit() and len(raw) < 19:
            return int(raw)  # the common case: an id or a count
        if not raw:
            return _ABSENT  # <v></v>: no number at all, absent
        number = float(raw)
        if kind:
            return _serial_to_iso(number, kind, epoch)
        if number.is_integer() and -(2**63) <= number < 2**63:
            return int(number)
        return number
    if t == "s":
        return strings[int(raw)]
    if t == "inlineStr" or t == "str":
        return _unescape_excel(raw)
    if t == "b":
        return 1 if raw.strip() in ("1", "true") else 0
    if t == "d":
        return _iso_cell(raw, kind or _DATETIME)
    return raw  # "e": an error value, kept as the sheet shows it


class _NotPlain(Exception):
    """A row the scanner does not read itself: expat reads it."""


_XML_REFERENCE = re.compile(r"&(?:(lt|gt|amp|quot|apos)|#([0-9]+)|#x([0-9a-fA-F]+));")
_BAD_AMPERSAND = re.compile(r"&(?!(?:lt|gt|amp|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);)")
_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}
# Bytes XML 1.0 forbids in a document (controls but tab, LF, CR): the deletion table
# keeps only them, so translate() returns b"" for a sound region.
_NOT_CONTROL = bytes(b for b in range(256) if b >= 32 or b in (9, 10, 13))


def _referenced_char(match: re.Match[str]) -> str:
    name, decimal, hexadecimal = match.groups()
    if name:
        return _ENTITIES[name]
    code = int(decimal, 10) if decimal else int(hexadecimal, 16)
    # The characters XML 1.0 allows; expat rejects a reference to any other one.
    if code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF:
        return chr(code)
    raise _NotPlain


def _xml_text(raw: str) -> str:
    """Character data as an XML parser reports it: line ends normalised, references decoded."""
    if "\r" in raw:
        raw = raw.replace("\r\n", "\n").replace("\r", "\n")
    if "&" in raw:
        # One scan each (measured 2x faster than five str.replace on comment texts).
        if _BAD_AMPERSAND.search(raw):
            raise _NotPlain  # an undefined entity or a bare '&': expat's error
        raw = _XML_REFERENCE.sub(_referenced_char, raw)
    return raw


class _RowScanner:
    """Reads the plain rows of the sheet XML with regular expressions (C), not expat.

    Expat calls three to five Python handlers per cell (``<c>``, ``<v>`` or ``<is>``
    and ``<t>``, their ends, the text); this cuts a run of whole rows into tokens with
    one regular expression and takes one Python step per cell. It reads rows written
    in the plain form exports use: ``<row r="N" ...>`` then cells ``<c r="A1" s="1"
    t="inlineStr">`` (attributes in that order) holding nothing, one ``<v>``, or one
    ``<is><t>``, with no space between the tags, in UTF-8 text with no forbidden
    character, comment, CDATA or processing instruction. A run holding anything else
    is read row by row, and every row that is not plain goes to expat, as does all the
    XML around the rows, in document order: expat still checks the document and reads
    every unusual form. Values come from ``_cell_value``, shared with the handlers.
    """

    def __init__(self, prefix: str) -> None:
        p = re.escape(prefix)
        self.row_start = f"<{prefix}row".encode()
        self.row_end = f"</{prefix}row>".encode()
        # Text is anything but markup; references and line ends are checked and decoded
        # by _xml_text, forbidden characters for the whole run beforehand.
        text = "[^<]*"
        row_attributes = f'(?: r="([0-9]+)")?((?: (?!r=)[A-Za-z_][\\w.:-]*="[^"<&]*")*)>'
        # A cell holding text: letters, attributes (s, t), <v> or not, the text; the
        # closing tags follow the opening ones (a conditional on the <v> group).
        texted = (
            f'<{p}c r="([A-Z]{{1,3}})[0-9]+"((?: s="[0-9]+")?(?: t="[A-Za-z]+")?)'
            f'(?:>(<{p}v>)(?=[^<])|><{p}is><{p}t(?: xml:space="preserve")?>)({text})(?(7)</{p}v>|</{p}t></{p}is>)</{p}c>'
        )
        # A cell holding nothing: letters, attributes.
        empty = f'<{p}c r="([A-Z]{{1,3}})[0-9]+"((?: s="[0-9]+")?(?: t="[A-Za-z]+")?)(?: ?/>|></{p}c>)'
        # One pass over a run: (row open, r, attributes, row close, texted cell (4 groups),
        # empty cell (2 groups), anything else). Fewer groups per cell than one pattern
        # with every form: a third less time in the regular expression.
        self.tokens = re.compile(f"(<{p}row){row_attributes}|(</{p}row>)|{texted}|{empty}|([\\s\\S])")
        self.rows = re.compile(f"<{p}row{row_attributes}[^<]*(?:<(?!/{p}row>)[^<]*)*</{p}row>")
        self.attribute_names = re.compile(r' ([^=]+)="')


_CELL_ATTRIBUTE = re.compile(r' (s|t)="([^"]*)"')


def _cell_attributes(text: str, kind_of_style: dict[str, int]) -> tuple[str | None, int]:
    """(t, number-format kind) of a cell's ``s``/``t`` attribute text, as the handlers read them."""
    found = dict(_CELL_ATTRIBUTE.findall(text))
    s = found.get("s")
    return found.get("t"), kind_of_style.get(s, _PLAIN) if s else _PLAIN


def _run_of_rows(
    scanner: _RowScanner, text: str, kind_of_style: dict[str, int], strings: "_SharedStrings", epoch: datetime, row_number: int
) -> list[tuple[int, list[Any], int]] | None:
    """The rows of ``text`` (a run of whole rows), or None when any of them is not plain."""
    columns = _COLUMN_CACHE
    cells: dict[str, tuple[str | None, int]] = {}  # attribute text -> (type, number-format kind)
    rows: list[tuple[int, list[Any], int]] = []
    values: list[Any] | None = None
    column = -1
    try:
        for opened, number, attributes, closed, letters, cell, v, raw, empty_letters, empty_cell, other in scanner.tokens.findall(text):
            if letters or empty_letters:
                if values is None:
                    return None
                if not letters:
                    letters, cell = empty_letters, empty_cell
                column = columns.get(letters)
                if column is None:
                    column = column_index(letters)
                described = cells.get(cell)
                if described is None:
                    described = cells[cell] = _cell_attributes(cell, kind_of_style)
                t, kind = described
                if not empty_letters:
                    if "&" in raw or "\r" in raw:
                        raw = _xml_text(raw)
                    if v:
                        if t is None and not kind and raw.isdigit() and len(raw) < 19:
                            value: Any = int(raw)  # the common case: an id or a count
                        else:
                            value = _cell_value(t, raw, kind, strings, epoch)
                            if value is _ABSENT:
                                continue
                    elif t == "inlineStr" or t == "str":
                        value = _unescape_excel(raw) if "_x" in raw else raw
                    else:
                        return None  # an inline string in a cell of another type
                elif t == "inlineStr" or t == "str" or t == "s":
                    value = ""  # a string cell holding nothing: the empty string, not NULL
                else:
                    continue  # a blank cell: absent (it still counts towards the row's extent)
                n = len(values)
                if column == n:
                    values.append(value)
                elif column > n:
                    values.extend([None] * (column - n))
                    values.append(value)
                else:
                    values[column] = value
            elif closed:
                if values is None:
                    return None
                rows.append((row_number, values, max(column + 1, len(values))))
                values = None
            elif opened:
                if values is not None:
                    return None
                if attributes:
                    names = scanner.attribute_names.findall(attributes)
                    if len(set(names)) != len(names):
                        return None  # a repeated attribute: expat's error
                row_number = int(number) if number else row_number + 1
                values = []
                column = -1
            else:
                return None
    except _NotPlain:
        return None
    return rows if values is None else None


def _scan_rows(
    scanner: _RowScanner,
    text: str,
    kind_of_style: dict[str, int],
    strings: "_SharedStrings",
    epoch: datetime,
    row_number: int,
    emit_row: Any,
    to_expat: Any,
) -> int | None:
    """Read the rows of ``text`` (whole rows, as str) in order: plain ones here, others by expat.

    Returns the number of the last row read (a row with no ``r`` counts on from it), or
    None when expat read the run and must read the rest of the sheet too.
    """
    rows = _run_of_rows(scanner, text, kind_of_style, strings, epoch, row_number)
    if rows is not None:
        for row in rows:
            emit_row(row)
        return rows[-1][0] if rows else row_number
    if "<!" in text or "<?" in text:
        # A comment, CDATA section or processing instruction may hold what looks like
        # a row: expat reads the whole run, and the rest of the sheet (None). (A run the
        # tokens cover has none: its '<' would be an "other" token.)
        to_expat(text, row_number)
        return None
    # Something in the run is not plain: row by row, the odd ones through expat.
    position = 0
    for row in scanner.rows.finditer(text):
        if row.start() > position:
            row_number = to_expat(text[position : row.start()], row_number)
        position = row.end()
        one = _run_of_rows(scanner, row.group(0), kind_of_style, strings, epoch, row_number)
        if one is None:
            row_number = to_expat(row.group(0), row_number)
        else:
            emit_row(one[0])
            row_number = one[0][0]
    if position < len(text):
        row_number = to_expat(text[position:], row_number)
    return row_number


def _parse_sheet(
    stream: io.BufferedIOBase, strings: _SharedStrings, style_kinds: list[int], epoch: datetime
) -> Iterator[tuple[int, list[Any], int]]:
    """The sheet XML, one (row number, values, extent) per ``<row>``.

    Plain rows are read by ``_RowScanner``; the rest of the XML (and any row it does
    not read) by expat, whose handlers are closures over locals: they run per cell.
    """
    head = stream.read(max(CHUNK_BYTES, 4096))  # the root element's prefix is in here
    m = _ROOT_PREFIX.search(head)
    prefix = (m.group(1).decode() + ":") if m and m.group(1) else ""
    C, V, T, IS, ROW, RPH = (prefix + n for n in ("c", "v", "t", "is", "row", "rPh"))
    # Style attribute text -> number-format kind; an unknown style index is plain.
    kind_of_style = {str(i): k for i, k in enumerate(style_kinds)}
    columns = _COLUMN_CACHE

    ready: list[tuple[int, list[Any], int]] = []
    values: list[Any] = []
    cell_col = -1
    cell_type: str | None = None
    cell_kind = _PLAIN
    text: list[str] = []
    collecting = False
    has_value = False
    in_rph = False
    row_number = 0

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal cell_col, cell_type, cell_kind, collecting, has_value, in_rph, row_number, values
        if name == C:
            ref = attrs.get("r")
            if ref:
                letters = ref.rstrip("0123456789")
                cell_col = columns[letters] if letters in columns else column_index(ref)
            else:
                cell_col += 1
            cell_type = attrs.get("t")
            s = attrs.get("s")
            cell_kind = kind_of_style.get(s, _PLAIN) if s else _PLAIN
            has_value = False
            text.clear()
        elif name == V:
            collecting = True
            has_value = True
        elif name == T:
            if not in_rph:
                collecting = True
                has_value = True
        elif name == ROW:
            r = attrs.get("r")
            row_number = int(r) if r else row_number + 1
            values = []
            cell_col = -1
        elif name == RPH:
            in_rph = True

    def end(name: str) -> None:
        nonlocal collecting, in_rph
        if name == C:
            t = cell_type
            if has_value:
                value = _cell_value(t, text[0] if len(text) == 1 else "".join(text), cell_kind, strings, epoch)
                if value is _ABSENT:
                    return
            elif t == "inlineStr" or t == "str" or t == "s":
                value = ""  # a string cell holding nothing: the empty string, not NULL
            else:
                return  # a styled blank: absent (it still counts towards the row's extent)
            n = len(values)
            if cell_col == n:
                values.append(value)
            elif cell_col > n:
                values.extend([None] * (cell_col - n))
                values.append(value)
            else:
                values[cell_col] = value
        elif name == V or name == T:
            collecting = False
        elif name == ROW:
            ready.append((row_number, values, max(cell_col + 1, len(values))))
        elif name == RPH:
            in_rph = False

    def chars(data: str) -> None:
        if collecting:
            text.append(data)

    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.buffer_size = CHUNK_BYTES
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    # Styled blank cells (no type, no value) are absent values; exports may carry
    # thousands per row. Once the header row is through, they are cut out of the bytes
    # before expat sees them: a regular expression in C instead of two Python calls per
    # cell. A tag split across two chunks is simply left for expat.
    blank_cell = re.compile(
        b"<" + prefix.encode() + rb'c r="[A-Z]{1,3}[0-9]+"(?: s="[0-9]+")? ?/>'
    )
    header_done = False

    def to_expat(xml: str, current_row: int) -> int:
        nonlocal row_number
        row_number = current_row  # expat numbers a row with no r from the last row read
        parser.Parse(xml.encode(), False)
        return row_number

    def emit_row(row: tuple[int, list[Any], int]) -> None:
        ready.append(row)

    # The scanner reads whole rows: the bytes are cut after the last complete row of
    # each chunk. It needs UTF-8 text with no DTD (which could declare entities); the
    # sheets Excel and the export tools write are all that.
    declaration = head[: head.find(b"?>")] if head.startswith(b"<?xml") else b""
    enc = re.search(rb'encoding\s*=\s*["\']([A-Za-z0-9._-]+)', declaration)
    scanner = (
        _RowScanner(prefix)
        if FAST_ROWS and b"<!DOCTYPE" not in head and (enc is None or enc.group(1).lower() in (b"utf-8", b"utf8"))
        else None
    )
    pending = b""

    def blocks() -> Iterator[bytes]:
        for i in range(0, len(head), CHUNK_BYTES):
            yield head[i : i + CHUNK_BYTES]
        while block := stream.read(CHUNK_BYTES):
            yield block

    for block in blocks():
        if scanner is None:
            if header_done:
                block = blank_cell.sub(b"", block)
            parser.Parse(block, False)
        else:
            pending += block
            cut = pending.rfind(scanner.row_end)
            if cut < 0:
                if len(pending) > SCAN_LIMIT_BYTES:
                    # No row ends in sight: an odd sheet. Expat reads the rest.
                    parser.Parse(pending, False)
                    pending = b""
                    scanner = None
                continue
            cut += len(scanner.row_end)
            region, pending = pending[:cut], pending[cut:]
            if header_done:
                region = blank_cell.sub(b"", region)
            # Checked in bytes (memchr speed): what the scanner leaves to expat.
            first = region.find(scanner.row_start)
            gap = region[:first] if first > 0 else b""
            if gap.startswith((b"<?xml", b"\xef\xbb\xbf<?xml")):
                gap = gap[gap.find(b"?>") + 2 :]  # the XML declaration, in the first run only
            if (
                first < 0
                or b"<!" in gap  # a comment, CDATA or DTD: it may hold what looks like rows
                or b"<?" in gap
                or b"]]>" in region  # not allowed in text: expat's error
                or b"\xef\xbf\xbe" in region  # U+FFFE and U+FFFF, not XML characters
                or b"\xef\xbf\xbf" in region
                or region.translate(None, _NOT_CONTROL)
            ):
                # Expat reads this run and the rest of the sheet: whatever it is in the
                # middle of (a comment, say) is never cut into rows by the scanner.
                parser.Parse(region, False)
                scanner = None
            else:
                if first:
                    parser.Parse(region[:first], False)
                    region = region[first:]
                try:
                    xml = region.decode("utf-8")
                except UnicodeDecodeError:
                    parser.Parse(region, False)  # expat reports where
                    scanner = None
                else:
                    scanned = _scan_rows(scanner, xml, kind_of_style, strings, epoch, row_number, emit_row, to_expat)
                    if scanned is None:
                        scanner = None  # expat read the run and reads the rest
                    else:
                        row_number = scanned
            if scanner is None and pending:
                parser.Parse(pending, False)  # the bytes after the run, before the next block
                pending = b""
        if ready:
            if not header_done:
                header_done = any(v is not None and v != "" for _, vals, _ in ready for v in vals)
            yield from ready
            ready.clear()
    if pending:
        parser.Parse(pending, False)
    parser.Parse(b"", True)
    yield from ready


def open_first_sheet(
    path: str | Path,
    what: str = "workbook",
    *,
    sst_memory_bytes: int = DEFAULT_SST_MEMORY_BYTES,
) -> SheetStream:
    """Open a workbook and read up to its header row; the data follows in ``batches()``.

    Raises ``InputFileError`` (with a remedy) for a missing file, a file that is not an
    XLSX workbook, an encrypted or corrupt one, and a first sheet with no value at all.
    ``what`` names the file in messages (e.g. ``--tickets``). Close the stream after use.
    """
    p = Path(path)
    check_workbook_file(p, what)
    book = _Workbook(p, what, sst_memory_bytes)
    try:
        rows = book.rows()
        header_number, header_values, header_extent = 0, None, 0
        for number, values, extent in rows:
            if any(v is not None and v != "" for v in values):
                header_number, header_values, header_extent = number, values, extent
                break
        if header_values is None:
            raise InputFileError(
                f"{what} {p}: the first sheet {book.sheet_name!r} is empty (no row holds a value)",
                "export the data again; the workbook must have the header row and data rows on its first sheet",
            )
        last = max(i for i, v in enumerate(header_values) if v is not None and v != "" and not (isinstance(v, str) and not v.strip()))
        dropped = max(header_extent, len(header_values)) - (last + 1)
        header = tuple(
            v if v is not None and not (isinstance(v, str) and not v.strip()) else f"(column {column_letter(i)})"
            for i, v in enumerate(header_values[: last + 1])
        )
        return SheetStream(
            path=p,
            sheet_name=book.sheet_name,
            header=header,
            header_row_number=header_number,
            dropped_columns=dropped,
            last_row=book.last_row(),
            _book=book,
            _rows=rows,
        )
    except BaseException:
        book.close()
        raise

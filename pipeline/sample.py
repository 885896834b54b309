"""Realistic sample exports with known defects: ``servicedesk-etl sample``.

``generate(out_dir, tickets=N)`` writes the three workbooks the ServiceDesk system
exports (``tickets.xlsx``, ``comments.xlsx``, ``timesheets.xlsx``: first sheet, real
headers) and ``manifest.json``, the ground truth of every defect injected: table,
column, kind, exact count and example keys. With ``clean=True`` the same data is
written with no defect at all, so a gate that reports anything on it is wrong.

Proportions follow the real quarterly run (10,939 tickets, 108,129 comments, 141,062
timesheet rows): about 10 comments and 12.9 timesheet rows per ticket; fill rates,
status mix, SLA share, the automation account's 61% of comments, the FCR and
reassignment distributions and the orphan rate of timesheets follow the reference
description of the exports (servicedesk-exports.md). The data covers the reference
quarter, 2025-07-01 to 2025-10-15, so it is deterministic: the same seed gives the
same bytes, whatever the day and whatever the number of worker processes.

Defects (``clean=False``) are placed by a plan drawn from their own random stream, so
the defect-free values are the same in both modes; every defective cell carries one
defect, and the counts in the manifest are tallied from the cells actually written.
Two kinds describe a whole column rather than a few cells, as in the reference:
``comments.created_time`` and ``timesheets.TS-Date`` are day-first text throughout
(``day_first_date`` counts every such cell, the future-dated one included; the
unparseable ``created_time`` cells are not day-first and count only as
``unparseable_date``). The future-dated timesheet is a mistyped year (2052 for 2025,
see ``_future_typo``). Duplicates copy a defect-free row, so they add exactly one
defect each, ``duplicate_key``, reported under the key column (for the composite
timesheet key: its last column, ``TS-Crm ID``).

Column names in the manifest are the SQLite names after ingest (``comment_id``, not
``CT-COMMENT-ID``). Keys: tickets ``TKT-Ticket ID``; comments ``comment_id``;
timesheets ``[TS-User Username, TS-Date, TS-Time From, TS-Crm ID]``, each as the
workbook holds it (so ``TS-Date`` is the day-first text, e.g. ``"5/07/2025"``).
Facts (not defects): ``excel_date_cells`` counts native Excel date cells per column
(ingest turns them into ISO text), ``timesheet_admin_rows`` the rows with
``TS-Crm ID`` 0, ``timesheet_orphans`` the other rows matching no ticket (expected),
``incident_resolved`` the ticket rows with that status, ``empty_trailing_columns``
the styled empty header cells after the ten real comment headers.

Memory is bounded: rows are generated and written one at a time (the sheet XML goes
through a 512-row buffer into the zip stream). What is kept is one small record per
ticket (comments and timesheets refer to tickets), the timesheet block counts per
(day, user), and the defect plan, a few entries per thousand rows.

Why the sheet XML is written here and not by openpyxl
-----------------------------------------------------
openpyxl's writer drops an empty string (it writes ``''`` exactly like an absent cell),
cannot write a NUL byte, and loses carriage returns (XML parsers normalise a literal
``\\r`` to ``\\n``); it is also several times slower (figures in the report of issue 2).
This module streams the sheet XML into the zip itself. What it emits, per value:

- absent value (``None``): no ``<c>`` element at all;
- text, including the empty string: an inline string,
  ``<c r="B7" t="inlineStr"><is><t></t></is></c>`` for ``''`` and
  ``<c r="B7" t="inlineStr"><is><t xml:space="preserve">  </t></is></c>`` for ``'  '``
  (``xml:space="preserve"`` whenever the text starts or ends with white space: without
  it python-calamine strips the text). openpyxl reads ``''`` back as ``''`` and an
  absent cell as ``None``; **python-calamine returns ``''`` for both**, so a reader
  that must tell them apart cannot rely on calamine's values alone;
- ``& < >`` as entities, ``\\r`` as ``&#13;`` (both readers return ``\\r``); NUL and the
  other C0 controls XML 1.0 forbids as the OOXML escape ``_x0000_`` (calamine decodes
  it to ``'\\x00'``; openpyxl returns the literal text ``_x0000_``); a literal
  ``_xHHHH_`` in text is escaped as ``_x005F_xHHHH_``;
- int and float: ``<c r="A2"><v>3652948</v></c>`` (XLSX has one number type: readers
  return ``3652948`` or ``3652948.0``);
- ``datetime``: an Excel native date cell, the serial number with a date style,
  ``<c r="D2" s="1"><v>45812.354166666664</v></c>`` (both readers return a datetime);
  ``date``: the whole-day serial with a date-only style, ``<c r="E2" s="2"><v>45843</v></c>``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing
import os
import random
import re
import time
import zipfile
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from collections import deque
from itertools import accumulate
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from contracts.headers import default_mappings
from contracts.schemas import comments as comments_contract
from contracts.schemas import tickets as tickets_contract
from contracts.schemas import timesheets as timesheets_contract
from pipeline import errors
from pipeline.errors import ConfigError
from pipeline.observe import Progress, peak_rss_mb, stage_trace

log = logging.getLogger(__name__)

MANIFEST_FORMAT = "servicedesk-etl/sample-manifest/1"
FILES = {"tickets": "tickets.xlsx", "comments": "comments.xlsx", "timesheets": "timesheets.xlsx"}
COMMENT_HEADER_GENERATIONS = {"CT": "CT-", "TKTCT": "TKTCT-"}

# The reference quarter (comments and timesheets from 2025-07-01, export mid-October).
PERIOD_START = datetime(2025, 7, 1)
PERIOD_END = datetime(2025, 10, 15)

# Real proportions: 108,129 comments and 141,062 timesheet rows per 10,939 tickets.
TIMESHEETS_PER_TICKET = 141_062 / 10_939
ADMIN_SHARE = 0.20  # TS-Crm ID 0: admin time (10-30% in the reference)
MATCHED_SHARE = 0.10  # of the other timesheet rows: the rest match no ticket
AUTOMATION_SHARE = 0.61  # of comments, written by the automation account
# The per-comment draw that yields 61% overall: tickets whose comments are all
# customer-visible have none from the automation account.
_AUTOMATION_DRAW = 0.645

EXCEL_MAX_ROWS = 1_048_576  # header included
MIN_TICKETS = 40  # fewer rows cannot hold every defect kind at its minimum count
# 12.9 timesheet rows per ticket must fit one sheet.
MAX_TICKETS = 80_000
MAX_CELL_CHARS = 32_767  # Excel's limit for one cell

EXCEL_EPOCH = datetime(1899, 12, 30)
_DAY = timedelta(days=1)


# --- the streaming XLSX writer -----------------------------------------------------------

_ESCAPE = re.compile(r"[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]|_x[0-9A-Fa-f]{4}_")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"}


def _escape_match(m: re.Match[str]) -> str:
    found = m.group()
    if len(found) > 1:  # a literal _xHHHH_ must not be read as an escape
        return "_x005F_" + found[1:]
    return _ENTITIES.get(found) or f"_x{ord(found):04X}_"


_CONTROL = re.compile(r"[\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_text(text: str) -> str:
    """``text`` as the content of a ``<t>`` element of an XLSX cell (see module docs)."""
    if "_x" in text or _CONTROL.search(text) is not None:
        return _ESCAPE.sub(_escape_match, text)
    # The common case: only the three entities (``in`` scans far faster than a regex).
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def _string_cell_tail(value: str) -> str:
    """The part of an inline-string cell after ``<c r="B7"``."""
    if value and (value[0] in " \t\n" or value[-1] in " \t\n"):
        # Without xml:space="preserve" python-calamine strips the text.
        return f' t="inlineStr"><is><t xml:space="preserve">{xml_text(value)}</t></is></c>'
    return f' t="inlineStr"><is><t>{xml_text(value)}</t></is></c>'


def column_letter(index: int) -> str:
    """``0 -> 'A'``, ``26 -> 'AA'``."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def excel_serial(value: datetime) -> float:
    return (value - EXCEL_EPOCH) / _DAY


_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/styles.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
    '<Override PartName="/docProps/app.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.extended-properties+xml"/>'
    "</Types>"
)
_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="xl/workbook.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/extended-properties" '
    'Target="docProps/app.xml"/>'
    "</Relationships>"
)
_APP = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties">'
    "<Application>servicedesk-etl sample</Application></Properties>"
)
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="{sheet}" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
    'Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" '
    'Target="styles.xml"/>'
    "</Relationships>"
)
# Style 0: general; style 1: a date-time number format (makes a number a date cell);
# style 2: a date-only format (a whole day: ingest reads it as YYYY-MM-DD).
_STYLES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<numFmts count="2"><numFmt numFmtId="164" formatCode="yyyy\\-mm\\-dd\\ hh:mm:ss"/>'
    '<numFmt numFmtId="165" formatCode="yyyy\\-mm\\-dd"/></numFmts>'
    '<fonts count="1"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="3"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)
_SHEET_HEAD = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<dimension ref="A1:{last}"/><sheetData>'
)
_SHEET_TAIL = "</sheetData></worksheet>"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # zip entry timestamps: the same bytes for the same seed


def _zipinfo(name: str, level: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    if hasattr(info, "compress_level"):  # Python 3.13+
        info.compress_level = level
    else:
        info._compresslevel = level  # type: ignore[attr-defined]
    return info


class SheetWriter:
    """Stream one worksheet into a new single-sheet XLSX file, row by row.

    ``rows`` (data rows, header excluded) and ``width`` go into the sheet's
    ``<dimension>``; ``close`` checks that exactly ``rows`` rows were written.
    ``empty_trailing`` adds that many styled empty header cells after the real headers,
    as real exports carry (the dimension covers them too).
    """

    FLUSH_ROWS = 512

    def __init__(
        self,
        path: Path,
        headers: Sequence[str],
        rows: int,
        *,
        sheet_name: str = "Export",
        empty_trailing: int = 0,
        compress_level: int = 1,
        large: bool = False,
    ) -> None:
        self.path = path
        self.headers = list(headers)
        self.expected = rows
        self.written = 0
        width = len(self.headers) + empty_trailing
        self._refs = [column_letter(i) for i in range(width)]
        self._zip = zipfile.ZipFile(path, "w", allowZip64=True)
        level = compress_level
        for name, text in (
            ("[Content_Types].xml", _CONTENT_TYPES),
            ("_rels/.rels", _ROOT_RELS),
            ("docProps/app.xml", _APP),
            ("xl/workbook.xml", _WORKBOOK.format(sheet=xml_text(sheet_name))),
            ("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS),
            ("xl/styles.xml", _STYLES),
        ):
            self._zip.writestr(_zipinfo(name, 6), text)
        self._stream = self._zip.open(_zipinfo("xl/worksheets/sheet1.xml", level), "w", force_zip64=large)
        self._buffer: list[str] = []
        self._cache: dict[str, str] = {}
        self._stream.write(_SHEET_HEAD.format(last=f"{self._refs[-1]}{rows + 1}").encode())
        header = ['<row r="1">']
        for ref, name in zip(self._refs, self.headers):
            header.append(f'<c r="{ref}1" t="inlineStr"><is><t>{xml_text(name)}</t></is></c>')
        for ref in self._refs[len(self.headers) :]:
            header.append(f'<c r="{ref}1" s="0"/>')
        header.append("</row>")
        self._buffer.append("".join(header))
        self._row = 1

    def write(self, values: Sequence[Any]) -> None:
        """Write one data row; ``values`` in header order (see module docs for types)."""
        self._row += 1
        r = str(self._row)
        parts = [f'<row r="{r}">']
        append = parts.append
        refs = self._refs
        cache = self._cache
        for i, value in enumerate(values):
            if value is None:
                continue
            start = f'<c r="{refs[i]}{r}"'
            cls = type(value)
            if cls is str:
                if len(value) > 64:  # long text: seldom repeated, not worth hashing
                    append(start + _string_cell_tail(value))
                    continue
                tail = cache.get(value)
                if tail is None:  # codes, names, enum values: repeated often
                    tail = _string_cell_tail(value)
                    if len(cache) >= 20_000:  # bounded: a few MB
                        cache.clear()
                    cache[value] = tail
                append(start + tail)
            elif cls is int or cls is float:
                append(f"{start}><v>{value!r}</v></c>")
            elif cls is datetime:
                append(f'{start} s="1"><v>{excel_serial(value)!r}</v></c>')
            elif cls is date:
                append(f'{start} s="2"><v>{(value - EXCEL_EPOCH.date()).days}</v></c>')
            else:
                raise TypeError(f"cannot write a {cls.__name__} cell: {value!r}")
        append("</row>")
        self._buffer.append("".join(parts))
        self.written += 1
        if len(self._buffer) >= self.FLUSH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self._stream.write("".join(self._buffer).encode("utf-8", "surrogatepass"))
            self._buffer.clear()

    def close(self) -> None:
        self._flush()
        self._stream.write(_SHEET_TAIL.encode())
        self._stream.close()
        self._zip.close()
        if self.written != self.expected:
            raise AssertionError(f"{self.path.name}: wrote {self.written} rows, planned {self.expected}")

    def abort(self) -> None:
        try:
            self._stream.close()
            self._zip.close()
        finally:
            self.path.unlink(missing_ok=True)


# --- realistic values -----------------------------------------------------------------

# name, weight, mean comments per ticket, resolution-time scale (days)
TEAMS = (
    ("Cloud - BAU Support", 0.40, 8.6, 1.2),
    ("Cloud - Infrastructure", 0.22, 10.0, 3.0),
    ("Cloud - Security", 0.12, 9.0, 2.5),
    ("Cloud - L2 Escalation", 0.08, 14.0, 6.0),
    ("Cloud - Network", 0.07, 9.5, 2.8),
    ("Cloud - Database", 0.05, 12.0, 4.0),
    ("Cloud - Projects", 0.03, 22.8, 27.8),
    ("Cloud - Service Desk", 0.03, 8.8, 1.5),
)
CATEGORIES = (
    ("Support Tickets", 0.35),
    ("Alert", 0.20),
    ("Incident", 0.15),
    ("Service Request", 0.15),
    ("Standard", 0.10),
    ("PHI Support Tickets", 0.05),
)
# Open statuses share the last 2%.
OPEN_STATUSES = ("Open", "New", "In Progress", "Pending", "On Hold", "Waiting on Customer", "Waiting on Third Party", "Cancelled")
SEVERITY_WEIGHTS = (("P1", 0.02), ("P2", 0.08), ("P3", 0.45), ("P4", 0.35), ("Alert", 0.10))
ROOT_CAUSES = (
    ("Security", 0.37),
    ("Account", 0.17),
    ("Software", 0.17),
    ("User Modifications", 0.12),
    ("Hosted Service", 0.10),
    ("Hardware", 0.04),
    ("--None--", 0.03),
)
RESOLUTION_TYPES = ("Fixed", "Workaround Provided", "No Fault Found", "Configuration Change", "User Error", "Duplicate", "Vendor Fix")
SLA_TIERS = ("Platinum 24x7", "Gold 24x7", "Silver 12x5", "Bronze 8x5")
SOURCES = (("email", 0.55), ("portal", 0.30), ("phone", 0.15))
SITE_CLASSES = ("Enterprise", "Corporate", "Government", "SMB", "Health")
PLATFORMS = ("AWS", "Azure", "VMware", "Google Cloud", "On-Premises", "Hybrid")
GROUPS = ("Managed Services", "Professional Services", "Cloud Operations")
CLOCK_STATUSES = ("Stopped", "Running", "Paused")
BREACH_REASONS = ("Awaiting vendor", "Resourcing", "Complexity", "Customer delay", "Misrouted ticket")
MITIGATED = ("Customer requested hold", "Change freeze", "Third party outage")
CHG_RISKS = ("Low", "Medium", "High")
CHG_TRIGGERS = ("Customer Request", "Incident", "Problem", "Maintenance")
CHG_TYPES = ("Normal", "Standard", "Emergency")
TS_TYPES = ("Billable", "Non-Billable", "Internal")
TS_CATEGORIES = ("Support", "Project", "Incident", "Change", "Monitoring")
TS_ADMIN_CATEGORIES = ("Admin", "Training", "Meetings", "Leave")
TS_CATEGORY_2 = ("Remote", "Onsite", "After Hours")
BILL_STATES = ("Billable", "Non-Billable", "Contract")

FIRST_NAMES = (
    "James Olivia Liam Charlotte Noah Amelia Jack Isla William Mia Thomas Ava Henry Grace Lucas Chloe "
    "Oliver Zoe Ethan Ella Leo Sophie Max Ruby Harry Emily Samuel Matilda Daniel Lily Alexander Evie "
    "Ryan Hannah Joshua Sienna Nathan Priya Arjun Mei Wei Anh Minh Fatima Omar Aisha Hamish Niamh"
).split()
LAST_NAMES = (
    "Smith Jones Williams Brown Wilson Taylor Johnson White Martin Anderson Thompson Nguyen Thomas "
    "Walker Harris Lee Ryan Robinson Kelly King Davis Wright Evans Roberts Green Hall Wood Jackson "
    "Clarke Patel Singh Chen Wang Li Tran Kumar Murphy O'Brien Campbell Stewart Mitchell Young"
).split()
COMPANY_WORDS = (
    "Acme Southern Pacific Harbour Coastal Summit Metro Red Gum Blue Wren Ironbark Banksia Murray "
    "Eastern Riverina Golden Kestrel Wattle Sandstone Northern Outback Lakeside Granite Silver Eucalypt"
).split()
COMPANY_KINDS = ("Pty Ltd", "Health", "Logistics", "Council", "Group", "Legal", "Mining", "Energy", "Retail", "University")
AUTOMATION = ("sdautomation", "ServiceDesk Automation", 1)

TITLE_PARTS = (
    ("Unable to access", "Slow response from", "Alert:", "Request to update", "Error on", "Outage of",
     "Password reset for", "Certificate expiry on", "Backup failed on", "High CPU on", "Disk space low on",
     "New user setup for", "VPN issue with", "Patch deployment to", "Firewall rule change for"),
    ("the customer portal", "Exchange Online", "prod-db-01", "the VPN gateway", "Azure AD", "the file server",
     "web-app-03", "the backup appliance", "SharePoint", "the payroll system", "k8s cluster aks-prod",
     "the edge firewall", "Citrix", "the monitoring agent", "an S3 bucket"),
)
SENTENCES = (
    "Hi team, please see the update below.",
    "Thanks for raising this with the service desk.",
    "I have checked the event logs on the server and found repeated authentication failures.",
    "The issue appears to be related to the certificate renewal that ran overnight.",
    "Could you please confirm whether the problem is still occurring on your side?",
    "We have restarted the application pool and monitoring shows the service is healthy again.",
    "Escalating to the L2 team for further investigation as this is outside our runbook.",
    "The customer has confirmed that the workaround resolves the issue for now.",
    "Change request raised to apply the permanent fix in the next maintenance window.",
    "Disk usage on the data volume was at 96%; old log files were archived to cold storage.",
    "Alert cleared automatically after the scheduled job completed.",
    "Vendor case opened with Microsoft; awaiting their response.",
    "Patching completed successfully on all servers in the group; no reboot issues observed.",
    "Backup job re-run manually and completed without errors.",
    "User account was locked after too many attempts; unlocked and password reset sent.",
    "Firewall rule added for the new subnet as requested (approved under CAB).",
    "Please note the R&D environment is excluded from this change.",
    "Monitoring threshold adjusted from 85% to 90% to reduce noise.",
    "I will follow up tomorrow morning once the overnight batch has finished.",
    "Root cause: a misconfigured scheduled task was consuming all available memory.",
    "No further action required from the customer; closing this ticket.",
    "Ticket reopened as the customer reports the issue has returned.",
    "Attached are the screenshots and the output of the diagnostic script.",
    "The SLA clock has been paused while we wait for the customer's approval.",
    "Kind regards, Cloud Operations",
    "> On Monday the customer wrote: the portal is timing out again < 5 minutes after login.",
    "Security review completed: no indicators of compromise found in the last 30 days.",
    "Q&A session booked with the customer to walk through the new process.",
    "DNS records updated; propagation may take up to 24 hours.",
    "Snapshot taken before the change at 02:00 AEST as a rollback point.",
    "Café network in the Sydney office is out of scope for this request — noted for the record.",
    "Log excerpt: ERROR [worker-3] connection reset by peer (errno 104).",
)


class _Cumulative:
    """Fast weighted choice over a fixed table (``random.choices`` rebuilds its table)."""

    def __init__(self, values: Sequence[Any], weights: Sequence[float]) -> None:
        self.values = list(values)
        self.cum = list(accumulate(weights))
        self.total = self.cum[-1]

    def pick(self, rng: random.Random) -> Any:
        return self.values[bisect_right(self.cum, rng.random() * self.total)]


def _iso(value: datetime) -> str:
    return value.isoformat(" ")


def _day_first(value: datetime) -> str:
    # The reference form: day and hour not zero-padded, month padded, no seconds.
    return f"{value.day}/{value.month:02d}/{value.year} {value.hour}:{value.minute:02d}"


def _day_first_date(value: date) -> str:
    return f"{value.day}/{value.month:02d}/{value.year}"


def _month(value: datetime) -> str:
    return f"{value.year:04d}-{value.month:02d}"


@dataclass(frozen=True)
class _Person:
    user_id: int
    username: str
    full_name: str
    team: int


@dataclass(frozen=True)
class _Account:
    account_id: int
    name: str
    selcom: str
    site_class: str
    site_status: str
    platform: str
    group: str
    costcentre: int
    costcentre_desc: str
    bill_state: str
    internal: str


@dataclass(slots=True)
class _TicketFacts:
    """What comments and timesheets need to know of a ticket (kept for every ticket)."""

    ticket_id: int
    created: datetime
    end: datetime
    team: int
    comments: int
    visible: int
    agent: int


class _World:
    """The people, accounts and text every table draws from, fixed by the seed."""

    def __init__(self, seed: int, tickets: int, comment_chars: int) -> None:
        rng = random.Random(f"{seed}:world")
        n_agents = max(30, min(800, tickets // 40))
        self.agents: list[_Person] = []
        used: set[str] = set()
        team_pick = _Cumulative(range(len(TEAMS)), [t[1] for t in TEAMS])
        user_ids = rng.sample(range(1000, 99999), n_agents)
        for i in range(n_agents):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            base = (first[0] + last).lower().replace("'", "")
            username, k = base, 1
            while username in used:
                k += 1
                username = f"{base}{k}"
            used.add(username)
            self.agents.append(_Person(user_ids[i], username, f"{first} {last}", team_pick.pick(rng)))
        self.team_agents: list[list[int]] = [[] for _ in TEAMS]
        for i, agent in enumerate(self.agents):
            self.team_agents[agent.team].append(i)
        for team, members in enumerate(self.team_agents):
            if not members:  # every team needs someone to assign tickets to
                members.append(rng.randrange(n_agents))
        n_accounts = max(20, min(3000, tickets // 15))
        self.accounts: list[_Account] = []
        account_ids = rng.sample(range(100_000, 9_999_999), n_accounts)
        for i in range(n_accounts):
            name = f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_KINDS)}"
            self.accounts.append(
                _Account(
                    account_id=account_ids[i],
                    name=name,
                    selcom=f"SEL{rng.randrange(10_000, 99_999)}",
                    site_class=rng.choice(SITE_CLASSES),
                    site_status="Active" if rng.random() < 0.95 else "Inactive",
                    platform=rng.choice(PLATFORMS),
                    group=rng.choice(GROUPS),
                    costcentre=rng.randrange(1000, 9999),
                    costcentre_desc=f"{rng.choice(COMPANY_WORDS)} Cost Centre",
                    bill_state=rng.choice(BILL_STATES),
                    internal="Yes" if rng.random() < 0.08 else "No",
                )
            )
        # Weighted accounts: a few big customers raise most tickets.
        self.account_pick = _Cumulative(range(n_accounts), [1 / (i + 1) ** 0.8 for i in range(n_accounts)])
        self.customers = [
            _Person(200_000 + i, f"{rng.choice(FIRST_NAMES)}.{rng.choice(LAST_NAMES)}".lower().replace("'", "")[:16],
                    "", -1)
            for i in range(max(50, min(5000, tickets // 5)))
        ]
        self.corpus = self._corpus(rng, 1_200_000 + 4 * min(comment_chars, MAX_CELL_CHARS))
        # Comment lengths: log-normal (long tail) with the requested mean.
        self.sigma = 0.9
        self.mu = math.log(comment_chars) - self.sigma**2 / 2

    @staticmethod
    def _corpus(rng: random.Random, size: int) -> str:
        parts: list[str] = []
        total = 0
        while total < size:
            paragraph = " ".join(rng.choice(SENTENCES) for _ in range(rng.randint(2, 6)))
            parts.append(paragraph)
            total += len(paragraph) + 2
        return "\n\n".join(parts)

    def text(self, rng: random.Random, length: int) -> str:
        """A stretch of realistic prose of about ``length`` characters, on word boundaries."""
        corpus = self.corpus
        start = rng.randrange(len(corpus) - length - 1)
        start = corpus.find(" ", start) + 1
        end = corpus.rfind(" ", start, start + length)
        if end <= start:
            end = start + length
        return corpus[start:end].strip()

    def comment_length(self, rng: random.Random) -> int:
        return max(12, min(MAX_CELL_CHARS - 2_000, int(rng.lognormvariate(self.mu, self.sigma))))


# --- the defect plan and the ledger --------------------------------------------------------

# (table, column, kind, share of rows, minimum count). Whole-column and value-driven
# defects (day-first comment and timesheet dates, float Parent IDs, placeholders that
# the data itself carries) are not here: they arise from the values and are tallied.
TICKET_DATES = [
    "TKT-Created Time", "TKT-Modified Time", "TKT-Actual Response Date", "TKT-Actual Resolution Date",
    "TKT-Closure Date", "TKT-SLA Closure Date", "Chg-Planned Start Date", "Chg-Planned End Date",
    "Chg-Actual Start Date", "Chg-Actual End Date",
]
CELL_DEFECTS: tuple[tuple[str, str, str, float, int], ...] = (
    ("tickets", "TKT-Actual Response Date", "day_first_date", 0.001, 3),
    ("tickets", "TKT-Actual Resolution Date", "day_first_date", 0.001, 3),
    ("tickets", "TKT-Closure Date", "day_first_date", 0.001, 3),
    ("tickets", "TKT-SLA Closure Date", "excel_serial_date", 0.0003, 2),
    *(("tickets", c, "empty_string", 0.003, 2) for c in TICKET_DATES),
    ("tickets", "TKT-Actual SLA Achievement", "empty_string", 0.002, 2),
    ("tickets", "TKT-Related CI Ref#", "empty_string", 0.002, 2),
    ("tickets", "TKT-Modified Time", "whitespace_string", 0.0002, 2),
    ("tickets", "TKT-Account Id", "float_id", 0.01, 3),
    ("tickets", "TKT-Actual SLA Achievement", "placeholder", 0.0005, 2),
    ("comments", "comment_id", "non_numeric_id", 0.0005, 3),
    ("comments", "ticket_id", "non_numeric_id", 0.0, 1),
    ("comments", "ticket_id", "orphan_comment", 0.01, 2),
    ("comments", "created_time", "unparseable_date", 25 / 204_625, 1),
    ("comments", "comment_text", "nul_byte", 0.0005, 2),
    ("comments", "comment_text", "crlf_mix", 0.01, 3),
    ("comments", "comment_text", "blank_line_run", 0.0005, 2),
    ("comments", "user_id", "empty_string", 0.002, 2),
    ("timesheets", "TS-Date", "future_date", 0.0, 1),
    ("timesheets", "TS-Hours", "out_of_range_hours", 0.0, 2),
    ("timesheets", "TS-Costcentre ID", "empty_string", 0.002, 2),
    ("timesheets", "TS-Costcentre ID", "whitespace_string", 0.0002, 2),
)
# table -> (share, minimum) of rows repeating an earlier key
DUPLICATES = {"tickets": (0.002, 2), "comments": (0.001, 2), "timesheets": (0.001, 2)}
# Garbage seen in date columns (the comments export held 25 such values in 204,625).
UNPARSEABLE_DATES = ("TBC", "32/13/2025 10:00", "unknown", "0/00/0000 0:00", "2025-13-45 25:61:00", "see notes")
DUPLICATE_LAG = 7  # a duplicate row follows its original this many rows later


def _count(rows: int, share: float, minimum: int) -> int:
    return max(minimum, round(rows * share))


class _Plan:
    """Which base row of a table carries which defect: one defect per cell, fixed up front."""

    def __init__(self, table: str, rows: int, rng: random.Random) -> None:
        self.table = table
        self.rows = rows
        self.cells: dict[int, dict[str, str]] = {}
        taken: dict[str, set[int]] = {}
        for t, col, kind, share, minimum in CELL_DEFECTS:
            if t != table:
                continue
            n = _count(rows, share, minimum)
            busy = taken.setdefault(col, set())
            if n > rows - len(busy):
                raise ConfigError(f"{table}: {rows} rows are too few to place {n} {kind} defects", f"ask for at least {MIN_TICKETS} tickets")
            chosen = _sample_excluding(rng, rows, n, busy)
            busy.update(chosen)
            for row in chosen:
                self.cells.setdefault(row, {})[col] = kind
        share, minimum = DUPLICATES[table]
        n_dups = _count(rows, share, minimum)
        # Rows whose copy is emitted later: defect-free rows, placed at planned positions
        # (the generator moves a source forward when the planned row carries a defect).
        self.duplicate_at = set(_sample_excluding(rng, max(rows - 1, 1), n_dups, set()))
        self.duplicates = n_dups

    def defects(self, row: int) -> dict[str, str]:
        return self.cells.get(row, {})


def _sample_excluding(rng: random.Random, population: int, n: int, exclude: set[int]) -> list[int]:
    chosen: set[int] = set()
    while len(chosen) < n:
        candidate = rng.randrange(population)
        if candidate not in exclude:
            chosen.add(candidate)
    return sorted(chosen)


Row = tuple[list[Any], Any, list[tuple[str, str]]]  # values, key, defects (column, kind)


class _Duplicates:
    """The planned duplicate rows of one table.

    From each planned position on, the next row with no defect of its own is copied and
    the copy follows it ``DUPLICATE_LAG`` rows later, so every duplicate carries exactly
    one defect: its repeated key. When planned positions lie too close to the end to
    find such a row (tiny samples only), earlier defect-free rows are copied instead.
    """

    SPARE = 8

    def __init__(self, table: str, planned: set[int]) -> None:
        self.table = table
        self.planned = planned
        self.owed = 0
        self.pending: deque[tuple[int, Row]] = deque()
        self.spare: list[Row] = []

    def offer(self, index: int, eligible: bool, copy: Callable[[], Row]) -> None:
        if index in self.planned:
            self.owed += 1
        if not eligible:
            return
        if self.owed:
            self.owed -= 1
            self.pending.append((index + DUPLICATE_LAG, copy()))
        elif len(self.spare) < self.SPARE:
            self.spare.append(copy())

    def due(self, index: int) -> Iterator[Row]:
        while self.pending and self.pending[0][0] <= index:
            yield self.pending.popleft()[1]

    def rest(self) -> Iterator[Row]:
        while self.pending:
            yield self.pending.popleft()[1]
        while self.owed:
            if not self.spare:
                raise ConfigError(
                    f"{self.table}: too few defect-free rows to copy as duplicates", f"ask for at least {MIN_TICKETS} tickets"
                )
            self.owed -= 1
            yield self.spare.pop(0)


@dataclass
class _Ledger:
    """Defects tallied from the cells actually written (the manifest's counts)."""

    examples_max: int = 5
    counts: dict[tuple[str, str, str], int] = field(default_factory=dict)
    examples: dict[tuple[str, str, str], list[Any]] = field(default_factory=dict)

    def add(self, table: str, column: str, kind: str, key: Any) -> None:
        slot = (table, column, kind)
        self.counts[slot] = self.counts.get(slot, 0) + 1
        bucket = self.examples.setdefault(slot, [])
        if len(bucket) < self.examples_max and key not in bucket:
            bucket.append(key)

    def entries(self, order: dict[str, list[str]]) -> list[dict[str, Any]]:
        tables = list(order)

        def sort_key(slot: tuple[str, str, str]) -> tuple[int, int, str]:
            table, column, kind = slot
            return tables.index(table), order[table].index(column), kind

        return [
            {"table": t, "column": c, "kind": k, "count": self.counts[(t, c, k)], "example_keys": self.examples[(t, c, k)]}
            for t, c, k in sorted(self.counts, key=sort_key)
        ]


# --- the three tables ---------------------------------------------------------------------

TICKET_COLUMNS = list(tickets_contract.SCHEMA.columns)
TIMESHEET_COLUMNS = list(timesheets_contract.SCHEMA.columns)
COMMENT_COLUMNS = list(comments_contract.SCHEMA.columns)


def comment_headers(generation: str = "CT") -> list[str]:
    """Workbook headers of the comments export, in column order, for one generation."""
    if generation not in COMMENT_HEADER_GENERATIONS:
        raise ConfigError(
            f"unknown comment header generation {generation!r}",
            f"use one of {', '.join(COMMENT_HEADER_GENERATIONS)}",
        )
    prefix = COMMENT_HEADER_GENERATIONS[generation]
    by_column = {col: header for header, col in default_mappings()["comments"].items() if header.startswith(prefix)}
    missing = [c for c in COMMENT_COLUMNS if c not in by_column]
    if missing:
        raise ConfigError(f"contracts/headers.toml has no {prefix}* header for {missing}", "add the mapping lines")
    return [by_column[c] for c in COMMENT_COLUMNS]


class _Generator:
    """Produces the rows of the three tables, in a stream, for one seed and mode."""

    def __init__(self, tickets: int, seed: int, clean: bool, comment_chars: int) -> None:
        self.n_tickets = tickets
        self.seed = seed
        self.clean = clean
        self.world = _World(seed, tickets, comment_chars)
        self.ledger = _Ledger()
        self.facts_tickets: list[_TicketFacts] = []
        self.ticket_ids: set[int] = set()
        self.excel_date_cells: dict[str, dict[str, int]] = {
            "tickets": {c: 0 for c in TICKET_DATES},
            "comments": {"created_time": 0},
            "timesheets": {"TS-Date": 0},
        }
        self.incident_resolved = 0
        self.admin_rows = 0
        self.orphan_rows = 0
        self.team_pick = _Cumulative(range(len(TEAMS)), [t[1] for t in TEAMS])
        self.category_pick = _Cumulative([c for c, _ in CATEGORIES], [w for _, w in CATEGORIES])
        self.severity_pick = _Cumulative([s for s, _ in SEVERITY_WEIGHTS], [w for _, w in SEVERITY_WEIGHTS])
        self.root_pick = _Cumulative([c for c, _ in ROOT_CAUSES], [w for _, w in ROOT_CAUSES])
        self.source_pick = _Cumulative([c for c, _ in SOURCES], [w for _, w in SOURCES])
        # Ticket ids: 7 digits, increasing with gaps (the export holds every ticket; we
        # keep one team's share, as the real scoping did).
        rng = random.Random(f"{seed}:ids")
        ids, current = [], 3_600_000
        for _ in range(tickets):
            current += rng.randint(1, 60)
            ids.append(current)
        self.ids = ids
        self.ticket_ids = set(ids)
        self._day_first_columns: set[str] = set()
        self._out_of_range_hours = 0

    # -- helpers --------------------------------------------------------------------------

    def orphan_ticket_id(self, rng: random.Random) -> int:
        """A ticket number in the same range that no exported ticket has."""
        low, high = self.ids[0] - 50_000, self.ids[-1] + 50_000
        while True:
            candidate = rng.randint(low, high)
            if candidate not in self.ticket_ids:
                return candidate

    def _date_cell(self, value: datetime, table: str, column: str, rng: random.Random) -> Any:
        # About one ISO date in five is an Excel native date cell (ingest makes it ISO text).
        if rng.random() < 0.2:
            return value
        return _iso(value)

    # -- tickets --------------------------------------------------------------------------

    def ticket_rows(self, plan: _Plan | None) -> Iterator[Row]:
        rng = random.Random(f"{self.seed}:tickets")
        defect_rng = random.Random(f"{self.seed}:ticket-defects")
        span = (PERIOD_END - PERIOD_START).total_seconds()
        dups = _Duplicates("tickets", plan.duplicate_at if plan else set())
        for index, ticket_id in enumerate(self.ids):
            row, natural, closed_status = self._ticket(rng, ticket_id, span, index)
            defects = list(natural.items())
            if plan is not None:
                for col, kind in plan.defects(index).items():
                    row[col] = self._ticket_defect(row, col, kind, defect_rng)
                    defects.append((col, kind))
                # Only Closed tickets are copied: the status counts stay the same.
                dups.offer(index, not defects and closed_status, lambda: self._ticket_duplicate(row, defect_rng))
            values = [row.get(c) for c in TICKET_COLUMNS]
            yield values, ticket_id, defects
            yield from dups.due(index)
        yield from dups.rest()

    def _ticket_duplicate(self, row: dict[str, Any], rng: random.Random) -> Row:
        copy = dict(row)
        modified = row["_modified"] + timedelta(hours=rng.randint(1, 72), minutes=rng.randint(0, 59))
        copy["TKT-Modified Time"] = _iso(modified)
        key = row["TKT-Ticket ID"]
        return [copy.get(c) for c in TICKET_COLUMNS], key, [("TKT-Ticket ID", "duplicate_key")]

    def _ticket_defect(self, row: dict[str, Any], col: str, kind: str, rng: random.Random) -> Any:
        if kind == "empty_string":
            return ""
        if kind == "whitespace_string":
            return "  "
        if kind == "placeholder":
            return "N/A"
        if kind == "float_id":
            return f"{float(row['_account_id'])!r}"
        value = row.get("_dt_" + col) or row["_created"] + timedelta(minutes=rng.randint(30, 4000))
        if kind == "day_first_date":
            # The first of a column has a day above 12, so the column's order is decidable.
            if col not in self._day_first_columns:
                value = value.replace(day=rng.randint(13, 28))
                self._day_first_columns.add(col)
            return _day_first(value)
        if kind == "excel_serial_date":
            return round(excel_serial(value), 3)
        raise AssertionError(kind)

    def _ticket(self, rng: random.Random, ticket_id: int, span: float, index: int) -> tuple[dict[str, Any], dict[str, str], bool]:
        w = self.world
        created = PERIOD_START + timedelta(seconds=int(rng.random() * span))
        if rng.random() < 0.75:  # business hours
            created = created.replace(hour=rng.randint(8, 17))
        team = self.team_pick.pick(rng)
        team_name, _, mean_comments, res_scale = TEAMS[team]
        category = self.category_pick.pick(rng)
        severity = "Alert" if category == "Alert" and rng.random() < 0.8 else self.severity_pick.pick(rng)
        roll = rng.random()
        status = "Closed" if roll < 0.73 else "Incident Resolved" if roll < 0.98 else rng.choice(OPEN_STATUSES)
        closed = status in tickets_contract.CLOSED_STATUSES
        if status == "Incident Resolved":
            self.incident_resolved += 1
        account = w.accounts[w.account_pick.pick(rng)]
        members = w.team_agents[team]
        agent = members[rng.randrange(len(members))]
        has_sla = rng.random() < 0.68
        natural: dict[str, str] = {}
        row: dict[str, Any] = {"TKT-Ticket ID": ticket_id, "_created": created, "_account_id": account.account_id}
        table = "tickets"
        row["TKT-Created Time"] = self._date_cell(created, table, "TKT-Created Time", rng)
        row["TKT-Month Created"] = _month(created)
        if rng.random() < 0.02 and index > 0:
            parent = self.ids[rng.randrange(index)]
            if self.clean:
                row["TKT-Parent ID"] = parent
            else:
                # The export holds this column as REAL: every value reads 3652948.0.
                row["TKT-Parent ID"] = f"{float(parent)!r}"
                natural["TKT-Parent ID"] = "float_id"
        if rng.random() < 0.3:
            row["TKT-Customer Reference"] = f"PO-{rng.randrange(10_000, 999_999)}"
        row["TKT-SLA"] = rng.choice(SLA_TIERS) if has_sla else None
        row["TKT-Account Id"] = account.account_id
        row["TKT-Account Name"] = account.name
        row["TKT-Site Classification"] = account.site_class
        row["TKT-Site Status"] = account.site_status
        row["TKT-Selcom Key"] = account.selcom
        row["TKT-Title"] = f"{rng.choice(TITLE_PARTS[0])} {rng.choice(TITLE_PARTS[1])}"
        row["TKT-Description"] = w.text(rng, rng.randint(80, 700))
        row["TKT-Severity"] = severity
        row["TKT-Status"] = status
        pending_assignment = not closed or rng.random() < 0.005
        if pending_assignment:
            # Draw in both modes, so that --clean writes the same values otherwise.
            token = " PendingAssignment" if rng.random() < 0.5 else "PendingAssignment"
            if not self.clean:
                row["TKT-Assigned To User"] = token
                natural["TKT-Assigned To User"] = "placeholder"
        else:
            row["TKT-Assigned To Userid"] = w.agents[agent].user_id
            row["TKT-Assigned To User"] = w.agents[agent].full_name
        if rng.random() < 0.2:
            row["TKT-Job#/Ref#"] = f"JOB-{rng.randrange(100_000, 999_999)}"
        row["TKT-Team"] = team_name
        row["TKT-Category"] = category
        creator_is_agent = rng.random() < 0.4
        if creator_is_agent:
            creator = w.agents[rng.randrange(len(w.agents))]
            row["TKT-Created By Userid"] = creator.user_id
            row["TKT-Created By User"] = creator.full_name
        else:
            row["TKT-Created By Userid"] = AUTOMATION[2]
            row["TKT-Created By User"] = AUTOMATION[1]
        row["TKT-Client Name"] = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        row["TKT-Ticket Source"] = self.source_pick.pick(rng)
        if rng.random() < 0.4:
            row["TKT-Related CI Ref#"] = rng.randrange(100_000, 999_999)
            row["TKT-Related CI"] = f"{rng.choice(('srv', 'vm', 'db', 'fw', 'app'))}-{rng.choice(('syd', 'mel', 'bne', 'per'))}-{rng.randrange(1, 99):02d}"
        # Dates along the ticket's life.
        dates: dict[str, datetime] = {}
        if rng.random() < 0.63:
            dates["TKT-Actual Response Date"] = created + timedelta(minutes=rng.randint(2, 240))
        # Resolution time: the team's scale, falling over the quarter (5.3 -> 1.3 days).
        months_in = (created - PERIOD_START).days / 30.0
        trend = max(0.35, 1.5 - 0.33 * months_in)
        resolution_days = res_scale * trend * rng.lognormvariate(-0.35, 1.0)
        resolved = created + timedelta(days=resolution_days, seconds=rng.randint(60, 3600))
        end = resolved
        if closed:
            if rng.random() < 0.54:
                dates["TKT-Actual Resolution Date"] = resolved
            closure = resolved + timedelta(hours=rng.uniform(0, 72))
            dates["TKT-Closure Date"] = closure
            row["TKT-Month Closed"] = _month(closure)
            row["TKT-Resolution/Change Type"] = rng.choice(RESOLUTION_TYPES)
            root = self.root_pick.pick(rng)
            if root == "--None--":
                if not self.clean:
                    row["TKT-Root Cause Category"] = root
                    natural["TKT-Root Cause Category"] = "placeholder"
            else:
                row["TKT-Root Cause Category"] = root
            if rng.random() < 0.6:
                row["TKT-Solution"] = w.text(rng, rng.randint(60, 500))
            end = closure
        if has_sla:
            met = rng.random() < 0.96
            row["TKT-SLA Met"] = "yes" if met else "no"
            row["TKT-Response Met"] = "yes" if rng.random() < 0.97 else "no"
            row["TKT-Resolution Met"] = "yes" if met else "no"
            row["TKT-SLA Exempt"] = "no" if rng.random() < 0.95 else "yes"
            if row["TKT-SLA Exempt"] == "yes":
                row["TKT-Mitigated Reason"] = rng.choice(MITIGATED)
            row["TKT-SLA Clock Status"] = "Stopped" if closed else rng.choice(CLOCK_STATUSES[1:])
            if not met:
                row["TKT-SLA Breach Reason"] = rng.choice(BREACH_REASONS)
                row["TKT-SLA Breach Comment"] = w.text(rng, rng.randint(40, 200))
            row["TKT-Actual SLA Achievement"] = 100 if met else round(rng.uniform(40, 99.9), 2)
            if closed:
                sla_closed = dates["TKT-Closure Date"] - timedelta(minutes=rng.randint(0, 30))
                dates["TKT-SLA Closure Date"] = sla_closed
                row["TKT-SLA Month Closed"] = _month(sla_closed)
                this_month = rng.random() < 0.8
                row["TKT-SLA Closed - This Month"] = "yes" if this_month else "no"
                row["TKT-SLA Closed - Last Month"] = "no" if this_month else "yes"
        qa = rng.random()
        row["TKT-QA Review Completed"] = "yes" if qa < 0.3 else "no" if qa < 0.7 else None
        if category == "Standard" and rng.random() < 0.08:  # changes: under 1% of tickets
            row["Chg-Risk"] = rng.choice(CHG_RISKS)
            row["Chg-Trigger"] = rng.choice(CHG_TRIGGERS)
            row["Chg-Type"] = rng.choice(CHG_TYPES)
            start = created + timedelta(days=rng.randint(1, 10), hours=rng.randint(0, 5))
            dates["Chg-Planned Start Date"] = start
            dates["Chg-Planned End Date"] = start + timedelta(hours=rng.randint(1, 6))
            if closed:
                dates["Chg-Actual Start Date"] = start + timedelta(minutes=rng.randint(0, 30))
                dates["Chg-Actual End Date"] = start + timedelta(hours=rng.randint(1, 5))
            approver = w.agents[rng.randrange(len(w.agents))]
            row["Chg-Approver"] = approver.full_name
            row["Chg-Success"] = "yes" if rng.random() < 0.9 else "no"
        modified = max([created, *dates.values()]) + timedelta(minutes=rng.randint(1, 600))
        dates["TKT-Modified Time"] = modified
        # The export's form is whole seconds: 2025-05-20 08:42:00.
        dates = {col: value.replace(microsecond=0) for col, value in dates.items()}
        row["_modified"] = dates["TKT-Modified Time"]
        for col, value in dates.items():
            row["_dt_" + col] = value
            row[col] = self._date_cell(value, table, col, rng)
        row["TKT-Is Template"] = "no" if rng.random() < 0.999 else "yes"
        row["TKT-Platform"] = account.platform
        row["TKT-Group"] = account.group
        # What comments need: their count and how many a customer sees (the FCR buckets
        # of the reference: 0 / 1 / 2-3 / 4+ customer comments = 23 / 48 / 19 / 10%).
        n_comments = 1 + round(rng.gammavariate(1.2, (mean_comments - 1) / 1.2))
        v = rng.random()
        visible = 0 if v < 0.23 else 1 if v < 0.71 else rng.randint(2, 3) if v < 0.90 else rng.randint(4, 8)
        self.facts_tickets.append(
            _TicketFacts(ticket_id, created, max(end, created + timedelta(hours=1)), team, n_comments, min(visible, n_comments), agent)
        )
        return row, natural, status == "Closed"

    # -- comments -------------------------------------------------------------------------

    def comment_count(self) -> int:
        return sum(t.comments for t in self.facts_tickets)

    def comment_rows(self, plan: _Plan | None) -> Iterator[Row]:
        rng = random.Random(f"{self.seed}:comments")
        defect_rng = random.Random(f"{self.seed}:comment-defects")
        w = self.world
        comment_id = 5_100_000
        index = 0
        dups = _Duplicates("comments", plan.duplicate_at if plan else set())
        copy_defects = [("created_time", "day_first_date"), ("comment_id", "duplicate_key")]
        for ticket in self.facts_tickets:
            life = (ticket.end - ticket.created).total_seconds() + 2 * 86400
            offsets = sorted(rng.random() * life for _ in range(ticket.comments))
            visible_slots = set(rng.sample(range(ticket.comments), ticket.visible))
            team_name = TEAMS[ticket.team][0]
            # Customer-visible comments are people's; the automation account writes its
            # 61% among the others.
            automation = min(0.95, _AUTOMATION_DRAW * ticket.comments / max(ticket.comments - ticket.visible, 1))
            for j, offset in enumerate(offsets):
                comment_id += rng.randint(1, 9)
                created = ticket.created + timedelta(seconds=int(offset))
                visible = j in visible_slots
                roll = rng.random()
                if not visible and roll < automation:
                    person, owner = AUTOMATION, "system"
                    ctype = "system" if rng.random() < 0.7 else "worknotes"
                    flag = None if rng.random() < 0.5 else "No"  # sparse in the workbooks
                elif visible and rng.random() < 0.3:
                    customer = w.customers[rng.randrange(len(w.customers))]
                    person, owner, ctype, flag = (customer.username, "", customer.user_id), "customer", "comments", "Yes"
                else:
                    agent = w.agents[ticket.agent if rng.random() < 0.7 else rng.randrange(len(w.agents))]
                    person, owner = (agent.username, agent.full_name, agent.user_id), "agent"
                    ctype, flag = ("comments", "Yes") if visible else ("worknotes", "No")
                text = w.text(rng, w.comment_length(rng))
                row: list[Any] = [
                    comment_id,
                    ticket.ticket_id,
                    text,
                    person[2],
                    person[0],
                    owner,
                    created,  # formatted below
                    flag,
                    ctype,
                    team_name,
                ]
                defects: list[tuple[str, str]] = []
                if self.clean:
                    row[6] = _iso(created)
                else:
                    row[6] = _day_first(created)
                    planned = plan.defects(index)  # type: ignore[union-attr]
                    if planned.get("created_time") != "unparseable_date":
                        defects.append(("created_time", "day_first_date"))
                    for col, kind in planned.items():
                        self._comment_defect(row, col, kind, defect_rng, comment_id)
                        defects.append((col, kind))
                    # Defect-free but for the column-wide day-first dates.
                    dups.offer(index, len(defects) == 1, lambda: (list(row), row[0], list(copy_defects)))
                yield row, row[0], defects
                yield from dups.due(index)
                index += 1
        yield from dups.rest()

    def _comment_defect(self, row: list[Any], col: str, kind: str, rng: random.Random, comment_id: int) -> None:
        if col == "comment_id":  # non_numeric_id; unique, so it adds no duplicate key
            row[0] = f"{comment_id}-{rng.choice(('A', 'B', 'dup', 'old'))}"
        elif kind == "non_numeric_id":
            row[1] = f"TKT-{row[1]}"
        elif kind == "orphan_comment":
            row[1] = self.orphan_ticket_id(rng)
        elif kind == "unparseable_date":
            row[6] = rng.choice(UNPARSEABLE_DATES)
        elif kind == "nul_byte":
            text = row[2]
            cut = rng.randrange(len(text) + 1)
            row[2] = text[:cut] + "\x00" + text[cut:]
        elif kind == "crlf_mix":
            # Windows line ends in part of a text whose other breaks are bare \n.
            text = row[2]
            if "\n" not in text:
                text = text + "\n" + text[: max(10, len(text) // 3)].strip()
            head, _, tail = text.partition("\n")
            mixed = head + "\r\n" + "Sent from Outlook\r\n\r\n" + tail
            if "\n" not in tail:  # keep a bare \n too: the mix is the defect
                mixed += "\n-- \nCloud Operations"
            row[2] = mixed
        elif kind == "blank_line_run":
            text = row[2]
            cut = len(text) // 2
            row[2] = text[:cut] + "\n" * rng.randint(100, 400) + text[cut:]
        elif kind == "empty_string":
            row[3] = ""
        else:
            raise AssertionError(kind)

    # -- timesheets -----------------------------------------------------------------------

    def timesheet_total(self) -> int:
        return round(self.n_tickets * TIMESHEETS_PER_TICKET)

    def timesheet_rows(self, plan: _Plan | None) -> Iterator[Row]:
        for row in self._timesheet_stream(plan):
            crm = row[0][12]
            if crm == 0:
                self.admin_rows += 1
            elif crm not in self.ticket_ids:
                self.orphan_rows += 1
            yield row

    def _timesheet_stream(self, plan: _Plan | None) -> Iterator[Row]:
        rng = random.Random(f"{self.seed}:timesheets")
        w = self.world
        total = self.timesheet_total()
        days = [d for d in _days(PERIOD_START.date(), PERIOD_END.date()) if d.weekday() < 5 or rng.random() < 0.1]
        users = list(range(len(w.agents)))
        # Blocks per (day, user), adjusted to the exact total.
        cells = len(days) * len(users)
        mean = total / cells
        counts = [max(0, min(40, round(rng.gauss(mean, max(mean / 3, 0.5))))) for _ in range(cells)]
        diff = total - sum(counts)
        while diff:
            i = rng.randrange(cells)
            if diff > 0 and counts[i] < 40:
                counts[i] += 1
                diff -= 1
            elif diff < 0 and counts[i] > 0:
                counts[i] -= 1
                diff += 1
        # Worked tickets (9.6% of tickets have time booked): 1 / 2 / 3 / 4+ distinct
        # users = 67 / 20 / 8 / 6% (the reassignment distribution of the reference).
        per_user: list[list[int]] = [[] for _ in users]
        for ticket in self.facts_tickets:
            if rng.random() >= 0.096:
                continue
            k = rng.random()
            n_users = 1 if k < 0.67 else 2 if k < 0.87 else 3 if k < 0.95 else rng.randint(4, 6)
            team_members = w.team_agents[ticket.team]
            chosen = {ticket.agent}
            while len(chosen) < n_users:
                chosen.add(team_members[rng.randrange(len(team_members))] if rng.random() < 0.7 else rng.randrange(len(users)))
            for u in chosen:
                per_user[u].append(ticket.ticket_id)
        index = 0
        dups = _Duplicates("timesheets", plan.duplicate_at if plan else set())
        copy_defects = [("TS-Date", "day_first_date"), ("TS-Crm ID", "duplicate_key")]
        cell = 0
        for day in days:
            for u in users:
                n = counts[cell]
                cell += 1
                if not n:
                    continue
                agent = w.agents[u]
                minute = rng.choice((420, 450, 480, 510, 540))  # 07:00 .. 09:00
                capacity = (23 * 60 + 45 - minute) // 15  # quarter hours left in the day
                for b in range(n):
                    left = n - b - 1
                    quarters = max(1, min(rng.choice((1, 1, 2, 2, 2, 3, 4, 4, 6, 8)), capacity - left))
                    capacity -= quarters
                    start, minute = minute, minute + quarters * 15
                    hours = quarters / 4
                    row, key = self._timesheet(rng, w, agent, day, start, minute, hours, per_user[u])
                    defects: list[tuple[str, str]] = []
                    if not self.clean:
                        # The whole column is day-first text: every cell counts, the
                        # future-dated one too (it is day-first text as well).
                        defects.append(("TS-Date", "day_first_date"))
                        for col, kind in plan.defects(index).items():  # type: ignore[union-attr]
                            if kind == "future_date":
                                row[4] = _day_first_date(_future_typo(day))
                                key[1] = row[4]
                            elif kind == "out_of_range_hours":
                                row[11] = (0, 25)[self._out_of_range_hours % 2]
                                self._out_of_range_hours += 1
                            elif kind == "empty_string":
                                row[14] = ""
                            elif kind == "whitespace_string":
                                row[14] = "  "
                            else:
                                raise AssertionError(kind)
                            defects.append((col, kind))
                        dups.offer(index, len(defects) == 1, lambda: (list(row), list(key), list(copy_defects)))
                    yield row, key, defects
                    yield from dups.due(index)
                    index += 1
        yield from dups.rest()

    def _timesheet(self, rng: random.Random, w: _World, agent: _Person, day: date, start: int, end: int, hours: float, tickets: list[int]) -> tuple[list[Any], list[Any]]:
        roll = rng.random()
        if roll < ADMIN_SHARE:
            crm = 0
        elif rng.random() < MATCHED_SHARE and tickets:
            crm = tickets[rng.randrange(len(tickets))]
        else:
            crm = self.orphan_ticket_id(rng)
        account = w.accounts[w.account_pick.pick(rng)]
        admin = crm == 0
        time_from = f"{start // 60:02d}:{start % 60:02d}"
        time_to = f"{end // 60:02d}:{end % 60:02d}"
        ts_date = _iso_date(day) if self.clean else _day_first_date(day)
        # Some clean dates are Excel date cells (the dirty column is day-first text throughout).
        native = rng.random() < 0.2 and self.clean
        row: list[Any] = [
            agent.full_name,
            agent.username,
            rng.choice(TS_ADMIN_CATEGORIES) if admin else f"{rng.choice(TITLE_PARTS[0])} {rng.choice(TITLE_PARTS[1])}",
            w.text(rng, rng.randint(20, 240)) if rng.random() < 0.85 else None,
            day if native else ts_date,
            time_from,
            time_to,
            "Internal" if admin else rng.choice(TS_TYPES),
            rng.choice(TS_ADMIN_CATEGORIES) if admin else rng.choice(TS_CATEGORIES),
            None,  # TS-Sub Category: always empty
            rng.choice(TS_CATEGORY_2),
            hours,
            crm,
            "ADMIN" if admin else f"TKT-{crm}",
            account.costcentre,
            account.costcentre_desc,
            account.selcom,
            account.name,
            account.bill_state,
            account.internal,
            TEAMS[agent.team][0],
        ]
        return row, [agent.username, ts_date, time_from, crm]


def _future_typo(day: date) -> date:
    """The reference's future-dated row was a mistyped year. ``2025`` typed ``2026`` would
    already lie in the past on the day the tests run, so the sample transposes the last
    two digits (``2052``): in the future for decades, and the same bytes every day."""
    year = str(day.year)
    return day.replace(year=int(year[:2] + year[3] + year[2]))


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _iso_date(day: date) -> str:
    return day.isoformat()


# --- the stage ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleConfig:
    out: Path
    tickets: int
    seed: int = 7
    clean: bool = False
    comment_headers: str = "CT"
    comment_chars: int = 2100
    # Processes: 2 writes comments and timesheets at the same time (same bytes as 1).
    workers: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))


@dataclass(frozen=True)
class SampleResult:
    out: Path
    manifest: dict[str, Any]
    rows: int
    seconds: float
    rows_per_second: float
    peak_rss_mb: float


def _validate(config: SampleConfig) -> None:
    if not MIN_TICKETS <= config.tickets <= MAX_TICKETS:
        raise ConfigError(
            f"--tickets {config.tickets} is out of range",
            f"ask for {MIN_TICKETS} to {MAX_TICKETS:,} tickets (about 12.9 timesheet rows per ticket must fit "
            f"one sheet of {EXCEL_MAX_ROWS:,} rows)",
        )
    if not 20 <= config.comment_chars <= 20_000:
        raise ConfigError(f"--comment-chars {config.comment_chars} is out of range", "use 20 to 20000 (the reference mean is 2100)")
    comment_headers(config.comment_headers)
    if config.workers < 1:
        raise ConfigError(f"--workers {config.workers} must be at least 1", "use 1 (one process) or 2")
    if config.out.exists() and not config.out.is_dir():
        raise ConfigError(f"--out {config.out} exists and is not a directory", "name a directory (it is created if missing)")


def generate(
    out_dir: Path,
    tickets: int,
    seed: int = 7,
    clean: bool = False,
    comment_chars: int = 2100,
    comment_headers: str = "CT",
    workers: int | None = None,
) -> dict[str, Any]:
    """Write the three workbooks and ``manifest.json`` into ``out_dir``; return the manifest."""
    extra = {} if workers is None else {"workers": workers}
    return run(
        SampleConfig(Path(out_dir), tickets, seed=seed, clean=clean, comment_headers=comment_headers, comment_chars=comment_chars, **extra)
    ).manifest


def run(config: SampleConfig) -> SampleResult:
    """Generate the sample exports described by ``config``."""
    _validate(config)
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    gen = _Generator(config.tickets, config.seed, config.clean, config.comment_chars)
    plan_rng = random.Random(f"{config.seed}:plan")
    try:
        with stage_trace("sample") as trace:
            manifest, total = _generate(config, gen, plan_rng)
            trace.rows = total
    except BaseException:
        # Nothing half-written is left: the files of a previous run stay as they were.
        for name in [*FILES.values(), "manifest.json"]:
            _temp(out / name).unlink(missing_ok=True)
        raise
    for name in [*FILES.values(), "manifest.json"]:  # the manifest last
        os.replace(_temp(out / name), out / name)
    seconds = time.perf_counter() - started
    peak = max(peak_rss_mb(), _children_peak_rss_mb())
    return SampleResult(out, manifest, total, seconds, total / seconds if seconds else 0.0, peak)


def _generate(config: SampleConfig, gen: _Generator, plan_rng: random.Random) -> tuple[dict[str, Any], int]:
    out = config.out
    columns_order = {"tickets": TICKET_COLUMNS, "comments": COMMENT_COLUMNS, "timesheets": TIMESHEET_COLUMNS}
    rows_written: dict[str, int] = {}
    ticket_plan = None if config.clean else _Plan("tickets", config.tickets, plan_rng)
    extra = 0 if ticket_plan is None else ticket_plan.duplicates
    rows_written["tickets"] = _write_table(
        out / FILES["tickets"], "tickets", TICKET_COLUMNS, config.tickets + extra,
        gen.ticket_rows(ticket_plan), gen.ledger, TICKET_COLUMNS, gen.excel_date_cells["tickets"],
    )
    n_comments = gen.comment_count()
    comment_plan = None if config.clean else _Plan("comments", n_comments, plan_rng)
    extra_comments = 0 if comment_plan is None else comment_plan.duplicates
    trailing = 0 if config.clean else 40
    n_timesheets = gen.timesheet_total()
    ts_plan = None if config.clean else _Plan("timesheets", n_timesheets, plan_rng)
    extra = 0 if ts_plan is None else ts_plan.duplicates

    def write_timesheets(show_progress: bool = True) -> int:
        return _write_table(
            out / FILES["timesheets"], "timesheets", TIMESHEET_COLUMNS, n_timesheets + extra,
            gen.timesheet_rows(ts_plan), gen.ledger, TIMESHEET_COLUMNS, gen.excel_date_cells["timesheets"],
            show_progress=show_progress,
        )

    def write_comments() -> int:
        return _write_table(
            out / FILES["comments"], "comments", comment_headers(config.comment_headers), n_comments + extra_comments,
            gen.comment_rows(comment_plan), gen.ledger, COMMENT_COLUMNS, gen.excel_date_cells["comments"],
            empty_trailing=trailing, large=(n_comments + extra_comments) * (config.comment_chars + 400) > 1_500_000_000,
        )

    # Comments and timesheets depend only on the tickets: with two workers the
    # timesheets are written by a forked child while this process writes comments.
    # Each table draws from its own random streams, so the bytes do not depend on it.
    if config.workers > 1 and "fork" in multiprocessing.get_all_start_methods():
        rows_written["comments"], rows_written["timesheets"] = _in_parallel(gen, write_comments, write_timesheets, out)
    else:
        rows_written["comments"] = write_comments()
        rows_written["timesheets"] = write_timesheets()
    rows_written = {t: rows_written[t] for t in FILES}
    manifest = {
        "format": MANIFEST_FORMAT,
        "seed": config.seed,
        "tickets": config.tickets,
        "clean": config.clean,
        "comment_headers": config.comment_headers,
        "comment_chars": config.comment_chars,
        "files": dict(FILES),
        "rows": rows_written,
        "defects": gen.ledger.entries(columns_order),
        "facts": {
            "incident_resolved": gen.incident_resolved,
            "excel_date_cells": gen.excel_date_cells,
            "timesheet_admin_rows": gen.admin_rows,
            "timesheet_orphans": gen.orphan_rows,
            "empty_trailing_columns": trailing,
        },
    }
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    _temp(out / "manifest.json").write_text(text, encoding="utf-8")
    return manifest, sum(rows_written.values())


def _temp(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def _children_peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _in_parallel(gen: _Generator, write_comments: Callable[[], int], write_timesheets: Callable[..., int], out: Path) -> tuple[int, int]:
    """Write timesheets in a forked child and comments here; merge the child's tallies."""
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)

    def child() -> None:
        try:
            rows = write_timesheets(show_progress=False)  # one bar on the terminal: the parent's
            ledger = gen.ledger
            slots = [slot for slot in ledger.counts if slot[0] == "timesheets"]
            sender.send((
                "ok",
                rows,
                [(slot, ledger.counts[slot], ledger.examples[slot]) for slot in slots],
                gen.excel_date_cells["timesheets"],
                gen.admin_rows,
                gen.orphan_rows,
            ))
        except BaseException as exc:  # reported to the parent, which raises it
            sender.send(("error", type(exc).__name__, getattr(exc, "message", str(exc)), getattr(exc, "remedy", "")))
            os._exit(1)

    worker = ctx.Process(target=child, name="sample-timesheets", daemon=True)
    worker.start()
    sender.close()
    try:
        comments = write_comments()
        message = receiver.recv()
    except BaseException:
        worker.terminate()
        worker.join()
        _temp(out / FILES["timesheets"]).unlink(missing_ok=True)
        raise
    finally:
        receiver.close()
    worker.join()
    if message[0] != "ok":
        _, name, text, remedy = message
        cls = getattr(errors, name, None)
        if isinstance(cls, type) and issubclass(cls, errors.EtlError) and cls is not errors.GateFailed:
            raise cls(text, remedy)
        raise RuntimeError(f"writing timesheets failed: {name}: {text}")
    _, rows, slots, native, admin, orphans = message
    for slot, count, examples in slots:
        gen.ledger.counts[slot] = count
        gen.ledger.examples[slot] = examples
    gen.excel_date_cells["timesheets"] = native
    gen.admin_rows, gen.orphan_rows = admin, orphans
    return comments, rows


def _write_table(
    path: Path,
    table: str,
    headers: list[str],
    rows: int,
    source: Iterator[Row],
    ledger: _Ledger,
    columns: list[str],
    native: dict[str, int],
    *,
    empty_trailing: int = 0,
    large: bool = False,
    show_progress: bool = True,
) -> int:
    tmp = _temp(path)  # renamed into place by run() once every file is written
    date_indices = [i for i, c in enumerate(columns) if c in native]
    writer = SheetWriter(tmp, headers, rows, sheet_name=f"{table.title()} Export", empty_trailing=empty_trailing, large=large)
    try:
        with Progress(table, rows) as progress:
            progress.enabled = progress.enabled and show_progress
            n = 0
            for n, (values, key, defects) in enumerate(source, 1):
                writer.write(values)
                for column, kind in defects:
                    ledger.add(table, column, kind, key)
                for i in date_indices:
                    if isinstance(values[i], date):
                        native[columns[i]] += 1
                if n % 2048 == 0:
                    progress.advance(2048)
            progress.advance(n % 2048)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    log.info("wrote %s: %d rows", tmp.name, writer.written)
    return writer.written


# --- CLI --------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="directory to write the workbooks and manifest.json into")
    parser.add_argument("--tickets", required=True, type=int, metavar="N", help=f"number of tickets ({MIN_TICKETS}..{MAX_TICKETS:,}); comments ~10x, timesheets ~13x")
    parser.add_argument("--seed", type=int, default=7, metavar="S", help="random seed: the same seed writes the same bytes (default 7)")
    parser.add_argument("--clean", action="store_true", help="write the same kind of data with no defects at all")
    parser.add_argument("--comment-headers", choices=tuple(COMMENT_HEADER_GENERATIONS), default="CT", help="comment header generation: CT-* (first, default) or TKTCT-*")
    parser.add_argument("--comment-chars", type=int, default=2100, metavar="N", help="mean length of comment text (default 2100, as in the reference)")
    parser.add_argument("--workers", type=int, default=None, metavar="N", help="processes: 2 writes comments and timesheets at once (default: 2 on a multi-core machine; output identical)")


def command(args: argparse.Namespace, settings: Any) -> int:
    result = run(
        SampleConfig(
            out=args.out,
            tickets=args.tickets,
            seed=args.seed,
            clean=args.clean,
            comment_headers=args.comment_headers,
            comment_chars=args.comment_chars,
            **({"workers": args.workers} if args.workers is not None else {}),
        )
    )
    m = result.manifest
    rows = m["rows"]
    defects = sum(d["count"] for d in m["defects"])
    print(
        f"wrote {result.out}: tickets {rows['tickets']:,}, comments {rows['comments']:,}, timesheets {rows['timesheets']:,} rows; "
        f"{len(m['defects'])} defect entries ({defects:,} cells) in manifest.json; "
        f"{result.seconds:.1f}s, {result.rows_per_second:,.0f} rows/s, peak {result.peak_rss_mb:.0f} MB"
    )
    return 0

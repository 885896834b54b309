"""Ingest: three XLSX exports into one SQLite file, faithfully (``servicedesk-etl ingest``).

Every value is stored as the workbook holds it (see ``pipeline.xlsx``): text stays
text, numbers stay numbers, date cells become ISO text, an absent cell is NULL and an
empty string stays ``''``. Columns are created with no declared type, so SQLite keeps
each value's storage class exactly (a column declared TEXT would turn ``123`` into
``'123'``; one declared INTEGER would turn ``'123'`` into ``123``). Ingest does not
clean: the profiler must see the real problems.

Tables: ``tickets``, ``comments``, ``timesheets``, ``cloud_team_roster`` (when a roster
is given) and ``import_metadata`` (one row per workbook). Columns follow the contract's
order, then any unknown extra column of the workbook (kept, and reported in the result
and in ``import_metadata.notes``). Workbook headers are mapped to columns through
``contracts/headers.toml`` plus ``[headers.<table>]`` of the config file, compared after
trimming; a contract column with no header is an error naming the file, the header
expected and the headers found.

Scoping is off by default. ``settings.scoping.cutoff`` (or ``--cutoff``) drops comments
and timesheets dated before the cut-off; a date that cannot be parsed is kept (ingest
does not judge values; the profiler will). A roster (``--roster`` file, or
``scoping.roster`` usernames) keeps the tickets a roster member commented on (after the
cut-off), and only the comments of those tickets; timesheets are all kept.

The database is written to a temporary file beside ``--out`` (``.raw.db.tmp-<pid>``)
and renamed onto ``--out`` only when everything succeeded; on any error the temporary
file is removed and ``--out`` is left as it was. A temporary file left by a killed run
(its process gone) is removed by the next run.
"""

from __future__ import annotations

import argparse
import csv
import errno
import logging
import multiprocessing
import operator
import os
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from contracts.headers import mapping_for
from contracts.schemas import contract_for
from contracts.spec import date_columns, facts
from pipeline.config import Settings
from pipeline.dates import DateParseError, Order, parse_date
from pipeline.errors import InputFileError, ResourceExhausted
from pipeline.observe import Progress, peak_rss_mb, stage_trace
from pipeline.sources import quote_sqlite, sha256_file
from pipeline.values import to_integer
from pipeline.xlsx import SheetStream, check_workbook_file, open_first_sheet

log = logging.getLogger(__name__)

BATCH_ROWS = 10_000
ROSTER_TABLE = "cloud_team_roster"
# The comment column naming its author: the roster is matched against it.
AUTHOR_COLUMN = "user_name"
# Header prefixes of each export: used only to say "these files look swapped".
EXPORT_PREFIXES: dict[str, tuple[str, ...]] = {
    "comments": ("CT-", "TKTCT-"),
    "tickets": ("TKT-", "Chg-"),
    "timesheets": ("TS-",),
}
IMPORT_METADATA_COLUMNS = tuple(contract_for("import_metadata").columns)  # type: ignore[union-attr]


@dataclass(frozen=True)
class IngestConfig:
    tickets: Path
    comments: Path
    timesheets: Path
    out: Path
    settings: Settings
    roster: Path | None = None
    batch_rows: int = BATCH_ROWS
    # 2: the timesheets workbook is read in a forked worker process while this one
    # reads comments and tickets (the two halves take about the same time); 1: all here.
    workers: int = 2


@dataclass(frozen=True)
class TableImport:
    """What one workbook became."""

    table: str
    file: Path
    sheet_name: str
    rows_read: int
    rows_imported: int
    columns: tuple[str, ...]
    extra_columns: tuple[str, ...]
    dropped_columns: int  # empty trailing columns (no header) left out
    dropped_values: int  # values found under those columns (0 in a sound export)
    blank_rows: int
    date_range: str | None
    filter_applied: str | None
    sha256: str


@dataclass(frozen=True)
class IngestResult:
    out: Path
    tables: tuple[TableImport, ...]
    seconds: float
    peak_rss_mb: float

    @property
    def rows_read(self) -> dict[str, int]:
        return {t.table: t.rows_read for t in self.tables}

    @property
    def rows_imported(self) -> dict[str, int]:
        return {t.table: t.rows_imported for t in self.tables}

    @property
    def extra_columns(self) -> dict[str, tuple[str, ...]]:
        return {t.table: t.extra_columns for t in self.tables}


# --- header mapping ---------------------------------------------------------------


@dataclass(frozen=True)
class ColumnPlan:
    """Where each table column comes from in the sheet."""

    columns: tuple[str, ...]  # table columns: contract order, then extras
    positions: tuple[int, ...]  # sheet column index of each table column (-1: none)
    extras: tuple[str, ...]


def plan_columns(
    table: str, header: Sequence[Any], path: Path, what: str, settings: Settings, *, optional: Iterable[str] = ()
) -> ColumnPlan:
    """Map a header row onto the table's contract; errors name the file and the headers."""
    contract = contract_for(table)
    assert contract is not None
    mapping = {k.strip(): v for k, v in mapping_for(table, settings.headers).items()}
    found = [h.strip() if isinstance(h, str) else str(h) for h in header]
    mapped = [mapping.get(h, h) for h in found]
    wanted = list(contract.columns)
    optional = set(optional)

    seen: dict[str, int] = {}
    for pos, name in enumerate(mapped):
        if name in seen:
            raise InputFileError(
                f"{what} {path}: headers {found[seen[name]]!r} and {found[pos]!r} both give column {name!r}",
                "remove the duplicate column from the workbook (or fix [headers] in the config)",
            )
        seen[name] = pos

    missing = [c for c in wanted if c not in seen and c not in optional]
    if missing:
        raise _missing_headers(table, missing, found, mapping, path, what)
    extras = tuple(name for name in mapped if name not in wanted)
    columns = tuple(wanted) + extras
    positions = tuple(seen.get(c, -1) for c in columns)
    return ColumnPlan(columns, positions, extras)


def _missing_headers(
    table: str, missing: list[str], found: list[str], mapping: dict[str, str], path: Path, what: str
) -> InputFileError:
    expected = []
    for col in missing:
        headers = [h for h, c in mapping.items() if c == col]
        expected.append(" or ".join(repr(h) for h in headers) if headers else repr(col))
    shown = ", ".join(repr(h) for h in found[:12]) + (f" ... ({len(found)} in all)" if len(found) > 12 else "")
    swapped = _looks_like(found)
    if swapped and swapped != table:
        return InputFileError(
            f"{what} {path} looks like the {swapped} export (headers {shown}), not the {table} export",
            f"the files look swapped: give the {table} workbook to {what} and this one to --{swapped}",
        )
    if found and not any(h in mapping or h in mapping.values() for h in found) and _looks_like_data(found):
        return InputFileError(
            f"{what} {path}: the header row is missing: the first row holds data ({shown})",
            f"export the {table} workbook again with its header row as the first row",
        )
    return InputFileError(
        f"{what} {path}: required header(s) missing: {'; '.join(expected)}; headers found: {shown}",
        "export all columns again, or map the renamed header in the [headers."
        f"{table}] section of the config file",
    )


def _looks_like(found: list[str]) -> str | None:
    """The export whose header prefixes most of ``found`` carry, if any."""
    votes: dict[str, int] = {}
    for h in found:
        for table, prefixes in EXPORT_PREFIXES.items():
            if h.startswith(prefixes):
                votes[table] = votes.get(table, 0) + 1
                break
    if not votes:
        return None
    table, n = max(votes.items(), key=lambda kv: kv[1])
    return table if n * 2 > len([h for h in found if h]) else None


def _looks_like_data(found: list[str]) -> bool:
    from pipeline.dates import Shape, shape_of

    datalike = 0
    for h in found:
        if to_integer(h) is not None or shape_of(h) in (Shape.ISO, Shape.SLASH) or h.replace(".", "", 1).isdigit():
            datalike += 1
    return datalike > 0


# --- scoping ---------------------------------------------------------------------


def ticket_key(value: Any) -> Any:
    """One ticket id however it is stored (``3652948``, ``3652948.0``, ``'3652948'``)."""
    if value is None:
        return None
    number = to_integer(value)
    if number is not None:
        return number
    text = str(value).strip()
    return text or None


def _user_key(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip().casefold()
    return text or None


def on_or_after(value: Any, cutoff: date, order: Order) -> bool:
    """False only for a date that parses and lies before ``cutoff``: unparseable is kept."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return True
    try:
        return parse_date(value, order).date() >= cutoff
    except (DateParseError, ValueError, OverflowError):
        return True


# --- the database being written ----------------------------------------------------


def _temp_path(out: Path, pid: int | None = None) -> Path:
    return out.with_name(f".{out.name}.tmp-{os.getpid() if pid is None else pid}")


def _remove_stale_temps(out: Path) -> None:
    """Remove temp files of earlier runs whose process is gone (a killed run)."""
    for stale in out.parent.glob(f".{out.name}.tmp-*"):
        suffix = stale.name[len(f".{out.name}.tmp-") :]
        if not suffix.isdigit():
            continue  # a journal, removed with its database
        pid = int(suffix)
        if pid != os.getpid() and _alive(pid):
            continue
        log.info("removing %s left by an interrupted run", stale)
        for path in (stale, stale.with_name(stale.name + "-journal")):
            try:
                path.unlink()
            except FileNotFoundError:
                pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _check_paths(config: IngestConfig) -> None:
    inputs = {"--tickets": config.tickets, "--comments": config.comments, "--timesheets": config.timesheets}
    if config.roster is not None:
        inputs["--roster"] = config.roster
    for what, path in inputs.items():
        if str(path).lower().endswith(".csv") and what == "--roster":
            if not Path(path).is_file():
                raise InputFileError(f"--roster {path} does not exist", "give the roster as .xlsx or .csv")
            continue
        check_workbook_file(Path(path), what)
    out = Path(config.out)
    if out.is_dir():
        raise InputFileError(f"--out {out} is a folder", "give the path of the database file to write, e.g. raw.db")
    if not out.parent.exists():
        raise InputFileError(f"--out {out}: folder {out.parent} does not exist", "create the folder first, or write elsewhere")
    if out.exists() or out.is_symlink():
        for what, path in inputs.items():
            try:
                same = os.path.samefile(out, path)
            except OSError:
                same = False
            if same:
                raise InputFileError(
                    f"--out {out} is the same file as {what} {path}: ingest would destroy its input",
                    "give --out a new file name, e.g. raw.db",
                )
    seen: dict[tuple[int, int], str] = {}
    for what, path in inputs.items():
        st = os.stat(path)
        key = (st.st_dev, st.st_ino)
        if key in seen:
            raise InputFileError(
                f"{what} {path} is the same file as {seen[key]}",
                "give each export its own workbook",
            )
        seen[key] = what


class _Writer:
    """The temporary database: created with untyped columns, filled batch by batch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None)
        # The file is thrown away on any failure, so no journal is needed for safety.
        self.conn.execute("PRAGMA journal_mode = OFF")
        self.conn.execute("PRAGMA synchronous = OFF")
        self.conn.execute("BEGIN")

    def create(self, table: str, columns: Sequence[str]) -> None:
        # No declared type: no affinity, every value kept in the storage class given.
        cols = ", ".join(quote_sqlite(c) for c in columns)
        self.conn.execute(f"CREATE TABLE {quote_sqlite(table)} ({cols})")

    def insert(self, table: str, width: int, rows: list[tuple[Any, ...]]) -> None:
        marks = ", ".join("?" * width)
        try:
            self.conn.executemany(f"INSERT INTO {quote_sqlite(table)} VALUES ({marks})", rows)
        except sqlite3.OperationalError as exc:
            if "disk" in str(exc) or "full" in str(exc):
                raise ResourceExhausted(f"writing {self.path} failed: {exc}", "free disk space beside --out and run again") from None
            raise

    def finish(self, durable: bool = True) -> None:
        self.conn.execute("COMMIT")
        self.conn.close()
        if durable:
            with open(self.path, "rb+") as fh:
                os.fsync(fh.fileno())

    def copy_table(self, table: str, columns: Sequence[str], source: Path) -> None:
        """Append ``table`` of the database ``source`` (same columns) to this one's.

        ``INSERT INTO t SELECT * FROM w.t`` into an empty table of the same shape copies
        the records as they are stored (SQLite's transfer optimisation), in C.
        """
        self.create(table, columns)
        self.conn.execute("COMMIT")  # ATTACH is refused inside a transaction
        self.conn.execute("ATTACH DATABASE ? AS worker", (str(source),))
        try:
            self.conn.execute(f"INSERT INTO main.{quote_sqlite(table)} SELECT * FROM worker.{quote_sqlite(table)}")
        except sqlite3.OperationalError as exc:
            if "disk" in str(exc) or "full" in str(exc):
                raise ResourceExhausted(f"writing {self.path} failed: {exc}", "free disk space beside --out and run again") from None
            raise
        finally:
            self.conn.execute("DETACH DATABASE worker")
        self.conn.execute("BEGIN")

    def abandon(self) -> None:
        try:
            self.conn.close()
        except sqlite3.Error:
            pass


def _discard(temp: Path) -> None:
    for leftover in (temp, temp.with_name(temp.name + "-journal")):
        try:
            leftover.unlink()
        except FileNotFoundError:
            pass


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- loading one workbook ----------------------------------------------------------


@dataclass
class _Loaded:
    table: str
    file: Path
    sheet: SheetStream
    plan: ColumnPlan
    rows_imported: int = 0
    filter_applied: str | None = None
    notes: list[str] = field(default_factory=list)
    sha256: str = ""


def _load(
    writer: _Writer,
    table: str,
    path: Path,
    what: str,
    settings: Settings,
    batch_rows: int,
    keep: Callable[[tuple[Any, ...]], bool] | None = None,
    optional: Iterable[str] = (),
    rows_done: Any = None,
) -> _Loaded:
    """One workbook into ``table``; ``rows_done`` (a shared counter) replaces the bar in a worker."""
    sha = sha256_file(path)
    with open_first_sheet(path, what) as sheet:
        plan = plan_columns(table, sheet.header, path, what, settings, optional=optional)
        writer.create(table, plan.columns)
        width = len(plan.columns)
        if all(p >= 0 for p in plan.positions):
            pick = operator.itemgetter(*plan.positions) if width > 1 else (lambda row: (row[plan.positions[0]],))
        else:
            positions = plan.positions
            pick = lambda row: tuple(row[p] if p >= 0 else None for p in positions)  # noqa: E731
        # The sheet's columns are the table's, in its order (the usual case): rows as read.
        in_order = plan.positions == tuple(range(sheet.width))
        loaded = _Loaded(table, path, sheet, plan, sha256=sha)
        total = sheet.last_row - sheet.header_row_number if sheet.last_row else None
        bar = Progress(table, total=total if total and total > 0 else None) if rows_done is None else None
        with bar or _Counter(rows_done) as progress:
            for batch in sheet.batches(batch_rows):
                rows = batch if in_order else [pick(row) for row in batch]
                if keep is not None:
                    rows = [row for row in rows if keep(row)]
                writer.insert(table, width, rows)
                loaded.rows_imported += len(rows)
                progress.advance(len(batch))
    if plan.extras:
        loaded.notes.append("unknown extra columns kept: " + ", ".join(plan.extras))
    if sheet.dropped_columns:
        note = f"{sheet.dropped_columns} empty trailing column(s) with no header dropped"
        if sheet.dropped_values:
            note += f" ({sheet.dropped_values} value(s) under them lost)"
        loaded.notes.append(note)
    if sheet.blank_rows:
        loaded.notes.append(f"{sheet.blank_rows} blank row(s) skipped")
    log.info(
        "%s: %d rows read, %d imported from %s (sheet %r)%s",
        table,
        sheet.rows_read,
        loaded.rows_imported,
        path,
        sheet.sheet_name,
        "; " + "; ".join(loaded.notes) if loaded.notes else "",
    )
    return loaded


class _Counter:
    """Rows read by a worker, in a shared counter the parent's progress bar follows."""

    def __init__(self, shared: Any) -> None:
        self.shared = shared

    def advance(self, rows: int) -> None:
        self.shared.value += rows

    def __enter__(self) -> "_Counter":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _read_roster_csv(path: Path) -> tuple[list[str], list[tuple[Any, ...]]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise InputFileError(f"--roster {path} is empty", "give a roster with a header row: name, email, username")
        return header, [tuple(r) for r in reader]


def _load_roster(writer: _Writer, path: Path, settings: Settings, batch_rows: int) -> tuple[_Loaded | None, set[str]]:
    usernames = {_user_key(u) for u in settings.scoping.roster} - {None}
    if path is None:
        if usernames:
            writer.create(ROSTER_TABLE, ("name", "email", "username"))
            writer.insert(ROSTER_TABLE, 3, [(None, None, u) for u in sorted(settings.scoping.roster)])
        return None, usernames  # type: ignore[return-value]

    def collect(row: tuple[Any, ...]) -> None:
        key = _user_key(row[2])
        if key:
            usernames.add(key)

    if str(path).lower().endswith(".csv"):
        header, rows = _read_roster_csv(path)
        if not rows:
            raise InputFileError(f"--roster {path} has a header but no rows", "add the team's usernames, one per row")
        lowered = [h.strip().lower() for h in header]
        plan = plan_columns(ROSTER_TABLE, lowered, path, "--roster", settings, optional=("name", "email"))
        writer.create(ROSTER_TABLE, plan.columns)
        picked = [tuple(r[p] if 0 <= p < len(r) else None for p in plan.positions) for r in rows]
        for row in picked:
            collect(row)
        writer.insert(ROSTER_TABLE, len(plan.columns), picked)
        sheet = SheetStream(path=path, sheet_name="", header=tuple(header), header_row_number=1, rows_read=len(rows))
        loaded = _Loaded(ROSTER_TABLE, path, sheet, plan, rows_imported=len(picked), sha256=sha256_file(path))
        return loaded, usernames

    # Roster headers are compared case-insensitively: it is a hand-made sheet.
    loaded = _load_roster_xlsx(writer, path, settings, batch_rows, collect)
    return loaded, usernames


def _check_roster(path: Path | None, usernames: set[str]) -> None:
    if path is not None and not usernames:
        raise InputFileError(
            f"--roster {path} holds no username",
            "fill the username column of the roster (or drop --roster to keep every ticket)",
        )


def _load_roster_xlsx(writer: _Writer, path: Path, settings: Settings, batch_rows: int, collect: Callable) -> _Loaded:
    sha = sha256_file(path)
    with open_first_sheet(path, "--roster") as sheet:
        lowered = [h.strip().lower() if isinstance(h, str) else h for h in sheet.header]
        plan = plan_columns(ROSTER_TABLE, lowered, path, "--roster", settings, optional=("name", "email"))
        writer.create(ROSTER_TABLE, plan.columns)
        loaded = _Loaded(ROSTER_TABLE, path, sheet, plan, sha256=sha)
        for batch in sheet.batches(batch_rows):
            rows = [tuple(row[p] if p >= 0 else None for p in plan.positions) for row in batch]
            for row in rows:
                collect(row)
            writer.insert(ROSTER_TABLE, len(plan.columns), rows)
            loaded.rows_imported += len(rows)
    return loaded


def _date_range(conn: sqlite3.Connection, table: str, column: str, order: Order) -> str | None:
    low = high = None
    # Distinct values only (dates repeat): the same range. typeof() keeps 1 and 1.0 apart.
    cur = conn.execute(f"SELECT DISTINCT {quote_sqlite(column)}, typeof({quote_sqlite(column)}) FROM {quote_sqlite(table)}")
    while batch := cur.fetchmany(BATCH_ROWS):
        for value, _ in batch:
            if value is None or value == "":
                continue
            try:
                moment = parse_date(value, order)
            except (DateParseError, ValueError, OverflowError):
                continue
            if low is None or moment < low:
                low = moment
            if high is None or moment > high:
                high = moment
    if low is None or high is None:
        return None
    return f"{low:%Y-%m-%d %H:%M:%S} .. {high:%Y-%m-%d %H:%M:%S}"


def _write_metadata(writer: _Writer, loaded: list[_Loaded], imports: list[TableImport]) -> None:
    writer.create("import_metadata", IMPORT_METADATA_COLUMNS)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    rows = []
    for number, (item, result) in enumerate(zip(loaded, imports), start=1):
        source = "roster" if item.table == ROSTER_TABLE else item.table
        values = {
            "import_id": number,
            "source_type": source,
            "imported_at": now,
            "file_name": item.file.name,
            "file_sha256": item.sha256,
            "sheet_name": item.sheet.sheet_name or None,
            "rows_read": result.rows_read,
            "rows_imported": result.rows_imported,
            "date_range": result.date_range,
            "filter_applied": result.filter_applied,
            "notes": "; ".join(item.notes) or None,
        }
        rows.append(tuple(values[c] for c in IMPORT_METADATA_COLUMNS))
    writer.insert("import_metadata", len(IMPORT_METADATA_COLUMNS), rows)


# --- the timesheets worker --------------------------------------------------------


class _TimesheetsWorker:
    """Reads the timesheets workbook into a database of its own, in a forked process.

    The three workbooks are independent (scoping reads only comments and tickets), so
    on two cores the timesheets, the biggest sheet by cells, are parsed while this
    process reads the comments and tickets; the parent then copies the worker's table
    in (``_Writer.copy_table``). The worker's file is a temporary of the same kind as
    the parent's (``.<out>.tmp-<worker pid>``): removed on any failure, and by the next
    run if both processes were killed. Errors reach the parent, which raises them only
    once its own workbooks have succeeded: the first bad workbook in the order comments,
    tickets, timesheets is the one reported, as when one process reads all three.
    """

    def __init__(self, config: IngestConfig, order: Order, keep_position: int | None) -> None:
        ctx = multiprocessing.get_context("fork")
        self.started = time.monotonic()
        self.rows_done = ctx.Value("q", 0, lock=False)
        self._receiver, sender = ctx.Pipe(duplex=False)
        self._process = ctx.Process(
            target=self._run, args=(config, order, keep_position, sender), name="ingest-timesheets", daemon=True
        )
        self._process.start()
        sender.close()
        self.path = _temp_path(Path(config.out), self._process.pid)
        self.peak_rss_mb = 0.0

    def _run(self, config: IngestConfig, order: Order, keep_position: int | None, sender: Any) -> None:
        writer = None
        try:
            writer = _Writer(_temp_path(Path(config.out)))
            cutoff = config.settings.scoping.cutoff
            keep = None
            if cutoff is not None and keep_position is not None:
                keep = lambda row: on_or_after(row[keep_position], cutoff, order)  # noqa: E731
            loaded = _load(
                writer, "timesheets", Path(config.timesheets), "--timesheets", config.settings, config.batch_rows,
                keep=keep, rows_done=self.rows_done,
            )
            contract = contract_for("timesheets")
            dates = date_columns(contract) if contract is not None else []
            date_range = _date_range(writer.conn, "timesheets", dates[0], order) if dates else None
            writer.finish(durable=False)  # the parent reads it; it is never the result
            sender.send(("ok", loaded, date_range, peak_rss_mb()))
        except BaseException as exc:  # handed to the parent, which raises it
            if writer is not None:
                writer.abandon()
            _discard(_temp_path(Path(config.out)))  # the parent may be gone: no file left behind
            try:
                sender.send(("error", exc))
            except Exception:  # an exception that cannot be pickled: its text
                sender.send(("error", RuntimeError(f"reading the timesheets failed: {type(exc).__name__}: {exc}")))
            os._exit(1)

    def result(self) -> tuple[_Loaded, str | None]:
        """Wait for the worker (its rows on the progress bar); raise its error if it failed."""
        with Progress("timesheets") as progress:
            progress.started = self.started  # the rate since the worker began, not since now
            while not self._receiver.poll(0.25):
                if not self._process.is_alive() and not self._receiver.poll(0):
                    raise RuntimeError(f"the timesheets worker (pid {self._process.pid}) died with exit code {self._process.exitcode}")
                progress.advance(self.rows_done.value - progress.done)
            message = self._receiver.recv()
            progress.advance(self.rows_done.value - progress.done)
        self._process.join()
        if message[0] != "ok":
            raise message[1]
        _, loaded, date_range, self.peak_rss_mb = message
        return loaded, date_range

    def stop(self) -> None:
        """End the worker (if still running) and remove its file."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()
        self._receiver.close()
        _discard(self.path)


# --- the stage ---------------------------------------------------------------------


def run(config: IngestConfig) -> IngestResult:
    """Load the three workbooks (and the roster) into ``config.out``, atomically.

    Raises ``InputFileError`` for unusable input (nothing is written at ``out``).
    """
    started = time.monotonic()
    settings = config.settings
    scoping = settings.scoping
    order = Order(settings.date_locale)
    out = Path(config.out)
    roster_path = config.roster if config.roster is not None else (
        Path(scoping.roster_file) if scoping.roster_file else None
    )
    config = IngestConfig(
        config.tickets, config.comments, config.timesheets, out, settings, roster_path, config.batch_rows, config.workers
    )
    worker: _TimesheetsWorker | None = None
    with stage_trace("ingest") as trace:
        _check_paths(config)
        _remove_stale_temps(out)
        temp = _temp_path(out)
        try:
            writer = _Writer(temp)
        except sqlite3.Error as exc:
            _discard(temp)
            raise InputFileError(f"--out {out}: cannot write a database in {out.parent} ({exc})", "check that the folder is writable") from None
        try:
            if config.workers > 1 and "fork" in multiprocessing.get_all_start_methods():
                # The worker never uses the inherited connection (it opens its own file
                # and leaves by os._exit, so nothing of the parent's is closed or flushed).
                worker = _TimesheetsWorker(config, order, _timesheet_date_position())
            imports, loaded = _ingest(writer, config, order, worker)
            trace.rows = sum(i.rows_imported for i in imports)
            writer.finish()
            os.replace(temp, out)
            _fsync_dir(out.parent)
        except OSError as exc:
            writer.abandon()
            _discard(temp)
            if worker is not None:
                worker.stop()
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise ResourceExhausted(f"writing {out} failed: {exc.strerror}", "free disk space beside --out and run again") from None
            raise
        except BaseException:
            writer.abandon()
            _discard(temp)
            if worker is not None:
                worker.stop()
            raise
        if worker is not None:
            worker.stop()
        trace.fields.update(out=str(out), tables={i.table: i.rows_imported for i in imports})
    # Both processes at their peaks at once: an upper bound of the memory ingest needed.
    peak = peak_rss_mb() + (worker.peak_rss_mb if worker is not None else 0.0)
    return IngestResult(out=out, tables=tuple(imports), seconds=round(time.monotonic() - started, 3), peak_rss_mb=round(peak, 1))


def _timesheet_date_position() -> int:
    contract = contract_for("timesheets")
    assert contract is not None
    return list(contract.columns).index(date_columns(contract)[0])


def _ingest(
    writer: _Writer, config: IngestConfig, order: Order, worker: _TimesheetsWorker | None = None
) -> tuple[list[TableImport], list[_Loaded]]:
    settings = config.settings
    cutoff = settings.scoping.cutoff
    loaded: list[_Loaded] = []

    roster_loaded, roster = _load_roster(writer, config.roster, settings, config.batch_rows)  # type: ignore[arg-type]
    _check_roster(config.roster, roster)
    if roster_loaded is not None:
        loaded.append(roster_loaded)
    scoped_by_roster = bool(roster) or config.roster is not None

    comments_contract = contract_for("comments")
    tickets_contract = contract_for("tickets")
    timesheets_contract = contract_for("timesheets")
    assert comments_contract is not None and tickets_contract is not None and timesheets_contract is not None
    comment_ticket = facts(comments_contract).references[0].column
    ticket_id = facts(tickets_contract).key[0]
    comment_date = date_columns(comments_contract)[0]
    timesheet_date = date_columns(timesheets_contract)[0]
    comment_columns = list(comments_contract.columns)
    timesheet_columns = list(timesheets_contract.columns)

    def date_filter(position: int) -> Callable[[tuple[Any, ...]], bool] | None:
        if cutoff is None:
            return None
        return lambda row: on_or_after(row[position], cutoff, order)

    # Comments first: the roster keeps the tickets its members commented on.
    kept_tickets: set[Any] = set()
    keep_comment = date_filter(comment_columns.index(comment_date))

    comments = _load(
        writer,
        "comments",
        Path(config.comments),
        "--comments",
        settings,
        config.batch_rows,
        keep=keep_comment,
    )
    filters: dict[str, list[str]] = {"comments": [], "tickets": [], "timesheets": []}
    if cutoff is not None:
        filters["comments"].append(f"{comment_date} on or after {cutoff.isoformat()} (unparseable dates kept)")
        filters["timesheets"].append(f"{timesheet_date} on or after {cutoff.isoformat()} (unparseable dates kept)")
    conn = writer.conn
    if scoped_by_roster:
        # Authors are read from the rows kept (after the cut-off), straight from the table.
        cur = conn.execute(
            f"SELECT {quote_sqlite(comment_ticket)}, {quote_sqlite(AUTHOR_COLUMN)} FROM comments"
        )
        while batch := cur.fetchmany(BATCH_ROWS):
            for ticket, author in batch:
                if _user_key(author) in roster:
                    kept_tickets.add(ticket_key(ticket))
        kept_tickets.discard(None)
        conn.create_function("servicedesk_kept_ticket", 1, lambda v: ticket_key(v) in kept_tickets, deterministic=True)
        deleted = conn.execute("DELETE FROM comments WHERE NOT servicedesk_kept_ticket(" + quote_sqlite(comment_ticket) + ")").rowcount
        comments.rows_imported -= deleted
        filters["comments"].append(f"comments of tickets a roster member commented on ({len(roster)} usernames)")
        filters["tickets"].append(f"tickets a roster member commented on ({len(roster)} usernames)")

    keep_ticket = None
    if scoped_by_roster:
        tickets_columns = list(tickets_contract.columns)
        id_pos = tickets_columns.index(ticket_id)
        keep_ticket = lambda row: ticket_key(row[id_pos]) in kept_tickets  # noqa: E731
    tickets = _load(writer, "tickets", Path(config.tickets), "--tickets", settings, config.batch_rows, keep=keep_ticket)
    ranges: dict[str, str | None] = {}
    if worker is not None:
        # While the worker may still be reading: the date ranges of this process's tables.
        for item in (tickets, comments):
            ranges[item.table] = _date_range(conn, item.table, date_columns(contract_for(item.table))[0], order)  # type: ignore[arg-type]
        timesheets, ranges["timesheets"] = worker.result()
        writer.copy_table("timesheets", timesheets.plan.columns, worker.path)
    else:
        timesheets = _load(
            writer,
            "timesheets",
            Path(config.timesheets),
            "--timesheets",
            settings,
            config.batch_rows,
            keep=date_filter(timesheet_columns.index(timesheet_date)),
        )
    loaded.extend([tickets, comments, timesheets])

    imports: list[TableImport] = []
    for item in loaded:
        contract = contract_for(item.table)
        dates = date_columns(contract) if contract is not None and item.table not in ranges else []
        item.filter_applied = "; ".join(filters.get(item.table, [])) or None
        imports.append(
            TableImport(
                table=item.table,
                file=item.file,
                sheet_name=item.sheet.sheet_name,
                rows_read=item.sheet.rows_read,
                rows_imported=item.rows_imported,
                columns=item.plan.columns,
                extra_columns=item.plan.extras,
                dropped_columns=item.sheet.dropped_columns,
                dropped_values=item.sheet.dropped_values,
                blank_rows=item.sheet.blank_rows,
                date_range=_date_range(conn, item.table, dates[0], order) if dates else ranges.get(item.table),
                filter_applied=item.filter_applied,
                sha256=item.sha256,
            )
        )
    _write_metadata(writer, loaded, imports)
    return imports, loaded


# --- command line ------------------------------------------------------------------


def _cutoff(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: write YYYY-MM-DD, e.g. 2025-07-01") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tickets", type=Path, required=True, metavar="XLSX", help="the tickets export (first sheet read)")
    parser.add_argument("--comments", type=Path, required=True, metavar="XLSX", help="the comments export (CT-* or TKTCT-* headers)")
    parser.add_argument("--timesheets", type=Path, required=True, metavar="XLSX", help="the timesheets export")
    parser.add_argument("--out", type=Path, required=True, metavar="DB", help="the SQLite file to write (replaced only on success)")
    parser.add_argument("--roster", type=Path, metavar="XLSX", help="team roster (name, email, username): keep tickets its members commented on")
    parser.add_argument("--cutoff", type=_cutoff, metavar="YYYY-MM-DD", help="drop comments and timesheets dated before this day")


def command(args: argparse.Namespace, settings: Settings) -> int:
    if args.cutoff is not None:
        settings = settings.with_overrides(**{"scoping.cutoff": args.cutoff})
    result = run(
        IngestConfig(
            tickets=args.tickets,
            comments=args.comments,
            timesheets=args.timesheets,
            out=args.out,
            settings=settings,
            roster=args.roster,
        )
    )
    for item in result.tables:
        line = f"{item.table:<18} {item.rows_imported:>10,} rows imported of {item.rows_read:,} read"
        if item.extra_columns:
            line += f"; extra columns kept: {', '.join(item.extra_columns)}"
        if item.dropped_columns:
            line += f"; {item.dropped_columns} empty trailing column(s) dropped"
        print(line)
    print(f"wrote {result.out} in {result.seconds:.1f} s (peak memory {result.peak_rss_mb:.0f} MB)")
    return 0

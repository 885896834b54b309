"""Read access to a database being checked: SQLite files now, PostgreSQL schemas too.

The profiler, the contract executor and the quality scorer talk to a ``Source`` only,
so the same code judges the raw file, the cleaned file and the migrated schema, and
their scores compare. Whole-table questions (duplicates, orphans, storage classes) are
pushed down to SQL; values come out in batches, never a whole table at once.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import operator
import sqlite3
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

from pipeline.errors import InputFileError

SQLITE_MAGIC = b"SQLite format 3\x00"

# The cleaner's history tables (see pipeline.clean): kept in its output file, but not
# data to be profiled or gated. Their old values would read as defects.
BOOKKEEPING_TABLES = ("_audit", "_quarantine")

# SQLite text_factory for exports that may hold invalid UTF-8: decode leniently, in C
# (str with errors=), not through a Python lambda: it runs once per text cell.
LENIENT_TEXT = functools.partial(str, encoding="utf-8", errors="replace")


def quote_sqlite(name: str) -> str:
    """Quote an identifier for SQLite (headers come from user files)."""
    return '"' + name.replace('"', '""') + '"'


class Source(Protocol):
    """What a checker may ask of a database."""

    label: str

    def tables(self) -> list[str]: ...

    def columns(self, table: str) -> list[tuple[str, str]]:
        """(name, declared type) per column, in table order."""

    def row_count(self, table: str) -> int: ...

    def iter_batches(
        self, table: str, columns: Sequence[str], batch_rows: int = 50_000, *, limit: int | None = None
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Rows of the named columns, in a stable order, ``batch_rows`` at a time."""

    def duplicate_keys(self, table: str, key: Sequence[str], limit: int = 10) -> tuple[int, list[tuple]]:
        """(rows repeating a key already seen: rows minus distinct keys, a sample of such keys)."""

    def orphans(
        self,
        table: str,
        column: str,
        target_table: str,
        target_column: str,
        ignore: Sequence[Any] = (),
        limit: int = 10,
    ) -> tuple[int, int, list[Any]]:
        """(orphan rows, rows with a reference, a sample of orphan values)."""

    def close(self) -> None: ...


def rising_integers(keys: Sequence[Any], last: Any = None) -> bool:
    """Integers (no bool, no NULL), each above the one before, the first above ``last``:
    a key column read so in rowid order repeats no key (``duplicate_keys`` finds none)."""
    if not keys or set(map(type, keys)) != {int}:
        return not keys
    if last is not None and not keys[0] > last:
        return False
    return all(map(operator.lt, keys, itertools.islice(keys, 1, None)))


def sha256_file(path: str | Path, chunk: int = 1 << 20, digest: Any = None) -> str:
    """The file's SHA-256 (hex). ``digest``: a new ``hashlib.sha256()`` made by the
    caller, for a thread that must take no lock a forked child could need: making one
    fetches the algorithm under OpenSSL's locks, feeding it and reading it take none."""
    digest = hashlib.sha256() if digest is None else digest
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def check_sqlite_file(path: str | Path, what: str = "--source") -> Path:
    """Fail with a remedy unless ``path`` is an existing, readable SQLite database."""
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{what} {p} does not exist", "give the path of a SQLite database made by `servicedesk-etl ingest`")
    if p.is_dir():
        raise InputFileError(f"{what} {p} is a folder, not a database file", "give the path of the .db file")
    try:
        with open(p, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise InputFileError(f"{what} {p} cannot be read: {exc.strerror}", "check the file's permissions") from None
    if head != SQLITE_MAGIC:
        raise InputFileError(
            f"{what} {p} is not a SQLite database",
            "give the .db file written by `servicedesk-etl ingest` (workbooks go to `ingest` first)",
        )
    return p


class SQLiteSource:
    """A SQLite file opened read-only: the source is never written."""

    def __init__(self, path: str | Path) -> None:
        self.path = check_sqlite_file(path)
        self.label = str(self.path)
        uri = f"file:{self.path.resolve().as_posix()}?mode=ro"
        try:
            self.conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            raise InputFileError(f"--source {self.path} cannot be opened as SQLite: {exc}", "check that the file is not truncated or still being written") from None
        self.conn.text_factory = LENIENT_TEXT
        self._strict: sqlite3.Connection | None = None  # ``iter_batches``' own connection

    def tables(self) -> list[str]:
        """The data tables: SQLite's own and the cleaner's bookkeeping tables left out."""
        rows = self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall()
        return [r[0] for r in rows if r[0] not in BOOKKEEPING_TABLES]

    def has_table(self, name: str) -> bool:
        """Whether any table of that name exists, bookkeeping tables included."""
        row = self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
        return row is not None

    def columns(self, table: str) -> list[tuple[str, str]]:
        rows = self.conn.execute(f"PRAGMA table_info({quote_sqlite(table)})").fetchall()
        return [(r[1], r[2] or "") for r in rows]

    def row_count(self, table: str) -> int:
        return self.conn.execute(f"SELECT count(*) FROM {quote_sqlite(table)}").fetchone()[0]

    def non_null_counts(
        self, table: str, columns: Sequence[str], references: Sequence[tuple[str, str, str, Sequence[Any]]] = ()
    ) -> tuple[int, dict[str, int], list[tuple[int, int]]]:
        """(rows, non-NULL values of each column, (orphan rows, rows with a reference) of
        each ``(column, target_table, target_column, ignore)`` as ``orphans`` counts them),
        all in one scan of the table, as cheap as ``row_count``.

        Optional in the ``Source`` protocol: the profiler then skips reading columns that
        hold NULL only, and asks ``orphan_sample`` only where there are orphans."""
        parts = ["count(*)"] + [f"count({quote_sqlite(c)})" for c in columns]
        params: list[Any] = []
        for reference in references:
            where, orphan, args = self._reference_sql(*reference)
            # ``orphans``' WHERE as a CASE: the same rows counted in this one scan.
            parts.append(f"coalesce(sum(CASE WHEN {where} THEN 1 ELSE 0 END), 0)")
            parts.append(f"coalesce(sum(CASE WHEN {where} AND {orphan} THEN 1 ELSE 0 END), 0)")
            params += args + args
        row = self.conn.execute(f"SELECT {', '.join(parts)} FROM {quote_sqlite(table)}", params).fetchone()
        n = 1 + len(columns)
        refs = row[n:]
        return row[0], dict(zip(columns, row[1:n])), [(int(refs[i + 1]), int(refs[i])) for i in range(0, len(refs), 2)]

    @staticmethod
    def _reference_sql(column: str, target_table: str, target_column: str, ignore: Sequence[Any]) -> tuple[str, str, list[Any]]:
        """(the rows ``orphans`` judges: a reference, not one of the ignored values; the
        condition of an orphan among them; the parameters of the first).

        NOT IN over an uncorrelated subquery: SQLite builds one ephemeral index of the
        targets (n log m). The correlated NOT EXISTS form scanned the target table once
        per row (n x m: 95 s for 39K timesheets against 3K tickets)."""
        c, tc = quote_sqlite(column), quote_sqlite(target_column)
        where = f"{c} IS NOT NULL"
        if ignore:
            where += f" AND {c} NOT IN ({', '.join('?' for _ in ignore)})"
        orphan = f"{c} NOT IN (SELECT {tc} FROM {quote_sqlite(target_table)} WHERE {tc} IS NOT NULL)"
        return where, orphan, list(ignore)

    def iter_batches(
        self, table: str, columns: Sequence[str], batch_rows: int = 50_000, *, limit: int | None = None
    ) -> Iterator[list[tuple[Any, ...]]]:
        yield from self._batches(table, [quote_sqlite(c) for c in columns], [], batch_rows, limit)

    def iter_batches_with_orphans(
        self, table: str, columns: Sequence[str], references: Sequence[tuple[str, str, str, Sequence[Any]]], batch_rows: int = 50_000
    ) -> Iterator[list[tuple[Any, ...]]]:
        """``iter_batches``' rows, each followed by one value per ``(column, target_table,
        target_column, ignore)`` reference: NULL where ``orphans`` does not count the row
        (no reference, or an ignored value), 1 for an orphan, 0 for a reference that
        resolves. Per reference, the non-NULL values are ``orphans``' total and the ones
        its orphan count: the stream's one scan answers it (``orphans``' WHERE and NOT IN
        as a CASE, as ``non_null_counts`` counts them).

        Optional in the ``Source`` protocol: the contract executor then asks
        ``orphan_sample`` only where there are orphans."""
        parts = [quote_sqlite(c) for c in columns]
        params: list[Any] = []
        for reference in references:
            where, orphan, args = self._reference_sql(*reference)
            parts.append(f"CASE WHEN {where} THEN {orphan} END")
            params += args
        yield from self._batches(table, parts, params, batch_rows, None)

    def _batches(
        self, table: str, parts: list[str], params: list[Any], batch_rows: int, limit: int | None
    ) -> Iterator[list[tuple[Any, ...]]]:
        cols = ", ".join(parts) or "NULL"
        sql = f"SELECT {cols} FROM {quote_sqlite(table)} ORDER BY rowid LIMIT ? OFFSET ?"
        # Text is decoded by sqlite3's own strict UTF-8 decoder on a connection of its
        # own (no Python call per text cell, as ``LENIENT_TEXT`` costs: ~0.2 s per 100 MB
        # of comments). Text that is not valid UTF-8 stops that read ("Could not decode
        # to UTF-8 column ..."); the rows from the failed batch on are then read again
        # through the lenient connection, so the values are the same either way.
        conn = self._strict_connection()
        delivered = 0
        while True:
            cur = conn.execute(sql, (*params, -1 if limit is None else limit - delivered, delivered))
            try:
                while batch := cur.fetchmany(batch_rows):
                    delivered += len(batch)
                    yield batch
                return
            except sqlite3.OperationalError as exc:
                if conn is self.conn or "decode" not in str(exc):
                    raise
                conn = self.conn

    def _strict_connection(self) -> sqlite3.Connection:
        if self._strict is None:
            uri = f"file:{self.path.resolve().as_posix()}?mode=ro"
            self._strict = sqlite3.connect(uri, uri=True, check_same_thread=False)
        return self._strict

    def row_id_column(self, table: str) -> str | None:
        """The name under which ``iter_batches`` returns SQLite's rowid (the locator of a
        row in a table without a key), or None for a WITHOUT ROWID table.

        Optional in the ``Source`` protocol: a source without it locates rows by their
        position in ``iter_batches`` order (1-based)."""
        taken = {name.lower() for name, _ in self.columns(table)}
        for alias in ("rowid", "_rowid_", "oid"):
            if alias in taken:
                continue
            try:
                self.conn.execute(f"SELECT {alias} FROM {quote_sqlite(table)} LIMIT 0")
            except sqlite3.OperationalError:
                return None
            return alias
        return None

    def storage_classes(self, table: str, column: str) -> dict[str, int]:
        """SQLite storage classes present in a column (``typeof``), with counts."""
        q = quote_sqlite(column)
        rows = self.conn.execute(f"SELECT typeof({q}), count(*) FROM {quote_sqlite(table)} GROUP BY 1").fetchall()
        return {r[0]: r[1] for r in rows}

    def duplicate_keys(self, table: str, key: Sequence[str], limit: int = 10) -> tuple[int, list[tuple]]:
        cols = ", ".join(quote_sqlite(c) for c in key)
        not_null = " AND ".join(f"{quote_sqlite(c)} IS NOT NULL" for c in key)
        sql = (
            f"SELECT {cols}, count(*) AS n FROM {quote_sqlite(table)} WHERE {not_null} "
            f"GROUP BY {cols} HAVING count(*) > 1"
        )
        total = self.conn.execute(f"SELECT coalesce(sum(n - 1), 0) FROM ({sql})").fetchone()[0]
        if not total:  # each query is a full scan: no second one for a clean table
            return 0, []
        sample = self.conn.execute(f"{sql} ORDER BY n DESC LIMIT ?", (limit,)).fetchall()
        return int(total), [tuple(r[:-1]) for r in sample]

    def orphans(
        self,
        table: str,
        column: str,
        target_table: str,
        target_column: str,
        ignore: Sequence[Any] = (),
        limit: int = 10,
    ) -> tuple[int, int, list[Any]]:
        where, orphan, params = self._reference_sql(column, target_table, target_column, ignore)
        # Total and orphans in one scan; the sample only when there are orphans.
        total, count = self.conn.execute(
            f"SELECT count(*), coalesce(sum({orphan}), 0) FROM {quote_sqlite(table)} WHERE {where}", params
        ).fetchone()
        if not count:
            return 0, int(total), []
        return int(count), int(total), self.orphan_sample(table, column, target_table, target_column, ignore, limit)

    def orphan_sample(
        self, table: str, column: str, target_table: str, target_column: str, ignore: Sequence[Any] = (), limit: int = 10
    ) -> list[Any]:
        """The sample of orphan values ``orphans`` returns (distinct, up to ``limit``)."""
        where, orphan, params = self._reference_sql(column, target_table, target_column, ignore)
        sample = self.conn.execute(
            f"SELECT DISTINCT {quote_sqlite(column)} FROM {quote_sqlite(table)} WHERE {where} AND {orphan} LIMIT ?", [*params, limit]
        ).fetchall()
        return [r[0] for r in sample]

    def close(self) -> None:
        if self._strict is not None:
            self._strict.close()
            self._strict = None
        self.conn.close()

    def __enter__(self) -> "SQLiteSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Read access to one PostgreSQL schema, behind the same ``Source`` protocol as SQLite.

The contract executor, the profiler and the quality scorer judge a migrated schema
with the very code that judged the SQLite file, so their results compare. Values come
out typed (``datetime``, ``Decimal``, ``int``) through a server-side (named) cursor, a
batch at a time, in primary-key order; whole-table questions run as SQL on the server.
Every identifier goes through ``psycopg.sql.Identifier``: headers come from user files.
"""

from __future__ import annotations

import itertools
import queue
import threading
from typing import Any, Iterator, Sequence

from psycopg import sql

from pipeline.errors import ConfigError
from pipeline.pgserver import connect, redact

# format_type() spellings -> the short names the contracts use (contracts.spec.KINDS).
_SHORT_TYPES = {
    "timestamp without time zone": "timestamp",
    "timestamp with time zone": "timestamptz",
    "character varying": "varchar",
}

_cursor_ids = itertools.count(1)
# Types whose equal values may be spelt differently (numeric 1.0 = 1.00, float -0 = 0).
_SPELT_TYPES = frozenset({"numeric", "real", "double precision"})


def short_type(formatted: str) -> str:
    """``timestamp without time zone`` -> ``timestamp``; other names unchanged."""
    return _SHORT_TYPES.get(formatted, formatted)


class PostgresSource:
    """One schema of a PostgreSQL database, read-only.

    ``columns`` reports the PostgreSQL type of each column (``bigint``, ``timestamp``,
    ``numeric``...); ``storage_classes`` reports that type with its non-NULL count (and
    ``null`` with the NULL count), the PostgreSQL counterpart of SQLite's ``typeof``.
    """

    def __init__(self, conninfo: str, schema: str) -> None:
        self.conninfo = conninfo
        self.schema = schema
        self.label = f"{redact(conninfo)} schema {schema}"
        self.conn = connect(conninfo, autocommit=True)
        self.conn.read_only = True
        found = self.conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
        if found is None:
            self.conn.close()
            raise ConfigError(
                f"schema {schema!r} does not exist in {redact(conninfo)}",
                "run `servicedesk-etl migrate` first, or pass the --schema that holds the tables",
            )
        self._columns: dict[str, list[tuple[str, str]]] = {}
        self._grouping = False  # a value_counts cursor is open on self.conn

    def _table(self, table: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(table))

    def tables(self) -> list[str]:
        rows = self.conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY c.relname",
            (self.schema,),
        ).fetchall()
        return [r[0] for r in rows]

    def columns(self, table: str) -> list[tuple[str, str]]:
        if table not in self._columns:
            rows = self.conn.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod) "
                "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped "
                "ORDER BY a.attnum",
                (self.schema, table),
            ).fetchall()
            self._columns[table] = [(r[0], short_type(r[1])) for r in rows]
        return list(self._columns[table])

    def primary_key(self, table: str) -> list[str]:
        """Columns of the table's primary key, in key order (empty when it has none)."""
        rows = self.conn.execute(
            "SELECT a.attname FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, pos) ON true "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
            "WHERE n.nspname = %s AND c.relname = %s AND i.indisprimary ORDER BY k.pos",
            (self.schema, table),
        ).fetchall()
        return [r[0] for r in rows]

    def row_count(self, table: str) -> int:
        return self.conn.execute(sql.SQL("SELECT count(*) FROM {}").format(self._table(table))).fetchone()[0]

    def _order_by(self, table: str) -> sql.Composable:
        key = self.primary_key(table)
        if key:
            return sql.SQL(", ").join(sql.Identifier(c) for c in key)
        # No key: physical order is stable for a table nobody writes to while we read.
        return sql.SQL("ctid")

    def iter_batches(
        self, table: str, columns: Sequence[str], batch_rows: int = 50_000, *, limit: int | None = None
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Rows of the named columns in primary-key order, through a server-side cursor.

        Each call reads on its own connection inside one read-only transaction, so two
        iterations may interleave and the snapshot is consistent for the whole table.
        """
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns) if columns else sql.SQL("NULL")
        query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(cols, self._table(table), self._order_by(table))
        params: tuple[Any, ...] = ()
        if limit is not None:
            query = query + sql.SQL(" LIMIT %s")
            params = (limit,)
        if limit is not None and limit <= batch_rows:
            return self._fetch_batches(query, params, batch_rows)  # one batch: nothing to read ahead
        return _read_ahead(self._fetch_batches(query, params, batch_rows))

    def _fetch_batches(self, query: sql.Composable, params: tuple[Any, ...], batch_rows: int) -> Iterator[list[tuple[Any, ...]]]:
        conn = connect(self.conninfo)
        try:
            conn.read_only = True
            with conn.cursor(name=f"sd_read_{next(_cursor_ids)}") as cur:
                cur.itersize = batch_rows
                cur.execute(query, params)
                while batch := cur.fetchmany(batch_rows):
                    yield batch
            conn.rollback()
        finally:
            conn.close()

    def value_counts(
        self, table: str, column: str, batch_rows: int = 50_000
    ) -> Iterator[list[tuple[Any, str | None, int]]]:
        """``(value, text, rows)`` for each distinct value of a column (NULL included),
        a batch at a time, through a server-side cursor: what a check that judges each
        value on its own needs, without sending every row. ``text`` is the value as
        PostgreSQL spells it (``None`` for NULL), the handle ``rows_with_values`` takes;
        values that compare equal but are spelt differently (numeric ``1.0`` and
        ``1.00``) count separately, as a row-by-row reader would tell them apart.
        """
        c = sql.Identifier(column)
        # Types whose equal values can be spelt differently are grouped by spelling too.
        spelt = dict(self.columns(table)).get(column) in _SPELT_TYPES
        group = sql.SQL("{c}, {c}::text" if spelt else "{c}").format(c=c)
        query = sql.SQL("SELECT {c}, {c}::text, count(*) FROM {t} GROUP BY {g}").format(c=c, t=self._table(table), g=group)
        if self._grouping:
            # Another grouping is being read on the shared connection: use a fresh one.
            conn = connect(self.conninfo)
            try:
                conn.read_only = True
                yield from self._fetch_counts(conn, query, batch_rows)
                conn.rollback()
            finally:
                conn.close()
            return
        # One query per column: the source's own connection saves a backend start each
        # (~6 ms and the server's CPU); the cursor lives in a transaction of its own.
        self._grouping = True
        try:
            with self.conn.transaction():
                yield from self._fetch_counts(self.conn, query, batch_rows)
        finally:
            self._grouping = False

    @staticmethod
    def _fetch_counts(conn: Any, query: sql.Composable, batch_rows: int) -> Iterator[list[tuple[Any, str | None, int]]]:
        with conn.cursor(name=f"sd_values_{next(_cursor_ids)}") as cur:
            cur.itersize = batch_rows
            cur.execute(query)
            while batch := cur.fetchmany(batch_rows):
                yield batch

    def distinct_estimate(self, table: str, column: str) -> float | None:
        """The planner's estimate of a column's distinct values (``pg_stats``), or None
        before the table was analysed. A hint for choosing how to read, never a result."""
        row = self.conn.execute(
            "SELECT s.n_distinct, c.reltuples FROM pg_stats s "
            "JOIN pg_namespace n ON n.nspname = s.schemaname "
            "JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename "
            "WHERE s.schemaname = %s AND s.tablename = %s AND s.attname = %s",
            (self.schema, table, column),
        ).fetchone()
        if row is None or row[0] is None:
            return None
        n_distinct, reltuples = float(row[0]), float(row[1])
        return n_distinct if n_distinct >= 0 else -n_distinct * max(reltuples, 0.0)

    def rows_with_values(
        self, table: str, columns: Sequence[str], column: str, texts: Sequence[str], *, null: bool, limit: int
    ) -> list[tuple[Any, ...]]:
        """The first ``limit`` rows (in ``iter_batches`` order) whose ``column`` is spelt
        as one of ``texts`` (see ``value_counts``), or is NULL when ``null``."""
        c = sql.Identifier(column)
        where = sql.SQL("{}::text = ANY(%s::text[])").format(c)
        if null:
            where = sql.SQL("({} OR {} IS NULL)").format(where, c)
        query = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT %s").format(
            sql.SQL(", ").join(sql.Identifier(x) for x in columns), self._table(table), where, self._order_by(table)
        )
        return self.conn.execute(query, (list(texts), limit)).fetchall()

    def storage_classes(self, table: str, column: str) -> dict[str, int]:
        """``{postgres type: non-NULL rows, 'null': NULL rows}``, keys present only when > 0."""
        types = dict(self.columns(table))
        if column not in types:
            return {}
        total, filled = self.conn.execute(
            sql.SQL("SELECT count(*), count({}) FROM {}").format(sql.Identifier(column), self._table(table))
        ).fetchone()
        out: dict[str, int] = {}
        if filled:
            out[types[column]] = int(filled)
        if total - filled:
            out["null"] = int(total - filled)
        return out

    def _unique_on(self, table: str, columns: Sequence[str]) -> bool:
        """Whether a valid unique index (the primary key, a UNIQUE constraint) of the table
        covers only some of ``columns``: rows whose ``columns`` are all filled then never
        repeat them."""
        rows = self.conn.execute(
            "SELECT array_agg(a.attname) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN LATERAL unnest(i.indkey) AS k(attnum) ON true "
            "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
            "WHERE n.nspname = %s AND c.relname = %s AND i.indisunique AND i.indisvalid AND i.indpred IS NULL "
            "GROUP BY i.indexrelid HAVING bool_and(k.attnum > 0)",
            (self.schema, table),
        ).fetchall()
        return any(names and set(names) <= set(columns) for (names,) in rows)

    def duplicate_keys(self, table: str, key: Sequence[str], limit: int = 10) -> tuple[int, list[tuple]]:
        if self._unique_on(table, key):
            return 0, []  # the server keeps them unique: no GROUP BY scan
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in key)
        not_null = sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(sql.Identifier(c)) for c in key)
        groups = sql.SQL("SELECT {cols}, count(*) AS n FROM {t} WHERE {nn} GROUP BY {cols} HAVING count(*) > 1").format(
            cols=cols, t=self._table(table), nn=not_null
        )
        sample = self.conn.execute(sql.SQL("{} ORDER BY n DESC LIMIT %s").format(groups), (limit,)).fetchall()
        if len(sample) < limit:  # every repeated key is in the sample: no second scan
            total = sum(r[-1] - 1 for r in sample)
        else:
            total = self.conn.execute(sql.SQL("SELECT coalesce(sum(n - 1), 0) FROM ({}) AS d").format(groups)).fetchone()[0]
        return int(total), [tuple(r[:-1]) for r in sample]

    def non_null_counts(
        self, table: str, columns: Sequence[str], references: Sequence[tuple[str, str, str, Sequence[Any]]] = ()
    ) -> tuple[int, dict[str, int], list[tuple[int, int]]]:
        """(rows, non-NULL values of each column, (orphan rows, rows with a reference) of
        each ``(column, target_table, target_column, ignore)`` as ``orphans`` counts them).
        Rows and non-NULL counts in one scan, as ``SQLiteSource.non_null_counts``: the
        profiler then skips reading columns that hold NULL only (41 of the 60 ticket
        columns, 9 of the 21 timesheet columns of the reference exports)."""
        counts = sql.SQL(", ").join([sql.SQL("count(*)"), *(sql.SQL("count({})").format(sql.Identifier(c)) for c in columns)])
        row = self.conn.execute(sql.SQL("SELECT {} FROM {}").format(counts, self._table(table))).fetchone()
        orphan_counts = [self._orphan_counts(table, *ref) for ref in references]
        return int(row[0]), {c: int(n) for c, n in zip(columns, row[1:])}, orphan_counts

    def orphans(
        self,
        table: str,
        column: str,
        target_table: str,
        target_column: str,
        ignore: Sequence[Any] = (),
        limit: int = 10,
    ) -> tuple[int, int, list[Any]]:
        count, total = self._orphan_counts(table, column, target_table, target_column, ignore)
        if not count:  # no orphan, no sample: the second scan would find nothing
            return 0, total, []
        return count, total, self.orphan_sample(table, column, target_table, target_column, ignore, limit)

    def _orphan_counts(
        self, table: str, column: str, target_table: str, target_column: str, ignore: Sequence[Any] = ()
    ) -> tuple[int, int]:
        """(orphan rows, rows with a reference) of ``orphans``."""
        t, where, orphan_from, params = self._orphan_query(table, column, target_table, target_column, ignore)
        total = self.conn.execute(sql.SQL("SELECT count(*) FROM {} AS t WHERE {}").format(t, where), params).fetchone()[0]
        count = self.conn.execute(sql.SQL("SELECT count(*) ") + orphan_from, params).fetchone()[0]
        return int(count), int(total)

    def orphan_sample(
        self, table: str, column: str, target_table: str, target_column: str, ignore: Sequence[Any] = (), limit: int = 10
    ) -> list[Any]:
        """The sample of orphan values ``orphans`` returns (distinct, up to ``limit``)."""
        _, _, orphan_from, params = self._orphan_query(table, column, target_table, target_column, ignore)
        sample = self.conn.execute(
            sql.SQL("SELECT DISTINCT t.{} ").format(sql.Identifier(column)) + orphan_from + sql.SQL(" LIMIT %s"),
            [*params, limit],
        ).fetchall()
        return [r[0] for r in sample]

    def _orphan_query(
        self, table: str, column: str, target_table: str, target_column: str, ignore: Sequence[Any]
    ) -> tuple[sql.Composable, sql.Composable, sql.Composable, list[Any]]:
        """(the table, the rows with a reference, ``FROM ... WHERE`` of the orphans, params)."""
        own_type = dict(self.columns(table)).get(column)
        target_type = dict(self.columns(target_table)).get(target_column)
        c = sql.SQL("t.{}").format(sql.Identifier(column))
        tc = sql.SQL("r.{}").format(sql.Identifier(target_column))
        if own_type != target_type:
            # Compare as text when the two sides were typed differently (SQLite compares loosely).
            c, tc = sql.SQL("{}::text").format(c), sql.SQL("{}::text").format(tc)
        where: sql.Composable = sql.SQL("t.{} IS NOT NULL").format(sql.Identifier(column))
        params: list[Any] = []
        if ignore:
            where = where + sql.SQL(" AND t.{}::text NOT IN ({})").format(
                sql.Identifier(column), sql.SQL(", ").join(sql.Placeholder() * len(ignore))
            )
            params.extend(str(v) for v in ignore)
        t = self._table(table)
        orphan_from = sql.SQL("FROM {t} AS t WHERE {w} AND NOT EXISTS (SELECT 1 FROM {tt} AS r WHERE {tc} = {c})").format(
            t=t, w=where, tt=self._table(target_table), tc=tc, c=c
        )
        return t, where, orphan_from, params

    def close(self) -> None:
        if not self.conn.closed:
            self.conn.close()

    def __enter__(self) -> "PostgresSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()



class _Failed:
    """An exception raised while reading ahead, to be raised again in the reader."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END: Any = object()


def _read_ahead(batches: Iterator[list[tuple[Any, ...]]]) -> Iterator[list[tuple[Any, ...]]]:
    """The batches of ``batches``, fetched on a thread one batch ahead of the reader.

    A server-side cursor computes a batch only when it is asked for: read in turn, the
    server's work (scan, detoasting, sending) and the client's (judging the previous
    batch) never overlap. Here the thread waits for the next batch while the reader works
    on this one; at most two batches are held besides the one being read. The connection
    is opened, used and closed on the thread alone. Same batches, same order.
    """
    ready: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put(batch):
                    return
            put(_END)
        except BaseException as exc:  # noqa: BLE001 - raised again in the reader
            put(_Failed(exc))
        finally:
            batches.close()  # type: ignore[attr-defined]  # the generator's cleanup: closes its connection here

    reader = threading.Thread(target=produce, name="pg-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            item = ready.get()
            if item is _END:
                return
            if type(item) is _Failed:
                raise item.exc
            yield item
    finally:
        stop.set()
        reader.join()

"""The PostgreSQL schema, generated from the contracts and nothing else.

Column types come from ``contracts.spec.pg_type`` (the contract's *kind*), never from
the labels SQLite carries: the ten ticket date columns become ``timestamp`` even when
SQLite calls them TEXT. Keys and ``NOT NULL`` come from the contracts too; the indexes
are the ones the dashboard queries filter and group on.

Every identifier goes through ``psycopg.sql.Identifier``: a header such as
``x"; DROP TABLE tickets; --`` stays one quoted column name.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import pandera.pandas as pa
from psycopg import sql

from contracts.schemas import DATA_TABLES, contract_for
from contracts.spec import facts, is_long_text, pg_type

# table -> indexes (each a tuple of columns) that the dashboard queries use.
DASHBOARD_INDEXES: dict[str, tuple[tuple[str, ...], ...]] = {
    "tickets": (
        ("TKT-Status",),
        ("TKT-Team",),
        ("TKT-Category",),
        ("TKT-Created Time",),
        ("TKT-Actual Resolution Date", "TKT-Created Time"),
        ("TKT-SLA Met",),
        ("TKT-Root Cause Category",),
        ("TKT-Month Created",),
    ),
    "comments": (("ticket_id", "visible_to_customer"),),
    "timesheets": (("TS-Crm ID", "TS-User Username"),),
}

MAX_IDENTIFIER = 63  # PostgreSQL truncates longer names (NAMEDATALEN - 1 bytes)


@dataclass(frozen=True)
class TablePlan:
    """What the migration creates for one table, read from its contract."""

    name: str
    columns: tuple[tuple[str, str, bool], ...]  # (name, PostgreSQL type, nullable)
    key: tuple[str, ...]
    key_is_primary: bool  # False: a nullable key column, so UNIQUE (NULLs distinct) instead
    indexes: tuple[tuple[str, ...], ...]
    long_text: frozenset[str] = frozenset()  # free-text columns (the contract's ``long_text``)

    @property
    def column_names(self) -> list[str]:
        return [c[0] for c in self.columns]

    @property
    def line_columns(self) -> tuple[tuple[str, str, bool], ...]:
        """The columns in the order of the migration's COPY lines: typed values, then
        text, long text last. SQLite builds each line by concatenation, which copies the
        line built so far at every step: a 2 KB comment at the end is copied once, not
        once per field after it."""
        return tuple(sorted(self.columns, key=lambda c: (c[1] == "text", c[0] in self.long_text)))

    def kind_of(self, column: str) -> str:
        return dict((c[0], c[1]) for c in self.columns)[column]


def plan_for(schema: pa.DataFrameSchema) -> TablePlan:
    """The table plan of one contract."""
    cols = tuple((name, pg_type(col), bool(col.nullable)) for name, col in schema.columns.items())
    key = tuple(facts(schema).key)
    nullable = {name for name, _, null in cols if null}
    return TablePlan(
        name=schema.name,
        columns=cols,
        key=key,
        # A primary key forces NOT NULL on its columns. A contract whose key has a
        # nullable column judges duplicates among complete keys only; a UNIQUE
        # constraint (NULLs distinct) is exactly that rule. The data tables' keys are
        # all required, so each is a PRIMARY KEY.
        key_is_primary=not (set(key) & nullable),
        indexes=DASHBOARD_INDEXES.get(schema.name, ()),
        long_text=frozenset(name for name, col in schema.columns.items() if is_long_text(col)),
    )


def data_table_plans() -> list[TablePlan]:
    """Plans of the tables the pipeline moves (tickets, comments, timesheets), in order."""
    plans = []
    for name in DATA_TABLES:
        contract = contract_for(name)
        assert contract is not None, name
        plans.append(plan_for(contract))
    return plans


def object_name(*parts: str, suffix: str) -> str:
    """A readable, unique, <= 63-byte name for a constraint or index (hash when shortened)."""
    slug = "_".join(re.sub(r"[^a-z0-9]+", "_", p.lower()).strip("_") for p in parts)
    name = f"{slug}_{suffix}"
    if len(name.encode()) <= MAX_IDENTIFIER:
        return name
    digest = hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:8]
    keep = MAX_IDENTIFIER - len(suffix) - len(digest) - 2
    return f"{slug[:keep].rstrip('_')}_{digest}_{suffix}"


def qualified(schema: str, table: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))


def create_table(schema: str, plan: TablePlan) -> sql.Composed:
    """``CREATE TABLE`` with contract types and NOT NULL; keys are added after the load."""
    cols = sql.SQL(", ").join(
        sql.SQL("{} {}{}").format(
            sql.Identifier(name),
            sql.SQL(pgtype),  # from contracts.spec.KINDS only: a fixed vocabulary
            sql.SQL("") if nullable else sql.SQL(" NOT NULL"),
        )
        for name, pgtype, nullable in plan.columns
    )
    return sql.SQL("CREATE TABLE {} ({})").format(qualified(schema, plan.name), cols)


def add_key(schema: str, plan: TablePlan) -> sql.Composed | None:
    """``ALTER TABLE ... ADD PRIMARY KEY`` (or UNIQUE for a key with nullable columns)."""
    if not plan.key:
        return None
    kind = "PRIMARY KEY" if plan.key_is_primary else "UNIQUE"
    return sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {} ({})").format(
        qualified(schema, plan.name),
        sql.Identifier(object_name(plan.name, suffix="pkey" if plan.key_is_primary else "key")),
        sql.SQL(kind),
        sql.SQL(", ").join(sql.Identifier(c) for c in plan.key),
    )


def create_indexes(schema: str, plan: TablePlan) -> list[sql.Composed]:
    """One ``CREATE INDEX`` per dashboard index of the table."""
    statements = []
    for columns in plan.indexes:
        statements.append(
            sql.SQL("CREATE INDEX {} ON {} ({})").format(
                sql.Identifier(object_name(plan.name, *columns, suffix="idx")),
                qualified(schema, plan.name),
                sql.SQL(", ").join(sql.Identifier(c) for c in columns),
            )
        )
    return statements


def ddl(schema: str, plans: list[TablePlan] | None = None) -> list[sql.Composed]:
    """The whole schema as statements: tables, then keys, then indexes (for reading/tests)."""
    plans = plans if plans is not None else data_table_plans()
    out: list[sql.Composed] = [sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema))]
    out += [create_table(schema, p) for p in plans]
    out += [s for p in plans if (s := add_key(schema, p)) is not None]
    out += [s for p in plans for s in create_indexes(schema, p)]
    return out

"""The registry of table contracts: one pandera schema per table."""

from __future__ import annotations

import pandera.pandas as pa

from contracts.schemas import comments, import_metadata, roster, tickets, timesheets

# Order matters where tables refer to each other: referenced tables first.
REGISTRY: dict[str, pa.DataFrameSchema] = {
    s.name: s
    for s in (
        tickets.SCHEMA,
        comments.SCHEMA,
        timesheets.SCHEMA,
        roster.SCHEMA,
        import_metadata.SCHEMA,
    )
}

# Tables the pipeline moves into PostgreSQL (the other two are bookkeeping).
DATA_TABLES = ("tickets", "comments", "timesheets")


def contract_for(table_name: str) -> pa.DataFrameSchema | None:
    """The contract of a table, or None for a table we hold no contract for."""
    return REGISTRY.get(table_name)

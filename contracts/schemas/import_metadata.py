"""Contract of ``import_metadata``: one row per imported workbook."""

from contracts.spec import TableFacts, column, table

SCHEMA = table(
    "import_metadata",
    [
        column("import_id", "integer", nullable=False, min_value=1),
        column("source_type", "text", nullable=False, allowed=("tickets", "comments", "timesheets", "roster")),
        column("imported_at", "timestamp", nullable=False),
        column("file_name", "text", nullable=False),
        column("file_sha256", "text", nullable=False, pattern=r"^[0-9a-f]{64}$"),
        column("sheet_name", "text"),
        column("rows_read", "integer", nullable=False, min_value=0),
        column("rows_imported", "integer", nullable=False, min_value=0),
        column("date_range", "text"),
        column("filter_applied", "text"),
        column("notes", "text"),
    ],
    TableFacts(key=("import_id",)),
)

"""Contract of the ``comments`` table: 10 columns, renamed on import (see headers.toml)."""

from contracts.spec import Reference, Rule, TableFacts, column, table

OWNER_TYPES = ("agent", "customer", "system")
VISIBILITY = ("Yes", "No")
COMMENT_TYPES = ("comments", "worknotes", "system")

SCHEMA = table(
    "comments",
    [
        column("comment_id", "integer", nullable=False, min_value=1, not_null_rule=Rule("critical")),
        column("ticket_id", "integer", nullable=False),
        column("comment_text", "text", long_text=True, personal=True),
        column("user_id", "integer"),
        column("user_name", "text", personal=True),
        column("owner_type", "text", allowed=OWNER_TYPES),
        column("created_time", "timestamp", nullable=False, not_future_days=366),
        column("visible_to_customer", "flag", allowed=VISIBILITY),
        column("comment_type", "text", allowed=COMMENT_TYPES, allowed_rule=Rule("warning")),
        column("team", "text"),
    ],
    TableFacts(
        key=("comment_id",),
        modified_column="created_time",
        references=(
            # The operators' old validator tolerated 5% of comments on unknown tickets.
            Reference("ticket_id", "tickets", "TKT-Ticket ID", Rule("error", 0.05)),
        ),
        description="One row per comment or work note on a ticket.",
    ),
)

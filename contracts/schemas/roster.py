"""Contract of ``cloud_team_roster``: the scoping roster (48 usernames in the real run)."""

from contracts.spec import Rule, TableFacts, column, table

SCHEMA = table(
    "cloud_team_roster",
    [
        column("name", "text", personal=True),
        column("email", "text", pattern=r"^[^@\s]+@[^@\s]+$", personal=True),
        column("username", "text", nullable=False, not_null_rule=Rule("critical"), personal=True),
    ],
    TableFacts(key=("username",)),
)

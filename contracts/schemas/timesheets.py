"""Contract of the ``timesheets`` table: 21 columns, header names kept verbatim."""

from contracts.spec import Reference, Rule, TableFacts, column, table

TIME_OF_DAY = r"^([01]?\d|2[0-3]):[0-5]\d(:[0-5]\d)?$"

SCHEMA = table(
    "timesheets",
    [
        column("TS-User Full Name", "text", personal=True),
        column("TS-User Username", "text", nullable=False, personal=True),
        column("TS-Title", "text"),  # free text, NOT an id
        column("TS-Description", "text", long_text=True, personal=True),
        column("TS-Date", "date", nullable=False, not_future_days=31),
        # part of the natural key, so required: the key is the table's PRIMARY KEY in PostgreSQL
        column("TS-Time From", "text", nullable=False, pattern=TIME_OF_DAY),
        column("TS-Time To", "text", pattern=TIME_OF_DAY),
        column("TS-Type", "text"),
        column("TS-Category", "text"),
        column("TS-Sub Category", "text"),  # always empty in the exports seen
        column("TS-Category 2", "text"),
        column("TS-Hours", "numeric", nullable=False, min_value=0, max_value=24, include_min=False),
        column("TS-Crm ID", "integer", nullable=False, min_value=0),
        column("TS-Ticket Project Master Code", "text"),
        column("TS-Costcentre ID", "integer"),
        column("TS-Costcentre Desc", "text"),
        column("TS-Account Selcom", "text"),
        column("TS-Account Name", "text"),
        column("TS-Account Bill State", "text"),
        column("TS-Account Internal", "text"),
        column("TS-Ticket Department", "text"),
    ],
    TableFacts(
        key=("TS-User Username", "TS-Date", "TS-Time From", "TS-Crm ID"),
        references=(
            # About 90% of timesheet rows match no imported ticket (tickets are scoped to
            # one team's work): expected, so only counted and warned past 99%.
            Reference(
                "TS-Crm ID",
                "tickets",
                "TKT-Ticket ID",
                Rule("warning", 0.99),
                ignore=(0,),
                name="orphans",
            ),
        ),
        description="One row per logged block of time; TS-Crm ID 0 is admin time.",
    ),
)

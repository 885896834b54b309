"""Contract of the ``tickets`` table: 60 columns, header names kept verbatim."""

from contracts.spec import Rule, TableFacts, column, table

STATUSES = (
    "Open",
    "New",
    "In Progress",
    "Pending",
    "On Hold",
    "Waiting on Customer",
    "Waiting on Third Party",
    "Incident Resolved",
    "Closed",
    "Cancelled",
)
# "Closed" for every dashboard metric: the old queries used 'Resolved', which matches nothing.
CLOSED_STATUSES = ("Closed", "Incident Resolved")
SEVERITIES = ("P1", "P2", "P3", "P4", "Alert")
YES_NO = ("yes", "no")
# Open-ended sets: new values appear every quarter, so only warnings.
KNOWN_CATEGORIES = (
    "Support Tickets",
    "Alert",
    "PHI Support Tickets",
    "Standard",
    "Incident",
    "Service Request",
)
TICKET_SOURCES = ("email", "portal", "phone")
MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"
FUTURE_DAYS = 366  # a date more than a year ahead is a typo, not a plan

_warn = Rule("warning")


def _ts(name: str, **kw):
    return column(name, "timestamp", not_future_days=FUTURE_DAYS, **kw)


def _ts_change(name: str):
    # Change dates are planned ahead: they may lie in the future.
    return column(name, "timestamp")


SCHEMA = table(
    "tickets",
    [
        column("TKT-Ticket ID", "integer", nullable=False, min_value=1, not_null_rule=Rule("critical")),
        column("TKT-Parent ID", "integer"),
        column("TKT-Customer Reference", "text"),
        _ts("TKT-Created Time", nullable=False),
        column("TKT-Month Created", "month", pattern=MONTH),
        column("TKT-SLA", "text"),
        column("TKT-Account Id", "integer"),
        column("TKT-Account Name", "text"),
        column("TKT-Site Classification", "text"),
        column("TKT-Site Status", "text"),
        column("TKT-Selcom Key", "text"),
        column("TKT-Title", "text", long_text=True),
        column("TKT-Description", "text", long_text=True, personal=True),
        column("TKT-Severity", "text", allowed=SEVERITIES),
        column("TKT-Status", "text", nullable=False, allowed=STATUSES),
        column("TKT-Assigned To Userid", "integer"),
        column(
            "TKT-Assigned To User", "text", placeholders=("PendingAssignment",), personal=True
        ),
        column("TKT-Job#/Ref#", "text"),
        column("TKT-Team", "text"),
        _ts("TKT-Modified Time"),
        column("TKT-Category", "text", allowed=KNOWN_CATEGORIES, allowed_rule=_warn),
        column("TKT-Resolution/Change Type", "text"),
        column("TKT-Root Cause Category", "text", placeholders=("--None--",)),
        column("TKT-Created By Userid", "integer"),
        column("TKT-Created By User", "text", personal=True),
        column("TKT-Client Name", "text", personal=True),
        column("TKT-Ticket Source", "text", allowed=TICKET_SOURCES, allowed_rule=_warn),
        column("TKT-Related CI Ref#", "integer"),
        column("TKT-Related CI", "text"),
        _ts("TKT-Actual Response Date"),
        _ts("TKT-Actual Resolution Date"),
        column("TKT-Response Met", "flag", allowed=YES_NO),
        column("TKT-Resolution Met", "flag", allowed=YES_NO),
        column("TKT-SLA Met", "flag", allowed=YES_NO),
        column("TKT-SLA Exempt", "flag", allowed=YES_NO),
        column("TKT-Mitigated Reason", "text"),
        column("TKT-SLA Clock Status", "text"),
        column("TKT-SLA Breach Reason", "text"),
        column("TKT-SLA Breach Comment", "text", long_text=True, personal=True),
        column("TKT-QA Review Completed", "flag", allowed=YES_NO),
        _ts("TKT-Closure Date"),
        column("TKT-Month Closed", "month", pattern=MONTH),
        column("TKT-Solution", "text", long_text=True, personal=True),
        _ts("TKT-SLA Closure Date"),
        column("TKT-SLA Month Closed", "month", pattern=MONTH),
        column("TKT-SLA Closed - This Month", "flag", allowed=YES_NO),
        column("TKT-SLA Closed - Last Month", "flag", allowed=YES_NO),
        column("TKT-Actual SLA Achievement", "numeric", min_value=0, max_value=100),
        column("Chg-Risk", "text"),
        column("Chg-Trigger", "text"),
        column("Chg-Type", "text"),
        _ts_change("Chg-Planned Start Date"),
        _ts_change("Chg-Planned End Date"),
        _ts_change("Chg-Actual Start Date"),
        _ts_change("Chg-Actual End Date"),
        column("Chg-Approver", "text", personal=True),
        column("Chg-Success", "flag", allowed=YES_NO),
        column("TKT-Is Template", "flag", allowed=YES_NO),
        column("TKT-Platform", "text"),
        column("TKT-Group", "text"),
    ],
    TableFacts(
        key=("TKT-Ticket ID",),
        modified_column="TKT-Modified Time",
        description="One row per ticket; dashboards read status, team, category and the SLA dates.",
    ),
)

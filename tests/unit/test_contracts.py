"""The contracts themselves: shapes, keys, kinds and the rules the issue fixes."""

from __future__ import annotations

import pandera.pandas as pa
import pytest

from contracts import spec
from contracts.headers import default_mappings
from contracts.schemas import DATA_TABLES, REGISTRY, contract_for

TICKET_DATE_COLUMNS = {
    "TKT-Created Time",
    "TKT-Modified Time",
    "TKT-Actual Response Date",
    "TKT-Actual Resolution Date",
    "TKT-Closure Date",
    "TKT-SLA Closure Date",
    "Chg-Planned Start Date",
    "Chg-Planned End Date",
    "Chg-Actual Start Date",
    "Chg-Actual End Date",
}
COMMENT_COLUMNS = [
    "comment_id",
    "ticket_id",
    "comment_text",
    "user_id",
    "user_name",
    "owner_type",
    "created_time",
    "visible_to_customer",
    "comment_type",
    "team",
]
POSTGRES_TYPES = {"bigint", "numeric", "timestamp", "date", "text"}


def test_registry_holds_the_five_tables() -> None:
    assert set(REGISTRY) == {"tickets", "comments", "timesheets", "cloud_team_roster", "import_metadata"}
    assert set(DATA_TABLES) <= set(REGISTRY)
    assert contract_for("tickets") is REGISTRY["tickets"]
    assert contract_for("no_such_table") is None
    for name, schema in REGISTRY.items():
        assert isinstance(schema, pa.DataFrameSchema) and schema.name == name


@pytest.mark.parametrize("table, count", [("tickets", 60), ("comments", 10), ("timesheets", 21)])
def test_column_counts(table: str, count: int) -> None:
    assert len(REGISTRY[table].columns) == count


def test_ten_ticket_date_columns_are_timestamps() -> None:
    schema = REGISTRY["tickets"]
    assert set(spec.date_columns(schema)) == TICKET_DATE_COLUMNS
    assert all(spec.kind(schema.columns[c]) == "timestamp" for c in TICKET_DATE_COLUMNS)


def test_ids_are_kept_verbatim() -> None:
    tickets = list(REGISTRY["tickets"].columns)
    assert all(c.startswith(("TKT-", "Chg-")) for c in tickets)
    for awkward in ("TKT-Job#/Ref#", "TKT-Resolution/Change Type", "TKT-SLA Closed - This Month", "TKT-Related CI Ref#"):
        assert awkward in tickets
    assert tickets[0] == "TKT-Ticket ID" and tickets[-1] == "TKT-Group"
    assert all(c.startswith("TS-") for c in REGISTRY["timesheets"].columns)
    assert list(REGISTRY["comments"].columns) == COMMENT_COLUMNS
    # Both generations of comment headers land on exactly the contract's columns.
    mapping = default_mappings()["comments"]
    for prefix in ("CT-", "TKTCT-"):
        targets = [v for k, v in mapping.items() if k.startswith(prefix)]
        assert sorted(targets) == sorted(COMMENT_COLUMNS), prefix


def test_keys_exist_and_the_timesheet_key_is_composite() -> None:
    for schema in REGISTRY.values():
        facts = spec.facts(schema)
        assert facts.key, schema.name
        assert all(k in schema.columns for k in facts.key)
        if len(facts.key) == 1:  # a single-column key identifies a row: never NULL
            assert not schema.columns[facts.key[0]].nullable, schema.name
    assert spec.facts(REGISTRY["tickets"]).key == ("TKT-Ticket ID",)
    assert spec.facts(REGISTRY["comments"]).key == ("comment_id",)
    assert spec.facts(REGISTRY["timesheets"]).key == ("TS-User Username", "TS-Date", "TS-Time From", "TS-Crm ID")


def test_every_kind_maps_to_a_postgresql_type() -> None:
    assert set(spec.KINDS) >= {"integer", "numeric", "timestamp", "date", "text", "flag", "month"}
    for schema in REGISTRY.values():
        for col in schema.columns.values():
            assert spec.pg_type(col) in POSTGRES_TYPES, (schema.name, col.name)


def test_references_point_at_declared_columns() -> None:
    for schema in REGISTRY.values():
        for ref in spec.facts(schema).references:
            assert ref.column in schema.columns
            target = REGISTRY[ref.target_table]
            assert ref.target_column in target.columns
            assert ref.target_column in spec.facts(target).key
    comments_ref = spec.facts(REGISTRY["comments"]).references[0]
    assert (comments_ref.rule.severity, comments_ref.rule.tolerance) == ("error", 0.05)
    orphans = spec.facts(REGISTRY["timesheets"]).references[0]
    assert orphans.rule.severity == "warning" and 0 in orphans.ignore


def test_rules_are_declared_for_every_check() -> None:
    for schema in REGISTRY.values():
        for col in schema.columns.values():
            rules = spec.rules(col)
            assert "type" in rules
            for check in col.checks:
                assert check.name in rules, (schema.name, col.name, check.name)
            if not col.nullable:
                assert "not_null" in rules
            if spec.not_future_days(col) is not None:
                assert "not_future" in rules and spec.kind(col) in spec.DATE_KINDS
            for rule in rules.values():
                assert rule.severity in spec.SEVERITIES and 0 <= rule.tolerance <= 1


def test_closed_sets_only_where_the_domain_is_closed() -> None:
    tickets = REGISTRY["tickets"].columns
    # Open-ended values: new teams and categories appear every quarter -> warnings at most.
    for name in ("TKT-Team", "TKT-Category", "TKT-Root Cause Category", "TKT-SLA", "TKT-Ticket Source"):
        rule = spec.rules(tickets[name]).get("allowed_values")
        assert rule is None or rule.severity == "warning", name
    statuses = _allowed(tickets["TKT-Status"])
    assert {"Closed", "Incident Resolved"} <= statuses and "Resolved" not in statuses
    assert _allowed(tickets["TKT-Severity"]) == {"P1", "P2", "P3", "P4", "Alert"}
    assert _allowed(tickets["TKT-SLA Met"]) == {"yes", "no"}
    assert _allowed(REGISTRY["comments"].columns["owner_type"]) >= {"agent", "customer"}


def test_hours_are_within_zero_exclusive_and_24() -> None:
    check = next(c for c in REGISTRY["timesheets"].columns["TS-Hours"].checks if c.name == "in_range")
    stats = check.statistics
    assert (stats["min_value"], stats["max_value"], stats["include_min"], stats["include_max"]) == (0, 24, False, True)


def test_personal_and_long_text_columns_are_marked() -> None:
    comments = REGISTRY["comments"].columns
    assert spec.is_personal(comments["comment_text"]) and spec.is_long_text(comments["comment_text"])
    assert spec.is_personal(comments["user_name"])
    assert spec.is_personal(REGISTRY["tickets"].columns["TKT-Description"])
    assert not spec.is_personal(REGISTRY["tickets"].columns["TKT-Ticket ID"])


def _allowed(col: pa.Column) -> set[str]:
    check = next(c for c in col.checks if c.name == "allowed_values")
    return set(check.statistics["allowed_values"])

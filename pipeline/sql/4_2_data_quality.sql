-- 4.2 Data quality indicators: timesheet coverage (% of timesheet rows on a ticket, admin
-- time excluded, whose ticket is in the tickets table) and root-cause coverage (% of closed
-- tickets with a root cause recorded).
SELECT
    (SELECT ROUND((100.0 * count(t.ticket_id) / NULLIF(count(*), 0))::numeric, 1)
     FROM {schema}.timesheets AS s
     LEFT JOIN (SELECT "TKT-Ticket ID" AS ticket_id FROM {schema}.tickets) AS t ON t.ticket_id = s."TS-Crm ID"
     WHERE s."TS-Crm ID" <> 0) AS timesheet_coverage_pct,
    (SELECT ROUND((100.0 * count(*) FILTER (WHERE "TKT-Root Cause Category" NOT IN ('--None--', ''))
                   / NULLIF(count(*), 0))::numeric, 1)
     FROM {schema}.tickets
     WHERE "TKT-Status" IN ({closed})) AS root_cause_coverage_pct

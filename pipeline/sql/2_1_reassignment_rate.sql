-- 2.1 Reassignment rate: % of tickets (with timesheet rows) logged by more than one distinct user.
-- Timesheet rows on tickets not in the tickets table (about 90%) and admin time (Crm ID 0) do not count.
WITH users AS (
    SELECT t."TKT-Ticket ID" AS ticket_id, count(DISTINCT s."TS-User Username") AS n
    FROM {schema}.tickets AS t
    JOIN {schema}.timesheets AS s ON s."TS-Crm ID" = t."TKT-Ticket ID"
    GROUP BY t."TKT-Ticket ID"
)
SELECT ROUND((100.0 * count(*) FILTER (WHERE n > 1) / NULLIF(count(*), 0))::numeric, 1) AS value
FROM users

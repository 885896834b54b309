-- 2.1 Reassignment rate: % of tickets (with timesheet rows) logged by more than one distinct user.  [SQLite twin of pipeline/sql/2_1_reassignment_rate.sql]
-- Timesheet rows on tickets not in the tickets table (about 90%) and admin time (Crm ID 0) do not count.
WITH users AS (
    SELECT t."TKT-Ticket ID" AS ticket_id, count(DISTINCT s."TS-User Username") AS n
    FROM tickets AS t
    JOIN timesheets AS s ON s."TS-Crm ID" = t."TKT-Ticket ID"
    GROUP BY t."TKT-Ticket ID"
)
SELECT ROUND((100.0 * count(*) FILTER (WHERE n > 1) / NULLIF(count(*), 0)), 1) AS value
FROM users

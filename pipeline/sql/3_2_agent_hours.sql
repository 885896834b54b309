-- 3.2 Agent hours: per timesheet user, hours logged, distinct tickets worked (admin time,
-- Crm ID 0, is not a ticket) and hours per ticket (ticket hours / tickets).
-- Distinct (ticket, user) pairs come from the dashboard index on ("TS-Crm ID",
-- "TS-User Username"), so no per-user COUNT(DISTINCT) sort or hash spills to disk.
WITH pairs AS (
    SELECT DISTINCT "TS-Crm ID" AS crm, "TS-User Username" AS username
    FROM {schema}.timesheets
    WHERE "TS-Crm ID" <> 0
), tickets AS (
    SELECT username, count(*) AS tickets FROM pairs GROUP BY username
), hours AS (
    SELECT "TS-User Username" AS username,
           sum("TS-Hours") AS hours,
           sum("TS-Hours") FILTER (WHERE "TS-Crm ID" <> 0) AS ticket_hours
    FROM {schema}.timesheets
    GROUP BY "TS-User Username"
)
SELECT username,
       ROUND(hours::numeric, 1) AS hours,
       coalesce(tickets.tickets, 0) AS tickets,
       ROUND((ticket_hours / NULLIF(tickets.tickets, 0))::numeric, 1) AS hours_per_ticket
FROM hours LEFT JOIN tickets USING (username)
ORDER BY hours.hours DESC, username COLLATE "C"

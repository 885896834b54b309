-- 3.2 Agent hours: per timesheet user, hours logged, distinct tickets worked (admin time,
-- Crm ID 0, is not a ticket) and hours per ticket (ticket hours / tickets).
SELECT "TS-User Username" AS username,
       ROUND(sum("TS-Hours")::numeric, 1) AS hours,
       count(DISTINCT "TS-Crm ID") FILTER (WHERE "TS-Crm ID" <> 0) AS tickets,
       ROUND((sum("TS-Hours") FILTER (WHERE "TS-Crm ID" <> 0)
              / NULLIF(count(DISTINCT "TS-Crm ID") FILTER (WHERE "TS-Crm ID" <> 0), 0))::numeric, 1) AS hours_per_ticket
FROM {schema}.timesheets
GROUP BY "TS-User Username"
ORDER BY sum("TS-Hours") DESC, "TS-User Username" COLLATE "C"

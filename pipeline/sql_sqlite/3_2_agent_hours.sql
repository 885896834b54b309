-- 3.2 Agent hours: per timesheet user, hours logged, distinct tickets worked (admin time,  [SQLite twin of pipeline/sql/3_2_agent_hours.sql]
-- Crm ID 0, is not a ticket) and hours per ticket (ticket hours / tickets).
SELECT "TS-User Username" AS username,
       ROUND(sum("TS-Hours"), 1) AS hours,
       count(DISTINCT CASE WHEN "TS-Crm ID" <> 0 THEN "TS-Crm ID" END) AS tickets,
       ROUND(sum(CASE WHEN "TS-Crm ID" <> 0 THEN "TS-Hours" END)
             / NULLIF(count(DISTINCT CASE WHEN "TS-Crm ID" <> 0 THEN "TS-Crm ID" END), 0), 1) AS hours_per_ticket
FROM timesheets
GROUP BY "TS-User Username"
ORDER BY sum("TS-Hours") DESC, "TS-User Username"

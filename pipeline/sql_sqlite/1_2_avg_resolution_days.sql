-- 1.2 Average resolution time: mean days from creation to actual resolution,  [SQLite twin of pipeline/sql/1_2_avg_resolution_days.sql]
-- closed tickets with both dates. SQLite twin: JULIANDAY differences are days.
SELECT ROUND(AVG((julianday("TKT-Actual Resolution Date") - julianday("TKT-Created Time"))), 1) AS value
FROM tickets
WHERE "TKT-Status" IN ({closed})
  AND "TKT-Created Time" IS NOT NULL
  AND "TKT-Actual Resolution Date" IS NOT NULL

-- 2.6 Monthly volume: tickets per "TKT-Month Created".  [SQLite twin of pipeline/sql/2_6_monthly_volume.sql]
SELECT "TKT-Month Created" AS month, count(*) AS tickets
FROM tickets
GROUP BY "TKT-Month Created"
ORDER BY "TKT-Month Created" IS NULL, "TKT-Month Created"

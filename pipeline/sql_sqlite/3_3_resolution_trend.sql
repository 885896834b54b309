-- 3.3 Resolution trend: metric 1.2 per month created.  [SQLite twin of pipeline/sql/3_3_resolution_trend.sql]
SELECT "TKT-Month Created" AS month, count(*) AS tickets,
       ROUND(AVG((julianday("TKT-Actual Resolution Date") - julianday("TKT-Created Time"))), 1) AS avg_days
FROM tickets
WHERE "TKT-Status" IN ({closed})
  AND "TKT-Created Time" IS NOT NULL
  AND "TKT-Actual Resolution Date" IS NOT NULL
GROUP BY "TKT-Month Created"
ORDER BY "TKT-Month Created" IS NULL, "TKT-Month Created"

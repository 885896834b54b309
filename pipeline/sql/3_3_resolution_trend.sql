-- 3.3 Resolution trend: metric 1.2 per month created.
SELECT "TKT-Month Created" AS month, count(*) AS tickets,
       ROUND(AVG(EXTRACT(EPOCH FROM ("TKT-Actual Resolution Date" - "TKT-Created Time")) / 86400)::numeric, 1) AS avg_days
FROM {schema}.tickets
WHERE "TKT-Status" IN ({closed})
  AND "TKT-Created Time" IS NOT NULL
  AND "TKT-Actual Resolution Date" IS NOT NULL
GROUP BY "TKT-Month Created"
ORDER BY "TKT-Month Created" IS NULL, "TKT-Month Created" COLLATE "C"

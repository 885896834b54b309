-- 2.6 Monthly volume: tickets per "TKT-Month Created".
SELECT "TKT-Month Created" AS month, count(*) AS tickets
FROM {schema}.tickets
GROUP BY "TKT-Month Created"
ORDER BY "TKT-Month Created" IS NULL, "TKT-Month Created" COLLATE "C"

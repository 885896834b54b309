-- 1.2 Average resolution time: mean days from creation to actual resolution,
-- closed tickets with both dates. Epoch arithmetic, not JULIANDAY (SQLite only).
SELECT ROUND(AVG(EXTRACT(EPOCH FROM ("TKT-Actual Resolution Date" - "TKT-Created Time")) / 86400)::numeric, 1) AS value
FROM {schema}.tickets
WHERE "TKT-Status" IN ({closed})
  AND "TKT-Created Time" IS NOT NULL
  AND "TKT-Actual Resolution Date" IS NOT NULL

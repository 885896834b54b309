-- 2.2 Root cause distribution: the 10 most frequent root causes of closed tickets,  [SQLite twin of pipeline/sql/2_2_root_causes.sql]
-- with their % of closed tickets that have a root cause recorded.
WITH causes AS (
    SELECT "TKT-Root Cause Category" AS root_cause, count(*) AS tickets
    FROM tickets
    WHERE "TKT-Status" IN ({closed}) AND "TKT-Root Cause Category" NOT IN ('--None--', '')
    GROUP BY "TKT-Root Cause Category"
)
SELECT root_cause, tickets, ROUND((100.0 * tickets / sum(tickets) OVER ()), 1) AS pct
FROM causes
ORDER BY tickets DESC, root_cause
LIMIT 10

-- 3.5 Reassignment distribution: tickets (with timesheet rows) bucketed by distinct timesheet users 1 / 2 / 3 / 4+.  [SQLite twin of pipeline/sql/3_5_reassignment_distribution.sql]
WITH users AS (
    SELECT t."TKT-Ticket ID" AS ticket_id, count(DISTINCT s."TS-User Username") AS n
    FROM tickets AS t
    JOIN timesheets AS s ON s."TS-Crm ID" = t."TKT-Ticket ID"
    GROUP BY t."TKT-Ticket ID"
), counted AS (
    SELECT CASE WHEN n <= 1 THEN '1' WHEN n = 2 THEN '2' WHEN n = 3 THEN '3' ELSE '4+' END AS bucket FROM users
), buckets (bucket, position) AS (
    VALUES ('1', 1), ('2', 2), ('3', 3), ('4+', 4)
)
SELECT b.bucket, count(c.bucket) AS tickets,
       ROUND((100.0 * count(c.bucket) / NULLIF(sum(count(c.bucket)) OVER (), 0)), 1) AS pct
FROM buckets AS b LEFT JOIN counted AS c ON c.bucket = b.bucket
GROUP BY b.bucket, b.position
ORDER BY b.position

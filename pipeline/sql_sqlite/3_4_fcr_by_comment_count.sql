-- 3.4 FCR by comment count: closed tickets bucketed by customer-facing comments 0 / 1 / 2-3 / 4+.  [SQLite twin of pipeline/sql/3_4_fcr_by_comment_count.sql]
WITH closed AS (
    SELECT "TKT-Ticket ID" AS ticket_id FROM tickets WHERE "TKT-Status" IN ({closed})
), customer AS (
    SELECT ticket_id, count(*) AS n FROM comments WHERE visible_to_customer = 'Yes' GROUP BY ticket_id
), counted AS (
    SELECT CASE WHEN coalesce(customer.n, 0) = 0 THEN '0'
                WHEN customer.n = 1 THEN '1'
                WHEN customer.n <= 3 THEN '2-3'
                ELSE '4+' END AS bucket
    FROM closed LEFT JOIN customer USING (ticket_id)
), buckets (bucket, position) AS (
    VALUES ('0', 1), ('1', 2), ('2-3', 3), ('4+', 4)
)
SELECT b.bucket, count(c.bucket) AS tickets,
       ROUND((100.0 * count(c.bucket) / NULLIF(sum(count(c.bucket)) OVER (), 0)), 1) AS pct
FROM buckets AS b LEFT JOIN counted AS c ON c.bucket = b.bucket
GROUP BY b.bucket, b.position
ORDER BY b.position

-- 1.3 First contact resolution: % of closed tickets with at most one customer-facing comment.  [SQLite twin of pipeline/sql/1_3_first_contact_resolution.sql]
WITH closed AS (
    SELECT "TKT-Ticket ID" AS ticket_id FROM tickets WHERE "TKT-Status" IN ({closed})
), customer AS (
    SELECT ticket_id, count(*) AS n FROM comments WHERE visible_to_customer = 'Yes' GROUP BY ticket_id
)
SELECT ROUND((100.0 * count(*) FILTER (WHERE coalesce(customer.n, 0) <= 1) / NULLIF(count(*), 0)), 1) AS value
FROM closed LEFT JOIN customer USING (ticket_id)

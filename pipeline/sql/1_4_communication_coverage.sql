-- 1.4 Customer communication coverage: % of closed tickets with at least one customer-facing comment.
WITH closed AS (
    SELECT "TKT-Ticket ID" AS ticket_id FROM {schema}.tickets WHERE "TKT-Status" IN ({closed})
), customer AS (
    SELECT ticket_id, count(*) AS n FROM {schema}.comments WHERE visible_to_customer = 'Yes' GROUP BY ticket_id
)
SELECT ROUND((100.0 * count(*) FILTER (WHERE coalesce(customer.n, 0) >= 1) / NULLIF(count(*), 0))::numeric, 1) AS value
FROM closed LEFT JOIN customer USING (ticket_id)

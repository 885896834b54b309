-- 4.1 Category distribution: closed tickets per category, with % of closed tickets.
WITH categories AS (
    SELECT coalesce("TKT-Category", '(no category)') AS category, count(*) AS tickets
    FROM {schema}.tickets
    WHERE "TKT-Status" IN ({closed})
    GROUP BY coalesce("TKT-Category", '(no category)')
)
SELECT category, tickets, ROUND((100.0 * tickets / sum(tickets) OVER ())::numeric, 1) AS pct
FROM categories
ORDER BY tickets DESC, category COLLATE "C"

-- 4.1 Category distribution: closed tickets per category, with % of closed tickets.  [SQLite twin of pipeline/sql/4_1_category_distribution.sql]
WITH categories AS (
    SELECT coalesce("TKT-Category", '(no category)') AS category, count(*) AS tickets
    FROM tickets
    WHERE "TKT-Status" IN ({closed})
    GROUP BY coalesce("TKT-Category", '(no category)')
)
SELECT category, tickets, ROUND((100.0 * tickets / sum(tickets) OVER ()), 1) AS pct
FROM categories
ORDER BY tickets DESC, category

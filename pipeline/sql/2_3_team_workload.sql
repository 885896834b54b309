-- 2.3 Team workload: closed tickets per team, with % of all closed tickets.
WITH teams AS (
    SELECT coalesce("TKT-Team", '(no team)') AS team, count(*) AS tickets
    FROM {schema}.tickets
    WHERE "TKT-Status" IN ({closed})
    GROUP BY coalesce("TKT-Team", '(no team)')
)
SELECT team, tickets, ROUND((100.0 * tickets / sum(tickets) OVER ())::numeric, 1) AS pct
FROM teams
ORDER BY tickets DESC, team COLLATE "C"

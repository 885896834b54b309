-- 2.3 Team workload: closed tickets per team, with % of all closed tickets.  [SQLite twin of pipeline/sql/2_3_team_workload.sql]
WITH teams AS (
    SELECT coalesce("TKT-Team", '(no team)') AS team, count(*) AS tickets
    FROM tickets
    WHERE "TKT-Status" IN ({closed})
    GROUP BY coalesce("TKT-Team", '(no team)')
)
SELECT team, tickets, ROUND((100.0 * tickets / sum(tickets) OVER ()), 1) AS pct
FROM teams
ORDER BY tickets DESC, team

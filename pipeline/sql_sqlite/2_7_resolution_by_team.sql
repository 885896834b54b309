-- 2.7 Resolution time by team: metric 1.2 per team, teams with at least {min_team_tickets} tickets.  [SQLite twin of pipeline/sql/2_7_resolution_by_team.sql]
WITH sized AS (
    SELECT coalesce("TKT-Team", '(no team)') AS team
    FROM tickets
    GROUP BY coalesce("TKT-Team", '(no team)')
    HAVING count(*) >= {min_team_tickets}
), resolved AS (
    SELECT coalesce("TKT-Team", '(no team)') AS team,
           (julianday("TKT-Actual Resolution Date") - julianday("TKT-Created Time")) AS days
    FROM tickets
    WHERE "TKT-Status" IN ({closed})
      AND "TKT-Created Time" IS NOT NULL
      AND "TKT-Actual Resolution Date" IS NOT NULL
)
SELECT team, count(*) AS tickets, ROUND(AVG(days), 1) AS avg_days
FROM resolved JOIN sized USING (team)
GROUP BY team
ORDER BY AVG(days), team

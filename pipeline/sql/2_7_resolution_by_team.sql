-- 2.7 Resolution time by team: metric 1.2 per team, teams with at least {min_team_tickets} tickets.
WITH sized AS (
    SELECT coalesce("TKT-Team", '(no team)') AS team
    FROM {schema}.tickets
    GROUP BY coalesce("TKT-Team", '(no team)')
    HAVING count(*) >= {min_team_tickets}
), resolved AS (
    SELECT coalesce("TKT-Team", '(no team)') AS team,
           EXTRACT(EPOCH FROM ("TKT-Actual Resolution Date" - "TKT-Created Time")) / 86400 AS days
    FROM {schema}.tickets
    WHERE "TKT-Status" IN ({closed})
      AND "TKT-Created Time" IS NOT NULL
      AND "TKT-Actual Resolution Date" IS NOT NULL
)
SELECT team, count(*) AS tickets, ROUND(AVG(days)::numeric, 1) AS avg_days
FROM resolved JOIN sized USING (team)
GROUP BY team
ORDER BY AVG(days), team COLLATE "C"

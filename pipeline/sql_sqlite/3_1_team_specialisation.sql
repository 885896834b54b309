-- 3.1 Team specialisation: % of each team's closed tickets in each category.  [SQLite twin of pipeline/sql/3_1_team_specialisation.sql]
SELECT coalesce("TKT-Team", '(no team)') AS team,
       coalesce("TKT-Category", '(no category)') AS category,
       count(*) AS tickets,
       ROUND((100.0 * count(*) / sum(count(*)) OVER (PARTITION BY coalesce("TKT-Team", '(no team)'))), 1) AS pct
FROM tickets
WHERE "TKT-Status" IN ({closed})
GROUP BY coalesce("TKT-Team", '(no team)'), coalesce("TKT-Category", '(no category)')
ORDER BY coalesce("TKT-Team", '(no team)'), count(*) DESC, coalesce("TKT-Category", '(no category)')

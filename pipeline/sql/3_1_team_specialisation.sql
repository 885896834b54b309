-- 3.1 Team specialisation: % of each team's closed tickets in each category.
SELECT coalesce("TKT-Team", '(no team)') AS team,
       coalesce("TKT-Category", '(no category)') AS category,
       count(*) AS tickets,
       ROUND((100.0 * count(*) / sum(count(*)) OVER (PARTITION BY coalesce("TKT-Team", '(no team)')))::numeric, 1) AS pct
FROM {schema}.tickets
WHERE "TKT-Status" IN ({closed})
GROUP BY coalesce("TKT-Team", '(no team)'), coalesce("TKT-Category", '(no category)')
ORDER BY coalesce("TKT-Team", '(no team)') COLLATE "C", count(*) DESC, coalesce("TKT-Category", '(no category)') COLLATE "C"

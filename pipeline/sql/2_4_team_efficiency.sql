-- 2.4 Team efficiency: mean comments (all kinds) per ticket, by team, teams with at least
-- {min_team_tickets} tickets. Tickets without comments count as 0.
WITH per_ticket AS (
    SELECT t."TKT-Ticket ID" AS ticket_id, coalesce(t."TKT-Team", '(no team)') AS team, coalesce(c.n, 0) AS comments
    FROM {schema}.tickets AS t
    LEFT JOIN (SELECT ticket_id, count(*) AS n FROM {schema}.comments GROUP BY ticket_id) AS c
           ON c.ticket_id = t."TKT-Ticket ID"
)
SELECT team, count(*) AS tickets, sum(comments) AS comments, ROUND(AVG(comments)::numeric, 1) AS comments_per_ticket
FROM per_ticket
GROUP BY team
HAVING count(*) >= {min_team_tickets}
ORDER BY AVG(comments) DESC, team COLLATE "C"

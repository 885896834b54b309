-- 2.4 Team efficiency: mean comments (all kinds) per ticket, by team, teams with at least  [SQLite twin of pipeline/sql/2_4_team_efficiency.sql]
-- {min_team_tickets} tickets. Tickets without comments count as 0.
WITH per_ticket AS (
    SELECT t."TKT-Ticket ID" AS ticket_id, coalesce(t."TKT-Team", '(no team)') AS team, coalesce(c.n, 0) AS comments
    FROM tickets AS t
    LEFT JOIN (SELECT ticket_id, count(*) AS n FROM comments GROUP BY ticket_id) AS c
           ON c.ticket_id = t."TKT-Ticket ID"
)
SELECT team, count(*) AS tickets, sum(comments) AS comments, ROUND(AVG(comments), 1) AS comments_per_ticket
FROM per_ticket
GROUP BY team
HAVING count(*) >= {min_team_tickets}
ORDER BY AVG(comments) DESC, team

-- 2.8 Team communication coverage: metric 1.4 per team, teams with at least {min_team_tickets} tickets.  [SQLite twin of pipeline/sql/2_8_coverage_by_team.sql]
WITH sized AS (
    SELECT coalesce("TKT-Team", '(no team)') AS team
    FROM tickets
    GROUP BY coalesce("TKT-Team", '(no team)')
    HAVING count(*) >= {min_team_tickets}
), closed AS (
    SELECT "TKT-Ticket ID" AS ticket_id, coalesce("TKT-Team", '(no team)') AS team
    FROM tickets
    WHERE "TKT-Status" IN ({closed})
), customer AS (
    SELECT ticket_id, count(*) AS n FROM comments WHERE visible_to_customer = 'Yes' GROUP BY ticket_id
)
SELECT closed.team, count(*) AS tickets,
       ROUND((100.0 * count(*) FILTER (WHERE coalesce(customer.n, 0) >= 1) / count(*)), 1) AS coverage_pct
FROM closed JOIN sized USING (team) LEFT JOIN customer USING (ticket_id)
GROUP BY closed.team
ORDER BY 100.0 * count(*) FILTER (WHERE coalesce(customer.n, 0) >= 1) / count(*) DESC, closed.team

-- 3.7 Team FCR ranking: metric 1.3 per team, best first.
WITH closed AS (
    SELECT "TKT-Ticket ID" AS ticket_id, coalesce("TKT-Team", '(no team)') AS team
    FROM {schema}.tickets
    WHERE "TKT-Status" IN ({closed})
), customer AS (
    SELECT ticket_id, count(*) AS n FROM {schema}.comments WHERE visible_to_customer = 'Yes' GROUP BY ticket_id
), per_team AS (
    SELECT team, count(*) AS tickets,
           100.0 * count(*) FILTER (WHERE coalesce(customer.n, 0) <= 1) / count(*) AS fcr
    FROM closed LEFT JOIN customer USING (ticket_id)
    GROUP BY team
)
SELECT RANK() OVER (ORDER BY fcr DESC) AS rank, team, tickets, ROUND(fcr::numeric, 1) AS fcr_pct
FROM per_team
ORDER BY fcr DESC, team COLLATE "C"

-- 4.3 Summary: row counts per table and the number of closed tickets.  [SQLite twin of pipeline/sql/4_3_summary.sql]
SELECT (SELECT count(*) FROM tickets) AS tickets,
       (SELECT count(*) FROM comments) AS comments,
       (SELECT count(*) FROM timesheets) AS timesheets,
       (SELECT count(*) FROM tickets WHERE "TKT-Status" IN ({closed})) AS closed_tickets

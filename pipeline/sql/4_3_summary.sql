-- 4.3 Summary: row counts per table and the number of closed tickets.
SELECT (SELECT count(*) FROM {schema}.tickets) AS tickets,
       (SELECT count(*) FROM {schema}.comments) AS comments,
       (SELECT count(*) FROM {schema}.timesheets) AS timesheets,
       (SELECT count(*) FROM {schema}.tickets WHERE "TKT-Status" IN ({closed})) AS closed_tickets

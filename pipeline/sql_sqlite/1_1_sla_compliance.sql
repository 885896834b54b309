-- 1.1 SLA compliance: % of tickets whose "TKT-SLA Met" is 'yes', among tickets where it is recorded.  [SQLite twin of pipeline/sql/1_1_sla_compliance.sql]
SELECT ROUND((100.0 * count(*) FILTER (WHERE "TKT-SLA Met" = 'yes')
              / NULLIF(count("TKT-SLA Met"), 0)), 1) AS value
FROM tickets

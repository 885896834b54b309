-- 1.1 SLA compliance: % of tickets whose "TKT-SLA Met" is 'yes', among tickets where it is recorded.
SELECT ROUND((100.0 * count(*) FILTER (WHERE "TKT-SLA Met" = 'yes')
              / NULLIF(count("TKT-SLA Met"), 0))::numeric, 1) AS value
FROM {schema}.tickets

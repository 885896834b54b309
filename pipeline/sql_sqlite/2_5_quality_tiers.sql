-- 2.5 Quality tier distribution: comments per quality tier of the comment-quality table, with %.  [SQLite twin of pipeline/sql/2_5_quality_tiers.sql]
SELECT quality_tier AS tier, count(*) AS comments, ROUND((100.0 * count(*) / sum(count(*)) OVER ()), 1) AS pct
FROM comment_quality
GROUP BY quality_tier
ORDER BY quality_tier

-- 2.5 Quality tier distribution: comments per quality tier of the comment-quality table, with %.
SELECT quality_tier AS tier, count(*) AS comments, ROUND((100.0 * count(*) / sum(count(*)) OVER ())::numeric, 1) AS pct
FROM {schema}.comment_quality
GROUP BY quality_tier
ORDER BY quality_tier COLLATE "C"

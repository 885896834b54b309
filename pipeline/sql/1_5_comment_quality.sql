-- 1.5 Comment quality score: mean score of the comment-quality table (only when it exists).
SELECT ROUND(AVG(quality_score)::numeric, 1) AS value
FROM {schema}.comment_quality

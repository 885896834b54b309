-- 1.5 Comment quality score: mean score of the comment-quality table (only when it exists).  [SQLite twin of pipeline/sql/1_5_comment_quality.sql]
SELECT ROUND(AVG(quality_score), 1) AS value
FROM comment_quality

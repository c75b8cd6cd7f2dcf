-- First and last successful use of each role by each principal in [start, end).
-- Dialect: Athena (Trino).
-- Parameters: table, start, end (ISO 8601 UTC), start_day, end_day (yyyy/MM/dd partitions),
--             all_accounts, accounts, all_regions, regions (partition pruning).
-- Counts calls, not copies: the two accounts' records of one cross-account call count once.
{{include _calls}}
SELECT
  role_arn,
  principal,
  count(*) AS uses,
  min(event_time) AS first_used,
  max(event_time) AS last_used
FROM calls
WHERE error_code IS NULL AND role_arn IS NOT NULL
GROUP BY role_arn, principal
ORDER BY role_arn, principal

-- Failed AssumeRole-family attempts in [start, end), aggregated per account, role, principal,
-- source address and error code. Dialect: Athena (Trino).
-- Parameters: table, start, end (ISO 8601 UTC), start_day, end_day (yyyy/MM/dd partitions),
--             all_accounts, accounts, all_regions, regions (partition pruning).
-- Counts calls, not copies: the two accounts' records of one cross-account call count once.
{{include _calls}}
SELECT
  account_id,
  role_arn,
  principal,
  source_ip_address,
  error_code,
  count(*) AS attempts,
  min(event_time) AS first_seen,
  max(event_time) AS last_seen
FROM calls
WHERE error_code IS NOT NULL
GROUP BY account_id, role_arn, principal, source_ip_address, error_code
ORDER BY attempts DESC, account_id, role_arn, principal, source_ip_address, error_code

-- Fragment: the WHERE clause every Athena query shares. AssumeRole-family records in [start, end),
-- partitions pruned by day, account and region.
WHERE "timestamp" BETWEEN '{{start_day}}' AND '{{end_day}}'
  AND ({{all_accounts}} OR account IN ({{accounts}}))
  AND ({{all_regions}} OR region IN ({{regions}}))
  AND eventname IN ('AssumeRole', 'AssumeRoleWithSAML', 'AssumeRoleWithWebIdentity', 'AssumeRoot')
  AND (eventsource = 'sts.amazonaws.com' OR eventsource IS NULL)
  AND try(from_iso8601_timestamp(eventtime)) >= from_iso8601_timestamp('{{start}}')
  AND try(from_iso8601_timestamp(eventtime)) < from_iso8601_timestamp('{{end}}')

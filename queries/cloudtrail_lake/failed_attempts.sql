-- Failed AssumeRole-family attempts in [start, end), per account, role, principal, source address
-- and error code. Dialect: CloudTrail Lake SQL. Parameters: event_data_store, start, end.
-- A failed call keeps the role and the caller only in errorMessage: parse them from there.
-- An AssumeRoot's role is the target account's root, as monitor.events.normalise names it.
SELECT
  recipientAccountId AS account_id,
  CASE WHEN eventName = 'AssumeRoot' THEN {{include _assume_root_role}} ELSE coalesce(
    element_at(requestParameters, 'roleArn'),
    regexp_extract(errorMessage, 'on resource: (arn:[^\s]*[^\s.,;:)])', 1)
  ) END AS role_arn,
  coalesce(
    userIdentity.arn,
    regexp_extract(errorMessage, 'User: (arn:[^\s]+) is not authorized', 1),
    userIdentity.accountId || ':' || userIdentity.principalId
  ) AS principal,
  sourceIPAddress AS source_ip_address,
  errorCode AS error_code,
  count(DISTINCT coalesce(sharedEventID, eventID)) AS attempts,
  min(eventTime) AS first_seen,
  max(eventTime) AS last_seen
{{include _assume_role_window}}
  AND errorCode IS NOT NULL
GROUP BY 1, 2, 3, 4, 5
ORDER BY attempts DESC

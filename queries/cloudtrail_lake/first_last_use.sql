-- First and last successful use of each role by each principal in [start, end).
-- Dialect: CloudTrail Lake SQL. Parameters: event_data_store, start, end.
-- An AssumeRoot's role is the target account's root, as monitor.events.normalise names it.
SELECT
  CASE WHEN eventName = 'AssumeRoot' THEN {{include _assume_root_role}}
       ELSE element_at(requestParameters, 'roleArn') END AS role_arn,
  coalesce(userIdentity.arn, userIdentity.invokedBy,
           userIdentity.accountId || ':' || userIdentity.principalId) AS principal,
  count(DISTINCT coalesce(sharedEventID, eventID)) AS uses,
  min(eventTime) AS first_used,
  max(eventTime) AS last_used
{{include _assume_role_window}}
  AND errorCode IS NULL
GROUP BY 1, 2
ORDER BY 1, 2

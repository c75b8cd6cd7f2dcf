-- Fragment: AssumeRole-family records in [start, end) of one event data store.
FROM {{event_data_store}}
WHERE eventName IN ('AssumeRole', 'AssumeRoleWithSAML', 'AssumeRoleWithWebIdentity', 'AssumeRoot')
  AND eventSource = 'sts.amazonaws.com'
  AND eventTime >= '{{start}}'
  AND eventTime < '{{end}}'

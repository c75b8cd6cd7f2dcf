-- AssumeRole-family events in [start, end), one row per CloudTrail record.
-- Dialect: Athena (Trino) over the CloudTrail table of deploy/athena/cloudtrail_table.sql.
-- Parameters: table, start, end (ISO 8601 UTC), start_day, end_day (yyyy/MM/dd partitions),
--             all_accounts, accounts, all_regions, regions (partition pruning).
-- The columns are the push-down record columns (monitor/collectors/pushdown.py rebuilds a
-- CloudTrail-shaped record from them). Secrets stay in the table: only whether an ExternalId or
-- an MFA code was supplied leaves it, never the value.
SELECT
  eventversion AS event_version,
  eventtime AS event_time,
  eventsource AS event_source,
  eventname AS event_name,
  awsregion AS aws_region,
  sourceipaddress AS source_ip_address,
  useragent AS user_agent,
  errorcode AS error_code,
  errormessage AS error_message,
  eventid AS event_id,
  sharedeventid AS shared_event_id,
  recipientaccountid AS recipient_account_id,
  useridentity.type AS ui_type,
  useridentity.principalid AS ui_principal_id,
  useridentity.arn AS ui_arn,
  useridentity.accountid AS ui_account_id,
  useridentity.invokedby AS ui_invoked_by,
  useridentity.accesskeyid AS ui_access_key_id,
  useridentity.username AS ui_user_name,
  useridentity.identityprovider AS ui_identity_provider,
  useridentity.sessioncontext.sessionissuer.type AS issuer_type,
  useridentity.sessioncontext.sessionissuer.arn AS issuer_arn,
  useridentity.sessioncontext.attributes.mfaauthenticated AS mfa_authenticated,
  useridentity.sessioncontext.sourceidentity AS ui_source_identity,
  requestparameters IS NOT NULL AND requestparameters <> '{}' AS rp_present,
  json_extract_scalar(requestparameters, '$.roleArn') AS rp_role_arn,
  json_extract_scalar(requestparameters, '$.roleSessionName') AS rp_role_session_name,
  json_extract_scalar(requestparameters, '$.durationSeconds') AS rp_duration_seconds,
  json_extract_scalar(requestparameters, '$.sourceIdentity') AS rp_source_identity,
  json_extract_scalar(requestparameters, '$.principalArn') AS rp_principal_arn,
  json_extract_scalar(requestparameters, '$.providerId') AS rp_provider_id,
  json_extract_scalar(requestparameters, '$.targetPrincipal') AS rp_target_principal,
  coalesce(json_extract_scalar(requestparameters, '$.externalId'), '') <> '' AS rp_external_id_supplied,
  coalesce(json_extract_scalar(requestparameters, '$.serialNumber'), '') <> ''
    OR coalesce(json_extract_scalar(requestparameters, '$.tokenCode'), '') <> '' AS rp_mfa_supplied,
  json_extract_scalar(responseelements, '$.assumedRoleUser.arn') AS re_assumed_role_arn,
  json_extract_scalar(responseelements, '$.credentials.accessKeyId') AS re_access_key_id,
  json_extract_scalar(responseelements, '$.credentials.expiration') AS re_expiration,
  json_extract_scalar(responseelements, '$.sourceIdentity') AS re_source_identity,
  element_at(filter(resources, r -> r.type = 'AWS::IAM::Role'), 1).arn AS resource_role_arn
FROM {{table}}
{{include _assume_role_window}}
ORDER BY eventtime, eventid

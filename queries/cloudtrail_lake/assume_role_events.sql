-- AssumeRole-family events in [start, end), one row per CloudTrail record.
-- Dialect: CloudTrail Lake SQL over an event data store (FROM takes the data store ID).
-- Parameters: event_data_store, start, end ('yyyy-MM-dd HH:mm:ss' UTC).
-- Columns: the push-down record columns, as in queries/athena/assume_role_events.sql. In Lake,
-- requestParameters and responseElements are maps; only whether an ExternalId or MFA code was
-- supplied leaves the store, never the value.
SELECT
  eventVersion AS event_version,
  eventTime AS event_time,
  eventSource AS event_source,
  eventName AS event_name,
  awsRegion AS aws_region,
  sourceIPAddress AS source_ip_address,
  userAgent AS user_agent,
  errorCode AS error_code,
  errorMessage AS error_message,
  eventID AS event_id,
  sharedEventID AS shared_event_id,
  recipientAccountId AS recipient_account_id,
  userIdentity.type AS ui_type,
  userIdentity.principalId AS ui_principal_id,
  userIdentity.arn AS ui_arn,
  userIdentity.accountId AS ui_account_id,
  userIdentity.invokedBy AS ui_invoked_by,
  userIdentity.accessKeyId AS ui_access_key_id,
  userIdentity.userName AS ui_user_name,
  userIdentity.identityProvider AS ui_identity_provider,
  userIdentity.sessionContext.sessionIssuer.type AS issuer_type,
  userIdentity.sessionContext.sessionIssuer.arn AS issuer_arn,
  userIdentity.sessionContext.attributes.mfaAuthenticated AS mfa_authenticated,
  userIdentity.sessionContext.sourceIdentity AS ui_source_identity,
  cardinality(requestParameters) > 0 AS rp_present,
  element_at(requestParameters, 'roleArn') AS rp_role_arn,
  element_at(requestParameters, 'roleSessionName') AS rp_role_session_name,
  element_at(requestParameters, 'durationSeconds') AS rp_duration_seconds,
  element_at(requestParameters, 'sourceIdentity') AS rp_source_identity,
  element_at(requestParameters, 'principalArn') AS rp_principal_arn,
  element_at(requestParameters, 'providerId') AS rp_provider_id,
  element_at(requestParameters, 'targetPrincipal') AS rp_target_principal,
  coalesce(element_at(requestParameters, 'externalId'), '') <> '' AS rp_external_id_supplied,
  coalesce(element_at(requestParameters, 'serialNumber'), '') <> ''
    OR coalesce(element_at(requestParameters, 'tokenCode'), '') <> '' AS rp_mfa_supplied,
  json_extract_scalar(element_at(responseElements, 'assumedRoleUser'), '$.arn') AS re_assumed_role_arn,
  json_extract_scalar(element_at(responseElements, 'credentials'), '$.accessKeyId') AS re_access_key_id,
  json_extract_scalar(element_at(responseElements, 'credentials'), '$.expiration') AS re_expiration,
  element_at(responseElements, 'sourceIdentity') AS re_source_identity
{{include _assume_role_window}}
ORDER BY eventTime, eventID

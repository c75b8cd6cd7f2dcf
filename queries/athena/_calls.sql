-- Fragment: the AssumeRole-family calls in the window, one row per call. Both accounts' copies of a
-- cross-account call count once, and the caller's full identity (from its own account's copy)
-- names the principal, as monitor.events.merge does in process.
WITH ar AS (
  SELECT
    coalesce(nullif(sharedeventid, ''), eventid) AS call_id,
    eventid AS event_id,
    nullif(recipientaccountid, '') AS recipient,
    try(from_iso8601_timestamp(eventtime)) AS event_time,
    nullif(errorcode, '') AS error_code,
    nullif(sourceipaddress, '') AS source_ip_address,
    CASE WHEN eventname = 'AssumeRoot' THEN coalesce(
      -- the target account's root, as monitor.events.normalise names it: from targetPrincipal in the
      -- caller's partition, else the root resource a refusal's message names
      'arn:' || coalesce(nullif(regexp_extract(useridentity.arn, '^arn:(aws[\w-]*):', 1), ''),
                         CASE WHEN awsregion LIKE 'cn-%' THEN 'aws-cn'
                              WHEN awsregion LIKE 'us-gov-%' THEN 'aws-us-gov' ELSE 'aws' END)
        || ':iam::' || nullif(regexp_extract(json_extract_scalar(requestparameters, '$.targetPrincipal'),
                                             '^(?:arn:aws[\w-]*:[\w-]+::)?(\d{12})(?::|$)', 1), '') || ':root',
      nullif(regexp_extract(regexp_replace(regexp_extract(errormessage,
        'User: arn:[^\s]+ is not authorized to perform: sts:\w+ on resource: (arn:[^\s]+)', 1), '[.,;:)]+$', ''),
        '^(arn:aws[\w-]*:iam::\d{12}:root)$', 1), '')
    ) ELSE coalesce(
      nullif(json_extract_scalar(requestparameters, '$.roleArn'), ''),
      nullif(regexp_replace(regexp_extract(errormessage,
        'User: arn:[^\s]+ is not authorized to perform: sts:\w+ on resource: (arn:[^\s]+)', 1), '[.,;:)]+$', ''), ''),
      nullif(element_at(filter(resources, r -> r.type = 'AWS::IAM::Role'), 1).arn, '')
    ) END AS role_arn,
    coalesce(
      nullif(useridentity.arn, ''),
      nullif(regexp_replace(regexp_extract(errormessage,
        'User: (arn:[^\s]+) is not authorized to perform: sts:\w+', 1), '[.,;:)]+$', ''), '')
    ) AS principal_arn,
    nullif(useridentity.type, '') AS principal_type,
    nullif(useridentity.invokedby, '') AS invoked_by,
    nullif(useridentity.username, '') AS user_name,
    coalesce(
      nullif(useridentity.principalid, ''),
      CASE WHEN useridentity.type IN ('SAMLUser', 'WebIdentityUser') THEN nullif(useridentity.username, '') END
    ) AS principal_id,
    nullif(useridentity.accountid, '') AS principal_account,
    coalesce(
      nullif(useridentity.identityprovider, ''),
      CASE eventname
        WHEN 'AssumeRoleWithSAML' THEN nullif(json_extract_scalar(requestparameters, '$.principalArn'), '')
        WHEN 'AssumeRoleWithWebIdentity' THEN nullif(json_extract_scalar(requestparameters, '$.providerId'), '')
      END
    ) AS identity_provider
  FROM {{table}}
  {{include _assume_role_window}}
    AND nullif(eventid, '') IS NOT NULL
    AND try(from_iso8601_timestamp(eventtime)) >= from_iso8601_timestamp('{{start}}')
    AND try(from_iso8601_timestamp(eventtime)) < from_iso8601_timestamp('{{end}}')
),
keyed AS (
  SELECT
    ar.*,
    -- the role owner's copy of a cross-account call first, then by event id (as one_row_per_call)
    CASE WHEN recipient = regexp_extract(role_arn, '^arn:aws[\w-]*:[\w-]+::(\d{12}):', 1) THEN '0' ELSE '1' END
      || event_id AS copy_rank,
    CASE
      WHEN principal_arn IS NOT NULL THEN principal_arn
      WHEN principal_type = 'AWSService' AND invoked_by IS NOT NULL THEN invoked_by
      WHEN principal_type IN ('SAMLUser', 'WebIdentityUser') AND identity_provider IS NOT NULL
        THEN identity_provider || ':' || coalesce(user_name, principal_id, 'None')
      WHEN principal_id IS NOT NULL OR principal_account IS NOT NULL
        THEN coalesce(principal_account, '?') || ':' || coalesce(principal_id, '?')
    END AS principal_key
  FROM ar
),
-- one row per call: both accounts' copies of a cross-account call count once, and the caller's
-- full identity (from its own account's copy) names the principal
calls AS (
  SELECT
    call_id,
    nullif(min_by(coalesce(recipient, ''), copy_rank), '') AS account_id,
    nullif(min_by(coalesce(role_arn, ''), copy_rank), '') AS role_arn,
    coalesce(
      nullif(min_by(coalesce(principal_arn, ''), copy_rank), ''),
      max(CASE WHEN principal_type <> 'AWSAccount' THEN principal_arn END),
      nullif(min_by(coalesce(principal_key, ''), copy_rank), '')
    ) AS principal,
    nullif(min_by(coalesce(source_ip_address, ''), copy_rank), '') AS source_ip_address,
    nullif(min_by(coalesce(error_code, ''), copy_rank), '') AS error_code,
    min_by(event_time, copy_rank) AS event_time
  FROM keyed
  GROUP BY call_id
)

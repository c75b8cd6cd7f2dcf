-- The CloudTrail table for the `athena` source, with partition projection so every rolewatch
-- query prunes by account, region and day instead of scanning the whole trail.
--
-- Replace before running (Athena console, or `aws athena start-query-execution`):
--   ${BUCKET}      the trail bucket                    e.g. org-trail
--   ${PREFIX}      the path down to the account folders e.g. AWSLogs/o-abc123def4   (or AWSLogs)
--   ${ACCOUNTS}    comma-separated account IDs         e.g. 111122223333,444455556666
--   ${REGIONS}     comma-separated regions             e.g. us-east-1,eu-west-1
--   ${START_DAY}   first day of the trail, yyyy/MM/dd  e.g. 2024/01/01
-- The `${account}`, `${region}` and `${timestamp}` in storage.location.template are Athena's own
-- projection variables: leave them as they are.
--
-- The columns follow the standard CloudTrail table of the Athena documentation, with
-- userIdentity.identityProvider and sessionContext.sourceIdentity added: rolewatch reads both.
CREATE EXTERNAL TABLE IF NOT EXISTS cloudtrail_logs (
  eventversion STRING,
  useridentity STRUCT<
    type: STRING,
    principalid: STRING,
    arn: STRING,
    accountid: STRING,
    invokedby: STRING,
    accesskeyid: STRING,
    username: STRING,
    identityprovider: STRING,
    onbehalfof: STRUCT<userid: STRING, identitystorearn: STRING>,
    sessioncontext: STRUCT<
      attributes: STRUCT<mfaauthenticated: STRING, creationdate: STRING>,
      sessionissuer: STRUCT<type: STRING, principalid: STRING, arn: STRING, accountid: STRING, username: STRING>,
      ec2roledelivery: STRING,
      webidfederationdata: STRUCT<federatedprovider: STRING, attributes: MAP<STRING, STRING>>,
      sourceidentity: STRING>>,
  eventtime STRING,
  eventsource STRING,
  eventname STRING,
  awsregion STRING,
  sourceipaddress STRING,
  useragent STRING,
  errorcode STRING,
  errormessage STRING,
  requestparameters STRING,
  responseelements STRING,
  additionaleventdata STRING,
  requestid STRING,
  eventid STRING,
  readonly STRING,
  resources ARRAY<STRUCT<arn: STRING, accountid: STRING, type: STRING>>,
  eventtype STRING,
  apiversion STRING,
  recipientaccountid STRING,
  serviceeventdetails STRING,
  sharedeventid STRING,
  vpcendpointid STRING,
  eventcategory STRING,
  tlsdetails STRUCT<tlsversion: STRING, ciphersuite: STRING, clientprovidedhostheader: STRING>
)
PARTITIONED BY (account STRING, region STRING, `timestamp` STRING)
ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'
STORED AS INPUTFORMAT 'com.amazon.emr.cloudtrail.CloudTrailInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION 's3://${BUCKET}/${PREFIX}/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.account.type' = 'enum',
  'projection.account.values' = '${ACCOUNTS}',
  'projection.region.type' = 'enum',
  'projection.region.values' = '${REGIONS}',
  'projection.timestamp.type' = 'date',
  'projection.timestamp.format' = 'yyyy/MM/dd',
  'projection.timestamp.range' = '${START_DAY},NOW',
  'projection.timestamp.interval' = '1',
  'projection.timestamp.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://${BUCKET}/${PREFIX}/${account}/CloudTrail/${region}/${timestamp}'
);

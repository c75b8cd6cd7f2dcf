"""A DuckDB view that mirrors the Athena CloudTrail table of deploy/athena/cloudtrail_table.sql.

Same column names and types (structs, the JSON-text request/response columns, the resources
array) and the same partition columns, derived from the S3 layout of each file's path the way
partition projection derives them. Athena queries, transpiled by sqlglot from Trino to DuckDB,
run over it unchanged.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import sqlglot

MIRROR_SQL = r"""
CREATE SCHEMA IF NOT EXISTS "default";
CREATE OR REPLACE VIEW "default".cloudtrail_logs AS
WITH raw AS (
  SELECT unnest(Records) AS r, filename
  FROM read_json({files}, columns = {{'Records': 'JSON[]'}}, filename = true, format = 'auto')
)
SELECT
  r->>'eventVersion' AS eventversion,
  {{
    'type': r->'userIdentity'->>'type',
    'principalid': r->'userIdentity'->>'principalId',
    'arn': r->'userIdentity'->>'arn',
    'accountid': r->'userIdentity'->>'accountId',
    'invokedby': r->'userIdentity'->>'invokedBy',
    'accesskeyid': r->'userIdentity'->>'accessKeyId',
    'username': r->'userIdentity'->>'userName',
    'identityprovider': r->'userIdentity'->>'identityProvider',
    'sessioncontext': {{
      'attributes': {{
        'mfaauthenticated': r->'userIdentity'->'sessionContext'->'attributes'->>'mfaAuthenticated',
        'creationdate': r->'userIdentity'->'sessionContext'->'attributes'->>'creationDate'
      }},
      'sessionissuer': {{
        'type': r->'userIdentity'->'sessionContext'->'sessionIssuer'->>'type',
        'principalid': r->'userIdentity'->'sessionContext'->'sessionIssuer'->>'principalId',
        'arn': r->'userIdentity'->'sessionContext'->'sessionIssuer'->>'arn',
        'accountid': r->'userIdentity'->'sessionContext'->'sessionIssuer'->>'accountId',
        'username': r->'userIdentity'->'sessionContext'->'sessionIssuer'->>'userName'
      }},
      'sourceidentity': r->'userIdentity'->'sessionContext'->>'sourceIdentity'
    }}
  }} AS useridentity,
  r->>'eventTime' AS eventtime,
  r->>'eventSource' AS eventsource,
  r->>'eventName' AS eventname,
  r->>'awsRegion' AS awsregion,
  r->>'sourceIPAddress' AS sourceipaddress,
  r->>'userAgent' AS useragent,
  r->>'errorCode' AS errorcode,
  r->>'errorMessage' AS errormessage,
  CASE WHEN json_type(r->'requestParameters') IN ('OBJECT', 'ARRAY')
       THEN CAST(r->'requestParameters' AS VARCHAR) ELSE r->>'requestParameters' END AS requestparameters,
  CASE WHEN json_type(r->'responseElements') IN ('OBJECT', 'ARRAY')
       THEN CAST(r->'responseElements' AS VARCHAR) ELSE r->>'responseElements' END AS responseelements,
  r->>'eventID' AS eventid,
  CASE WHEN json_type(r->'resources') = 'ARRAY' THEN
    list_transform(CAST(r->'resources' AS JSON[]),
                   lambda x: {{'arn': coalesce(x->>'ARN', x->>'arn'), 'accountid': x->>'accountId', 'type': x->>'type'}})
  END AS resources,
  r->>'recipientAccountId' AS recipientaccountid,
  r->>'sharedEventID' AS sharedeventid,
  regexp_extract(filename, 'AWSLogs/(?:o-[a-z0-9]+/)?(\d{{12}})/CloudTrail/([\w-]+)/(\d{{4}}/\d{{2}}/\d{{2}})/', 1)
    AS account,
  regexp_extract(filename, 'AWSLogs/(?:o-[a-z0-9]+/)?(\d{{12}})/CloudTrail/([\w-]+)/(\d{{4}}/\d{{2}}/\d{{2}})/', 2)
    AS region,
  regexp_extract(filename, 'AWSLogs/(?:o-[a-z0-9]+/)?(\d{{12}})/CloudTrail/([\w-]+)/(\d{{4}}/\d{{2}}/\d{{2}})/', 3)
    AS "timestamp"
FROM raw
"""


def mirror(root: Path, con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
    con = con or duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    pattern = str(root / "**" / "*.json.gz").replace("'", "''")
    con.execute(MIRROR_SQL.format(files=f"'{pattern}'"))
    return con


def run_athena_sql(con: duckdb.DuckDBPyConnection, trino_sql: str) -> list[dict]:
    """Transpile Athena (Trino) SQL to DuckDB and run it; rows as dicts."""
    sql = sqlglot.transpile(trino_sql, read="trino", write="duckdb")[0]
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

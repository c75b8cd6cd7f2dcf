"""The event table: one row per AssumeRole-family CloudTrail record.

Column names and dtypes here are the documented schema (README "Event table"). Every part of
rolewatch that reads events reads this table, whichever source the records came from.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

# AssumeRoot (centralized root access) belongs here: it hands out credentials of a member account's root
# user, and its row names that root as the "role" (see normalise.root_arn)
ASSUME_ROLE_EVENTS: frozenset[str] = frozenset(
    {"AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity", "AssumeRoot"}
)

# name -> pandas dtype. Order is the column order of the table.
COLUMNS: dict[str, str] = {
    "event_id": "string",
    "shared_event_id": "string",  # same value in both accounts' copies of a cross-account call
    "event_time": "datetime64[ns, UTC]",
    "event_name": "string",
    "event_version": "string",
    "account_id": "string",  # recipientAccountId: whose trail holds this copy
    "aws_region": "string",
    "role_arn": "string",  # the role being assumed; for AssumeRoot arn:<partition>:iam::<target account>:root
    "role_account_id": "string",
    "role_session_name": "string",
    "principal_arn": "string",  # caller's ARN; null when the trail knows only account + principal id
    "principal_type": "string",  # userIdentity.type: IAMUser, AssumedRole, AWSAccount, AWSService, ...
    "principal_id": "string",
    "principal_account_id": "string",
    "principal_role_arn": "string",  # for an assumed-role caller: the role behind its session (chaining)
    "principal_service": "string",  # for AWSService callers: invokedBy, e.g. lambda.amazonaws.com
    "principal_key": "string",  # grouping key: principal_arn, else service, else account:principal_id
    "identity_provider": "string",  # SAML / OIDC provider for the federated calls
    "caller_access_key_id": "string",  # key the caller signed with (follows a chain backwards)
    "source_ip": "string",  # a valid IPv4/IPv6 address, else null
    "source_ip_raw": "string",  # sourceIPAddress as recorded
    "via_aws_service": "string",  # sourceIPAddress when it is a service name (ec2.amazonaws.com, AWS Internal)
    "user_agent": "string",
    "error_code": "string",
    "error_message": "string",
    "external_id_supplied": "boolean",  # the value itself is never kept
    "mfa_authenticated": "boolean",
    "duration_seconds": "Int64",
    "source_identity": "string",
    "assumed_role_arn": "string",  # arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION issued
    "access_key_id": "string",  # issued temporary key id (ASIA...)
    "credentials_expiration": "datetime64[ns, UTC]",
    "is_cross_account": "boolean",
    "success": "bool",
}


def empty_frame() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in COLUMNS.items()})


def frame_from_rows(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Build the typed table in one go (columnar), not row by row."""
    return frame_from_columns(columns_of(rows))


def columns_of(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Rows (dicts) -> one list per schema column: compact to ship between processes, cheap to concatenate."""
    return {name: [r.get(name) for r in rows] for name in COLUMNS}


def frame_from_columns(cols: dict[str, list[Any]]) -> pd.DataFrame:
    """The typed table from one list per column (as `columns_of` gives)."""
    if not cols or not cols.get("event_id"):
        return empty_frame()
    return pd.DataFrame({name: typed_series(name, cols[name]) for name in COLUMNS})


def typed_series(name: str, values: Any) -> pd.Series:
    """One column's values (Python objects, None for missing) with the column's documented dtype."""
    dtype = COLUMNS[name]
    if dtype.startswith("datetime64"):
        return pd.to_datetime(
            pd.Series(values, dtype="object"), utc=True, errors="coerce", format="mixed"
        ).dt.as_unit("ns")
    if dtype == "bool":
        return pd.Series([bool(v) for v in values], dtype="bool")
    return pd.Series(values, dtype="object").astype(dtype)


def coerce(df: pd.DataFrame) -> pd.DataFrame:
    """Give any frame with (a subset of) the columns the documented dtypes and column order."""
    out = {}
    n = len(df)
    for name, dtype in COLUMNS.items():
        if name in df.columns:
            s = df[name]
            if dtype.startswith("datetime64"):
                s = pd.to_datetime(s, utc=True, errors="coerce", format="mixed").dt.as_unit("ns")
            elif dtype == "bool":
                s = s.fillna(False).astype("bool")
            else:
                s = s.astype(dtype)
        else:
            s = pd.Series([None] * n, dtype=dtype if not dtype.startswith("datetime64") else "object")
            if dtype.startswith("datetime64"):
                s = pd.to_datetime(s, utc=True).dt.as_unit("ns")
            elif dtype == "bool":
                s = s.fillna(False).astype("bool")
        out[name] = s.reset_index(drop=True)
    return pd.DataFrame(out)

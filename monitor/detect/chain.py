"""Who is really behind a session: follow the caller's access key back through earlier AssumeRoles.

An assumed-role caller signs with a temporary key that an earlier AssumeRole issued (its
`responseElements.credentials.accessKeyId`). Following those links back ends at an IAM user, a
SAML or web identity, an AWS service, or the edge of the data. IAM Identity Center sessions are
named after the person, so they end the chain as "<person> via SSO". A `sourceIdentity` set
anywhere along the way names the person outright.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

_MAX_HOPS = 10
CHAIN_COLUMNS = (
    "principal_type",
    "principal_arn",
    "principal_id",
    "principal_account_id",
    "principal_role_arn",
    "principal_service",
    "identity_provider",
    "caller_access_key_id",
    "source_identity",
    "role_arn",
    "principal_key",
)


def issued_index(df: pd.DataFrame) -> pd.DataFrame:
    """Successful calls by the key they issued (one row per key)."""
    issued = df.loc[df["success"] & df["access_key_id"].notna(), ["access_key_id", *CHAIN_COLUMNS]]
    return issued.drop_duplicates("access_key_id").set_index("access_key_id")


def _v(row: Any, col: str) -> Any:
    value = row.get(col)
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value


def _name(arn: str | None) -> str | None:
    if not arn:
        return None
    return arn.rsplit("/", 1)[-1] if "/" in arn else arn.rsplit(":", 1)[-1]


def _session_of(arn: str | None) -> str | None:
    return arn.rsplit("/", 1)[-1] if arn and ":assumed-role/" in arn else None


def _origin(row: Any) -> tuple[str, dict[str, Any]] | None:
    """A caller that ends the chain: (label, hop), or None when the caller is a role session."""
    kind = _v(row, "principal_type")
    arn = _v(row, "principal_arn")
    if kind == "IAMUser":
        return f"{_name(arn)} (IAM user)", {"type": "IAMUser", "arn": arn}
    if kind == "Root":
        return f"root of {_v(row, 'principal_account_id')}", {"type": "Root", "arn": arn}
    if kind == "AWSService" or _v(row, "principal_service"):
        svc = _v(row, "principal_service") or "an AWS service"
        return svc, {"type": "AWSService", "service": svc}
    if kind in ("SAMLUser", "WebIdentityUser"):
        via = "SAML" if kind == "SAMLUser" else "web identity"
        provider, key = _v(row, "identity_provider"), _v(row, "principal_key") or ""
        # principal_key is "<provider>:<userName>" for federated callers: the readable name
        who = (key[len(provider) + 1:] if provider and key.startswith(provider + ":") else None) \
            or _v(row, "principal_id") or "unknown user"
        return f"{who} via {via}", {"type": kind, "provider": _v(row, "identity_provider"), "user": who}
    if kind == "AWSAccount" or (not arn and _v(row, "principal_account_id")):
        acct, pid = _v(row, "principal_account_id"), _v(row, "principal_id")
        return f"{pid or '?'} in account {acct or '?'}", {"type": "AWSAccount", "account": acct, "principal_id": pid}
    if kind == "AssumedRole" and "AWSReservedSSO_" in (arn or ""):
        person = _session_of(arn)
        return f"{person} via SSO", {"type": "SSO", "user": person, "permission_set_role": _v(row, "principal_role_arn")}
    if kind == "AssumedRole":
        return None
    return (_name(arn) or "unknown caller"), {"type": kind, "arn": arn}


def chain_of(event: Any, issued: pd.DataFrame) -> dict[str, Any]:
    """{"chain": "alice via SSO → ci-runner → DeployRole", "hops": [...], "source_identity": ...}."""
    hops: list[dict[str, Any]] = [{"type": "Role", "arn": _v(event, "role_arn")}]
    labels = [_name(_v(event, "role_arn")) or "unknown role"]
    source_identity = _v(event, "source_identity")
    row, seen = event, set()
    for _ in range(_MAX_HOPS):
        source_identity = source_identity or _v(row, "source_identity")
        origin = _origin(row)
        if origin is not None:
            labels.append(origin[0])
            hops.append(origin[1])
            break
        role = _v(row, "principal_role_arn")
        labels.append(_name(role) or "unknown role")
        hops.append({"type": "AssumedRole", "arn": role, "session": _session_of(_v(row, "principal_arn"))})
        key = _v(row, "caller_access_key_id")
        if not key or key in seen or key not in issued.index:
            labels[-1] += f" (session {_session_of(_v(row, 'principal_arn')) or '?'}; issuer not in the data)"
            break
        seen.add(key)
        row = issued.loc[key].to_dict()
    text = " → ".join(reversed(labels))
    if source_identity:
        text = f"{source_identity} (sourceIdentity): {text}"
    return {"chain": text, "hops": list(reversed(hops)), "source_identity": source_identity}

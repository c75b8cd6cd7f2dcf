"""The little the detectors need from IAM: find a role, list whom its trust policy admits, guess why a call failed.

The full condition evaluator belongs to `monitor.policy` (IAM posture work); when it is present,
`likely_cause` defers to it and only answers the simple cases itself.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from monitor.posture.model import Posture, RoleInfo

_ACCOUNT_RE = re.compile(r"^\d{12}$")
_ROOT_RE = re.compile(r"^arn:aws[\w-]*:iam::(\d{12}):root$")

ROLE_MISSING = "role does not exist"
NOT_TRUSTED = "principal not trusted"
UNDETERMINED = "undetermined"
EXPIRED_CREDENTIALS = "caller's credentials expired"


def role_key(arn: str | None) -> str | None:
    """account:name of a role ARN, with or without its path (requests often omit the path)."""
    if not arn or ":role/" not in arn:
        return None
    head, _, rest = arn.partition(":role/")
    account = head.rsplit(":", 1)[-1]
    return f"{account}:{rest.rsplit('/', 1)[-1]}"


def role_index(posture: Posture) -> dict[str, RoleInfo]:
    return {k: r for r in posture.roles.values() if (k := role_key(r.arn))}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _assume_statements(policy: dict[str, Any], event_name: str | None = None) -> list[dict[str, Any]]:
    action = f"sts:{event_name or 'AssumeRole'}".lower()
    out = []
    for stmt in _as_list(policy.get("Statement")):
        if not isinstance(stmt, dict) or stmt.get("Effect") != "Allow":
            continue
        actions = [str(a).lower() for a in _as_list(stmt.get("Action"))]
        if "Action" in stmt and not any(fnmatch.fnmatchcase(action, a) for a in actions):
            continue
        out.append(stmt)
    return out


def _principals(stmt: dict[str, Any]) -> list[str]:
    principal = stmt.get("Principal")
    if principal == "*":
        return ["*"]
    if not isinstance(principal, dict):
        return []
    return [str(p) for values in principal.values() for p in _as_list(values)]


def trusted_principals(policy: dict[str, Any]) -> list[str]:
    """Everyone an Allow statement of the trust policy admits to sts:AssumeRole*, sorted."""
    seen: set[str] = set()
    for stmt in _assume_statements(policy, "AssumeRole*"):
        seen.update(_principals(stmt))
    return sorted(seen)


def _caller_matches(principal: str, event: dict[str, Any]) -> bool:
    if principal == "*":
        return True
    account = event.get("principal_account_id")
    m = _ROOT_RE.match(principal)
    if m or _ACCOUNT_RE.match(principal):
        return bool(account) and account == (m.group(1) if m else principal)
    candidates = {
        event.get("principal_arn"),
        event.get("principal_role_arn"),
        event.get("principal_service"),
        event.get("identity_provider"),
    }
    candidates.discard(None)
    # a role principal names the role; a session of it calls with an assumed-role ARN
    return principal in candidates or role_key(principal) in {role_key(c) for c in candidates}


def principal_trusted(policy: dict[str, Any], event: dict[str, Any]) -> bool:
    return any(
        _caller_matches(p, event)
        for stmt in _assume_statements(policy, event.get("event_name"))
        for p in _principals(stmt)
    )


def likely_cause(event: dict[str, Any], posture: Posture, index: dict[str, RoleInfo] | None = None) -> str | None:
    """Why a failed AssumeRole probably failed; None when IAM for the role's account is unknown."""
    if (event.get("error_code") or "").startswith("ExpiredToken"):
        return EXPIRED_CREDENTIALS
    account = event.get("role_account_id")
    if not posture.known or account not in posture.accounts:
        return None
    index = role_index(posture) if index is None else index
    role = index.get(role_key(event.get("role_arn")) or "")
    try:
        from monitor import policy as policy_module

        evaluator = getattr(policy_module, "likely_cause", None)
    except ImportError:  # pragma: no cover - the package exists, the evaluator may not yet
        evaluator = None
    if evaluator is not None:
        return evaluator(event, role)
    if role is None:
        return ROLE_MISSING
    if not principal_trusted(role.trust_policy, event):
        return NOT_TRUSTED
    return UNDETERMINED

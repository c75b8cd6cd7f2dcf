"""The little the detectors need from IAM: whom a trust policy admits, and why a call likely failed.

The reasoning about conditions lives in `monitor.policy` (the trust-policy evaluator); this module
only adapts it to the detectors and adds what the error code alone tells.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from monitor.policy.likely_cause import likely_cause_in
from monitor.policy.model import PolicyError, parse_policy
from monitor.posture.model import Posture

EXPIRED_CREDENTIALS = "caller's credentials expired"


def trusted_principals(policy: dict[str, Any]) -> list[str]:
    """Everyone an Allow statement of the trust policy admits to an sts:AssumeRole* action, sorted."""
    try:
        parsed = parse_policy(policy)
    except PolicyError:
        return []
    seen: set[str] = set()
    for st in parsed.allow_statements:
        if not any(st.action_matches(a) for a in ("sts:AssumeRole", "sts:AssumeRoleWithSAML",
                                                   "sts:AssumeRoleWithWebIdentity")):
            continue
        for p in st.principals or []:
            seen.add("*" if p.is_wildcard else p.value)
    return sorted(seen)


def likely_cause(event: dict[str, Any], posture: Posture, now: datetime) -> str | None:
    """Why a failed AssumeRole probably failed; None when IAM for the role's account is unknown."""
    if (event.get("error_code") or "").startswith("ExpiredToken"):
        return EXPIRED_CREDENTIALS
    if not posture.known:
        return None
    return likely_cause_in(event, posture, now)

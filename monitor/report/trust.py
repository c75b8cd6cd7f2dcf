"""Summarise a role's trust policy for a reviewer: who may assume it, under which conditions.

A reviewer needs the shape of each grant, not the policy JSON: which principals, whether an
ExternalId is required (never its value: it is a shared secret, and every value seen here is
registered with `monitor.redact` so it is masked wherever else it turns up), whether MFA is
required, and any source-IP or date limits.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from monitor.redact import register_secret

_ACCOUNT_ARN_RE = re.compile(r"^arn:aws[\w-]*:(?:iam|sts)::(\d{12}):")
_ASSUME_ACTIONS = ("sts:assumerole", "sts:assumerolewithsaml", "sts:assumerolewithwebidentity", "sts:*", "*")
_DATE_KEYS = {"aws:currenttime", "aws:epochtime"}


@dataclass(frozen=True)
class TrustGrant:
    """One principal admitted by one Allow statement."""

    principal: str
    kind: str  # aws_account | aws_arn | any | service | federated
    principal_account_id: str | None
    external_id_required: bool
    mfa_required: bool
    source_ip: str  # "" when unrestricted
    date_window: str  # "" when unrestricted
    other_conditions: str  # condition keys (never values) of the rest
    statement: str  # Sid or index


@dataclass
class TrustSummary:
    grants: list[TrustGrant] = field(default_factory=list)
    deny_statements: int = 0
    notes: list[str] = field(default_factory=list)  # e.g. unreadable policy


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def parse_policy(policy: Any) -> dict[str, Any]:
    """Trust policies arrive as dicts, JSON strings, or URL-encoded JSON (IAM's raw API form)."""
    if isinstance(policy, dict):
        return policy
    if isinstance(policy, str) and policy.strip():
        text = policy if policy.lstrip().startswith("{") else unquote(policy)
        loaded = json.loads(text)
        if isinstance(loaded, dict):
            return loaded
    raise ValueError("trust policy is not a JSON object")


def _principal_kind(ptype: str, value: str) -> tuple[str, str | None]:
    if ptype == "Service":
        return "service", None
    if ptype == "Federated":
        return "federated", None
    if value == "*":
        return "any", None
    if re.fullmatch(r"\d{12}", value):
        return "aws_account", value
    m = _ACCOUNT_ARN_RE.match(value)
    if m:
        return ("aws_account" if value.endswith(":root") else "aws_arn"), m.group(1)
    return "aws_arn", None


def _condition_facts(conditions: dict[str, Any]) -> tuple[bool, bool, str, str, str]:
    external_id = mfa = False
    ip_parts: list[str] = []
    date_parts: list[str] = []
    other: list[str] = []
    for op, block in conditions.items():
        if not isinstance(block, dict):
            continue
        op_l = op.lower()
        for key, raw in block.items():
            key_l = key.lower()
            values = [str(v) for v in _as_list(raw)]
            if key_l == "sts:externalid":
                for v in values:
                    register_secret(v)
                # `...IfExists` lets a request without an ExternalId through: not a requirement
                if not op_l.endswith("ifexists") and not op_l.startswith("null"):
                    external_id = True
            elif key_l == "aws:multifactorauthpresent":
                lowered = [v.lower() for v in values]
                # Bool true (not IfExists: a request without MFA data would pass), or Null false
                bool_true = op_l.startswith("bool") and not op_l.endswith("ifexists") and "true" in lowered
                mfa = mfa or bool_true or (op_l.startswith("null") and "false" in lowered)
            elif key_l == "aws:multifactorauthage":
                if op_l.startswith("numericless") and not op_l.endswith("ifexists"):
                    mfa = True
            elif key_l in ("aws:sourceip", "aws:vpcsourceip"):
                neg = op_l.startswith("notipaddress")
                ip_parts.append(("not in " if neg else "in ") + ", ".join(sorted(values)))
            elif key_l in _DATE_KEYS and op_l.startswith("date"):
                word = "until" if "less" in op_l else "from"
                date_parts.append(f"{word} {', '.join(values)}")
            else:
                other.append(f"{op}:{key}")
    return external_id, mfa, "; ".join(ip_parts), "; ".join(sorted(date_parts)), ", ".join(sorted(other))


def _allows_assume(statement: dict[str, Any]) -> bool:
    actions = [str(a).lower() for a in _as_list(statement.get("Action"))]
    if not actions and statement.get("NotAction") is not None:
        return True  # NotAction grants everything not listed: conservative, show it
    return any(a in _ASSUME_ACTIONS for a in actions)


def summarise_trust(policy: Any) -> TrustSummary:
    out = TrustSummary()
    if policy in (None, "", {}):
        return out
    try:
        doc = parse_policy(policy)
    except (ValueError, json.JSONDecodeError):
        out.notes.append("trust policy unreadable")
        return out
    for index, statement in enumerate(_as_list(doc.get("Statement"))):
        if not isinstance(statement, dict) or not _allows_assume(statement):
            continue
        if statement.get("Effect") == "Deny":
            out.deny_statements += 1
            continue
        if statement.get("Effect") != "Allow":
            continue
        sid = str(statement.get("Sid") or index)
        conditions = statement.get("Condition") if isinstance(statement.get("Condition"), dict) else {}
        ext, mfa, ip, dates, other = _condition_facts(conditions)
        principals = statement.get("Principal")
        if statement.get("NotPrincipal") is not None:
            out.notes.append(f"statement {sid}: NotPrincipal (admits everyone not listed)")
            principals = "*"
        pairs: list[tuple[str, str]] = []
        if principals == "*":
            pairs.append(("AWS", "*"))
        elif isinstance(principals, dict):
            for ptype, values in principals.items():
                pairs.extend((str(ptype), str(v)) for v in _as_list(values))
        for ptype, value in pairs:
            kind, account = _principal_kind(ptype, value)
            out.grants.append(TrustGrant(value, kind, account, ext, mfa, ip, dates, other, sid))
    return out


def admits_other_account(summary: TrustSummary, role_account_id: str | None) -> bool:
    return any(
        g.kind == "any" or (g.principal_account_id is not None and g.principal_account_id != role_account_id)
        for g in summary.grants
    )

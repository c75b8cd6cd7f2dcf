"""Summarise a role's trust policy for a reviewer: who may assume it, under which conditions.

A reviewer needs the shape of each grant, not the policy JSON: which principals, whether an
ExternalId is required (never its value: it is a shared secret, and every value seen here is
registered with `monitor.redact`, which masks it wherever else it turns up unless it is too short
or an account ID to be told from a role name or ARN), whether MFA is
required, and any source-IP or date limits. Parsing is `monitor.policy`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from monitor.policy.conditions import UnsupportedOperator, parse_operator
from monitor.policy.model import PolicyError, PrincipalRef, Statement, parse_policy
from monitor.redact import register_secret

_ASSUME_ACTIONS = ("sts:AssumeRole", "sts:AssumeRoleWithSAML", "sts:AssumeRoleWithWebIdentity")
_DATE_KEYS = {"aws:currenttime", "aws:epochtime"}
_IP_KEYS = {"aws:sourceip", "aws:vpcsourceip"}


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


@dataclass
class _ConditionFacts:
    external_id: bool = False
    mfa: bool = False
    ip: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)


def _kind(p: PrincipalRef) -> str:
    if p.is_wildcard:
        return "any"
    if p.kind == "Service":
        return "service"
    if p.kind in ("Federated", "CanonicalUser"):
        return "federated"
    return "aws_account" if p.is_account_root else "aws_arn"


def _facts(statement: Statement) -> _ConditionFacts:
    out = _ConditionFacts()
    for operator, clauses in statement.conditions.items():
        try:
            op = parse_operator(operator)
        except UnsupportedOperator:
            out.other.extend(f"{operator}:{k}" for k in clauses)
            continue
        # only a positive, non-IfExists test is a requirement: IfExists lets a request without the key through
        required = not op.if_exists and not op.negated and op.set_op != "ForAllValues"
        for key, values in clauses.items():
            key_l = key.lower()
            lowered = [v.lower() for v in values]
            if key_l == "sts:externalid":
                for v in values:
                    register_secret(v)
                out.external_id |= required and op.base != "Null"
            elif key_l == "aws:multifactorauthpresent":
                out.mfa |= (required and op.base == "Bool" and "true" in lowered) or (
                    op.base == "Null" and "false" in lowered)
            elif key_l == "aws:multifactorauthage":
                out.mfa |= required and op.base.startswith("NumericLessThan")
            elif key_l in _IP_KEYS and op.base in ("IpAddress", "NotIpAddress"):
                out.ip.append(("not in " if op.negated else "in ") + ", ".join(sorted(values)))
            elif key_l in _DATE_KEYS and op.base.startswith("Date"):
                word = "until" if "LessThan" in op.base else "from" if "GreaterThan" in op.base else "on"
                out.dates.append(f"{word} {', '.join(values)}")
            else:
                out.other.append(f"{operator}:{key}")
    return out


def summarise_trust(policy: Any) -> TrustSummary:
    out = TrustSummary()
    if policy in (None, "", {}):
        return out
    try:
        doc = parse_policy(policy)
    except PolicyError as exc:
        out.notes.append(f"trust policy unreadable: {exc}")
        return out
    for index, st in enumerate(doc.statements):
        if not any(st.action_matches(a) for a in _ASSUME_ACTIONS):
            continue
        if not st.allows:
            out.deny_statements += 1
            continue
        sid = st.sid or str(index)
        facts = _facts(st)
        principals = st.all_principals()
        if st.not_principals is not None:
            out.notes.append(f"statement {sid}: NotPrincipal (admits everyone not listed)")
            principals = [PrincipalRef("*", "*")]
        for p in principals:
            out.grants.append(TrustGrant(
                p.value, _kind(p), p.account_id, facts.external_id, facts.mfa, "; ".join(facts.ip),
                "; ".join(sorted(facts.dates)), ", ".join(sorted(facts.other)), sid))
    return out


def admits_other_account(summary: TrustSummary, role_account_id: str | None) -> bool:
    return any(
        g.kind == "any" or (g.principal_account_id is not None and g.principal_account_id != role_account_id)
        for g in summary.grants
    )

"""Why did an AssumeRole fail? Reasoning from the role's trust policy and what the record tells.

A failed CloudTrail record usually has no request parameters: we know the caller (userIdentity),
the source address, the time and whether the caller's session had MFA, but not the ExternalId,
the session name or tags it sent. So the trust policy is evaluated three-valued (see
`monitor.policy.conditions`): for each Allow statement whose principal could be the caller,
which of its conditions certainly failed and which might have. When every candidate points at
one kind of condition, that is the likely cause; anything else is "undetermined" rather than a
guess. A statement that would certainly have allowed the call means the denial came from
elsewhere (the caller's own policies, an SCP, a permissions boundary): also "undetermined".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from monitor.policy.conditions import (
    MISSING,
    PRESENT,
    UNKNOWN,
    Tri,
    evaluate_clause,
    evaluate_conditions,
    iter_clauses,
)
from monitor.policy.model import ACCOUNT_RE, PolicyError, PrincipalRef, Statement, iam_arn_parts, parse_policy
from monitor.posture.model import Posture, RoleInfo

ROLE_MISSING = "role does not exist"
NOT_TRUSTED = "principal not trusted"
EXTERNAL_ID = "ExternalId missing or mismatched"
MFA = "MFA missing or too old"
DATE_WINDOW = "outside the trust policy's date window"
SOURCE_IP = "source IP not allowed"
UNDETERMINED = "undetermined"
CAUSES = (ROLE_MISSING, NOT_TRUSTED, EXTERNAL_ID, MFA, DATE_WINDOW, SOURCE_IP, UNDETERMINED)

_OTHER = "other"
_KEY_CAUSE = {
    "sts:externalid": EXTERNAL_ID,
    "aws:multifactorauthpresent": MFA,
    "aws:multifactorauthage": MFA,
    "aws:currenttime": DATE_WINDOW,
    "aws:epochtime": DATE_WINDOW,
    "aws:sourceip": SOURCE_IP,
    "aws:principalarn": NOT_TRUSTED,
    "aws:principalaccount": NOT_TRUSTED,
    "aws:principalorgid": NOT_TRUSTED,
    "aws:principalorgpaths": NOT_TRUSTED,
    "aws:principaltype": NOT_TRUSTED,
    "aws:principalservicename": NOT_TRUSTED,
    "aws:userid": NOT_TRUSTED,
    "aws:username": NOT_TRUSTED,
}
_PRINCIPAL_TYPE = {"IAMUser": "User", "AssumedRole": "AssumedRole", "FederatedUser": "FederatedUser", "Root": "Account"}


def cause_of_key(key: str) -> str | None:
    k = key.lower()
    if k.startswith("aws:principaltag/"):
        return NOT_TRUSTED
    return _KEY_CAUSE.get(k)


def _get(row: Mapping[str, Any] | Any, key: str) -> Any:
    try:
        value = row.get(key)
    except AttributeError:
        return None
    if value is None:
        return None
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
            return None
        if isinstance(value, pd.Timestamp):
            return value.to_pydatetime()
    except ImportError:  # pragma: no cover
        pass
    return value


def _role_name(resource: str) -> str:
    return resource.rsplit("/", 1)[-1]


class Caller:
    """What the event row says about who called and how."""

    def __init__(self, row: Mapping[str, Any] | Any) -> None:
        self.arn: str | None = _get(row, "principal_arn")
        self.type: str | None = _get(row, "principal_type")
        self.principal_id: str | None = _get(row, "principal_id")
        self.account: str | None = _get(row, "principal_account_id")
        self.role_arn: str | None = _get(row, "principal_role_arn")
        self.service: str | None = _get(row, "principal_service")
        self.provider: str | None = _get(row, "identity_provider")
        self.event_name: str = _get(row, "event_name") or "AssumeRole"
        if not self.account and self.arn:
            parts = iam_arn_parts(self.arn)
            self.account = parts[1] if parts else None

    def matches(self, ref: PrincipalRef) -> Tri:
        if ref.is_wildcard:
            return True
        if ref.kind == "Service":
            return bool(self.service) and self.service.lower() == ref.value.lower()
        if ref.kind == "Federated":
            return self._matches_provider(ref.value)
        if ref.kind != "AWS" or self.service or self.event_name != "AssumeRole":
            return False
        if ref.is_account_root:
            if self.account is None:
                return None
            return self.account == ref.account_id
        parts = iam_arn_parts(ref.value)
        if parts is None:
            # IAM rewrites the ARN of a deleted principal into its unique id (AIDA.../AROA...)
            if self.principal_id:
                return self.principal_id.split(":", 1)[0] == ref.value
            return None if ref.value.startswith(("AIDA", "AROA")) and self.arn is None else False
        service, account, resource = parts
        if self.account is not None and self.account != account:
            return False
        if self.arn is None:
            return None
        if self.arn == ref.value:
            return True
        if service == "iam" and resource.startswith("role/") and self.role_arn:
            mine = iam_arn_parts(self.role_arn)
            return bool(mine and mine[1] == account and _role_name(mine[2]) == _role_name(resource))
        if service == "iam" and resource.startswith("user/"):
            mine = iam_arn_parts(self.arn)
            return bool(mine and mine[2].startswith("user/") and _role_name(mine[2]) == _role_name(resource))
        return False

    def _matches_provider(self, value: str) -> Tri:
        if self.event_name not in ("AssumeRoleWithSAML", "AssumeRoleWithWebIdentity"):
            return False
        if not self.provider:
            return None
        if self.provider == value:
            return True
        # Federated "arn:aws:iam::A:oidc-provider/token.actions.githubusercontent.com" vs the bare host
        return value.endswith("/" + self.provider) or self.provider.endswith("/" + value)


def principal_matches(statement: Statement, caller: Caller) -> Tri:
    if statement.not_principals is not None:
        inner = _any(caller.matches(p) for p in statement.not_principals)
        return None if inner is None else not inner
    return _any(caller.matches(p) for p in statement.principals or [])


def _any(results: Any) -> Tri:
    seen_unknown = False
    for r in results:
        if r is True:
            return True
        if r is None:
            seen_unknown = True
    return None if seen_unknown else False


def request_context(row: Mapping[str, Any] | Any, caller: Caller, now: datetime) -> dict[str, Any]:
    """The condition keys a record lets us know (lower-case names). Unlisted keys are unknown."""
    when = _get(row, "event_time") or now
    if isinstance(when, str):
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    external = _get(row, "external_id_supplied")
    had_request = external is not None  # requestParameters were recorded
    mfa = _get(row, "mfa_authenticated")
    ctx: dict[str, Any] = {
        "aws:currenttime": when,
        "aws:epochtime": str(int(when.timestamp())),
        # a recorded request without ExternalId: the key is known to be absent
        "sts:externalid": UNKNOWN if external is None else (PRESENT if external else MISSING),
    }

    if mfa is True:
        ctx["aws:multifactorauthpresent"] = True
        ctx["aws:multifactorauthage"] = UNKNOWN
    elif mfa is False and had_request:
        # neither the caller's session nor this request (no SerialNumber/TokenCode) carried MFA
        ctx["aws:multifactorauthpresent"] = False
    else:
        # a failed record drops the request, so a SerialNumber may have been sent after all
        ctx["aws:multifactorauthpresent"] = UNKNOWN
        ctx["aws:multifactorauthage"] = UNKNOWN

    ip = _get(row, "source_ip")
    ctx["aws:sourceip"] = ip if ip else UNKNOWN
    ctx["aws:principalaccount"] = caller.account or UNKNOWN
    principal_arn: Any = caller.arn
    if caller.type == "AssumedRole":
        principal_arn = caller.role_arn
    ctx["aws:principalarn"] = principal_arn or UNKNOWN
    ctx["aws:principaltype"] = _PRINCIPAL_TYPE.get(caller.type or "", UNKNOWN)
    if caller.service:
        ctx["aws:principalservicename"] = caller.service
    for key, column in (("sts:sourceidentity", "source_identity"), ("sts:rolesessionname", "role_session_name")):
        value = _get(row, column)
        ctx[key] = value if value else UNKNOWN
    return ctx


def _with_unknowns(statement: Statement, known: dict[str, Any]) -> dict[str, Any]:
    ctx = {k: UNKNOWN for k in statement.condition_keys()}
    ctx.update(known)
    return ctx


def _is_access_denied(error_code: str | None) -> bool:
    return error_code is None or "AccessDenied" in error_code


def likely_cause(event_row: Mapping[str, Any] | Any, role: RoleInfo | None, now: datetime) -> str:
    """One of CAUSES for a failed AssumeRole-family event.

    `role` is the role as inventoried; pass None only when the inventory of the role's account is
    complete and has no such role (see `likely_cause_in`).
    """
    if not _is_access_denied(_get(event_row, "error_code")):
        return UNDETERMINED
    if _get(event_row, "event_name") == "AssumeRoot":
        # no trust policy decides it: the caller's own policies, an SCP, or root access not centralized
        return UNDETERMINED
    if role is None:
        return ROLE_MISSING
    try:
        policy = parse_policy(role.trust_policy)
    except PolicyError:
        return UNDETERMINED
    caller = Caller(event_row)
    action = "sts:" + caller.event_name
    known = request_context(event_row, caller, now)

    for st in policy.deny_statements:
        if (
            st.action_matches(action)
            and principal_matches(st, caller) is True
            and evaluate_conditions(st.conditions, _with_unknowns(st, known)) is True
        ):
            return NOT_TRUSTED  # an explicit Deny for this caller

    explanations: set[str] = set()
    candidates = 0
    for st in policy.allow_statements:
        if not st.action_matches(action):
            continue
        matched = principal_matches(st, caller)
        if matched is False:
            continue
        candidates += 1
        ctx = _with_unknowns(st, known)
        definite: set[str] = set()
        possible: set[str] = set()
        for clause in iter_clauses(st.conditions):
            result = evaluate_clause(clause, ctx)
            if result is True:
                continue
            cause = cause_of_key(clause.key) or _OTHER
            (definite if result is False else possible).add(cause)
        if not definite and not possible:
            # the trust policy admits this call (or may, if the caller is this principal):
            # the denial came from elsewhere, e.g. the caller's own policies or an SCP
            return UNDETERMINED
        if matched is None:
            possible.add(NOT_TRUSTED)
        explanations |= definite or possible
    if candidates == 0:
        return NOT_TRUSTED
    if len(explanations) == 1 and _OTHER not in explanations:
        return next(iter(explanations))
    return UNDETERMINED


def likely_cause_in(event_row: Mapping[str, Any] | Any, posture: Posture, now: datetime) -> str | None:
    """likely_cause against a whole inventory; None when the role's account was not inventoried."""
    role_arn = _get(event_row, "role_arn")
    if not role_arn:
        return None
    role = posture.role_by_arn(role_arn)
    if role is None:
        parts = iam_arn_parts(role_arn)
        account = parts[1] if parts else None
        if not account or not ACCOUNT_RE.match(account) or account not in posture.accounts:
            return None
    return likely_cause(event_row, role, now)

"""`trust_policy`: the risky trust-policy patterns a reviewer looks for, one finding per role and issue.

Pure: a Posture, the detector's config and the clock in; findings out. The checks (the
`details.check` value of each finding):

- `cross_account_without_external_id` — an AWS principal of another account (outside the
  Organization when it is known) may assume the role with no `sts:ExternalId` condition:
  third-party access without confused-deputy protection.
- `wildcard_principal` — `"Principal": "*"`, `{"AWS": "*"}` or an Allow with `NotPrincipal`, with no condition that
  restricts who the caller is (aws:PrincipalOrgID, aws:PrincipalAccount, aws:PrincipalArn, ...).
- `account_root_trust` — the whole account (`:root` or a bare account id) is trusted with no
  aws:PrincipalArn-style condition, where a specific principal would do.
- `privileged_without_mfa` — a role with an attached/inline policy matching
  `privileged_policy_patterns` that AWS principals may assume without an
  aws:MultiFactorAuthPresent (or aws:MultiFactorAuthAge) condition.
- `untrusted_account` — trust to an account outside the Organization and `trusted_accounts`.
- `date_window` — a DateLessThan aws:CurrentTime window that has ended, or ends within
  `expiry_warning_days`.
- `max_session_duration` — MaxSessionDuration above `max_session_duration_seconds`.
- `web_identity_subject_unrestricted` — an OIDC issuer may assume the role through
  sts:AssumeRoleWithWebIdentity with no condition pinning the token to one tenant: high for a
  shared issuer (any GitHub repository, GitLab.com project, Terraform Cloud or Buildkite
  organization, or Cognito identity pool without `cognito-identity.amazonaws.com:aud`), medium
  for one whose URL already names the tenant (every service account of an EKS cluster, project of
  a CircleCI organization, ...). See `monitor.policy.web_identity`.

Service-linked roles are skipped: AWS owns their trust policies.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.config import TrustPolicyConfig
from monitor.findings import Finding, fingerprint
from monitor.policy.conditions import parse_operator
from monitor.policy.model import PolicyError, PrincipalRef, Statement, TrustPolicy, parse_policy
from monitor.policy.web_identity import WEB_IDENTITY_ACTION, Issuer, TenantCheck, check_statement, issuer_of
from monitor.posture.model import Posture, RoleInfo, parse_time

DETECTOR = "trust_policy"
ASSUME_ROLE = "sts:AssumeRole"

# condition keys that pin down who the caller is (for wildcard / whole-account trust)
IDENTITY_KEYS = {
    "aws:principalorgid",
    "aws:principalorgpaths",
    "aws:principalaccount",
    "aws:principalarn",
    "aws:userid",
    "aws:username",
    "aws:sourceaccount",
    "aws:sourcearn",
    "aws:sourceorgid",
    "aws:sourceorgpaths",
    "aws:principalservicename",
}
ORG_KEYS = {"aws:principalorgid", "aws:principalorgpaths"}
MFA_KEYS = {"aws:multifactorauthpresent", "aws:multifactorauthage"}


def _restricting_keys(statement: Statement) -> set[str]:
    """Keys under a positive, non-IfExists operator: only these can narrow who may assume the role."""
    keys: set[str] = set()
    for operator, clauses in statement.conditions.items():
        try:
            op = parse_operator(operator)
        except ValueError:
            continue
        if not op.narrows:
            continue
        if op.base == "Bool":
            keys.update(k.lower() for k, v in clauses.items() if [x.lower() for x in v] == ["true"])
        else:
            keys.update(k.lower() for k in clauses)
    return keys


def _aws_principals(statement: Statement) -> list[PrincipalRef]:
    if statement.not_principals is not None:
        return [PrincipalRef("*", "*")]  # Allow with NotPrincipal: everyone but the few listed
    return [p for p in statement.principals or [] if p.kind in ("AWS", "*")]


@dataclass
class _Issue:
    check: str
    severity: str
    title: str
    principals: set[str] = field(default_factory=set)
    statements: set[str] = field(default_factory=set)
    extra: dict[str, Any] = field(default_factory=dict)


class _RoleReview:
    def __init__(self, role: RoleInfo, policy: TrustPolicy, cfg: TrustPolicyConfig, org: set[str],
                 now: datetime) -> None:
        self.role, self.policy, self.cfg, self.org, self.now = role, policy, cfg, org, now
        self.issues: dict[str, _Issue] = {}
        self.statements = [
            (st.sid or f"Statement[{i}]", st)
            for i, st in enumerate(policy.statements)
            if st.allows and st.action_matches(ASSUME_ROLE)
        ]

    def flag(self, check: str, severity: str, title: str, sid: str | None, principal: str | None = None) -> _Issue:
        issue = self.issues.setdefault(check, _Issue(check, severity, title))
        if sid:
            issue.statements.add(sid)
        if principal:
            issue.principals.add(principal)
        return issue

    def _trusted_elsewhere(self, account: str) -> bool:
        return account in self.org or account in self.cfg.trusted_accounts

    def review(self) -> list[_Issue]:
        name = self.role.name
        privileged = self._privileged()
        for sid, st in self.statements:
            keys = _restricting_keys(st)
            for p in _aws_principals(st):
                if p.is_wildcard:
                    if not keys & IDENTITY_KEYS:
                        sev = "critical" if not st.conditions else "high"
                        self.flag("wildcard_principal", sev, f"Role {name} can be assumed by any AWS principal",
                                  sid, p.value)
                    continue
                account = p.account_id
                cross = account is not None and account != self.role.account_id
                org_bound = bool(keys & ORG_KEYS)
                if cross and not org_bound and "sts:externalid" not in keys and account not in self.org:
                    self.flag("cross_account_without_external_id", "medium",
                              f"Role {name} trusts another account without an ExternalId", sid, p.value)
                if p.is_account_root and not keys & IDENTITY_KEYS:
                    self.flag("account_root_trust", "medium" if cross else "low",
                              f"Role {name} trusts a whole account rather than specific principals", sid, p.value)
                if cross and not org_bound and (self.org or self.cfg.trusted_accounts) \
                        and not self._trusted_elsewhere(account):  # type: ignore[arg-type]
                    self.flag("untrusted_account", "high",
                              f"Role {name} trusts an account outside the Organization and trusted_accounts",
                              sid, p.value)
            if privileged and _aws_principals(st) and not keys & MFA_KEYS:
                issue = self.flag("privileged_without_mfa", "high",
                                  f"Privileged role {name} can be assumed without MFA", sid)
                issue.principals.update(p.value for p in _aws_principals(st))
                issue.extra["privileged_policies"] = privileged
            self._date_window(sid, st)
        if self.role.max_session_duration > self.cfg.max_session_duration_seconds:
            issue = self.flag("max_session_duration", "low",
                              f"Role {name} allows sessions of {self.role.max_session_duration // 3600}h"
                              f" (ceiling {self.cfg.max_session_duration_seconds}s)", None)
            issue.extra.update(max_session_duration=self.role.max_session_duration,
                               ceiling=self.cfg.max_session_duration_seconds)
        self._web_identity()
        return list(self.issues.values())

    def _web_identity(self) -> None:
        """Allow statements for sts:AssumeRoleWithWebIdentity whose issuer's tenant no condition pins."""
        open_trust: list[tuple[str, str, Issuer, TenantCheck]] = []
        for i, st in enumerate(self.policy.statements):
            if not st.allows or not st.action_matches(WEB_IDENTITY_ACTION):
                continue
            for p in st.principals or []:
                issuer = issuer_of(p)
                if issuer is not None:
                    check = check_statement(issuer, st)
                    if not check.pinned:
                        open_trust.append((st.sid or f"Statement[{i}]", p.value, issuer, check))
        if not open_trust:
            return
        # the title names the widest exposure: a shared issuer before a tenant-scoped one
        worst = min(open_trust, key=lambda t: not t[2].shared)[2]
        issue = self.flag("web_identity_subject_unrestricted", "high" if worst.shared else "medium",
                          f"Role {self.role.name} can be assumed by {worst.who}", None)
        for sid, principal, _, _ in open_trust:
            self.flag(issue.check, issue.severity, issue.title, sid, principal)
        issue.extra.update(
            providers=sorted({t[2].provider for t in open_trust}),
            expected_keys=sorted({t[2].key for t in open_trust}),
            condition_keys=sorted({k for t in open_trust for k in t[3].condition_keys}),
            unrestricted_patterns=sorted({v for t in open_trust for v in t[3].open_values}),
        )

    def _privileged(self) -> list[str]:
        patterns = [p.lower() for p in self.cfg.privileged_policy_patterns]
        names = self.role.attached_policies + self.role.inline_policies
        return sorted(n for n in names if any(fnmatch.fnmatchcase(n.lower(), pat) for pat in patterns))

    def _date_window(self, sid: str, st: Statement) -> None:
        ends = []
        for operator, clauses in st.conditions.items():
            try:
                op = parse_operator(operator)
            except ValueError:
                continue
            if op.base not in ("DateLessThan", "DateLessThanEquals"):
                continue
            for key, values in clauses.items():
                if key.lower() in ("aws:currenttime", "aws:epochtime"):
                    for v in values:
                        try:
                            ends.append(parse_time(float(v) if v.replace(".", "", 1).isdigit() else v))
                        except ValueError:
                            continue
        ends = [e for e in ends if e is not None]
        if not ends:
            return
        end = max(ends)  # values are ORed: the window lasts until the latest
        warn = timedelta(days=self.cfg.expiry_warning_days)
        if end <= self.now:
            state, sev, text = "expired", "low", f"Trust window of role {self.role.name} ended {end:%Y-%m-%d}"
        elif end - self.now <= warn:
            state, sev, text = "expiring", "medium", f"Trust window of role {self.role.name} ends {end:%Y-%m-%d}"
        else:
            return
        issue = self.flag("date_window", sev, text, sid)
        previous = issue.extra.get("window_end")
        if previous is None or end.isoformat() > previous:
            issue.extra.update(window_end=end.isoformat(), state=state)
            issue.severity, issue.title = sev, text


def trust_policy_findings(posture: Posture, cfg: TrustPolicyConfig, now: datetime,
                          notices: list[str] | None = None) -> list[Finding]:
    if not cfg.enabled:
        return []
    org = set(cfg.organization_accounts) | set(posture.organization_accounts)
    findings: list[Finding] = []
    for role in sorted(posture.roles.values(), key=lambda r: r.arn):
        if role.is_service_linked or not role.trust_policy:
            continue
        try:
            policy = parse_policy(role.trust_policy)
        except PolicyError as exc:
            if notices is not None:
                notices.append(f"trust_policy: {role.arn}: trust policy not readable: {exc}")
            continue
        for issue in _RoleReview(role, policy, cfg, org, now).review():
            findings.append(Finding(
                detector=DETECTOR,
                severity=issue.severity,
                title=issue.title,
                fingerprint=fingerprint(DETECTOR, role.arn, issue.check),
                account_id=role.account_id,
                role_arn=role.arn,
                first_seen=now,
                last_seen=now,
                details={
                    "check": issue.check,
                    "role_name": role.name,
                    "principals": sorted(issue.principals),
                    "statements": sorted(issue.statements),
                    **issue.extra,
                },
            ))
    return findings

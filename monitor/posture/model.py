"""What rolewatch knows about a role from IAM (live collectors or an authorization-details snapshot)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class RoleInfo:
    arn: str
    name: str
    account_id: str
    path: str = "/"
    role_id: str | None = None
    create_date: datetime | None = None
    last_used: datetime | None = None  # IAM RoleLastUsed.LastUsedDate
    last_used_region: str | None = None
    max_session_duration: int = 3600
    trust_policy: dict[str, Any] = field(default_factory=dict)
    attached_policies: list[str] = field(default_factory=list)  # policy ARNs
    inline_policies: list[str] = field(default_factory=list)  # policy names
    tags: dict[str, str] = field(default_factory=dict)
    # service last accessed: namespace -> last authenticated time (None = granted, never used)
    services_last_accessed: dict[str, datetime | None] | None = None
    # ACTION_LEVEL reports only: "s3:GetObject" -> last accessed (None = never)
    actions_last_accessed: dict[str, datetime | None] | None = None

    @property
    def is_service_linked(self) -> bool:
        return self.path.startswith("/aws-service-role/")


@dataclass
class AnalyzerFinding:
    id: str
    account_id: str
    region: str
    resource_arn: str | None
    finding_type: str  # ExternalAccess | UnusedIAMRole | UnusedPermission | ...
    status: str  # ACTIVE | ARCHIVED | RESOLVED
    analyzer_arn: str | None = None
    updated_at: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Posture:
    """Everything known about IAM for the accounts in scope. Empty when nothing was collected."""

    roles: dict[str, RoleInfo] = field(default_factory=dict)  # by role ARN
    analyzer_findings: list[AnalyzerFinding] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)  # accounts whose inventory is complete
    organization_accounts: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # account -> why its inventory is missing or stale
    notices: list[str] = field(default_factory=list)  # e.g. "no unused-access analyzer in ..."
    collected_at: datetime | None = None
    _by_name: dict[tuple[str, str] | None, RoleInfo] | None = field(default=None, repr=False, compare=False)

    @property
    def known(self) -> bool:
        return bool(self.accounts)

    def role_by_arn(self, arn: str) -> RoleInfo | None:
        """The role an ARN names. Role names are unique per account whatever the path, and ARNs
        taken from error messages or session ARNs often lack the path, so match on account + name."""
        role = self.roles.get(arn)
        if role is not None:
            return role
        key = _account_and_name(arn)
        if key is None:
            return None
        if self._by_name is None or len(self._by_name) != len(self.roles):
            self._by_name = {_account_and_name(r.arn): r for r in self.roles.values()}
        return self._by_name.get(key)

    def covers_account(self, account_id: str | None) -> bool:
        return bool(account_id) and account_id in self.accounts


def _account_and_name(arn: str) -> tuple[str, str] | None:
    parts = (arn or "").split(":", 5)
    if len(parts) != 6 or not parts[5].startswith("role/"):
        return None
    return parts[4], parts[5].rsplit("/", 1)[-1]


# ---------------------------------------------------------------- JSON form (state documents, fixtures)


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def parse_time(value: Any) -> datetime | None:
    """An API/CLI timestamp (datetime, ISO 8601 with Z or offset, epoch seconds) -> aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, int | float):
        dt = datetime.fromtimestamp(value, tz=UTC)
    else:
        dt = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(UTC)


def role_to_dict(role: RoleInfo) -> dict[str, Any]:
    d = asdict(role)
    for k in ("create_date", "last_used"):
        d[k] = _ts(d[k])
    for k in ("services_last_accessed", "actions_last_accessed"):
        if d[k] is not None:
            d[k] = {s: _ts(t) for s, t in d[k].items()}
    return d


def role_from_dict(d: dict[str, Any]) -> RoleInfo:
    d = dict(d)
    for k in ("create_date", "last_used"):
        d[k] = parse_time(d.get(k))
    for k in ("services_last_accessed", "actions_last_accessed"):
        if d.get(k) is not None:
            d[k] = {s: parse_time(t) for s, t in d[k].items()}
    return RoleInfo(**d)


def posture_to_dict(posture: Posture) -> dict[str, Any]:
    return {
        "roles": [role_to_dict(r) for r in posture.roles.values()],
        "analyzer_findings": [
            {**asdict(f), "updated_at": _ts(f.updated_at)} for f in posture.analyzer_findings
        ],
        "accounts": list(posture.accounts),
        "organization_accounts": list(posture.organization_accounts),
        "errors": dict(posture.errors),
        "notices": list(posture.notices),
        "collected_at": _ts(posture.collected_at),
    }


def posture_from_dict(d: dict[str, Any]) -> Posture:
    roles = [role_from_dict(r) for r in d.get("roles", [])]
    findings = [
        AnalyzerFinding(**{**f, "updated_at": parse_time(f.get("updated_at"))}) for f in d.get("analyzer_findings", [])
    ]
    return Posture(
        roles={r.arn: r for r in roles},
        analyzer_findings=findings,
        accounts=list(d.get("accounts", [])),
        organization_accounts=list(d.get("organization_accounts", [])),
        errors=dict(d.get("errors", {})),
        notices=list(d.get("notices", [])),
        collected_at=parse_time(d.get("collected_at")),
    )


def merge_postures(parts: list[Posture]) -> Posture:
    out = Posture()
    for p in parts:
        out.roles.update(p.roles)
        out.analyzer_findings.extend(p.analyzer_findings)
        out.accounts.extend(a for a in p.accounts if a not in out.accounts)
        out.organization_accounts.extend(a for a in p.organization_accounts if a not in out.organization_accounts)
        out.errors.update(p.errors)
        out.notices.extend(p.notices)
    return out

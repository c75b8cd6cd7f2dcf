"""What rolewatch knows about a role from IAM (live collectors or an authorization-details snapshot)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
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

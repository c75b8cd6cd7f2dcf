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

    @property
    def known(self) -> bool:
        return bool(self.accounts)

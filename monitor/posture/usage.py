"""What IAM says about a role's use: helpers detectors call (pure, no I/O).

`unused_role` asks `last_activity` (RoleLastUsed and service-last-accessed, whichever is later)
and `analyzer_unused_role` (an ACTIVE Access Analyzer UnusedIAMRole finding); `least_privilege`
asks `service_usage`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.posture.model import AnalyzerFinding, Posture, RoleInfo, parse_time

ROLE_LAST_USED = "iam_role_last_used"
SERVICE_LAST_ACCESSED = "iam_service_last_accessed"


def last_activity(role: RoleInfo) -> datetime | None:
    """The latest sign of use IAM has for a role: RoleLastUsed or any service's last access."""
    return last_activity_and_source(role)[0]


def last_activity_and_source(role: RoleInfo) -> tuple[datetime | None, str | None]:
    """`last_activity` and which IAM data gave it (RoleLastUsed when the two agree)."""
    services = [t for t in (role.services_last_accessed or {}).values() if t is not None]
    latest_service = max(services) if services else None
    if role.last_used is not None and (latest_service is None or role.last_used >= latest_service):
        return role.last_used, ROLE_LAST_USED
    if latest_service is not None:
        return latest_service, SERVICE_LAST_ACCESSED
    return None, None


def analyzer_unused_roles(posture: Posture) -> dict[str, AnalyzerFinding]:
    """ACTIVE UnusedIAMRole findings by the inventoried role ARN (or the finding's ARN if not inventoried)."""
    out: dict[str, AnalyzerFinding] = {}
    for f in posture.analyzer_findings:
        if f.finding_type != "UnusedIAMRole" or f.status != "ACTIVE" or not f.resource_arn:
            continue
        role = posture.role_by_arn(f.resource_arn)
        out[role.arn if role else f.resource_arn] = f
    return out


def analyzer_unused_role(posture: Posture, role_arn: str) -> AnalyzerFinding | None:
    role = posture.role_by_arn(role_arn)
    return analyzer_unused_roles(posture).get(role.arn if role else role_arn)


def analyzer_last_accessed(finding: AnalyzerFinding) -> datetime | None:
    """UnusedIAMRole findings carry `unusedIamRoleDetails.lastAccessed` (absent: never used)."""
    details = finding.details.get("unusedIamRoleDetails") or {}
    return parse_time(details.get("lastAccessed"))


@dataclass
class ServiceUsage:
    granted: list[str]
    used: dict[str, datetime] = field(default_factory=dict)  # service -> last access within the window
    unused: list[str] = field(default_factory=list)

    @property
    def unused_ratio(self) -> float:
        return len(self.unused) / len(self.granted) if self.granted else 0.0


def service_usage(role: RoleInfo, now: datetime, window_days: int) -> ServiceUsage | None:
    """Services granted vs used within `window_days`; None when no last-accessed data was collected."""
    if role.services_last_accessed is None:
        return None
    cutoff = now - timedelta(days=window_days)
    granted = sorted(role.services_last_accessed)
    used = {s: t for s, t in role.services_last_accessed.items() if t is not None and t >= cutoff}
    return ServiceUsage(granted=granted, used=used, unused=[s for s in granted if s not in used])

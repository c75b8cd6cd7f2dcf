"""What IAM says about a role's use: helpers detectors call (pure, no I/O).

`unused_role` asks `last_activity` (RoleLastUsed and service-last-accessed, whichever is later)
and `analyzer_unused_role` (an ACTIVE Access Analyzer UnusedIAMRole finding); `least_privilege`
asks `service_usage`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.posture.model import AnalyzerFinding, Posture, RoleInfo, parse_time


def last_activity(role: RoleInfo) -> datetime | None:
    """The latest sign of use IAM has for a role: RoleLastUsed or any service's last access."""
    times = [role.last_used] if role.last_used else []
    if role.services_last_accessed:
        times.extend(t for t in role.services_last_accessed.values() if t is not None)
    return max(times) if times else None


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

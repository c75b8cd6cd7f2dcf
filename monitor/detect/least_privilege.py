"""`least_privilege`: a used role that never touches most of what it is granted.

From service-last-accessed data: the services a role's policies grant and the ones it used in
the last `detectors.unused_role.unused_days`. A role that used something in that window but
left at least `unused_services_ratio` of its granted services untouched gets one low finding
listing the unused services: the access-review checklist's "trim this policy". Roles that used
nothing are `unused_role`'s business, not this detector's.
"""

from __future__ import annotations

from datetime import datetime

from monitor.config import UnusedRoleConfig
from monitor.findings import Finding, fingerprint, iso
from monitor.posture.model import Posture
from monitor.posture.usage import service_usage

DETECTOR = "least_privilege"
MIN_GRANTED = 2  # one granted service, unused, is unused_role's case


def least_privilege_findings(posture: Posture, cfg: UnusedRoleConfig, now: datetime) -> list[Finding]:
    if not cfg.enabled:
        return []
    findings = []
    for role in sorted(posture.roles.values(), key=lambda r: r.arn):
        if role.is_service_linked:
            continue
        usage = service_usage(role, now, cfg.unused_days)
        if usage is None or not usage.used or len(usage.granted) < MIN_GRANTED or not usage.unused:
            continue
        if usage.unused_ratio < cfg.unused_services_ratio:
            continue
        findings.append(Finding(
            detector=DETECTOR,
            severity="low",
            title=(f"Role {role.name} used {len(usage.used)} of {len(usage.granted)} granted services"
                   f" in {cfg.unused_days} days"),
            fingerprint=fingerprint(DETECTOR, role.arn),
            account_id=role.account_id,
            role_arn=role.arn,
            first_seen=now,
            last_seen=now,
            details={
                "role_name": role.name,
                "window_days": cfg.unused_days,
                "granted_services": usage.granted,
                "used_services": {s: iso(t) for s, t in sorted(usage.used.items())},
                "unused_services": usage.unused,
                "unused_ratio": round(usage.unused_ratio, 3),
                "attached_policies": role.attached_policies,
            },
        ))
    return findings

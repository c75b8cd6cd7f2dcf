"""`unused_role`: roles nobody assumed for `unused_days`, judged from CloudTrail and IAM (RoleLastUsed,
service last accessed).

Needs the IAM inventory (posture); without it the engine skips this detector with a notice.
Service-linked roles and roles younger than `unused_days` are never flagged. The last CloudTrail
use of each role is kept in the baseline so it survives the detection window.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd

from monitor.config import UnusedRoleConfig
from monitor.detect.common import timed
from monitor.detect.context import DetectionContext
from monitor.detect.trust import trusted_principals
from monitor.findings import Finding, fingerprint, iso
from monitor.posture.usage import analyzer_unused_role, last_activity_and_source

NAME = "unused_role"


def role_key(arn: str | None) -> str | None:
    """account:name of a role ARN; requests and error messages often omit the role's path."""
    if not arn or ":role/" not in arn:
        return None
    head, _, rest = arn.partition(":role/")
    return f"{head.rsplit(':', 1)[-1]}:{rest.rsplit('/', 1)[-1]}"


def _last_used_in_trail(events: pd.DataFrame, stored: dict[str, Any] | None) -> dict[str, pd.Timestamp]:
    df = timed(events)
    df = df[df["success"] & df["role_arn"].notna()]
    keys = df["role_arn"].map(lambda a: role_key(a) if isinstance(a, str) else None)
    latest = df["event_time"].groupby(keys.values).max()
    out = {k: t for k, t in latest.items() if k}
    for k, t in ((stored or {}).get("roles") or {}).items():
        ts = pd.Timestamp(t)
        if k not in out or ts > out[k]:
            out[k] = ts
    return out


def detect(events: pd.DataFrame, ctx: DetectionContext, cfg: UnusedRoleConfig) -> tuple[list[Finding], dict[str, Any]]:
    trail = _last_used_in_trail(events, ctx.baselines.get(NAME))
    document = {"roles": {k: iso(t) for k, t in sorted(trail.items())}}
    now = pd.Timestamp(ctx.now)
    cutoff = now - timedelta(days=cfg.unused_days)
    covered = set(ctx.posture.accounts)
    findings = []
    for arn in sorted(ctx.posture.roles):
        role = ctx.posture.roles[arn]
        if role.is_service_linked or role.account_id not in covered:
            continue
        if role.create_date is None or pd.Timestamp(role.create_date) > cutoff:
            continue  # younger than unused_days (or age unknown): not judged yet
        seen_trail = trail.get(role_key(arn) or "")
        iam_time, iam_source = last_activity_and_source(role)  # RoleLastUsed or service last accessed
        seen_iam = pd.Timestamp(iam_time) if iam_time else None
        candidates = [t for t in (seen_trail, seen_iam) if t is not None]
        last = max(candidates) if candidates else None
        if last is not None and last > cutoff:
            continue
        source = None if last is None else ("cloudtrail" if last == seen_trail else iam_source)
        days = None if last is None else int((now - last) / pd.Timedelta(days=1))
        findings.append(
            Finding(
                detector=NAME,
                severity="low",
                title=f"Role {role.name} not assumed "
                + ("since it was created" if last is None else f"for {days} days")
                + f" (unused_days = {cfg.unused_days})",
                fingerprint=fingerprint(NAME, arn),
                account_id=role.account_id,
                role_arn=arn,
                first_seen=last if last is not None else role.create_date,
                last_seen=last if last is not None else role.create_date,
                count=0,
                details={
                    "last_used": iso(last) if last is not None else "never",
                    "last_used_source": source,
                    "days_unused": days,
                    "created": iso(role.create_date),
                    "unused_days": cfg.unused_days,
                    "trusted_principals": trusted_principals(role.trust_policy),
                    "role_path": role.path,
                    **_analyzer(ctx, arn),
                },
            )
        )
    return findings, document


def _analyzer(ctx: DetectionContext, arn: str) -> dict[str, Any]:
    """Access Analyzer's own UnusedIAMRole finding for the role, when one is active."""
    found = analyzer_unused_role(ctx.posture, arn)
    return {"access_analyzer_finding": found.id} if found else {}

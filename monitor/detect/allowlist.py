"""Reviewed exceptions: `[[allowlist]]` entries that suppress matching findings until they expire.

An entry matches a finding when every matcher it sets matches (CIDR, account, principal ARN glob,
role ARN glob, user-agent glob) and the finding's detector is in its `detectors` (if given).
Suppressed findings are returned apart, annotated with the entry that suppressed them. An expired
entry suppresses nothing and is reported itself as `allowlist_expired`, so exceptions do not
outlive their reason.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from monitor.config import AllowlistEntry
from monitor.events.normalise import account_of_arn, parse_event_time
from monitor.findings import Finding, fingerprint, iso

NAME = "allowlist_expired"
_MATCHERS = ("cidr", "account", "principal_arn", "role_arn", "user_agent")


def expiry(entry: AllowlistEntry) -> datetime:
    """A date is valid through that whole day (UTC); a datetime until that instant."""
    text = entry.expires.strip()
    if "T" in text or " " in text:
        parsed = parse_event_time(text)
        if parsed is not None:
            return parsed
    parsed = parse_event_time(text[:10] + "T00:00:00Z")
    if parsed is None:  # pragma: no cover - config validation rejects it first
        raise ValueError(f"allowlist expires: not a date: {text!r}")
    return parsed + timedelta(days=1)


@dataclass
class Result:
    kept: list[Finding]
    suppressed: list[Finding]
    expired: list[Finding]


def _ips(f: Finding) -> list[str]:
    ips = list(f.details.get("source_ips") or [])
    return ips or ([f.source_ip] if f.source_ip else [])


def _glob_any(pattern: str, values: list[Any]) -> bool:
    return any(isinstance(v, str) and fnmatch.fnmatchcase(v, pattern) for v in values)


def matches(entry: AllowlistEntry, f: Finding) -> bool:
    if entry.detectors is not None and f.detector not in entry.detectors:
        return False
    if entry.cidr:
        net = ipaddress.ip_network(entry.cidr, strict=False)
        ips = _ips(f)
        if not ips:
            return False
        for ip in ips:
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                return False
            if addr.version != net.version or addr not in net:
                return False
    if entry.account:
        accounts = {f.account_id, f.details.get("principal_account_id"), account_of_arn(f.principal_arn)}
        if entry.account not in accounts:
            return False
    if entry.principal_arn and not _glob_any(entry.principal_arn, [f.principal_arn, f.details.get("principal")]):
        return False
    if entry.role_arn and not _glob_any(entry.role_arn, [f.role_arn]):
        return False
    if entry.user_agent:
        agents = list(f.details.get("user_agents") or [])
        if not agents or not all(fnmatch.fnmatchcase(a, entry.user_agent) for a in agents):
            return False
    return True


def describe(entry: AllowlistEntry) -> dict[str, Any]:
    out: dict[str, Any] = {k: getattr(entry, k) for k in _MATCHERS if getattr(entry, k)}
    if entry.detectors is not None:
        out["detectors"] = list(entry.detectors)
    return out


def apply(findings: list[Finding], entries: list[AllowlistEntry], now: datetime) -> Result:
    live = [(i, e) for i, e in enumerate(entries) if expiry(e) > now]
    dead = [(i, e) for i, e in enumerate(entries) if expiry(e) <= now]
    kept, suppressed = [], []
    for f in findings:
        hit = next(((i, e) for i, e in live if matches(e, f)), None)
        if hit is None:
            kept.append(f)
            continue
        i, e = hit
        f.details["suppressed_by"] = {"allowlist": i, "owner": e.owner, "reason": e.reason, "expires": e.expires}
        suppressed.append(f)
    expired = []
    for i, e in dead:
        would = [f for f in kept if matches(e, f)]
        when = expiry(e)
        expired.append(
            Finding(
                detector=NAME,
                severity="low",
                title=f"Allowlist entry {i} ({e.owner}: {e.reason}) expired on {iso(when)}; review or remove it",
                fingerprint=fingerprint(NAME, *(f"{k}={v}" for k, v in sorted(describe(e).items())), e.expires),
                first_seen=when,
                last_seen=when,
                count=len(would),
                event_ids=[],
                details={
                    "allowlist": i,
                    "entry": describe(e),
                    "owner": e.owner,
                    "reason": e.reason,
                    "expires": e.expires,
                    "now_unsuppressed": sorted(f.fingerprint for f in would)[:100],
                },
            )
        )
    return Result(kept, suppressed, expired)

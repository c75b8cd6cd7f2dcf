"""Plain facts and plain text about a message, shared by every notifier.

Slack Block Kit lives in `alerts/blocks.py`; this module gives the pieces that all formats show:
the headline, the times in UTC and a local zone, the CloudTrail console link, the likely cause, and
the plain-text form used by the console, SNS, webhooks and as Slack's notification fallback.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

from alerts.base import Message
from monitor.findings import Finding
from monitor.redact import redact_text

SEVERITY_MARK = {"critical": "🟥", "high": "🔴", "medium": "🟠", "low": "🟡", "info": "⚪"}
TEXT_LIMIT = 3000


def region_of(finding: Finding, default_region: str) -> str:
    for key in ("region", "aws_region", "event_region"):
        value = finding.details.get(key)
        if isinstance(value, str) and value:
            return value
    return default_region


def console_url(finding: Finding, default_region: str) -> str | None:
    """CloudTrail event history for the finding's first event (the console of the account that logged it)."""
    if not finding.event_ids:
        return None
    region = region_of(finding, default_region)
    return (f"https://console.aws.amazon.com/cloudtrailv2/home?region={quote(region)}"
            f"#/events/{quote(finding.event_ids[0])}")


def role_console_url(finding: Finding) -> str | None:
    """The role in the IAM console: the link for posture findings, which have no event."""
    if not finding.role_arn or ":role/" not in finding.role_arn:
        return None
    return f"https://console.aws.amazon.com/iam/home#/roles/details/{quote(finding.role_arn.rsplit('/', 1)[-1])}"


def likely_cause(finding: Finding) -> str | None:
    for key in ("likely_cause", "cause"):
        value = finding.details.get(key)
        if value:
            return str(value)
    return None


def local_time(ts: str | None, zone: str) -> str | None:
    """'2026-03-01 14:05 CET' for an ISO UTC timestamp; None when absent or unparsable."""
    if not ts:
        return None
    try:
        moment = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


def utc_time(ts: str | None) -> str | None:
    return local_time(ts, "UTC")


def headline(message: Message) -> str:
    if message.kind == "digest":
        start, end = message.period or ("", "")
        return f"rolewatch digest: {len(message.findings)} finding(s) {start} – {end}"
    f = message.finding
    head = f"{SEVERITY_MARK.get(f.severity, '')} {f.severity.upper()}: {f.title}".strip()
    if message.kind == "escalated":
        return f"Severity raised from {message.previous_severity} to {f.severity}: {f.title}"
    if message.kind == "reminder":
        return f"Reminder, still open: {head}"
    return head


def summary_line(finding: Finding) -> str:
    """One line per finding, for digests and logs."""
    who = finding.principal_arn or "?"
    where = f" from {finding.source_ip}" if finding.source_ip else ""
    role = f" → {finding.role_arn}" if finding.role_arn else ""
    acct = f" (account {finding.account_id})" if finding.account_id else ""
    return f"[{finding.severity.upper()}] {finding.title}: {who}{where}{role}{acct} ×{finding.count}"


def facts(finding: Finding, zone: str, default_region: str) -> list[tuple[str, str]]:
    """Label/value pairs in display order; absent values are left out."""
    rows: list[tuple[str, str | None]] = [
        ("Severity", finding.severity.upper()),
        ("Detector", finding.detector),
        ("Role", finding.role_arn),
        ("Principal", finding.principal_arn),
        ("Source IP", finding.source_ip),
        ("Account", finding.account_id),
        ("Count", str(finding.count)),
        ("Last seen (UTC)", utc_time(finding.last_seen or finding.first_seen)),
    ]
    if zone != "UTC":
        rows.append((f"Last seen ({zone})", local_time(finding.last_seen or finding.first_seen, zone)))
    rows.append(("First seen (UTC)", utc_time(finding.first_seen)))
    return [(k, v) for k, v in rows if v]


def truncate(text: str, limit: int, what: str = "text") -> str:
    """Cut to `limit` characters with a note saying how much was left out."""
    if len(text) <= limit:
        return text
    note = f"\n… ({what} truncated, {{n}} more characters)"
    keep = max(0, limit - len(note.format(n=len(text))))
    return text[:keep] + note.format(n=len(text) - keep)


def plain_text(message: Message, *, zone: str = "UTC", default_region: str = "us-east-1",
               limit: int = TEXT_LIMIT) -> str:
    lines = [headline(message)]
    if message.kind == "digest":
        lines += [f"• {summary_line(f)}" for f in message.findings]
    else:
        f = message.finding
        lines += [f"{k}: {v}" for k, v in facts(f, zone, default_region)]
        cause = likely_cause(f)
        if cause:
            lines.append(f"Likely cause: {cause}")
        url = console_url(f, default_region)
        if url:
            lines.append(f"CloudTrail: {url}")
        elif role_console_url(f):
            lines.append(f"IAM: {role_console_url(f)}")
        lines.append(f"Fingerprint: {f.fingerprint}")
    return truncate(redact_text("\n".join(lines)), limit, "message")

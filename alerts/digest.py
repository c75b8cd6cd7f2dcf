"""Digests: findings routed to a `digest = true` notifier wait in the outbox as `held` and go out
together, one message per `digest_period_hours`.

Periods are aligned to the Unix epoch in UTC (a 24-hour digest covers midnight to midnight UTC), so
the schedule does not drift with restarts. At the first cycle of a new period, every held row
queued before it becomes one `digest` outbox row (delivered, retried and deduplicated like any
other) and the held rows are closed, all in one transaction: nothing is lost or sent twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alerts.base import Message
from monitor.findings import Finding, iso


def period_start(moment: datetime, hours: float) -> datetime:
    length = hours * 3600
    stamp = moment.astimezone(UTC).timestamp()
    return datetime.fromtimestamp(stamp - stamp % length, UTC)


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def flush(state: Any, notifier: str, hours: float, now: datetime) -> Message | None:
    """Turn the held rows of past periods into one pending digest row; returns it (or None)."""
    current = period_start(now, hours)
    due = [item for item in state.outbox_items(["held"], notifier=notifier)
           if _parse(item.payload["queued_at"]) < current]
    if not due:
        return None
    findings = [Finding.from_dict(d) for item in due for d in item.payload["findings"]]
    first = min(period_start(_parse(item.payload["queued_at"]), hours) for item in due)
    key = f"digest:{iso(current)}"
    message = Message(
        kind="digest",
        findings=findings,
        delivery_id=f"{key}-{notifier}",
        queued_at=str(iso(now)),
        period=(str(iso(first)), str(iso(current))),
        extra={"digest_key": key},
    )
    with state.transaction():
        state.outbox_put(key, notifier, message.to_payload(), "pending", now)
        for item in due:
            state.outbox_mark(item.fingerprint, notifier, "sent", now, receipt={"digest": key})
    return message


"""The outbox: what to send, and sending it exactly once.

Rules, per (finding fingerprint, notifier):
- a finding routed to a notifier for the first time is queued (`pending`, or `held` for a digest);
- seen again while still queued, the queued copy is refreshed (still one message);
- seen again after it was sent, it is sent again only if its severity rose above what was sent
  (`escalated`), or as a `reminder` once `realert_hours` have passed since the last send; a repeat
  goes into the Slack thread of the first message.

Delivery: each row is marked `sending` and committed before the send and marked `sent` with the
notifier's receipt after it. A failure leaves it `failed` with the reason; it is retried next
cycle, never dropped. A row that was attempted before (a crash left it `sending`, or the connection
dropped after the request went out) is first looked for at the destination when the notifier can
(`find_delivery`), so it is not sent twice.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from alerts.base import DeliveryError, Message, Notifier
from alerts.retry import describe
from monitor.findings import SEVERITY_RANK, Finding, iso
from monitor.redact import redact_text

log = logging.getLogger("alerts")

QUEUED = ("pending", "failed", "sending")


def _sent_severity(payload: dict[str, Any]) -> str:
    return max((d["severity"] for d in payload["findings"]), key=SEVERITY_RANK.__getitem__)


def decide(existing: Any, finding: Finding, realert_hours: float | None, now: datetime) -> tuple[str, str | None] | None:
    """For an already-sent row: ("escalated", previous severity), ("reminder", None) or None."""
    sent_as = _sent_severity(existing.payload)
    if finding.rank > SEVERITY_RANK[sent_as]:
        return "escalated", sent_as
    if realert_hours is not None and existing.sent_at:
        last = datetime.fromisoformat(existing.sent_at.replace("Z", "+00:00"))
        if now - last >= timedelta(hours=realert_hours):
            return "reminder", None
    return None


def enqueue(state: Any, notifier: str, cfg: Any, finding: Finding, now: datetime) -> bool:
    """Queue `finding` for `notifier` if the rules say so; True when something will be sent."""
    fp = finding.fingerprint
    existing = state.outbox_get(fp, notifier)
    fresh_status = "held" if cfg.digest else "pending"
    if existing is None:
        message = Message("new", [finding], f"{fp}-1", str(iso(now)), extra={"seq": 1})
        state.outbox_put(fp, notifier, message.to_payload(), fresh_status, now)
        return True
    if existing.status == "sending":
        # on its way (or its outcome unknown after a crash): the row must keep what was sent, since
        # recovery looks for exactly that (the file notifier by its lines) and the next cycle compares
        # against it, escalating if the severity rose
        return True
    if existing.status != "sent":
        # not delivered yet: refresh the content, keep the same delivery (id, kind, thread)
        message = Message.from_payload(existing.payload)
        message.findings = [finding]
        state.outbox_put(fp, notifier, message.to_payload(), existing.status, now)
        return True
    decision = decide(existing, finding, cfg.realert_hours, now)
    if decision is None:
        return False
    kind, previous = decision
    seq = int((existing.payload.get("extra") or {}).get("seq", 1)) + 1
    thread = (existing.receipt or {}).get("thread")
    message = Message(kind, [finding], f"{fp}-{seq}", str(iso(now)), previous_severity=previous,
                      reply_to=thread, extra={"seq": seq})
    state.outbox_put(fp, notifier, message.to_payload(), fresh_status, now)
    return True


def deliver(state: Any, notifiers: Mapping[str, Notifier], now: datetime) -> Counter[str]:
    """Send every queued row once; returns counts (sent, recovered, failed, deferred).

    Rows queued while it runs are sent too, until a look finds none it has not tried: another deliverer
    that gave up waiting for the `delivery` lock left its alerts to this one, and a `once` has no later
    tick of its own to send them. A row that failed is not tried again in this run.
    """
    counts: Counter[str] = Counter()
    unhealthy: set[str] = set()
    tried: set[tuple[str, str, str]] = set()
    while True:
        items = sorted((i for i in state.outbox_items(QUEUED) if _delivery(i) not in tried),
                       key=lambda i: (i.attempts, i.id))
        if not items:
            return counts
        tried.update(_delivery(i) for i in items)
        orphans = Counter(i.notifier for i in items if i.notifier not in notifiers)
        for name, n in orphans.items():
            log.warning("outbox: %d alert(s) for notifier %s, which is no longer configured; they stay queued "
                        "until it is configured again", n, name)
        for item in items:
            notifier = notifiers.get(item.notifier)
            if notifier is None or item.notifier in unhealthy:
                counts["deferred"] += 1
                continue
            _deliver_one(state, notifier, item, now, counts, unhealthy)


def _delivery(item: Any) -> tuple[str, str, str]:
    """One send decision: a row re-armed since (escalated, reminder) is a new one, with a new delivery id."""
    return item.notifier, item.fingerprint, str(item.payload.get("delivery_id"))


def _deliver_one(state: Any, notifier: Notifier, item: Any, now: datetime, counts: Counter[str],
                 unhealthy: set[str]) -> None:
    # The listing can lag behind the row: on DynamoDB it is a query on an eventually consistent index,
    # so a row the previous lock holder just sent can still be listed as pending. The row itself is
    # read consistently, and only a row still queued for this same delivery is sent.
    current = state.outbox_get(item.fingerprint, item.notifier)
    if current is None or current.status not in QUEUED or _delivery(current) != _delivery(item):
        log.info("notifier %s: %s is no longer queued as listed: skipped", item.notifier, item.fingerprint)
        return
    item = current
    if item.status == "sending":
        log.warning("notifier %s: %s was being sent when the last run stopped; checking before re-sending",
                    item.notifier, item.fingerprint)
    message = Message.from_payload(item.payload)
    try:
        receipt = notifier.find_delivery(message) if item.attempts and notifier.can_verify else None
        if receipt is not None:
            counts["recovered"] += 1
        else:
            state.outbox_mark(item.fingerprint, item.notifier, "sending", now)  # committed before the send
            receipt = notifier.send(message)
            counts["sent"] += 1
            log.info("notifier %s: sent %s alert for %s", item.notifier, message.kind, item.fingerprint)
        state.outbox_mark(item.fingerprint, item.notifier, "sent", now, receipt=receipt)
    except DeliveryError as exc:
        _failed(state, item, str(exc), now, counts)
        if exc.transient:
            unhealthy.add(item.notifier)
    except Exception as exc:  # a bug in one message must not block the others
        log.exception("notifier %s: unexpected error delivering %s", item.notifier, item.fingerprint)
        _failed(state, item, describe(exc), now, counts)


def _failed(state: Any, item: Any, reason: str, now: datetime, counts: Counter[str]) -> None:
    reason = redact_text(reason)
    state.outbox_mark(item.fingerprint, item.notifier, "failed", now, error=reason)
    counts["failed"] += 1
    log.warning("notifier %s: %s not delivered (attempt %d), kept in the outbox for the next cycle: %s",
                item.notifier, item.fingerprint, item.attempts + 1, reason)

"""Route findings to the configured notifiers through the outbox.

Called by the pipeline once per cycle (also with no findings: that is when the outbox is retried
and digests fall due). It must run outside any open `state.transaction()`: each send is bracketed
by its own commits so a crash can be recovered without a duplicate.

Deliverers can overlap: the health check after a cycle, the posture job's own health check and
detection, `rolewatch run`'s collect and posture threads, two `once` processes from cron. Each would
read the same queued rows (or take the other's `sending` row for a crashed send) and send it again, so
delivery holds the state's `delivery` lock. Not the cycle lock: a cycle stuck in collection must not
hold back alerts, monitor_health's above all. The wait for it is bounded; a deliverer that gives up
leaves its rows queued, and the holder sends them: it looks for rows queued during its run before it
lets the lock go (`deliver`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from alerts import digest
from alerts.base import Notifier
from alerts.console import ConsoleNotifier
from alerts.file import FileNotifier
from alerts.outbox import QUEUED, deliver, enqueue
from alerts.retry import Sleep
from alerts.routing import routes
from alerts.slack import SlackNotifier
from alerts.slack_webhook import SlackWebhookNotifier
from alerts.sns import SnsNotifier
from alerts.webhook import WebhookNotifier
from monitor.config import Config, notifier_id
from monitor.findings import Finding
from monitor.state.base import StateLockedError

log = logging.getLogger("alerts")

DELIVERY_LOCK = "delivery"
# long enough for another deliverer's usual run, short enough that a job does not hang on a slow one
DELIVERY_LOCK_WAIT_SECONDS = 60.0


def build_notifier(cfg: Any, config: Config, state: Any, *, sleep: Sleep = time.sleep) -> Notifier:
    """The Notifier for one `[[notifiers]]` entry. Secrets are resolved at send time, so a missing
    token fails that notifier's deliveries (kept in the outbox) rather than the whole cycle."""
    name = notifier_id(cfg)
    region = config.aws.region
    match cfg.type:
        case "slack":
            return SlackNotifier(name, cfg, state=state, default_region=region, sleep=sleep, aws=config.aws)
        case "slack_webhook":
            return SlackWebhookNotifier(name, cfg, default_region=region, sleep=sleep)
        case "webhook":
            return WebhookNotifier(name, cfg, default_region=region, sleep=sleep)
        case "file":
            return FileNotifier(name, config.resolve_path(cfg.path))
        case "console":
            return ConsoleNotifier(name, default_region=region)
        case "sns":
            return SnsNotifier(name, cfg.topic_arn, aws=config.aws)
    raise ValueError(f"unknown notifier type {cfg.type!r}")


def build_notifiers(config: Config, state: Any, *, sleep: Sleep = time.sleep) -> dict[str, Notifier]:
    return {notifier_id(cfg): build_notifier(cfg, config, state, sleep=sleep) for cfg in config.notifiers}


def queue(findings: list[tuple[Finding, bool, Finding | None]], state: Any, config: Any, now: datetime) -> None:
    """Queue each finding for the notifiers it routes to, by the outbox rules.

    Callers that store findings call this inside that same transaction: committed apart, a crash
    between the two would leave a stored finding never alerted when it is not detected again (a
    monitor_health condition that clears before the next check).
    """
    configs = {notifier_id(cfg): cfg for cfg in config.notifiers}
    with state.transaction():
        for finding, _is_new, _previous in findings:
            for name, cfg in configs.items():
                if routes(cfg, finding):
                    enqueue(state, name, cfg, finding, now)


def notify(findings: list[tuple[Finding, bool, Finding | None]], state: Any, config: Any, now: datetime, *,
           notifiers: Mapping[str, Notifier] | None = None, sleep: Sleep = time.sleep) -> dict[str, int]:
    """findings: (finding, is_new, previous stored version), queued first (none when the caller
    queued them with the findings, see `queue`). Returns counts by outcome:
    sent, recovered (found already delivered), failed, queued (still in the outbox), held (for a digest)."""
    if findings:  # the pipeline queues with the findings it stores and passes none here
        queue(findings, state, config, now)
    if notifiers is None:
        notifiers = build_notifiers(config, state, sleep=sleep)
    counts: Counter[str] = Counter()
    try:
        with state.lock(DELIVERY_LOCK, wait=True, timeout=DELIVERY_LOCK_WAIT_SECONDS):
            counts = _deliver_queued(state, config, notifiers, now)
    except StateLockedError as exc:
        log.warning("alert delivery is busy (%s): the queued alerts stay in the outbox for it or the next run",
                    exc)
    backlog = state.outbox_counts()
    return {
        "sent": counts["sent"],
        "recovered": counts["recovered"],
        "failed": counts["failed"],
        "queued": sum(backlog.get(s, 0) for s in QUEUED),
        "held": backlog.get("held", 0),
    }


def _deliver_queued(state: Any, config: Any, notifiers: Mapping[str, Notifier], now: datetime) -> Counter[str]:
    """Digests that fell due, then every queued row: only ever one deliverer at a time (the caller's lock)."""
    for cfg in config.notifiers:
        name = notifier_id(cfg)
        if cfg.digest:
            digest.flush(state, name, cfg.digest_period_hours, now)
        else:
            for item in state.outbox_items(["held"], notifier=name):  # digest switched off: send them one by one
                state.outbox_mark(item.fingerprint, name, "pending", now)
    return deliver(state, notifiers, now)

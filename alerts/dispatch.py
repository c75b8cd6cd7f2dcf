"""Route findings to the configured notifiers through the outbox.

Called by the pipeline once per cycle (also with no findings: that is when the outbox is retried
and digests fall due). It must run outside any open `state.transaction()`: each send is bracketed
by its own commits so a crash can be recovered without a duplicate.
"""

from __future__ import annotations

import time
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
    queue(findings, state, config, now)
    if notifiers is None:
        notifiers = build_notifiers(config, state, sleep=sleep)
    configs = {notifier_id(cfg): cfg for cfg in config.notifiers}
    for name, cfg in configs.items():
        if cfg.digest:
            digest.flush(state, name, cfg.digest_period_hours, now)
        else:
            for item in state.outbox_items(["held"], notifier=name):  # digest switched off: send them one by one
                state.outbox_mark(item.fingerprint, name, "pending", now)
    counts = deliver(state, notifiers, now)
    backlog = state.outbox_counts()
    return {
        "sent": counts["sent"],
        "recovered": counts["recovered"],
        "failed": counts["failed"],
        "queued": sum(backlog.get(s, 0) for s in QUEUED),
        "held": backlog.get("held", 0),
    }

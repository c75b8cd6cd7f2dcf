"""The Notifier interface and the message every notifier renders.

A `Message` is what the outbox holds for one (fingerprint, notifier): one finding (new, escalated
or a reminder) or a digest of several. Notifiers turn it into their wire format; they never decide
whether to send (that is `alerts/outbox.py`) and never see collectors or detectors.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from monitor.findings import SEVERITY_RANK, Finding
from monitor.redact import redact

KINDS = ("new", "escalated", "reminder", "digest")


class DeliveryError(Exception):
    """A notification did not get through; it stays in the outbox.

    `transient` (rate limit, 5xx, network) means the notifier is unhealthy right now: the rest of
    its queue waits for the next cycle instead of hammering it. A non-transient error (Slack
    `ok: false`, HTTP 4xx) concerns this message only.
    """

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass
class Message:
    kind: str
    findings: list[Finding]
    delivery_id: str  # unique per send decision: receivers and recovery dedupe on it
    queued_at: str
    previous_severity: str | None = None  # set when kind == "escalated"
    reply_to: dict[str, Any] | None = None  # receipt of the first message (Slack channel + ts: the thread)
    period: tuple[str, str] | None = None  # digest window [start, end)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def finding(self) -> Finding:
        return self.findings[0]

    @property
    def key(self) -> str:
        """The outbox fingerprint: the finding's, or the digest's own key."""
        return str(self.extra.get("digest_key")) if self.kind == "digest" else self.finding.fingerprint

    @property
    def severity(self) -> str:
        return max((f.severity for f in self.findings), key=SEVERITY_RANK.__getitem__, default="info")

    def to_payload(self) -> dict[str, Any]:
        """The outbox form. Findings are stored redacted: no secret reaches state or a wire."""
        return {
            "kind": self.kind,
            "findings": [redact(f.to_dict()) for f in self.findings],
            "delivery_id": self.delivery_id,
            "queued_at": self.queued_at,
            "previous_severity": self.previous_severity,
            "reply_to": self.reply_to,
            "period": list(self.period) if self.period else None,
            "extra": self.extra,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Message:
        period = payload.get("period")
        return cls(
            kind=payload["kind"],
            findings=[Finding.from_dict(redact(d)) for d in payload["findings"]],
            delivery_id=payload["delivery_id"],
            queued_at=payload["queued_at"],
            previous_severity=payload.get("previous_severity"),
            reply_to=payload.get("reply_to"),
            period=(period[0], period[1]) if period else None,
            extra=payload.get("extra") or {},
        )


class Notifier(ABC):
    """One configured destination. `name` keys the outbox."""

    type: ClassVar[str]
    # True when the notifier can tell whether a message already arrived (Slack history, the JSONL
    # file): a send whose outcome is unknown (crash, dropped connection) is then never repeated.
    can_verify: ClassVar[bool] = False

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def send(self, message: Message) -> dict[str, Any]:
        """Deliver; return a receipt (JSON) or raise DeliveryError."""

    def find_delivery(self, message: Message) -> dict[str, Any] | None:
        """The receipt of an earlier delivery of this message, if it can be found."""
        return None


class HttpNotifier(Notifier):
    """A notifier configured by a `[[notifiers]]` entry that talks HTTP with rolewatch's retry policy."""

    def __init__(self, name: str, cfg: Any, *, default_region: str,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(name)
        self.cfg = cfg
        self.default_region = default_region
        self.sleep = sleep

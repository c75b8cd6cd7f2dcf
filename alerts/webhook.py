"""Generic webhook notifier: a JSON POST signed with HMAC-SHA256.

Headers: `X-Rolewatch-Timestamp` (Unix seconds), `X-Rolewatch-Delivery` (unique per alert; a
receiver dedupes on it, since after a crash between send and commit the POST is repeated) and the
signature header (default `X-Rolewatch-Signature`): `sha256=` + hex HMAC-SHA256 of
`"{timestamp}.{body}"` with the shared secret from `secret_env`. Verify with `verify_signature`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

from alerts.base import DeliveryError, HttpNotifier, Message
from alerts.render import plain_text
from alerts.retry import describe, post, retry_handlers
from alerts.slack_webhook import target_url
from monitor.config import WebhookNotifier as WebhookConfig
from monitor.redact import redact, redact_text
from monitor.secrets import env_secret

SCHEMA = "rolewatch.alert/v1"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(secret: str, timestamp: str, body: bytes, signature: str, *, now: float | None = None,
                     tolerance_seconds: float = 300) -> bool:
    """Receiver side: constant-time check, and reject replays older than `tolerance_seconds`."""
    current = time.time() if now is None else now
    try:
        fresh = abs(current - float(timestamp)) <= tolerance_seconds
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign(secret, timestamp, body), signature)


def alert_document(message: Message, *, default_region: str) -> dict[str, Any]:
    """The JSON body shared by the webhook and SNS notifiers (findings in the findings-contract form)."""
    return redact({
        "schema": SCHEMA,
        "kind": message.kind,
        "delivery_id": message.delivery_id,
        "severity": message.severity,
        "previous_severity": message.previous_severity,
        "period": list(message.period) if message.period else None,
        "text": plain_text(message, default_region=default_region),
        "findings": [f.to_dict() for f in message.findings],
    })


class WebhookNotifier(HttpNotifier):
    type = "webhook"
    cfg: WebhookConfig
    clock: Callable[[], float] = staticmethod(time.time)  # the signed timestamp; tests pin it

    def send(self, message: Message) -> dict[str, Any]:
        what = f"notifier {self.name}"
        url = target_url(self.cfg, what)
        body = json.dumps(alert_document(message, default_region=self.default_region),
                          separators=(",", ":"), default=str).encode()
        timestamp = str(int(self.clock()))
        headers = {"Content-Type": "application/json", "User-Agent": "rolewatch",
                   "X-Rolewatch-Delivery": message.delivery_id, "X-Rolewatch-Timestamp": timestamp}
        secret = env_secret(self.cfg.secret_env, what=f"{what}.secret_env") if self.cfg.secret_env else None
        if secret:
            headers[self.cfg.signature_header] = sign(secret, timestamp, body)
        try:
            status, text = post(url, body, headers, handlers=retry_handlers(sleep=self.sleep))
        except OSError as exc:
            raise DeliveryError(redact_text(f"{what}: {describe(exc)}")) from None
        if not 200 <= status < 300:
            raise DeliveryError(redact_text(f"{what}: HTTP {status} {text[:200]}"),
                                transient=status == 429 or status >= 500)
        return {"status": status}

"""Slack incoming-webhook notifier, for teams without a bot token.

`WebhookClient.send` answers an HTTP error with a response object instead of raising, so the status
is checked here. A webhook cannot read its channel back, so a send whose outcome is unknown (crash
between send and commit) is repeated: at-least-once. Use the `slack` notifier for exactly-once.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.errors import SlackClientError
from slack_sdk.webhook import WebhookClient

from alerts.base import DeliveryError, HttpNotifier, Message
from alerts.blocks import escape, message_blocks
from alerts.render import plain_text
from alerts.retry import describe, retry_handlers
from monitor.config import SlackWebhookNotifier as SlackWebhookConfig
from monitor.redact import redact, redact_text, register_url
from monitor.secrets import env_secret


def target_url(cfg: Any, what: str) -> str:
    """The URL of a webhook-style notifier: inline or from an env var; masked in every log either way."""
    url = cfg.url or env_secret(cfg.url_env, what=f"{what}.url_env")
    if not url:
        raise DeliveryError(f"{what}: no url configured", transient=False)
    register_url(url)
    return str(url)


class SlackWebhookNotifier(HttpNotifier):
    type = "slack_webhook"
    cfg: SlackWebhookConfig

    def send(self, message: Message) -> dict[str, Any]:
        what = f"notifier {self.name}"
        client = WebhookClient(target_url(self.cfg, what), timeout=10, retry_handlers=retry_handlers(sleep=self.sleep))
        body = redact({
            "text": escape(plain_text(message, zone=self.cfg.timezone, default_region=self.default_region)),
            "blocks": message_blocks(message, zone=self.cfg.timezone, default_region=self.default_region),
            "unfurl_links": False,
            "unfurl_media": False,
        })
        try:
            resp = client.send_dict(body)
        except (SlackClientError, OSError) as exc:
            raise DeliveryError(redact_text(f"{what}: {describe(exc)}")) from None
        if resp.status_code != 200:
            raise DeliveryError(
                redact_text(f"{what}: Slack webhook answered HTTP {resp.status_code} {resp.body[:200]}"),
                transient=resp.status_code == 429 or resp.status_code >= 500,
            )
        return {"status": resp.status_code}

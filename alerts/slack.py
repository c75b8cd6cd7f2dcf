"""Slack Web API notifier: `chat.postMessage` with Block Kit, threads for repeat alerts.

Each message carries Slack message metadata (`rolewatch_finding` with the fingerprint and the
delivery id). When a send's outcome is unknown (the process died between the send and the outbox
commit, or the connection dropped after the request went out), the next attempt first reads the
channel (`conversations.history`, or `conversations.replies` for a thread) with
`include_all_metadata` and only posts if the message is not there: no duplicates.

Bot token scopes: chat:write, channels:history (groups:history for private channels) and, when
`channel` is a name rather than an ID, channels:read to look the ID up.

`SlackNotifier.channel_id()` is the public way to get the configured channel's ID (a name is
looked up once and remembered in state): other senders through the same notifier, such as the
report upload, need the ID where Slack does not accept a name.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from alerts.base import DeliveryError, HttpNotifier, Message
from alerts.blocks import escape, message_blocks
from alerts.render import plain_text
from alerts.retry import Sleep, describe, retry_handlers
from monitor.config import AwsConfig
from monitor.config import SlackNotifier as SlackNotifierConfig
from monitor.redact import redact, redact_text
from monitor.secrets import env_secret, resolve_secret

EVENT_TYPE = "rolewatch_finding"
CHANNEL_IDS = "alerts.slack_channels"  # state documents: notifier name -> channel ID
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{6,}")
# how far before the message was queued to look for it in the channel (clock skew margin)
LOOKBACK_SECONDS = 300
MAX_HISTORY_PAGES = 20


def bot_token(cfg: SlackNotifierConfig, what: str, aws: AwsConfig | None = None) -> str:
    token = resolve_secret(cfg.token, aws=aws, what=f"{what}.token") if cfg.token else env_secret(
        cfg.token_env, what=f"{what}.token_env")
    if not token:
        raise DeliveryError(f"{what}: no bot token configured (set token_env or token)", transient=False)
    return token


def web_client(cfg: SlackNotifierConfig, *, what: str = "slack", sleep: Sleep = time.sleep,
               timeout: int = 10, aws: AwsConfig | None = None) -> WebClient:
    """A WebClient for this notifier with rolewatch's retry policy (also used to upload reports).

    `aws` is how a token kept in Secrets Manager or SSM is fetched (endpoint, region, retries).
    """
    base_url = cfg.api_url if cfg.api_url.endswith("/") else cfg.api_url + "/"
    return WebClient(token=bot_token(cfg, what, aws), base_url=base_url, timeout=timeout,
                     retry_handlers=retry_handlers(sleep=sleep))


def _failure(what: str, exc: Exception) -> DeliveryError:
    if isinstance(exc, SlackApiError):
        status = exc.response.status_code
        error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
        # 200 with ok=false is about this message (invalid_blocks, channel_not_found...): not an outage
        return DeliveryError(redact_text(f"{what}: Slack answered HTTP {status} {error or ''}".strip()),
                             transient=status != 200)
    return DeliveryError(redact_text(f"{what}: {describe(exc)}"), transient=True)


class SlackNotifier(HttpNotifier):
    type = "slack"
    can_verify = True
    cfg: SlackNotifierConfig

    def __init__(self, name: str, cfg: SlackNotifierConfig, *, state: Any, default_region: str,
                 sleep: Sleep = time.sleep, aws: AwsConfig | None = None) -> None:
        super().__init__(name, cfg, default_region=default_region, sleep=sleep)
        self.state = state  # remembers channel IDs for looking messages up
        self.aws = aws
        self._client: WebClient | None = None

    @property
    def client(self) -> WebClient:
        if self._client is None:
            self._client = web_client(self.cfg, what=f"notifier {self.name}", sleep=self.sleep, aws=self.aws)
        return self._client

    def request(self, message: Message) -> dict[str, Any]:
        """The chat.postMessage arguments (redacted), without sending."""
        args: dict[str, Any] = {
            "channel": self.cfg.channel,
            "text": escape(plain_text(message, zone=self.cfg.timezone, default_region=self.default_region)),
            "blocks": message_blocks(message, zone=self.cfg.timezone, default_region=self.default_region),
            "unfurl_links": False,
            "unfurl_media": False,
        }
        thread = message.reply_to or {}
        if thread.get("ts"):
            args["channel"] = thread.get("channel") or self.cfg.channel
            args["thread_ts"] = thread["ts"]
            # a severity rise matters to the whole channel, not only to those following the thread
            if message.kind == "escalated":
                args["reply_broadcast"] = True
        args = redact(args)
        args["metadata"] = {
            "event_type": EVENT_TYPE,
            "event_payload": {"fingerprint": message.key, "delivery_id": message.delivery_id},
        }
        return args

    def send(self, message: Message) -> dict[str, Any]:
        what = f"notifier {self.name}"
        try:
            resp = self.client.chat_postMessage(**self.request(message))
        except (SlackClientError, OSError) as exc:
            raise _failure(what, exc) from None
        channel_id = str(resp["channel"])
        self.state.put_json(CHANNEL_IDS, self.name, channel_id)
        return self._receipt(channel_id, str(resp["ts"]), message)

    @staticmethod
    def _receipt(channel_id: str, ts: str, message: Message) -> dict[str, Any]:
        root = (message.reply_to or {}).get("ts") or ts
        return {"channel": channel_id, "ts": ts, "thread": {"channel": channel_id, "ts": root}}

    def find_delivery(self, message: Message) -> dict[str, Any] | None:
        what = f"notifier {self.name}"
        try:
            thread = message.reply_to or {}
            if thread.get("ts"):
                channel = thread.get("channel") or self.channel_id()
                pages = self.client.conversations_replies(channel=channel, ts=thread["ts"],
                                                          include_all_metadata=True, limit=200)
            else:
                channel = self.channel_id()
                oldest = datetime.fromisoformat(message.queued_at.replace("Z", "+00:00")).timestamp()
                pages = self.client.conversations_history(channel=channel, oldest=f"{oldest - LOOKBACK_SECONDS:.6f}",
                                                          include_all_metadata=True, limit=200)
            for n, page in enumerate(pages):
                for msg in page.get("messages") or []:
                    meta = msg.get("metadata") or {}
                    if (meta.get("event_type") == EVENT_TYPE
                            and (meta.get("event_payload") or {}).get("delivery_id") == message.delivery_id):
                        return self._receipt(channel, str(msg["ts"]), message) | {"recovered": True}
                if n + 1 >= MAX_HISTORY_PAGES:
                    break
        except (SlackClientError, OSError) as exc:
            # cannot tell whether it arrived: better late than twice, so try again next cycle
            raise _failure(f"{what} (checking for an earlier delivery)", exc) from None
        return None

    def channel_id(self) -> str:
        """The configured channel's ID: as configured when it is one, else looked up by name.

        A looked-up ID is kept in state (`CHANNEL_IDS`, also refreshed by every post), so
        conversations.list runs once per notifier. Raises DeliveryError (not transient) when no
        channel of that name is visible to the bot.
        """
        channel = self.cfg.channel
        if _CHANNEL_ID.fullmatch(channel):
            return channel
        cached = self.state.get_json(CHANNEL_IDS, self.name)
        if cached:
            return str(cached)
        name = channel.lstrip("#")
        for page in self.client.conversations_list(types="public_channel,private_channel",
                                                   exclude_archived=True, limit=1000):
            for conv in page.get("channels") or []:
                if conv.get("name") == name:
                    self.state.put_json(CHANNEL_IDS, self.name, conv["id"])
                    return str(conv["id"])
        raise DeliveryError(f"notifier {self.name}: channel {channel} not found by conversations.list "
                            "(configure the channel ID instead)", transient=False)

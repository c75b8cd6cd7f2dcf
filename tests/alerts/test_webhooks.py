"""Generic signed webhook and Slack incoming webhook, over real HTTP."""

from __future__ import annotations

import io
import json
import logging

import pytest

from alerts.dispatch import build_notifiers, notify
from alerts.webhook import sign, verify_signature
from monitor.config import ConfigError, parse_config
from monitor.logs import RedactingFilter
from monitor.redact import redact_text, register_url
from tests.alerts.conftest import NOW, Receiver, make_finding
from tests.slack_standin import SlackStandin

SECRET = "whsec-shared-between-rolewatch-and-receiver"


def run(config, state, sleeps, findings):  # noqa: ANN001, ANN201
    return notify([(f, True, None) for f in findings], state, config, NOW,
                  notifiers=build_notifiers(config, state, sleep=sleeps))


@pytest.fixture
def webhook_config(receiver: Receiver, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    monkeypatch.setenv("HOOK_URL", receiver.url)
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    return parse_config({"notifiers": [{"type": "webhook", "url_env": "HOOK_URL", "secret_env": "HOOK_SECRET"}]})


def test_webhook_posts_the_findings_contract_signed(receiver: Receiver, webhook_config, state, sleeps) -> None:  # noqa: ANN001
    f = make_finding()
    assert run(webhook_config, state, sleeps, [f])["sent"] == 1
    ((headers, body),) = receiver.requests
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Rolewatch-Delivery"] == f"{f.fingerprint}-1"
    timestamp = headers["X-Rolewatch-Timestamp"]
    signature = headers["X-Rolewatch-Signature"]
    assert signature.startswith("sha256=")
    assert verify_signature(SECRET, timestamp, body, signature, now=float(timestamp))
    # any change to the body, the timestamp or the secret breaks it
    assert not verify_signature(SECRET, timestamp, body.replace(b"high", b"low"), signature, now=float(timestamp))
    assert not verify_signature("other-secret", timestamp, body, signature, now=float(timestamp))
    assert not verify_signature(SECRET, timestamp, body, signature, now=float(timestamp) + 3600)  # replay
    doc = json.loads(body)
    assert doc["schema"] == "rolewatch.alert/v1" and doc["kind"] == "new" and doc["severity"] == "high"
    assert doc["findings"] == [f.to_dict()]


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(b"k", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert sign("k", "1700000000", b"{}") == f"sha256={expected}"


def test_webhook_retries_gateway_errors_then_keeps_failures(receiver: Receiver, webhook_config, state, sleeps) -> None:  # noqa: ANN001
    receiver.statuses = [502, 504]
    assert run(webhook_config, state, sleeps, [make_finding()])["sent"] == 1
    assert len(receiver.requests) == 3 and len(sleeps) == 2
    # the same delivery id on every try: a receiver that saw it once can drop the repeats
    assert len({h["X-Rolewatch-Delivery"] for h, _ in receiver.requests}) == 1

    receiver.statuses = [400]
    counts = run(webhook_config, state, sleeps, [make_finding(fingerprint="e" * 32)])
    assert counts["failed"] == 1 and len(receiver.requests) == 4  # a 4xx is not retried in the loop
    assert "HTTP 400" in state.outbox_get("e" * 32, "webhook:HOOK_URL").last_error


def test_webhook_url_and_secret_env_must_be_set(receiver: Receiver, webhook_config, state, sleeps,  # noqa: ANN001
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOOK_SECRET")
    counts = run(webhook_config, state, sleeps, [make_finding()])
    assert counts["failed"] == 1 and receiver.requests == []
    assert "HOOK_SECRET is not set" in state.outbox_items()[0].last_error


def test_webhook_config_needs_exactly_one_url_source() -> None:
    with pytest.raises(ConfigError, match=r"notifiers\[0\]: give exactly one of url, url_env"):
        parse_config({"notifiers": [{"type": "webhook"}]})


def test_slack_incoming_webhook_posts_blocks(slack: SlackStandin, state, sleeps) -> None:  # noqa: ANN001
    config = parse_config({"notifiers": [{"type": "slack_webhook", "url": slack.webhook_url}]})
    assert run(config, state, sleeps, [make_finding()])["sent"] == 1
    (post,) = slack.webhook_posts
    assert post["text"].startswith("🔴 HIGH: Burst of failed AssumeRole calls")
    assert post["blocks"][0]["type"] == "header" and len(post["blocks"]) <= 50
    # the webhook URL is a credential: the notifier's name and the outbox never show it
    name = state.outbox_items()[0].notifier
    assert name.startswith("slack_webhook:") and "standinwebhooksecret" not in name


def test_slack_webhook_error_status_is_checked_not_ignored(slack: SlackStandin, state, sleeps) -> None:  # noqa: ANN001
    """WebhookClient returns a 500 response instead of raising."""
    config = parse_config({"notifiers": [{"type": "slack_webhook", "url": slack.webhook_url}]})
    slack.fail_next(500, times=4, method="webhook")
    counts = run(config, state, sleeps, [make_finding()])
    assert counts["failed"] == 1 and counts["queued"] == 1 and slack.webhook_posts == []
    item = state.outbox_items()[0]
    assert "HTTP 500" in item.last_error and "standinwebhooksecret" not in item.last_error
    assert run(config, state, sleeps, [])["sent"] == 1 and len(slack.webhook_posts) == 1


def test_an_error_page_repeating_the_url_path_does_not_leak_it(receiver: Receiver, state, sleeps,  # noqa: ANN001
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # the path and the query are what a leaked copy would be replayed with; the host alone is not
    path, query = "/hooks/wh-path-token-9f8e7d6c5b4a", "sig=qry-token-1a2b3c4d5e6f"
    monkeypatch.setenv("HOOK_URL", receiver.url.replace("/hooks/rolewatch", f"{path}?{query}"))
    config = parse_config({"notifiers": [{"type": "webhook", "url_env": "HOOK_URL"}]})
    receiver.echo_path, receiver.statuses = True, [404]
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.addFilter(RedactingFilter())
    logging.getLogger("alerts").addHandler(handler)
    try:
        assert run(config, state, sleeps, [make_finding()])["failed"] == 1
    finally:
        logging.getLogger("alerts").removeHandler(handler)
    reason = state.outbox_items()[0].last_error
    assert "HTTP 404 Cannot POST ***" in reason, reason  # the server's answer stays readable
    assert "Cannot POST ***" in lines.getvalue(), lines.getvalue()
    for text in (reason, lines.getvalue()):
        assert "wh-path-token" not in text and "qry-token" not in text, text


def test_a_short_url_path_is_not_a_secret_of_its_own() -> None:
    register_url("https://alerts.example.com/in?v=2")
    assert redact_text("Cannot POST /in?v=2") == "Cannot POST /in?v=2"
    assert redact_text("posted to https://alerts.example.com/in?v=2") == "posted to ***"

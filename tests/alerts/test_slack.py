"""Slack Web API notifier against the local stand-in: Block Kit content, limits, threads."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerts.base import DeliveryError
from alerts.dispatch import build_notifiers, notify
from alerts.slack import SlackNotifier
from tests.alerts.conftest import NOW, Sleeps, make_finding, slack_config
from tests.slack_standin import SlackStandin


def run(findings, state, config, now, sleeps: Sleeps):  # noqa: ANN001, ANN201
    notifiers = build_notifiers(config, state, sleep=sleeps)
    return notify([(f, True, None) for f in findings], state, config, now, notifiers=notifiers)


def field_texts(blocks: list[dict]) -> list[str]:
    return [f["text"] for b in blocks if b["type"] == "section" for f in b.get("fields", [])]


def all_text(blocks: list[dict]) -> str:
    parts = []
    for b in blocks:
        if "text" in b:
            parts.append(b["text"]["text"])
        parts += [f["text"] for f in b.get("fields", [])]
        parts += [e.get("text", "") for e in b.get("elements", [])]
    return "\n".join(parts)


def test_block_kit_payload_has_every_fact_and_a_fallback(slack: SlackStandin, state, sleeps) -> None:  # noqa: ANN001
    config = slack_config(slack)
    counts = run([make_finding()], state, config, NOW, sleeps)
    assert counts["sent"] == 1 and counts["queued"] == 0

    (call,) = slack.calls("chat.postMessage")
    assert call.headers["Authorization"] == f"Bearer {slack.token}"
    body = call.body
    assert body["channel"] == "#security-alerts"
    blocks = body["blocks"]
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                                     "text": "🔴 HIGH: Burst of failed AssumeRole calls"}}
    fields = field_texts(blocks)
    assert "*Severity*\nHIGH" in fields
    assert "*Role*\narn:aws:iam::111122223333:role/OrganizationAccountAccessRole" in fields
    assert "*Principal*\narn:aws:iam::444455556666:user/mallory" in fields
    assert "*Source IP*\n203.0.113.7" in fields
    assert "*Account*\n111122223333" in fields
    assert "*Count*\n12" in fields
    assert "*Last seen (UTC)*\n2026-03-02 08:04 UTC" in fields
    assert "*Last seen (Europe/Berlin)*\n2026-03-02 09:04 CET" in fields
    text = all_text(blocks)
    assert "*Likely cause*\na script retrying with a wrong ExternalId" in text
    assert ("<https://console.aws.amazon.com/cloudtrailv2/home?region=eu-central-1"
            "#/events/9d6e2c4a-0000-4000-8000-000000000001|") in text
    assert f"fingerprint `{'f' * 32}`" in text
    # plain-text fallback for notifications and clients without blocks
    assert body["text"].startswith("🔴 HIGH: Burst of failed AssumeRole calls\n")
    assert "Source IP: 203.0.113.7" in body["text"]
    assert body["metadata"] == {"event_type": "rolewatch_finding",
                                "event_payload": {"fingerprint": "f" * 32, "delivery_id": f"{'f' * 32}-1"}}
    assert state.outbox_get("f" * 32, "slack:#security-alerts").receipt["channel"] == "C0SECALERTS"


def test_user_controlled_text_cannot_inject_links_or_mentions(slack: SlackStandin, state, sleeps) -> None:  # noqa: ANN001
    f = make_finding(principal_arn="<!channel> <https://evil.example|click>")
    run([f], state, slack_config(slack), NOW, sleeps)
    fields = field_texts(slack.messages[0].blocks)
    assert "*Principal*\n&lt;!channel&gt; &lt;https://evil.example|click&gt;" in fields
    # the notification fallback is mrkdwn too
    assert "Principal: &lt;!channel&gt; &lt;https://evil.example|click&gt;" in slack.messages[0].text
    assert "<!channel>" not in slack.messages[0].text


def test_posture_finding_without_events_links_the_role(slack: SlackStandin, state, sleeps) -> None:  # noqa: ANN001
    f = make_finding(detector="trust_policy", event_ids=[], details={"check": "wildcard_principal"},
                     role_arn="arn:aws:iam::111122223333:role/service/Deploy")
    run([f], state, slack_config(slack), NOW, sleeps)
    text = all_text(slack.messages[0].blocks)
    assert "<https://console.aws.amazon.com/iam/home#/roles/details/Deploy|View the role in the IAM console>" in text
    assert "cloudtrailv2" not in text and "Likely cause" not in text


def test_oversized_finding_is_truncated_with_a_note_not_rejected(slack: SlackStandin, state, sleeps) -> None:  # noqa: ANN001
    f = make_finding(title="T" * 400, details={"denied": ["x" * 90 for _ in range(200)]},
                     principal_arn="arn:aws:iam::444455556666:role/" + "p" * 2500)
    counts = run([f], state, slack_config(slack), NOW, sleeps)
    assert counts["sent"] == 1, state.outbox_items()
    blocks = slack.messages[0].blocks
    assert len(blocks[0]["text"]["text"]) <= 150
    details = next(b for b in blocks if b.get("text", {}).get("text", "").startswith("*Details*"))
    assert len(details["text"]["text"]) <= 3000
    assert "truncated" in details["text"]["text"]
    assert all(len(t) <= 2000 for t in field_texts(blocks))


def test_digest_of_many_findings_respects_the_50_block_limit(slack: SlackStandin, state, sleeps) -> None:  # noqa: ANN001
    config = slack_config(slack, digest=True, channel="#rolewatch-digest", min_severity="info")
    findings = [make_finding(fingerprint=f"{i:032d}", severity="low", title=f"Off-hours use {i} " + "z" * 150)
                for i in range(400)]
    run(findings, state, config, NOW, sleeps)
    assert slack.messages == []  # held for the digest
    counts = run([], state, config, NOW + timedelta(days=1), sleeps)
    assert counts["sent"] == 1
    (digest,) = slack.messages
    assert len(digest.blocks) <= 50
    assert all(len(b["text"]["text"]) <= 3000 for b in digest.blocks if b["type"] == "section")
    note = digest.blocks[-1]["elements"][0]["text"]
    shown = sum(b["text"]["text"].count("Off-hours use") for b in digest.blocks if b["type"] == "section")
    assert note.startswith(f"… and {400 - shown} more finding(s) not shown")
    assert digest.blocks[0]["text"]["text"].startswith("rolewatch digest: 400 finding(s)")


def test_seen_again_is_not_resent_but_escalation_goes_into_the_thread(slack: SlackStandin, state, sleeps) -> None:  # noqa: ANN001
    config = slack_config(slack)
    run([make_finding(severity="medium")], state, config, NOW, sleeps)
    run([make_finding(severity="medium", count=30)], state, config, NOW + timedelta(minutes=5), sleeps)
    assert len(slack.messages) == 1

    run([make_finding(severity="critical", count=40)], state, config, NOW + timedelta(minutes=10), sleeps)
    first, reply = slack.messages
    assert reply.thread_ts == first.ts and reply.channel == first.channel
    assert reply.reply_broadcast is True  # the channel sees a severity rise
    assert reply.text.startswith("Severity raised from medium to critical")
    # a later repeat still threads under the first message, not under the reply
    run([make_finding(severity="critical", count=50)], state, config, NOW + timedelta(minutes=15), sleeps)
    assert len(slack.messages) == 2


def test_reminder_after_realert_hours_in_the_thread(slack: SlackStandin, state, sleeps) -> None:  # noqa: ANN001
    config = slack_config(slack, realert_hours=24)
    run([make_finding()], state, config, NOW, sleeps)
    run([make_finding()], state, config, NOW + timedelta(hours=23, minutes=59), sleeps)
    assert len(slack.messages) == 1
    run([make_finding()], state, config, NOW + timedelta(hours=24), sleeps)
    first, reminder = slack.messages
    assert reminder.thread_ts == first.ts and not reminder.reply_broadcast
    assert reminder.text.startswith("Reminder, still open")
    run([make_finding()], state, config, NOW + timedelta(hours=30), sleeps)
    assert len(slack.messages) == 2  # the clock restarts at each reminder


def test_bad_token_keeps_the_alert_and_says_why(slack: SlackStandin, state, sleeps, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-9999-wrong-token")
    counts = run([make_finding()], state, slack_config(slack), NOW, sleeps)
    assert counts == {"sent": 0, "recovered": 0, "failed": 1, "queued": 1, "held": 0}
    (item,) = state.outbox_items()
    assert item.status == "failed" and "invalid_auth" in item.last_error
    assert "xoxb-9999-wrong-token" not in item.last_error
    monkeypatch.setenv("SLACK_BOT_TOKEN", slack.token)
    assert run([], state, slack_config(slack), NOW, sleeps)["sent"] == 1


def test_missing_token_env_is_a_clear_failure_not_a_crash(slack: SlackStandin, state, sleeps, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    counts = run([make_finding()], state, slack_config(slack), NOW, sleeps)
    assert counts["failed"] == 1
    assert "SLACK_BOT_TOKEN is not set" in state.outbox_items()[0].last_error


def test_channel_id_looks_a_name_up_once_and_passes_an_id_through(slack: SlackStandin, state, sleeps) -> None:  # noqa: ANN001
    def notifier(channel: str) -> SlackNotifier:
        config = slack_config(slack, channel=channel)
        n = build_notifiers(config, state, sleep=sleeps)[f"slack:{channel}"]
        assert isinstance(n, SlackNotifier)
        return n

    by_name = notifier("#security-alerts")
    assert by_name.channel_id() == "C0SECALERTS"
    assert by_name.channel_id() == "C0SECALERTS"  # the second time from state
    assert len(slack.calls("conversations.list")) == 1
    assert notifier("C0DIGEST01").channel_id() == "C0DIGEST01"
    assert len(slack.calls("conversations.list")) == 1  # an ID needs no lookup
    with pytest.raises(DeliveryError, match="not found") as info:
        notifier("#no-such-channel").channel_id()
    assert not info.value.transient


def test_a_token_kept_in_secrets_manager_is_fetched_through_the_aws_settings(
        slack: SlackStandin, state, sleeps, aws_config, monkeypatch) -> None:  # noqa: ANN001
    import boto3

    from monitor.config import parse_config

    boto3.client("secretsmanager", region_name=aws_config.region, endpoint_url=aws_config.endpoint_url,
                 aws_access_key_id="testing", aws_secret_access_key="testing").create_secret(
        Name="rolewatch/slack-bot", SecretString=slack.token)
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)  # the environment cannot be where it came from
    config = parse_config({
        "aws": {"region": aws_config.region, "endpoint_url": aws_config.endpoint_url},
        "notifiers": [{"type": "slack", "channel": "#security-alerts", "api_url": slack.api_url,
                       "token": {"secretsmanager": "rolewatch/slack-bot"}}],
    })
    counts = run([make_finding()], state, config, NOW, sleeps)
    assert counts["sent"] == 1 and counts["failed"] == 0
    assert len(slack.messages) == 1

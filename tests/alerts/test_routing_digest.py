"""Routing (severity band, detector include / exclude) and the digest, end to end on the stand-in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.digest import period_start
from alerts.dispatch import build_notifiers, notify
from alerts.routing import routes
from monitor.config import ConfigError, parse_config
from tests.alerts.conftest import NOW, make_finding
from tests.slack_standin import SlackStandin


def routing_config(slack: SlackStandin):  # noqa: ANN201
    """The README example: high and up to #security-alerts, low/medium to a daily digest."""
    return parse_config({"notifiers": [
        {"type": "slack", "name": "security", "channel": "#security-alerts", "api_url": slack.api_url,
         "min_severity": "high", "exclude_detectors": ["unused_role"]},
        {"type": "slack", "name": "digest", "channel": "#rolewatch-digest", "api_url": slack.api_url,
         "min_severity": "low", "max_severity": "medium", "digest": True, "digest_period_hours": 24},
    ]})


def cycle(config, state, sleeps, findings, now):  # noqa: ANN001, ANN201
    return notify([(f, True, None) for f in findings], state, config, now,
                  notifiers=build_notifiers(config, state, sleep=sleeps))


def test_routes_filter_by_severity_band_and_detectors() -> None:
    cfg = parse_config({"notifiers": [{"type": "console", "min_severity": "medium", "max_severity": "high",
                                       "detectors": ["off_hours", "unusual_source_ip"],
                                       "exclude_detectors": ["unusual_source_ip"]}]}).notifiers[0]
    assert routes(cfg, make_finding(detector="off_hours", severity="medium"))
    assert routes(cfg, make_finding(detector="off_hours", severity="high"))
    assert not routes(cfg, make_finding(detector="off_hours", severity="low"))
    assert not routes(cfg, make_finding(detector="off_hours", severity="critical"))
    assert not routes(cfg, make_finding(detector="unusual_source_ip", severity="high"))
    assert not routes(cfg, make_finding(detector="failed_assume_role", severity="high"))


def test_high_goes_to_the_channel_low_waits_for_the_daily_digest(slack: SlackStandin, state, sleeps) -> None:  # noqa: ANN001
    config = routing_config(slack)
    findings = [
        make_finding(fingerprint="1" * 32, severity="critical", title="Trust policy allows any account"),
        make_finding(fingerprint="2" * 32, severity="low", detector="off_hours", title="Off-hours use of Admin"),
        make_finding(fingerprint="3" * 32, severity="medium", detector="first_time_principal", title="New principal"),
        make_finding(fingerprint="4" * 32, severity="high", detector="unused_role", title="Unused admin role"),
    ]
    counts = cycle(config, state, sleeps, findings, NOW)
    assert counts["sent"] == 1 and counts["held"] == 2
    (alert,) = slack.messages
    assert alert.channel == "C0SECALERTS" and "Trust policy allows any account" in alert.text

    # later the same day: more low findings join the held ones, nothing is posted
    cycle(config, state, sleeps, [make_finding(fingerprint="5" * 32, severity="low", title="Another")],
          NOW + timedelta(hours=10))
    assert len(slack.messages) == 1

    # the first cycle of the next UTC day sends one digest with all three
    next_day = datetime(2026, 3, 3, 0, 5, tzinfo=UTC)
    counts = cycle(config, state, sleeps, [], next_day)
    assert counts["sent"] == 1 and counts["held"] == 0
    digest = slack.messages[-1]
    assert digest.channel == "C0DIGEST01"
    assert digest.text.startswith("rolewatch digest: 3 finding(s) 2026-03-02T00:00:00Z – 2026-03-03T00:00:00Z")
    body = "\n".join(b["text"]["text"] for b in digest.blocks if b["type"] == "section")
    assert body.index("New principal") < body.index("Off-hours use of Admin")  # medium before low
    assert "Another" in body
    # nothing more until the next period, and the digested findings are not re-sent when seen again
    counts = cycle(config, state, sleeps, [findings[1]], next_day + timedelta(hours=1))
    assert counts["sent"] == 0 and len(slack.messages) == 2


def test_digest_survives_an_outage_and_is_sent_once(slack: SlackStandin, state, sleeps) -> None:  # noqa: ANN001
    config = routing_config(slack)
    cycle(config, state, sleeps, [make_finding(fingerprint="2" * 32, severity="low")], NOW)
    slack.down = True
    counts = cycle(config, state, sleeps, [], NOW + timedelta(days=1))
    assert counts["failed"] == 1 and counts["queued"] == 1
    slack.down = False
    assert cycle(config, state, sleeps, [], NOW + timedelta(days=1, minutes=5))["sent"] == 1
    assert cycle(config, state, sleeps, [], NOW + timedelta(days=2))["sent"] == 0
    assert len(slack.messages) == 1


def test_periods_are_aligned_to_utc() -> None:
    moment = datetime(2026, 3, 2, 17, 45, tzinfo=UTC)
    assert period_start(moment, 24) == datetime(2026, 3, 2, tzinfo=UTC)
    assert period_start(moment, 6) == datetime(2026, 3, 2, 12, tzinfo=UTC)


def test_notifier_names_must_be_unique_and_detectors_known() -> None:
    with pytest.raises(ConfigError, match="two notifiers share the name 'slack:#a'"):
        parse_config({"notifiers": [{"type": "slack", "channel": "#a"}, {"type": "slack", "channel": "#a"}]})
    with pytest.raises(ConfigError, match=r"notifiers\[0\]\.detectors: unknown detector 'off_hour'"):
        parse_config({"notifiers": [{"type": "console", "detectors": ["off_hour"]}]})
    with pytest.raises(ConfigError, match=r"notifiers\[0\]\.timezone: unknown time zone"):
        parse_config({"notifiers": [{"type": "slack", "channel": "#a", "timezone": "Mars/Olympus"}]})


def test_switching_digest_off_releases_held_findings(slack: SlackStandin, state, sleeps) -> None:  # noqa: ANN001
    config = routing_config(slack)
    cycle(config, state, sleeps, [make_finding(fingerprint="2" * 32, severity="low", title="Held one")], NOW)
    config.notifiers[1].digest = False
    counts = cycle(config, state, sleeps, [], NOW + timedelta(minutes=5))
    assert counts["sent"] == 1 and counts["held"] == 0
    assert slack.messages[0].text.startswith("🟡 LOW: Held one")

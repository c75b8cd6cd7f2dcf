"""Delivery rules against the Slack stand-in: retries, the outbox across an outage, and no
duplicate when the outcome of a send is unknown (crash between send and commit, lost response)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts.base import Message
from alerts.dispatch import build_notifiers, notify
from alerts.slack import SlackNotifier
from monitor.config import Config
from monitor.state.sqlite import SqliteState
from tests.alerts.conftest import NOW, Sleeps, make_finding, slack_config
from tests.slack_standin import SlackStandin

NAME = "slack:#security-alerts"


def cycle(findings: list, state: Any, config: Config, sleeps: Sleeps, now=NOW, **kw: Any) -> dict[str, int]:  # noqa: ANN001
    notifiers = kw.pop("notifiers", None) or build_notifiers(config, state, sleep=sleeps)
    return notify([(f, True, None) for f in findings], state, config, now, notifiers=notifiers)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_with_backoff(slack: SlackStandin, state, sleeps, status: int) -> None:  # noqa: ANN001
    slack.fail_next(status, times=2, method="chat.postMessage")
    counts = cycle([make_finding()], state, slack_config(slack), sleeps)
    assert counts["sent"] == 1
    assert [r.status for r in slack.calls("chat.postMessage")] == [status, status, 200]
    # exponential backoff (0.5 s, 1 s, plus up to 1 s of jitter), recorded instead of slept
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] < 1.5 and 1.0 <= sleeps[1] < 2.0
    assert len(slack.messages) == 1


def test_rate_limit_waits_for_retry_after(slack: SlackStandin, state, sleeps) -> None:  # noqa: ANN001
    slack.fail_next(429, retry_after=7, method="chat.postMessage")
    counts = cycle([make_finding()], state, slack_config(slack), sleeps)
    assert counts["sent"] == 1
    assert sleeps == [7.0]
    assert [r.status for r in slack.calls("chat.postMessage")] == [429, 200]


def test_a_long_retry_after_is_left_to_the_next_cycle(slack: SlackStandin, state, sleeps) -> None:  # noqa: ANN001
    slack.fail_next(429, retry_after=900, method="chat.postMessage")
    counts = cycle([make_finding()], state, slack_config(slack), sleeps)
    assert counts["failed"] == 1 and sleeps == []
    assert "HTTP 429" in state.outbox_get("f" * 32, NAME).last_error
    assert cycle([], state, slack_config(slack), sleeps)["sent"] == 1


def test_retries_give_up_after_the_limit_and_keep_the_alert(slack: SlackStandin, state, sleeps) -> None:  # noqa: ANN001
    slack.fail_next(503, times=10, method="chat.postMessage")
    counts = cycle([make_finding()], state, slack_config(slack), sleeps)
    assert counts["failed"] == 1 and counts["queued"] == 1
    assert len(slack.calls("chat.postMessage")) == 4  # one try and three retries
    assert "HTTP 503" in state.outbox_get("f" * 32, NAME).last_error


def test_outage_queues_then_delivers_once(slack: SlackStandin, state, sleeps) -> None:  # noqa: ANN001
    config = slack_config(slack)
    findings = [make_finding(fingerprint=f"{i:032d}", title=f"finding {i}") for i in range(3)]
    slack.down = True
    counts = cycle(findings, state, config, sleeps)
    assert counts == {"sent": 0, "recovered": 0, "failed": 1, "queued": 3, "held": 0}
    # an unhealthy Slack is tried once per cycle, not once per queued alert
    assert len(slack.calls("chat.postMessage")) == 1
    counts = cycle([], state, config, sleeps, now=NOW + timedelta(minutes=5))
    assert counts["queued"] == 3 and slack.messages == []

    slack.down = False
    counts = cycle([], state, config, sleeps, now=NOW + timedelta(minutes=10))
    assert counts["sent"] == 3 and counts["queued"] == 0
    assert sorted(m.text.splitlines()[0] for m in slack.messages) == [
        "🔴 HIGH: finding 0", "🔴 HIGH: finding 1", "🔴 HIGH: finding 2"]
    assert cycle([], state, config, sleeps, now=NOW + timedelta(minutes=15))["sent"] == 0
    assert len(slack.messages) == 3


def test_connection_dropped_before_processing_is_sent_next_cycle(slack: SlackStandin, state, sleeps) -> None:  # noqa: ANN001
    slack.drop_next(method="chat.postMessage")
    counts = cycle([make_finding()], state, slack_config(slack), sleeps)
    assert counts["failed"] == 1 and slack.messages == []
    counts = cycle([], state, slack_config(slack), sleeps)
    # the earlier attempt is looked for first (not found), then sent
    assert counts["sent"] == 1 and len(slack.messages) == 1
    assert slack.calls("conversations.history")[0].body["include_all_metadata"] in ("1", "true")


def test_lost_response_is_not_sent_twice(slack: SlackStandin, state, sleeps) -> None:  # noqa: ANN001
    """Slack posted the message but the answer never arrived: ambiguous, so no blind retry."""
    slack.drop_next(method="chat.postMessage", after_processing=True)
    counts = cycle([make_finding()], state, slack_config(slack), sleeps)
    assert counts["failed"] == 1 and len(slack.messages) == 1
    counts = cycle([], state, slack_config(slack), sleeps)
    assert counts["recovered"] == 1 and counts["sent"] == 0
    assert len(slack.messages) == 1
    item = state.outbox_get("f" * 32, NAME)
    assert item.status == "sent" and item.receipt["ts"] == slack.messages[0].ts


class Crash(BaseException):
    """The process dies: not an Exception, nothing may catch it."""


class CrashAfterSend(SlackNotifier):
    def send(self, message: Message) -> dict[str, Any]:
        super().send(message)
        raise Crash


CRASHING_RUN = """
import os, sys
from alerts.dispatch import notify
from alerts.slack import SlackNotifier
from monitor.config import parse_config
from monitor.state.sqlite import SqliteState
from tests.alerts.conftest import NOW, make_finding

class DieAfterSend(SlackNotifier):
    def send(self, message):
        super().send(message)
        os._exit(9)  # killed after Slack took the message, before the outbox commit

api_url, db = sys.argv[1:]
config = parse_config({"notifiers": [{"type": "slack", "channel": "#security-alerts", "api_url": api_url}]})
state = SqliteState(db)
name = "slack:#security-alerts"
notifier = DieAfterSend(name, config.notifiers[0], state=state, default_region="us-east-1", sleep=lambda s: None)
notify([(make_finding(), True, None)], state, config, NOW, notifiers={name: notifier})
"""


def test_process_killed_between_send_and_commit_does_not_duplicate(slack: SlackStandin, tmp_path: Path,  # noqa: ANN001
                                                                    sleeps) -> None:
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    db = tmp_path / "state.db"
    env = {**os.environ, "SLACK_BOT_TOKEN": slack.token, "PYTHONPATH": str(repo)}
    proc = subprocess.run([sys.executable, "-c", CRASHING_RUN, slack.api_url, str(db)], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    assert len(slack.messages) == 1

    restarted = SqliteState(db)  # the next run on the same state file
    assert restarted.outbox_get("f" * 32, NAME).status == "sending"
    counts = cycle([make_finding()], restarted, slack_config(slack), sleeps, now=NOW + timedelta(minutes=5))
    assert counts["recovered"] == 1 and counts["sent"] == 0
    assert len(slack.messages) == 1
    item = restarted.outbox_get("f" * 32, NAME)
    assert item.status == "sent" and item.receipt["ts"] == slack.messages[0].ts
    restarted.close()


def test_crash_while_replying_in_a_thread_does_not_duplicate(slack: SlackStandin, tmp_path: Path, sleeps) -> None:  # noqa: ANN001
    config = slack_config(slack)
    state = SqliteState(tmp_path / "state.db")
    cycle([make_finding(severity="medium")], state, config, sleeps)
    crashing = {NAME: CrashAfterSend(NAME, config.notifiers[0], state=state, default_region="us-east-1",
                                     sleep=sleeps)}
    with pytest.raises(Crash):
        cycle([make_finding(severity="high")], state, config, sleeps, notifiers=crashing)
    counts = cycle([], state, config, sleeps)
    assert counts["recovered"] == 1
    assert len(slack.messages) == 2 and slack.messages[1].thread_ts == slack.messages[0].ts
    assert slack.calls("conversations.replies")
    state.close()


def test_one_bad_message_does_not_block_the_others(slack: SlackStandin, state, sleeps) -> None:  # noqa: ANN001
    # ok=false for one message concerns that message only: the queue behind it still goes out
    config = Config.model_validate({"notifiers": [{"type": "slack", "channel": "#no-such-channel",
                                                   "api_url": slack.api_url, "name": "broken"},
                                                  {"type": "slack", "channel": "#security-alerts",
                                                   "api_url": slack.api_url, "name": "good"}]})
    counts = cycle([make_finding(fingerprint=f"{i:032d}") for i in range(2)], state, config, sleeps)
    assert counts["sent"] == 2 and counts["failed"] == 2
    assert all("channel_not_found" in i.last_error for i in state.outbox_items(["failed"]))

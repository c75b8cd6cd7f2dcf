"""The delivery rules on the DynamoDB state backend (moto over HTTP): the outbox behaves the same."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from alerts.dispatch import build_notifiers, notify, queue
from monitor.config import Config
from monitor.state import open_state
from tests.alerts.conftest import NOW, make_finding
from tests.slack_standin import SlackStandin


@pytest.fixture
def dynamo_config(moto_server: str, slack: SlackStandin) -> Config:
    return Config.model_validate({
        "state": {"backend": "dynamodb", "dynamodb_table": f"rolewatch-{uuid.uuid4().hex[:8]}"},
        "aws": {"region": "us-east-1", "endpoint_url": moto_server, "max_attempts": 3},
        "notifiers": [{"type": "slack", "channel": "#security-alerts", "api_url": slack.api_url}],
    })


@pytest.fixture
def dynamo_state(dynamo_config: Config) -> Iterator[Any]:
    st = open_state(dynamo_config)
    yield st
    st.close()


def test_outage_then_lost_response_on_dynamodb(slack: SlackStandin, dynamo_config: Config, dynamo_state: Any,
                                               sleeps) -> None:  # noqa: ANN001
    def cycle(findings: list, minutes: int) -> dict[str, int]:
        return notify([(f, True, None) for f in findings], dynamo_state, dynamo_config,
                      NOW + timedelta(minutes=minutes), notifiers=build_notifiers(dynamo_config, dynamo_state,
                                                                                  sleep=sleeps))

    slack.down = True
    assert cycle([make_finding()], 0)["queued"] == 1
    slack.down = False
    slack.drop_next(method="chat.postMessage", after_processing=True)  # posted, answer lost
    assert cycle([], 5)["failed"] == 1 and len(slack.messages) == 1
    counts = cycle([make_finding()], 10)
    assert counts["recovered"] == 1 and counts["sent"] == 0 and len(slack.messages) == 1
    # severity rise: a reply in the thread, found through the receipt kept in DynamoDB
    cycle([make_finding(severity="critical")], 15)
    assert len(slack.messages) == 2 and slack.messages[1].thread_ts == slack.messages[0].ts
    assert dynamo_state.outbox_counts() == {"sent": 1}


def test_another_process_delivering_before_a_cycle_commits_is_not_undone(slack: SlackStandin, dynamo_config: Config,
                                                                         sleeps) -> None:  # noqa: ANN001
    cycle_state, deliverer = open_state(dynamo_config), open_state(dynamo_config)  # two processes, one table
    alert = make_finding()
    queue([(alert, True, None)], deliverer, dynamo_config, NOW)  # an earlier cycle queued it
    with cycle_state.transaction():  # a cycle stores the finding again and refreshes its queued alert ...
        cycle_state.upsert_finding(alert, "open", NOW)
        queue([(alert, False, None)], cycle_state, dynamo_config, NOW)
        # ... while another process (a health check's delivery) sends it, before the cycle commits
        sent = notify([], deliverer, dynamo_config, NOW, notifiers=build_notifiers(dynamo_config, deliverer,
                                                                                   sleep=sleeps))
        assert sent["sent"] == 1
    counts = notify([], cycle_state, dynamo_config, NOW, notifiers=build_notifiers(dynamo_config, cycle_state,
                                                                                   sleep=sleeps))
    assert counts["sent"] == 0 and len(slack.messages) == 1
    row = cycle_state.outbox_get(alert.fingerprint, "slack:#security-alerts")
    assert (row.status, row.attempts, row.receipt["ts"]) == ("sent", 1, slack.messages[0].ts)


class StaleIndex:
    """A DynamoDB state whose outbox listing (a query on the eventually consistent GSI) still returns
    the rows as they were before another deliverer's marks, once; everything else is the real state."""

    def __init__(self, state: Any, listing: list[Any]) -> None:
        self._state = state
        self._listing: list[Any] | None = listing

    def outbox_items(self, statuses: Any = None, notifier: str | None = None) -> list[Any]:
        if notifier is None and self._listing is not None:
            listing, self._listing = self._listing, None
            return listing
        return self._state.outbox_items(statuses, notifier)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._state, name)


def test_a_deliverer_reading_a_stale_index_does_not_send_a_row_just_sent(slack: SlackStandin, dynamo_config: Config,
                                                                          sleeps) -> None:  # noqa: ANN001
    first, second = open_state(dynamo_config), open_state(dynamo_config)  # two processes, one table
    alert = make_finding()
    queue([(alert, True, None)], first, dynamo_config, NOW)
    before = second.outbox_items(["pending", "failed", "sending"])
    assert [i.status for i in before] == ["pending"]
    assert notify([], first, dynamo_config, NOW, notifiers=build_notifiers(dynamo_config, first,
                                                                             sleep=sleeps))["sent"] == 1
    # the next deliverer takes the lock at once; the index it lists the outbox from has not caught up
    stale = StaleIndex(second, before)
    counts = notify([], stale, dynamo_config, NOW, notifiers=build_notifiers(dynamo_config, stale, sleep=sleeps))
    assert counts["sent"] == 0 and len(slack.messages) == 1
    row = second.outbox_get(alert.fingerprint, "slack:#security-alerts")
    assert (row.status, row.attempts, row.receipt["ts"]) == ("sent", 1, slack.messages[0].ts)

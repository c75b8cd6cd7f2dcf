"""The outbox methods of the state interface, on a real SQLite file."""

from __future__ import annotations

from datetime import timedelta

from monitor.state.sqlite import SqliteState
from tests.alerts.conftest import NOW


def test_migration_is_registered_by_name(state: SqliteState) -> None:
    assert "0100_alerts_outbox" in state.schema_version()


def test_put_mark_and_rearm(state: SqliteState) -> None:
    state.outbox_put("fp", "slack:#a", {"v": 1}, "pending", NOW)
    state.outbox_mark("fp", "slack:#a", "sending", NOW)
    state.outbox_mark("fp", "slack:#a", "failed", NOW, error="HTTP 503")
    item = state.outbox_get("fp", "slack:#a")
    assert (item.status, item.attempts, item.last_error) == ("failed", 1, "HTTP 503")
    # refreshing a queued row keeps its attempt count: the next try still checks for an earlier delivery
    state.outbox_put("fp", "slack:#a", {"v": 2}, "failed", NOW)
    assert state.outbox_get("fp", "slack:#a").attempts == 1
    assert state.outbox_counts() == {"failed": 1}

    later = NOW + timedelta(minutes=5)
    state.outbox_mark("fp", "slack:#a", "sending", later)
    state.outbox_mark("fp", "slack:#a", "sent", later, receipt={"ts": "1.1"})
    item = state.outbox_get("fp", "slack:#a")
    assert (item.status, item.attempts, item.sent_at, item.receipt) == ("sent", 2, "2026-03-02T09:35:00Z", {"ts": "1.1"})
    assert state.outbox_counts() == {"sent": 1}

    # re-arming a sent row (a re-alert) starts a fresh delivery but keeps the receipt (the thread)
    state.outbox_put("fp", "slack:#a", {"v": 3}, "pending", later)
    item = state.outbox_get("fp", "slack:#a")
    assert (item.status, item.attempts, item.last_error, item.payload) == ("pending", 0, None, {"v": 3})
    assert item.receipt == {"ts": "1.1"}


def test_items_filter_by_status_and_notifier(state: SqliteState) -> None:
    state.outbox_put("a", "n1", {}, "pending", NOW)
    state.outbox_put("b", "n1", {}, "held", NOW)
    state.outbox_put("a", "n2", {}, "pending", NOW)
    assert [(i.fingerprint, i.notifier) for i in state.outbox_items(["pending"])] == [("a", "n1"), ("a", "n2")]
    assert [i.fingerprint for i in state.outbox_items(notifier="n1")] == ["a", "b"]
    assert state.outbox_counts() == {"pending": 2, "held": 1}


def test_outbox_survives_reopening(tmp_path) -> None:  # noqa: ANN001
    first = SqliteState(tmp_path / "s.db")
    with first.transaction():
        first.outbox_put("fp", "n", {"k": "v"}, "pending", NOW)
    first.close()
    again = SqliteState(tmp_path / "s.db")
    assert again.outbox_get("fp", "n").payload == {"k": "v"}
    again.close()

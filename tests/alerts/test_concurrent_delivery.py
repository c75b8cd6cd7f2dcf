"""Two deliverers at once (`rolewatch run`'s collect and posture threads, two overlapping `once`
processes) over one real SQLite file: an alert goes out once. The interleaving is forced with events
at the notifier and at the state's lock wait, never with sleeps."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from alerts.base import Message
from alerts.dispatch import notify
from alerts.file import FileNotifier
from monitor.config import Config, parse_config
from monitor.state.sqlite import SqliteState
from tests.alerts.conftest import NOW, make_finding

GRACE = 10.0  # seconds before a missed hand-off fails the test instead of hanging it


class NapClock:
    """The state's clock for lock waits: it moves only when the waiter naps, and a nap can run a hook."""

    def __init__(self) -> None:
        self.now = 0.0
        self.naps = 0
        self.on_nap: Callable[[], None] = lambda: None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.naps += 1
        self.on_nap()


class HeldFile(FileNotifier):
    """Signals when its send starts and finishes it only once `release` is set."""

    def __init__(self, name: str, path: Path, release: threading.Event) -> None:
        super().__init__(name, path)
        self.sending = threading.Event()
        self.release = release

    def send(self, message: Message) -> dict[str, Any]:
        self.sending.set()
        assert self.release.wait(GRACE), "the other deliverer never got going"
        return super().send(message)


def file_config(path: Path) -> tuple[Config, str]:
    return parse_config({"notifiers": [{"type": "file", "path": str(path)}]}), f"file:{path}"


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any], threading.Event]:
    out: list[Any] = []
    done = threading.Event()

    def run() -> None:
        try:
            out.append(fn())
        finally:
            done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out, done


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("handles", ["one handle, two threads", "two processes"])
def test_a_deliverer_that_finds_delivery_busy_leaves_its_alerts_to_the_one_sending(
        tmp_path: Path, handles: str, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "findings.jsonl"
    config, name = file_config(out)
    clock = NapClock()
    first = SqliteState(tmp_path / "state.db", clock=clock, sleep=clock.sleep)
    second = first if handles.startswith("one") else SqliteState(tmp_path / "state.db", clock=clock,
                                                                 sleep=clock.sleep)
    alert, later = make_finding(), make_finding(fingerprint="a" * 32, detector="off_hours")

    b_finished = threading.Event()
    held = HeldFile(name, out, release=b_finished)
    a, a_result, _ = in_thread(lambda: notify([(alert, True, None)], first, config, NOW, notifiers={name: held}))
    assert held.sending.wait(GRACE)  # A marked the row `sending` and is mid-send
    # B, meanwhile: another job's (or process's) delivery, with a finding of its own to queue
    with caplog.at_level(logging.INFO, logger="alerts"):
        b_result = notify([(later, True, None)], second, config, NOW, notifiers={name: FileNotifier(name, out)})
    b_finished.set()
    a.join(GRACE)

    assert b_result["sent"] == 0 and b_result["queued"] == 2  # A's row in flight and B's own: none lost
    assert "alert delivery is busy" in caplog.text
    # A, still holding the lock, sends what B queued while it was sending: a `once` that gave up
    # waiting has no later tick of its own to send it (a daily cron's is a day away)
    assert [d["fingerprint"] for d in lines(out)] == [alert.fingerprint, later.fingerprint]  # each once
    assert a_result[0]["sent"] == 2 and a_result[0]["queued"] == 0
    assert first.outbox_get(alert.fingerprint, name).status == "sent"
    assert first.outbox_get(later.fingerprint, name).status == "sent"

    assert notify([], second, config, NOW, notifiers={name: FileNotifier(name, out)})["sent"] == 0  # next tick
    assert len(lines(out)) == 2


def test_a_waiting_deliverer_gets_its_turn_and_nothing_goes_out_twice(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "findings.jsonl"
    config, name = file_config(out)
    clock = NapClock()
    first = SqliteState(tmp_path / "state.db")
    second = SqliteState(tmp_path / "state.db", clock=clock, sleep=clock.sleep)
    alert, later = make_finding(), make_finding(fingerprint="a" * 32, detector="off_hours")

    b_waiting = threading.Event()
    held = HeldFile(name, out, release=b_waiting)
    a, _, a_done = in_thread(lambda: notify([(alert, True, None)], first, config, NOW, notifiers={name: held}))
    assert held.sending.wait(GRACE)

    def nap() -> None:  # B found the lock taken: let A finish before B's next try
        b_waiting.set()
        assert a_done.wait(GRACE)

    clock.on_nap = nap
    with caplog.at_level(logging.INFO, logger="alerts"):
        b_result = notify([(later, True, None)], second, config, NOW, notifiers={name: FileNotifier(name, out)})
    a.join(GRACE)

    assert b_waiting.is_set()  # B did wait for A
    assert "alert delivery is busy" not in caplog.text  # and then delivered, not gave up
    # A, still holding the lock when B's row was queued, sent it; B found nothing left to send
    assert b_result["sent"] == 0 and b_result["queued"] == 0
    assert [d["fingerprint"] for d in lines(out)] == [alert.fingerprint, later.fingerprint]

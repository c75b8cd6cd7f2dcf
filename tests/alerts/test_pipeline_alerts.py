"""Alerts from a real cycle: collectors, detectors and the pipeline feeding the notifiers."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import alerts.dispatch
from alerts.dispatch import notify
from monitor.config import notifier_id
from monitor.pipeline import CYCLE_LOCK, detect_stored, run_cycle
from monitor.state.sqlite import SqliteState
from tests.alerts.conftest import make_finding
from tests.alerts.test_concurrent_delivery import GRACE, HeldFile, in_thread
from tests.collectors.conftest import make_config, record, write_jsonl
from tests.slack_standin import SlackStandin

NOW = datetime(2023, 7, 10, 13, 0, tzinfo=UTC)
ROLE = "arn:aws:iam::111122223333:role/Dev"


def denied(i: int) -> dict:
    return record(f"denied-{i}", time=f"2023-07-10T12:0{i}:00Z", errorCode="AccessDenied",
                  errorMessage=f"User: arn:aws:iam::444455556666:user/DevUser is not authorized to perform: "
                               f"sts:AssumeRole on resource: {ROLE}")


def test_a_cycle_alerts_each_finding_once_across_an_outage(tmp_path: Path, slack: SlackStandin) -> None:
    write_jsonl(tmp_path / "trail" / "a.jsonl", [denied(i) for i in range(8)])
    findings_file = tmp_path / "findings.jsonl"
    cfg = make_config(tmp_path, [{"type": "local", "path": str(tmp_path / "trail")}], notifiers=[
        {"type": "slack", "channel": "#security-alerts", "api_url": slack.api_url, "min_severity": "high"},
        {"type": "file", "path": str(findings_file), "min_severity": "info"},
    ])
    state = SqliteState(tmp_path / "state.db")
    slack.down = True
    first = run_cycle(cfg, state, now=NOW)
    high = [f for f in first.findings if f.severity in ("high", "critical")]
    assert any(f.detector == "failed_assume_role" for f in high), first.findings
    assert first.stats["alerts"]["queued"] == len(high)
    written = [json.loads(line) for line in findings_file.read_text().splitlines()]
    assert sorted(d["fingerprint"] for d in written) == sorted(f.fingerprint for f in first.findings)

    slack.down = False
    second = run_cycle(cfg, state, now=NOW + timedelta(minutes=5))
    assert second.stats["alerts"]["sent"] == len(high)
    run_cycle(cfg, state, now=NOW + timedelta(minutes=10))
    assert len(slack.messages) == len(high)
    assert len(findings_file.read_text().splitlines()) == len(written)  # nothing written twice
    state.close()


def test_a_quiet_cycle_still_delivers_the_backlog(tmp_path: Path, slack: SlackStandin) -> None:
    (tmp_path / "trail").mkdir()
    cfg = make_config(tmp_path, [{"type": "local", "path": str(tmp_path / "trail")}], notifiers=[
        {"type": "slack", "channel": "#security-alerts", "api_url": slack.api_url}])
    state = SqliteState(tmp_path / "state.db")
    slack.down = True
    assert notify([(make_finding(), True, None)], state, cfg, NOW)["queued"] == 1
    slack.down = False
    result = run_cycle(cfg, state, now=NOW + timedelta(minutes=5))
    assert result.findings == []
    assert result.stats["alerts"]["sent"] == 1 and len(slack.messages) == 1
    state.close()


def _cycle(cfg: Any, state: SqliteState) -> Any:
    return run_cycle(cfg, state, now=NOW)


def _posture_detection(cfg: Any, state: SqliteState) -> Any:
    run_cycle(cfg, state, now=NOW, notify=False)  # events stored, nothing queued yet
    return detect_stored(cfg, state, now=NOW + timedelta(minutes=5))


@pytest.mark.parametrize("deliverer", [_cycle, _posture_detection], ids=["cycle", "posture detection"])
def test_a_slow_delivery_does_not_hold_the_cycle_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      deliverer: Callable[[Any, SqliteState], Any]) -> None:
    write_jsonl(tmp_path / "trail" / "a.jsonl", [denied(i) for i in range(8)])
    out = tmp_path / "findings.jsonl"
    cfg = make_config(tmp_path, [{"type": "local", "path": str(tmp_path / "trail")}],
                      notifiers=[{"type": "file", "path": str(out), "min_severity": "info"}])
    name = notifier_id(cfg.notifiers[0])
    release = threading.Event()
    held = HeldFile(name, out, release)  # a Slack in its 429 waits: it sends once `release` is set
    monkeypatch.setattr(alerts.dispatch, "build_notifiers", lambda *_, **__: {name: held})
    state = SqliteState(tmp_path / "state.db")
    other = SqliteState(tmp_path / "state.db")  # an overlapping `once`, or `run`'s next collect
    thread, results, done = in_thread(lambda: deliverer(cfg, state))
    try:
        assert held.sending.wait(GRACE), "nothing was delivered"
        with other.lock(CYCLE_LOCK):  # StateLockedError while the delivering cycle still holds it
            assert not done.is_set()
            # what the cycle found was stored and queued before it let the lock go
            open_findings = {s.finding.fingerprint for s in other.findings(status="open")}
            assert open_findings
            assert {i.fingerprint for i in other.outbox_items(["pending", "sending"])} == open_findings
    finally:
        release.set()
        thread.join(GRACE)
    [result] = results
    assert result.stats["alerts"]["sent"] == len(open_findings) and result.stats["alerts"]["queued"] == 0
    assert len(out.read_text().splitlines()) == len(open_findings)
    state.close()
    other.close()


def test_the_run_record_keeps_the_delivery_counts(tmp_path: Path, slack: SlackStandin) -> None:
    write_jsonl(tmp_path / "trail" / "a.jsonl", [denied(i) for i in range(8)])
    cfg = make_config(tmp_path, [{"type": "local", "path": str(tmp_path / "trail")}], notifiers=[
        {"type": "slack", "channel": "#security-alerts", "api_url": slack.api_url, "min_severity": "info"}])
    state = SqliteState(tmp_path / "state.db")
    result = run_cycle(cfg, state, now=NOW)
    [run] = state.runs(job="collect")
    assert run["status"] == "ok" and run["finished_at"] is not None
    assert run["stats"]["alerts"] == result.stats["alerts"]
    assert run["stats"]["alerts"]["sent"] == len(slack.messages) == len(result.findings) > 0
    state.close()

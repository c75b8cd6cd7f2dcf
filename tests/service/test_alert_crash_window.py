"""A finding stored is a finding queued: the crash window between storing findings and queueing their alerts.

The crash is simulated by raising where the notifiers are built, after the findings' transaction
has committed and before anything was delivered; the state is then reopened from its file.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import alerts.dispatch
from alerts.dispatch import notify
from monitor.config import parse_config
from monitor.pipeline import run_cycle
from monitor.schedule import Service
from monitor.state.base import Coverage
from monitor.state.sqlite import SqliteState
from tests.collectors.conftest import make_config, record, write_jsonl

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


class Crash(Exception):
    """Stands in for the process dying at this point."""


def crash_before_delivery(monkeypatch: pytest.MonkeyPatch) -> None:
    def die(*_: object, **__: object) -> None:
        raise Crash("killed before any notifier was built")

    monkeypatch.setattr(alerts.dispatch, "build_notifiers", die)


def record_cycle(state: SqliteState, now: datetime, status: str) -> None:
    rid = state.start_run("collect", now)
    state.record_coverage(Coverage(rid, "s3:trail/", None, None, status, records=0 if status == "failed" else 3,
                                   message="AccessDenied" if status == "failed" else None))
    state.finish_run(rid, now, status, {})


def test_a_health_finding_that_clears_after_a_crash_is_still_alerted(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    alerts_file = tmp_path / "alerts.jsonl"
    cfg = parse_config({"detectors": {"monitor_health": {"failed_cycles": 2}},
                        "notifiers": [{"type": "file", "path": str(alerts_file), "min_severity": "info"}]})
    state = SqliteState(tmp_path / "state.db")
    record_cycle(state, NOW, "ok")
    record_cycle(state, NOW + timedelta(minutes=5), "failed")
    record_cycle(state, NOW + timedelta(minutes=10), "failed")
    crash_before_delivery(monkeypatch)
    with pytest.raises(Crash):
        Service(cfg, state, clock=lambda: NOW + timedelta(minutes=10)).health(NOW + timedelta(minutes=10))
    state.close()
    monkeypatch.undo()

    state = SqliteState(tmp_path / "state.db")  # restarted
    [stored] = [s for s in state.findings(status="open") if s.finding.detector == "monitor_health"]
    queued = state.outbox_items(["pending"])
    assert [i.fingerprint for i in queued] == [stored.finding.fingerprint]
    # the source recovers before the next check: the finding resolves, and is not found again
    later = NOW + timedelta(minutes=15)
    record_cycle(state, later, "ok")
    assert Service(cfg, state, clock=lambda: later).health(later) == []
    assert notify([], state, cfg, later)["sent"] == 1
    [line] = alerts_file.read_text().splitlines()
    assert json.loads(line)["fingerprint"] == stored.finding.fingerprint
    state.close()


def test_a_cycle_that_dies_after_storing_findings_has_queued_their_alerts(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    role = "arn:aws:iam::111122223333:role/Dev"
    write_jsonl(tmp_path / "trail" / "a.jsonl", [
        record(f"denied-{i}", time=f"2026-03-02T09:0{i}:00Z", errorCode="AccessDenied",
               errorMessage="User: arn:aws:iam::444455556666:user/DevUser is not authorized to perform: "
                            f"sts:AssumeRole on resource: {role}")
        for i in range(8)
    ])
    cfg = make_config(tmp_path, [{"type": "local", "path": str(tmp_path / "trail")}],
                      notifiers=[{"type": "file", "path": str(tmp_path / "alerts.jsonl"), "min_severity": "info"}])
    state = SqliteState(tmp_path / "state.db")
    crash_before_delivery(monkeypatch)
    result = run_cycle(cfg, state, now=NOW)
    # the delivery failed, the cycle did not: its findings are stored and their alerts queued
    assert "Crash" in result.stats["alerts"]["error"]
    assert any(n.startswith("alert delivery failed (Crash") for n in result.notices), result.notices
    assert result.errors == [] and state.runs(job="collect")[0]["status"] == "ok"
    state.close()

    state = SqliteState(tmp_path / "state.db")
    stored = {s.finding.fingerprint for s in state.findings(status="open")}
    assert stored, "the cycle stored no finding: nothing to check"
    assert {i.fingerprint for i in state.outbox_items(["pending"])} == stored
    state.close()

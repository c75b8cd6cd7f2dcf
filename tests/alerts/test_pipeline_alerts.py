"""Alerts from a real cycle: collectors, detectors and the pipeline feeding the notifiers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alerts.dispatch import notify
from monitor.pipeline import run_cycle
from monitor.state.sqlite import SqliteState
from tests.alerts.conftest import make_finding
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

"""A member account rolewatch cannot see is a monitor_health finding: the posture job against a moto
Organization over HTTP (STS refusing a missing audit role through the gate), state in SQLite,
alerts through a real `file` notifier, days passing on an injected clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3

from monitor.collectors.organizations import for_each_account
from monitor.config import Config, parse_config
from monitor.detect.monitor_health import POSTURE, account_unreachable_fingerprint
from monitor.posture.store import load_posture
from monitor.schedule import Service
from monitor.state.sqlite import SqliteState
from tests.posture.conftest import provision_account

NOW = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)
EXTERNAL_ID = "audit-ext-id-123"


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def org_with_members(endpoint: str, n: int) -> list[str]:
    orgs = boto3.client("organizations", endpoint_url=endpoint, region_name="us-east-1")
    orgs.create_organization(FeatureSet="ALL")
    return [orgs.create_account(Email=f"m{i}@example.com", AccountName=f"m{i}")["CreateAccountStatus"]["AccountId"]
            for i in range(n)]


def service_config(endpoint: str, alerts: Path) -> Config:
    return parse_config({
        "aws": {"endpoint_url": endpoint, "max_attempts": 2},
        "organization": {"enabled": True, "external_id": {"value": EXTERNAL_ID}, "exclude": ["123456789012"]},
        "posture": {"access_analyzer": False, "last_accessed": False},  # moto has neither
        "notifiers": [{"type": "file", "path": str(alerts)}],
    })


def open_health(state: SqliteState) -> list:
    return [s.finding for s in state.findings(status="open") if s.finding.detector == "monitor_health"]


def alert_lines(path: Path) -> list[dict]:
    """The monitor_health alerts (the posture job also alerts what the inventory it reached shows)."""
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [a for a in lines if a["detector"] == "monitor_health"]


def test_missing_audit_role_is_alerted_escalates_survives_restart_and_clears(sts_gate, tmp_path: Path) -> None:
    members = org_with_members(sts_gate.url, 3)
    hidden = members[1]
    for account in members:
        if account != hidden:
            provision_account(sts_gate.upstream, account, roles=2)
    sts_gate.deny_missing_roles = True  # no rolewatch-audit in `hidden`: STS says AccessDenied
    alerts = tmp_path / "alerts.jsonl"
    cfg = service_config(sts_gate.url, alerts)
    clock = Clock(NOW)
    state = SqliteState(tmp_path / "state.db")
    svc = Service(cfg, state, clock=clock)

    out = svc.run_job("posture")
    # one account of three not reached: the run is incomplete (it used to say "ok"), not failed
    assert out.result == "partial" and out.stats["health_findings"] == 1
    # the other accounts' inventory is collected all the same
    posture = load_posture(state)
    assert {r.account_id for r in posture.roles.values()} == set(members) - {hidden}
    assert "AccessDenied" in posture.errors[hidden]
    [finding] = open_health(state)
    assert finding.fingerprint == account_unreachable_fingerprint(hidden, POSTURE)
    assert finding.account_id == hidden and finding.severity == "medium" and finding.count == 1
    assert hidden in finding.title and "assuming the audit role" in finding.title
    assert finding.details["step"] == "assume_audit_role" and finding.details["error_code"] == "AccessDenied"
    assert finding.details["source"] == POSTURE
    [sent] = alert_lines(alerts)
    assert sent["fingerprint"] == finding.fingerprint and sent["severity"] == "medium"
    assert EXTERNAL_ID not in alerts.read_text() and EXTERNAL_ID not in finding.to_json()

    # still out of sight the next day: the same finding, not a second alert
    clock.now += timedelta(days=1)
    svc.run_job("posture")
    [finding] = open_health(state)
    assert (finding.severity, finding.count) == ("medium", 2)
    assert len(alert_lines(alerts)) == 1

    # the third posture collection in a row (failed_cycles = 3): high, alerted as an escalation
    clock.now += timedelta(days=1)
    svc.run_job("posture")
    [finding] = open_health(state)
    assert (finding.severity, finding.count) == ("high", 3)
    assert finding.first_seen == "2026-06-01T03:00:00Z" and finding.last_seen == "2026-06-03T03:00:00Z"
    assert [a["severity"] for a in alert_lines(alerts)] == ["medium", "high"]

    # a restart: a new state object over the same file remembers the streak and alerts nothing again
    state.close()
    state = SqliteState(tmp_path / "state.db")
    svc = Service(cfg, state, clock=clock)
    clock.now += timedelta(days=1)
    svc.run_job("posture")
    [finding] = open_health(state)
    assert (finding.severity, finding.count) == ("high", 4)
    assert finding.first_seen == "2026-06-01T03:00:00Z"
    assert len(alert_lines(alerts)) == 2

    # the audit role is back: the finding is resolved and nothing new is raised or sent
    provision_account(sts_gate.upstream, hidden, roles=1)
    clock.now += timedelta(days=1)
    out = svc.run_job("posture")
    assert out.stats["health_findings"] == 0 and open_health(state) == []
    assert state.get_finding(account_unreachable_fingerprint(hidden, POSTURE)).status == "resolved"
    assert hidden in load_posture(state).accounts and load_posture(state).errors == {}
    assert len(alert_lines(alerts)) == 2
    state.close()


def test_an_account_leaving_the_organization_scope_is_no_longer_reported(sts_gate, tmp_path: Path) -> None:
    members = org_with_members(sts_gate.url, 2)
    provision_account(sts_gate.upstream, members[0], roles=1)
    sts_gate.deny_missing_roles = True
    cfg = service_config(sts_gate.url, tmp_path / "alerts.jsonl")
    state = SqliteState(tmp_path / "state.db")
    svc = Service(cfg, state, clock=Clock(NOW))
    svc.run_job("posture")
    assert [f.account_id for f in open_health(state)] == [members[1]]
    cfg.organization.exclude.append(members[1])  # out of scope now: not a blind spot any more
    svc.run_job("posture")
    assert open_health(state) == []
    state.close()


def test_failures_name_the_step_they_stopped_at(sts_gate) -> None:
    members = ["111111111111", "222222222222", "333333333333"]
    provision_account(sts_gate.upstream, members[0], roles=1)
    provision_account(sts_gate.upstream, members[1], roles=1)
    sts_gate.deny_missing_roles = True
    cfg = service_config(sts_gate.url, Path("unused"))
    cfg.organization.accounts = members

    def inventory(account: str, session: boto3.session.Session) -> int:
        if account == members[1]:  # the audit role is there but may not list the roles
            session.client("iam", endpoint_url=sts_gate.url).get_role(RoleName="no-such-role")
        return len(session.client("iam", endpoint_url=sts_gate.url).list_roles()["Roles"])

    _, results = for_each_account(cfg, inventory, now=NOW, step="list_roles", poll_seconds=0.05)
    assert set(results.results) == {members[0]}
    assert {a: (f.step, f.error_code) for a, f in results.failures.items()} == {
        members[1]: ("list_roles", "NoSuchEntity"),
        members[2]: ("assume_audit_role", "AccessDenied"),
    }
    assert results.failures[members[2]].message == results.errors[members[2]]

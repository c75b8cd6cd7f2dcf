"""`rolewatch once` on the default daily posture schedule, against a moto Organization over HTTP
with one member whose audit role is missing (STS refuses it through the gate): the other
accounts are inventoried, the blind spot is alerted once through a `file` notifier, and the run
does not fail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.cli import build_parser
from monitor.config import parse_config
from monitor.detect.monitor_health import POSTURE, account_unreachable_fingerprint
from monitor.posture.store import load_posture
from monitor.schedule import run_once
from monitor.state.sqlite import SqliteState
from tests.collectors.conftest import record, write_jsonl
from tests.posture.conftest import provision_account
from tests.posture.test_account_unreachable import Clock, alert_lines, org_with_members, service_config

NOW = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)  # the default posture cron, "0 3 * * *", fires now


def unreachable_alerts(path: Path, account: str) -> list[dict]:
    # other alerts follow (trust_policy findings from the inventory, the local trail's silence a day
    # later): not this test's business
    fp = account_unreachable_fingerprint(account, POSTURE)
    return [a for a in alert_lines(path) if a["fingerprint"] == fp]


def test_once_collects_posture_daily_and_alerts_an_unreachable_account_once(sts_gate, tmp_path: Path,
                                                                             capsys) -> None:
    members = org_with_members(sts_gate.url, 3)
    hidden = members[2]
    for account in members[:2]:
        provision_account(sts_gate.upstream, account, roles=1)
    sts_gate.deny_missing_roles = True
    alerts = tmp_path / "alerts.jsonl"
    cfg = service_config(sts_gate.url, alerts)
    cfg.state.path = str(tmp_path / "state.db")
    cfg.report.output_dir = str(tmp_path / "reports")  # `once` writes the weekly report when due
    write_jsonl(tmp_path / "trail" / "a.jsonl", [record("a")])
    cfg.sources = parse_config({"sources": [{"type": "local", "path": str(tmp_path / "trail")}]}).sources
    clock = Clock(NOW)

    def once() -> tuple[int, str]:
        code = run_once(cfg, build_parser().parse_args(["once"]), clock=clock)
        return code, capsys.readouterr().out

    code, out = once()
    assert code == 0, out  # an account out of sight is a finding, not a failed run
    # per provisioned account: the audit role, one workload role, the vendor and the role moto gives a member
    # the line names the run's result now that one account not reached makes it partial
    assert "posture: partial: 2 account(s), 8 role(s), 0 analyzer finding(s), 1 account(s) not reached" in out
    state = SqliteState(tmp_path / "state.db")
    posture = load_posture(state)
    assert {r.account_id for r in posture.roles.values()} == set(members[:2])
    assert "AccessDenied" in posture.errors[hidden]
    state.close()
    [sent] = unreachable_alerts(alerts, hidden)
    assert sent["severity"] == "medium" and sent["account_id"] == hidden
    assert f"[medium] rolewatch cannot see account {hidden}" in out

    # five minutes on: the posture is not due again, the open finding is not alerted again
    clock.now += timedelta(minutes=5)
    code, out = once()
    assert code == 0 and "posture: not due until 2026-06-02T03:00:00Z" in out
    assert len(unreachable_alerts(alerts, hidden)) == 1

    # the next day's first run collects again: the streak grows, still medium, still one alert
    clock.now = NOW + timedelta(days=1)
    assert once()[0] == 0
    state = SqliteState(tmp_path / "state.db")
    try:
        assert [r["started_at"] for r in state.runs(job="posture")] == ["2026-06-02T03:00:00Z",
                                                                         "2026-06-01T03:00:00Z"]
        finding = state.get_finding(account_unreachable_fingerprint(hidden, POSTURE)).finding
        assert (finding.severity, finding.count) == ("medium", 2)
    finally:
        state.close()
    assert len(unreachable_alerts(alerts, hidden)) == 1

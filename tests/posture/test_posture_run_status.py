"""The posture run's recorded result says whether every account was reached: `ok`, `partial` with
the accounts it could not reach, or `failed` when it reached none. `rolewatch once` against a moto
Organization over HTTP behind the STS gate (which refuses a member's missing audit role as STS
does), a real SQLite file, an injected clock; then `rolewatch status` on the same state."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import build_parser
from monitor.config import Config, parse_config
from monitor.detect.monitor_health import POSTURE, account_unreachable_fingerprint
from monitor.schedule import run_once
from monitor.state.sqlite import SqliteState
from monitor.status import cmd_status
from tests.collectors.conftest import record, write_jsonl
from tests.posture.conftest import provision_account
from tests.posture.test_account_unreachable import NOW, Clock, org_with_members, service_config


def setup(sts_gate: Any, tmp_path: Path) -> Config:
    sts_gate.deny_missing_roles = True
    cfg = service_config(sts_gate.url, tmp_path / "alerts.jsonl")
    cfg.state.path = str(tmp_path / "state.db")
    cfg.report.output_dir = str(tmp_path / "reports")
    write_jsonl(tmp_path / "trail" / "a.jsonl", [record("a")])
    cfg.sources = parse_config({"sources": [{"type": "local", "path": str(tmp_path / "trail")}]}).sources
    return cfg


def once(cfg: Config, clock: Clock, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = run_once(cfg, build_parser().parse_args(["once", "--posture", "always"]), clock=clock)
    return code, capsys.readouterr().out


def last_posture_run(tmp_path: Path) -> dict[str, Any]:
    state = SqliteState(tmp_path / "state.db")
    try:
        return state.runs(job="posture", limit=1)[0]
    finally:
        state.close()


def status(tmp_path: Path, clock: Clock, capsys: pytest.CaptureFixture[str], *, as_json: bool) -> Any:
    path = tmp_path / "rolewatch.toml"
    path.write_text(f'[state]\npath = "{tmp_path / "state.db"}"\n')
    assert cmd_status(argparse.Namespace(config=str(path), json=as_json), now=clock()) == 0
    out = capsys.readouterr().out
    return json.loads(out) if as_json else out


def test_a_member_without_the_audit_role_makes_the_run_partial_until_it_is_reached(
        sts_gate: Any, tmp_path: Path, capsys) -> None:
    members = org_with_members(sts_gate.url, 3)
    hidden = members[1]
    for account in members:
        if account != hidden:
            provision_account(sts_gate.upstream, account, roles=1)
    cfg = setup(sts_gate, tmp_path)
    clock = Clock(NOW)

    code, out = once(cfg, clock, capsys)
    assert code == 0, out  # incomplete, not failed: the blind spot is a monitor_health finding
    assert "posture: partial: 2 account(s), 8 role(s), 0 analyzer finding(s), 1 account(s) not reached" in out
    assert f"  not reached {hidden}: " in out and "AccessDenied" in out
    run = last_posture_run(tmp_path)
    assert run["status"] == "partial" and run["stats"]["accounts_failed"] == 1
    assert [f["account"] for f in run["stats"]["failed_accounts"]] == [hidden]

    text = status(tmp_path, clock, capsys, as_json=False)
    [row] = [line for line in text.splitlines() if line.startswith("posture ")]
    assert row.split()[1] == "partial"
    assert "partial: 2 account(s), 8 role(s), 0 analyzer finding(s), 1 account(s) not reached" in text
    assert f"not reached {hidden}: " in text
    job = status(tmp_path, clock, capsys, as_json=True)["jobs"]["posture"]
    assert job["result"] == "partial" and job["posture"]["accounts_failed"] == 1
    assert job["posture"]["failed_accounts"][0]["account"] == hidden
    # monitor_health still reports the account on its own, as before
    assert [h["fingerprint"] for h in status(tmp_path, clock, capsys, as_json=True)["monitor_health"]] == [
        account_unreachable_fingerprint(hidden, POSTURE)]

    provision_account(sts_gate.upstream, hidden, roles=1)  # the audit role is back
    clock.now += timedelta(days=1)
    code, out = once(cfg, clock, capsys)
    assert code == 0, out
    assert "posture: 3 account(s), 12 role(s), 0 analyzer finding(s), 0 account(s) not reached" in out
    assert "not reached" not in out.replace("0 account(s) not reached", "")
    run = last_posture_run(tmp_path)
    assert run["status"] == "ok" and run["stats"]["accounts_failed"] == 0 and run["stats"]["failed_accounts"] == []
    text = status(tmp_path, clock, capsys, as_json=False)
    [row] = [line for line in text.splitlines() if line.startswith("posture ")]
    assert row.split()[1] == "ok" and f"not reached {hidden}" not in text


def test_a_collection_that_reaches_no_account_fails(sts_gate: Any, tmp_path: Path, capsys) -> None:
    members = org_with_members(sts_gate.url, 2)  # neither has the audit role
    cfg = setup(sts_gate, tmp_path)
    clock = Clock(NOW)
    code, out = once(cfg, clock, capsys)
    assert code == 1, out
    assert "posture: failed: 0 account(s), 0 role(s), 0 analyzer finding(s), 2 account(s) not reached" in out
    run = last_posture_run(tmp_path)
    assert run["status"] == "failed" and run["stats"]["accounts_failed"] == 2
    assert sorted(f["account"] for f in run["stats"]["failed_accounts"]) == sorted(members)
    text = status(tmp_path, clock, capsys, as_json=False)
    assert "error: no account could be reached (2 tried)" in text

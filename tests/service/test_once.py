"""`rolewatch once` is one tick of the service: the cycle, the posture job when its schedule says
so, and monitor_health alerts, against moto over HTTP, a real SQLite file and a `file` notifier,
with time passing on an injected clock."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from monitor.cli import build_parser, main
from monitor.config import Config, JobSchedule, parse_config
from monitor.detect.monitor_health import failed_streak_fingerprint
from monitor.posture.store import load_posture
from monitor.schedule import due_at, run_once
from monitor.state.sqlite import SqliteState
from tests.collectors.conftest import record, write_jsonl
from tests.service.test_schedule import FakeClock

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


def once_config(tmp_path: Path, endpoint: str, **sections: Any) -> Config:
    trail = tmp_path / "trail"
    write_jsonl(trail / "a.jsonl", [record("a")])
    return parse_config({
        "state": {"path": str(tmp_path / "state.db")},
        "aws": {"endpoint_url": endpoint, "max_attempts": 2},
        "sources": [{"type": "local", "path": str(trail)}],
        "posture": {"access_analyzer": False, "last_accessed": False},  # moto has neither
        "schedule": {"posture": {"interval_minutes": 60}},
        "notifiers": [{"type": "file", "path": str(tmp_path / "alerts.jsonl")}],
        "report": {"output_dir": str(tmp_path / "reports"), "formats": ["json"]},
        **sections,
    })


def make_once(cfg: Config, clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str]]:
    def once(*flags: str) -> tuple[int, str]:
        code = run_once(cfg, build_parser().parse_args(["once", *flags]), clock=clock)
        return code, capsys.readouterr().out
    return once


def in_state(tmp_path: Path) -> SqliteState:
    return SqliteState(tmp_path / "state.db")


def posture_runs(tmp_path: Path) -> list[dict[str, Any]]:
    st = in_state(tmp_path)
    try:
        return st.runs(job="posture")
    finally:
        st.close()


def posture_role_names(tmp_path: Path) -> set[str]:
    st = in_state(tmp_path)
    try:
        return {r.name for r in load_posture(st).roles.values()}
    finally:
        st.close()


def alert_lines(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "alerts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_due_at_follows_the_posture_trigger() -> None:
    daily = JobSchedule(cron="0 3 * * *")
    at_0258 = datetime(2026, 3, 2, 2, 58, tzinfo=UTC)
    assert due_at(daily, None, at_0258) == at_0258  # never ran: due now
    assert due_at(daily, at_0258, at_0258) == datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    # a run a little after the fire time waits for tomorrow's, not 24 hours from itself
    late = datetime(2026, 3, 2, 3, 0, 40, tzinfo=UTC)
    assert due_at(daily, late, late) == datetime(2026, 3, 3, 3, 0, tzinfo=UTC)
    assert due_at(JobSchedule(interval_minutes=90), late, late) == late + timedelta(minutes=90)
    assert due_at(JobSchedule(enabled=False), None, late) is None


def test_posture_is_collected_again_only_once_its_interval_has_passed(moto: str, tmp_path: Path, capsys) -> None:
    iam = boto3.client("iam", endpoint_url=moto, region_name="us-east-1")
    iam.create_role(RoleName="first", AssumeRolePolicyDocument=TRUST)
    clock = FakeClock(NOW)
    once = make_once(once_config(tmp_path, moto), clock, capsys)

    code, out = once()
    assert code == 0, out
    assert posture_role_names(tmp_path) == {"first"}
    assert "posture: 1 account(s), 1 role(s), 0 analyzer finding(s), 0 account(s) not reached" in out

    iam.create_role(RoleName="second", AssumeRolePolicyDocument=TRUST)
    clock.advance(minutes=30)
    code, out = once()
    assert code == 0, out
    assert posture_role_names(tmp_path) == {"first"}  # not collected again: the new role is not seen
    assert len(posture_runs(tmp_path)) == 1
    assert "posture: not due until 2026-03-02T11:00:00Z" in out

    clock.advance(minutes=31)
    code, out = once()
    assert code == 0, out
    assert posture_role_names(tmp_path) == {"first", "second"}
    assert [r["started_at"] for r in posture_runs(tmp_path)] == ["2026-03-02T11:01:00Z", "2026-03-02T10:00:00Z"]


def test_posture_flag_forces_or_skips_the_collection(moto: str, tmp_path: Path, capsys) -> None:
    clock = FakeClock(NOW)
    once = make_once(once_config(tmp_path, moto), clock, capsys)

    code, out = once("--posture", "never")
    assert code == 0 and "posture: not collected (--posture never)" in out
    assert posture_runs(tmp_path) == []

    clock.advance(minutes=1)
    assert once()[0] == 0  # never collected: due at once
    assert len(posture_runs(tmp_path)) == 1

    clock.advance(minutes=1)
    assert once("--posture", "always")[0] == 0  # its hour is not up, collected all the same
    assert len(posture_runs(tmp_path)) == 2

    clock.advance(hours=3)
    assert once("--posture", "never")[0] == 0  # overdue, still skipped
    assert len(posture_runs(tmp_path)) == 2


def test_a_switched_off_posture_schedule_is_never_due(moto: str, tmp_path: Path, capsys) -> None:
    cfg = once_config(tmp_path, moto, schedule={"posture": {"enabled": False}})
    code, out = make_once(cfg, FakeClock(NOW), capsys)()
    assert code == 0 and "posture: not collected ([schedule] posture is switched off)" in out
    assert posture_runs(tmp_path) == []


def test_a_failing_source_is_alerted_once_across_once_runs(moto: str, tmp_path: Path, capsys) -> None:
    cfg = once_config(tmp_path, moto, sources=[{"type": "s3", "bucket": "trail"}])  # no such bucket yet
    clock = FakeClock(NOW)
    once = make_once(cfg, clock, capsys)
    fp = failed_streak_fingerprint("s3:trail/")

    for _ in range(2):  # failed_cycles = 3 by default
        code, out = once("--posture", "never")
        assert code == 1 and "NoSuchBucket" in out
        clock.advance(minutes=5)
    assert alert_lines(tmp_path) == []

    code, out = once("--posture", "never")
    assert code == 1
    [sent] = alert_lines(tmp_path)
    assert sent["fingerprint"] == fp and sent["detector"] == "monitor_health" and sent["severity"] == "high"
    assert sent["details"]["check"] == "failed_cycles" and sent["details"]["consecutive_failures"] == 3
    assert "monitor_health (open):" in out and "s3:trail/" in out

    # still failing at the next run: the stored finding grows, the alert is not sent again
    clock.advance(minutes=5)
    assert once("--posture", "never")[0] == 1
    assert len(alert_lines(tmp_path)) == 1
    st = in_state(tmp_path)
    assert st.get_finding(fp).finding.count == 4
    st.close()

    # the trail is back (a bucket without account prefixes would give the source nothing to report)
    s3 = boto3.client("s3", endpoint_url=moto, region_name="us-east-1")
    s3.create_bucket(Bucket="trail")
    s3.put_object(Bucket="trail", Key="AWSLogs/111122223333/CloudTrail/us-east-1/2026/03/02/a.json",
                  Body=json.dumps({"Records": [record("b", time="2026-03-02T10:18:00Z")]}).encode())
    clock.advance(minutes=5)
    code, out = once("--posture", "never")
    assert code == 0, out
    assert "monitor_health (open):" not in out
    st = in_state(tmp_path)
    assert st.get_finding(fp).status == "resolved"
    st.close()
    assert len(alert_lines(tmp_path)) == 1


def test_no_notify_stores_the_health_finding_and_sends_nothing(moto: str, tmp_path: Path, capsys) -> None:
    cfg = once_config(tmp_path, moto, sources=[{"type": "s3", "bucket": "trail"}],
                      detectors={"monitor_health": {"failed_cycles": 1}})
    assert make_once(cfg, FakeClock(NOW), capsys)("--posture", "never", "--no-notify")[0] == 1
    st = in_state(tmp_path)
    assert st.get_finding(failed_streak_fingerprint("s3:trail/")).status == "open"
    st.close()
    assert alert_lines(tmp_path) == []


def test_a_once_that_finds_the_cycle_locked_records_nothing(moto: str, tmp_path: Path, capsys) -> None:
    cfg = once_config(tmp_path, moto)
    holder = in_state(tmp_path)  # another `once` in the middle of its cycle
    try:
        with holder.lock("cycle"):
            code = run_once(cfg, build_parser().parse_args(["once"]), clock=FakeClock(NOW))
        assert code == 1 and "another cycle is running" in capsys.readouterr().err
        # neither a failed cycle for monitor_health to count nor a posture run beside the holder's
        assert holder.runs() == []
    finally:
        holder.close()


def test_a_posture_collection_that_fails_as_a_whole_fails_the_run(moto: str, tmp_path: Path, capsys,
                                                                    monkeypatch) -> None:
    # the audit role's ExternalId is missing from the job's environment: no account can be reached
    monkeypatch.delenv("ROLEWATCH_AUDIT_EXTERNAL_ID", raising=False)
    cfg = once_config(tmp_path, moto, organization={
        "enabled": True, "accounts": ["111111111111"], "external_id": {"env": "ROLEWATCH_AUDIT_EXTERNAL_ID"}})
    code, out = make_once(cfg, FakeClock(NOW), capsys)()
    assert code == 1
    assert "posture: failed: ConfigError: environment variable ROLEWATCH_AUDIT_EXTERNAL_ID is not set" in out
    assert "ROLEWATCH_AUDIT_EXTERNAL_ID is not set" in out
    st = in_state(tmp_path)
    try:
        assert [r["status"] for r in st.runs(job="collect")] == ["ok"]  # the cycle itself went through
        assert [r["status"] for r in st.runs(job="posture")] == ["failed"]
    finally:
        st.close()


@pytest.mark.parametrize(("job", "flags"), [("posture", []), ("retention", ["--posture", "never"])])
def test_a_bad_crontab_stops_once_before_any_work(tmp_path: Path, capsys, job: str, flags: list[str]) -> None:
    cfg = tmp_path / "rolewatch.toml"
    cfg.write_text(f'[state]\npath = "{tmp_path / "state.db"}"\n[schedule]\n{job} = {{ cron = "99 * * * *" }}\n')
    assert main(["once", "--config", str(cfg), *flags]) == 2
    assert f"{cfg}: schedule.{job}.cron: '99 * * * *' is not a crontab expression" in capsys.readouterr().err
    assert not (tmp_path / "state.db").exists()


def job_runs(tmp_path: Path, job: str) -> list[dict[str, Any]]:
    st = in_state(tmp_path)
    try:
        return st.runs(job=job)
    finally:
        st.close()


def test_retention_runs_when_due_and_is_recorded_for_the_next_once(moto: str, tmp_path: Path, capsys) -> None:
    # NOW is Monday 10:00; retention's default trigger is 04:30 every day
    clock = FakeClock(NOW)
    once = make_once(once_config(tmp_path, moto), clock, capsys)

    code, out = once("--posture", "never")
    assert code == 0, out
    [first] = job_runs(tmp_path, "retention")  # never ran: due at once
    assert first["started_at"] == "2026-03-02T10:00:00Z" and first["status"] == "ok"
    assert "retention: ok: removed" in out

    clock.advance(hours=18)  # 04:00 next day: today's 04:30 has not come yet
    code, out = once("--posture", "never")
    assert code == 0, out
    assert len(job_runs(tmp_path, "retention")) == 1
    assert "retention: not due until 2026-03-03T04:30:00Z" in out

    clock.advance(minutes=31)
    assert once("--posture", "never")[0] == 0
    assert [r["started_at"] for r in job_runs(tmp_path, "retention")] == [
        "2026-03-03T04:31:00Z", "2026-03-02T10:00:00Z"]


def test_the_report_is_written_when_due_and_not_again_before_its_next_fire_time(moto: str, tmp_path: Path,
                                                                                capsys) -> None:
    clock = FakeClock(NOW)  # Monday 10:00; the report's default trigger is Monday 06:00
    once = make_once(once_config(tmp_path, moto), clock, capsys)
    reports = tmp_path / "reports"

    code, out = once("--posture", "never")
    assert code == 0, out
    first = sorted(p.name for p in reports.iterdir())
    assert len(first) == 1 and first[0].endswith(".json")
    assert f"report: ok: 2026-01-31T10:00:00Z .. 2026-03-02T10:00:00Z to {reports / first[0]}" in out

    clock.advance(days=6, hours=19)  # Sunday 05:00 next week
    code, out = once("--posture", "never")
    assert code == 0, out
    assert sorted(p.name for p in reports.iterdir()) == first
    assert "report: not due until 2026-03-09T06:00:00Z" in out
    assert len(job_runs(tmp_path, "report")) == 1

    clock.advance(hours=1, minutes=1)  # Monday 06:01
    assert once("--posture", "never")[0] == 0
    assert len(list(reports.iterdir())) == 2
    assert [r["status"] for r in job_runs(tmp_path, "report")] == ["ok", "ok"]


def test_a_switched_off_report_or_retention_job_never_runs(moto: str, tmp_path: Path, capsys) -> None:
    cfg = once_config(tmp_path, moto, schedule={"posture": {"enabled": False}, "report": {"enabled": False},
                                                 "retention": {"enabled": False}})
    code, out = make_once(cfg, FakeClock(NOW), capsys)()
    assert code == 0, out
    assert "report: not run ([schedule] report is switched off)" in out
    assert "retention: not run ([schedule] retention is switched off)" in out
    assert job_runs(tmp_path, "report") == [] and job_runs(tmp_path, "retention") == []
    assert not (tmp_path / "reports").exists()


def test_a_failing_report_keeps_the_cycle_and_fails_the_run(moto: str, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the report folder should be")
    cfg = once_config(tmp_path, moto, report={"output_dir": str(blocker / "reports"), "formats": ["json"]})
    code, out = make_once(cfg, FakeClock(NOW), capsys)("--posture", "never")
    assert code == 1
    assert "report: failed:" in out and "report.output_dir" in out
    assert "1 new event(s)" in out
    st = in_state(tmp_path)
    try:
        [cycle] = st.runs(job="collect")
        assert cycle["status"] == "ok" and cycle["stats"]["events_new"] == 1  # recorded all the same
        assert [r["status"] for r in st.runs(job="report")] == ["failed"]
        # the later job still ran (and pruned the 2023 event, older than seen_retention_days)
        [retention] = st.runs(job="retention")
        assert retention["status"] == "ok" and retention["stats"]["removed"]["events"] == 1
    finally:
        st.close()


def test_a_new_inventory_is_detected_and_alerted_in_the_tick_that_collected_it(moto: str, tmp_path: Path,
                                                                               capsys) -> None:
    """The cycle runs before the posture job; the posture job then detects again with the inventory it
    stored, so a daily `once` does not alert a wildcard trust a day late."""
    wide_open = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]})
    boto3.client("iam", endpoint_url=moto, region_name="us-east-1").create_role(
        RoleName="open-door", AssumeRolePolicyDocument=wide_open)
    clock = FakeClock(NOW)
    once = make_once(once_config(tmp_path, moto), clock, capsys)

    code, out = once()
    assert code == 0, out
    trust = [a for a in alert_lines(tmp_path) if a["detector"] == "trust_policy"]
    assert [(a["details"]["check"], a["role_arn"].rsplit("/", 1)[-1]) for a in trust] == [
        ("wildcard_principal", "open-door")]
    assert posture_runs(tmp_path)[0]["stats"]["findings"] >= 1

    clock.advance(minutes=5)
    code, out = once()  # the next cycle finds the same finding open: not alerted again
    assert code == 0, out
    assert [a["detector"] for a in alert_lines(tmp_path)].count("trust_policy") == 1


def test_the_posture_job_defers_detection_to_a_cycle_that_holds_the_lock(moto: str, tmp_path: Path) -> None:
    from monitor.pipeline import CYCLE_LOCK, detect_stored

    cfg = once_config(tmp_path, moto)
    st = in_state(tmp_path)
    other = in_state(tmp_path)
    try:
        with other.lock(CYCLE_LOCK):
            assert detect_stored(cfg, st, now=NOW) is None
        assert detect_stored(cfg, st, now=NOW) is not None
    finally:
        st.close()
        other.close()

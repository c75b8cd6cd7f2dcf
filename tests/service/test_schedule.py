from __future__ import annotations

import logging
import shutil
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.config import Config, ConfigError, parse_config
from monitor.health import check_health
from monitor.schedule import JobOutcome, Service, build_scheduler, job_triggers, upcoming
from monitor.state.sqlite import SqliteState
from tests.alerts.test_concurrent_delivery import NapClock

NOW = datetime(2026, 3, 2, 10, 17, 30, tzinfo=UTC)  # a Monday


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def test_default_schedule_fire_times_from_a_fake_now() -> None:
    triggers = job_triggers(parse_config({}).schedule, NOW)
    assert list(triggers) == ["collect", "posture", "report", "retention"]
    # interval job: fires at start, then every 5 minutes
    assert upcoming(triggers["collect"], NOW, 3) == [NOW, NOW + timedelta(minutes=5), NOW + timedelta(minutes=10)]
    assert upcoming(triggers["posture"], NOW, 2) == [datetime(2026, 3, 3, 3, 0, tzinfo=UTC),
                                                      datetime(2026, 3, 4, 3, 0, tzinfo=UTC)]
    # weekly report: Monday 06:00 has passed today, so next Monday
    assert upcoming(triggers["report"], NOW, 1) == [datetime(2026, 3, 9, 6, 0, tzinfo=UTC)]
    assert upcoming(triggers["retention"], NOW, 1) == [datetime(2026, 3, 3, 4, 30, tzinfo=UTC)]


def test_cron_wins_over_interval_and_disabled_jobs_are_absent() -> None:
    cfg = parse_config({"schedule": {
        "collect": {"cron": "*/15 * * * *", "interval_minutes": 1},
        "report": {"enabled": False},
    }})
    triggers = job_triggers(cfg.schedule, NOW)
    assert "report" not in triggers
    assert upcoming(triggers["collect"], NOW, 2) == [datetime(2026, 3, 2, 10, 30, tzinfo=UTC),
                                                     datetime(2026, 3, 2, 10, 45, tzinfo=UTC)]


def test_fractional_interval_minutes() -> None:
    cfg = parse_config({"schedule": {"retention": {"interval_minutes": 0.5}}})
    t = job_triggers(cfg.schedule, NOW)["retention"]
    assert upcoming(t, NOW + timedelta(seconds=1), 2) == [NOW + timedelta(seconds=30), NOW + timedelta(seconds=60)]


@pytest.mark.parametrize("job", ["collect", "posture", "report", "retention"])
def test_bad_crontab_is_a_config_error_naming_the_key(job: str) -> None:
    # rejected when the config loads, so check-config catches it (and a disabled job's typo too)
    with pytest.raises(ConfigError, match=rf"<config>: schedule\.{job}\.cron: '0 25 \* \* \*' is not a crontab"):
        parse_config({"schedule": {job: {"cron": "0 25 * * *", "enabled": job != "report"}}})


@pytest.mark.parametrize("minutes", [0, -5])
def test_interval_minutes_must_be_positive(minutes: float) -> None:
    with pytest.raises(ConfigError, match=r"schedule\.collect\.interval_minutes: Input should be greater than 0"):
        parse_config({"schedule": {"collect": {"interval_minutes": minutes}}})


def test_scheduler_jobs_coalesce_single_instance_with_grace() -> None:
    cfg = parse_config({"schedule": {"misfire_grace_seconds": 45}})
    sched = build_scheduler(cfg, lambda name: None, NOW)  # never started: no threads, no clock
    jobs = {j.id: j for j in sched.get_jobs()}
    assert set(jobs) == {"collect", "posture", "report", "retention"}
    for job in jobs.values():
        assert job.coalesce is True and job.max_instances == 1 and job.misfire_grace_time == 45
        assert job.args == (job.id,)


def test_a_failing_job_is_recorded_and_the_next_tick_runs_again(state, caplog) -> None:
    clock = FakeClock(NOW)
    svc = Service(parse_config({}), state, clock=clock)
    calls = []

    def flaky():
        calls.append(clock())
        if len(calls) == 1:
            raise RuntimeError("IAM throttled us to death")
        return JobOutcome("ok", {"roles": 3})

    svc.jobs["posture"] = flaky
    with caplog.at_level(logging.ERROR, logger="rolewatch.service"):
        first = svc.run_job("posture")
    assert first.result == "failed"
    assert "IAM throttled us to death" in caplog.text
    clock.advance(minutes=5)
    second = svc.run_job("posture")
    assert second.result == "ok" and len(calls) == 2
    runs = state.runs(job="posture")
    assert [r["status"] for r in runs] == ["ok", "failed"]
    assert runs[1]["stats"]["error"] == "RuntimeError: IAM throttled us to death"
    assert runs[0]["started_at"] == "2026-03-02T10:22:30Z"


def trail_config(tmp_path: Path, shared_data: Path, **extra) -> tuple[Config, Path]:
    trail = tmp_path / "trail"
    shutil.copytree(shared_data / "s3_layout" / "invictus", trail)
    return parse_config({"sources": [{"type": "local", "path": str(trail)}],
                         "collection": {"initial_lookback_hours": 24 * 365 * 20}, **extra}), trail


def test_collect_runs_the_real_cycle_once_per_tick(state, tmp_path: Path, shared_data: Path) -> None:
    cfg, _ = trail_config(tmp_path, shared_data)
    clock = FakeClock(NOW)
    svc = Service(cfg, state, clock=clock)
    out = svc.run_job("collect")
    assert out.result == "ok", out.stats
    assert out.stats["events_new"] > 0 and out.stats["errors"] == []
    [run] = state.runs(job="collect")  # one record: the cycle's own, not a second one from the scheduler
    assert run["run_id"] == out.stats["run_id"] and run["status"] == "ok"
    assert run["stats"]["events_new"] == out.stats["events_new"]
    assert [c.status for c in state.coverage(run["run_id"])] == ["ok"]
    clock.advance(minutes=5)
    again = svc.run_job("collect")
    assert again.result == "ok" and again.stats["events_new"] == 0  # nothing read twice


def test_a_collect_that_fires_while_the_posture_job_detects_waits_for_it(tmp_path: Path,
                                                                        shared_data: Path) -> None:
    """In `run` the posture job ends with a detection pass under the cycle lock, in its own thread: a
    collect job firing meanwhile takes its turn after it, rather than being recorded as a failed cycle
    (which counts towards monitor_health's failed_cycles)."""
    from monitor.pipeline import CYCLE_LOCK

    cfg, _ = trail_config(tmp_path, shared_data)
    lock_clock = NapClock()
    st = SqliteState(tmp_path / "state.db", clock=lock_clock, sleep=lock_clock.sleep)
    posture_pass = SqliteState(tmp_path / "state.db")  # the posture job's thread, mid-detection
    held = ExitStack()
    try:
        held.enter_context(posture_pass.lock(CYCLE_LOCK))
        lock_clock.on_nap = held.close  # it finishes while the collect job waits
        out = Service(cfg, st, clock=FakeClock(NOW)).run_job("collect")
        assert out.result == "ok", out.stats
        assert lock_clock.naps >= 1  # it did find the lock taken
        assert [r["status"] for r in st.runs(job="collect")] == ["ok"]
    finally:
        held.close()
        posture_pass.close()
        st.close()


def test_cycles_that_cannot_start_become_a_monitor_health_finding(tmp_path: Path, shared_data: Path) -> None:
    cfg, _ = trail_config(tmp_path, shared_data, detectors={"monitor_health": {"failed_cycles": 2}})
    clock = FakeClock(NOW)
    lock_clock = NapClock()  # the bounded wait for the cycle lock runs out without taking real time
    state = SqliteState(tmp_path / "state.db", clock=lock_clock, sleep=lock_clock.sleep)
    other = SqliteState(state.path)  # a `rolewatch once` holding the cycle lock
    try:
        svc = Service(cfg, state, clock=clock)
        with other.lock("cycle"):
            for _ in range(2):
                out = svc.run_job("collect")
                assert out.result == "failed" and "StateLockedError" in out.stats["error"]
                clock.advance(minutes=5)
        assert [r["status"] for r in state.runs(job="collect")] == ["failed", "failed"]
        [health] = [s for s in state.findings(status="open") if s.finding.detector == "monitor_health"]
        assert health.finding.title == "rolewatch collection cycle failed 2 times in a row"
        assert svc.run_job("collect").result == "ok"
        assert state.get_finding(health.finding.fingerprint).status == "resolved"
    finally:
        other.close()
        state.close()


def test_job_failures_never_leak_secrets_into_state(state) -> None:
    from monitor.redact import register_secret

    register_secret("ext-id-s3cr3t-value")
    svc = Service(parse_config({}), state, clock=FakeClock(NOW))

    def leaky():
        raise RuntimeError("assume role failed with ExternalId ext-id-s3cr3t-value")

    svc.jobs["posture"] = leaky
    svc.run_job("posture")
    [run] = state.runs(job="posture")
    assert "ext-id-s3cr3t-value" not in str(run["stats"])


def test_retention_prunes_with_configured_days(state) -> None:
    from monitor.events.schema import frame_from_rows

    state.add_events(frame_from_rows([
        {"event_id": "old", "event_time": "2026-01-01T00:00:00Z", "event_name": "AssumeRole", "success": True},
        {"event_id": "new", "event_time": "2026-03-01T00:00:00Z", "event_name": "AssumeRole", "success": True},
    ]))
    svc = Service(parse_config({"state": {"seen_retention_days": 10}}), state, clock=FakeClock(NOW))
    out = svc.run_job("retention")
    assert out.result == "ok" and out.stats["removed"]["events"] == 1
    assert list(state.load_events()["event_id"]) == ["new"]


def test_report_job_writes_the_configured_formats(state, tmp_path: Path) -> None:
    cfg = parse_config({"report": {"formats": ["md", "json"], "output_dir": str(tmp_path / "reports")}})
    out = Service(cfg, state, clock=FakeClock(NOW)).run_job("report")
    assert out.result == "ok", out.stats
    written = sorted(Path(p).suffix for p in out.stats["written"])
    assert written == [".json", ".md"]
    assert all(Path(p).is_file() and Path(p).parent == tmp_path / "reports" for p in out.stats["written"])
    assert out.stats["until"].startswith("2026-03-02T10:17:30")


def test_metrics_count_runs_errors_and_last_success(state) -> None:
    from prometheus_client import generate_latest

    from monitor.metrics import ServiceMetrics

    metrics = ServiceMetrics()
    svc = Service(parse_config({}), state, clock=FakeClock(NOW), metrics=metrics)
    svc.jobs["collect"] = lambda: JobOutcome("partial", {"events_new": 7, "errors": ["s3: AccessDenied"],
                                                         "findings_by_detector": {"off_hours": 2}})
    svc.run_job("collect")
    text = generate_latest(metrics.registry).decode()
    assert 'rolewatch_job_runs_total{job="collect",result="partial"} 1.0' in text
    assert "rolewatch_events_total 7.0" in text
    assert 'rolewatch_findings_total{detector="off_hours"} 2.0' in text
    assert 'rolewatch_errors_total{job="collect"} 1.0' in text
    assert 'rolewatch_last_success_timestamp_seconds{job="collect"}' in text


def test_health_hook_raises_and_resolves_monitor_health(state, tmp_path: Path) -> None:
    from monitor.state.base import Coverage

    cfg = parse_config({"detectors": {"monitor_health": {"failed_cycles": 2}}})
    clock = FakeClock(NOW)

    def cycle(status: str, records: int) -> None:
        rid = state.start_run("collect", clock())
        state.record_coverage(Coverage(rid, "s3:trail/", None, None, status, records=records,
                                       message="AccessDenied" if status == "failed" else None))
        state.finish_run(rid, clock(), status, {})
        clock.advance(minutes=5)

    cycle("ok", 5)
    cycle("failed", 0)
    assert check_health(state, cfg, clock()) == []
    cycle("failed", 0)
    [(finding, is_new, _)] = check_health(state, cfg, clock())
    assert is_new and finding.details["source"] == "s3:trail/"
    assert state.get_finding(finding.fingerprint).status == "open"
    cycle("ok", 3)
    assert check_health(state, cfg, clock()) == []
    assert state.get_finding(finding.fingerprint).status == "resolved"


def test_metrics_are_served_over_http_in_prometheus_text(state) -> None:
    import urllib.request

    from monitor.demo.local_aws import free_port
    from monitor.metrics import ServiceMetrics

    metrics = ServiceMetrics()
    svc = Service(parse_config({}), state, clock=FakeClock(NOW), metrics=metrics)
    svc.jobs["retention"] = lambda: JobOutcome("ok", {})
    svc.run_job("retention")
    port = free_port()
    server = metrics.serve("127.0.0.1", port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            body = resp.read().decode()
            assert resp.headers["Content-Type"].startswith("text/plain")
    finally:
        server.shutdown()
    assert 'rolewatch_job_runs_total{job="retention",result="ok"} 1.0' in body


def test_posture_run_stats_are_counts_never_policy_text() -> None:
    from monitor.posture.model import Posture, RoleInfo
    from monitor.schedule import posture_stats

    role = RoleInfo(arn="arn:aws:iam::111111111111:role/x", name="x", account_id="111111111111",
                    trust_policy={"Statement": [{"Condition": {"StringEquals": {"sts:ExternalId": "s3cr3t-ext"}}}]})
    stats = posture_stats(Posture(roles={role.arn: role}, accounts=["111111111111"]))
    assert stats == {"accounts": 1, "roles": 1, "analyzer_findings": 0}
    assert "s3cr3t-ext" not in str(stats)


def test_a_posture_run_missed_while_the_service_was_down_runs_at_start(tmp_path) -> None:
    from monitor.schedule import overdue_posture
    from monitor.state.sqlite import SqliteState

    st = SqliteState(tmp_path / "state.db")
    try:
        svc = Service(parse_config({}), st, clock=lambda: NOW)  # posture: 03:00 daily; NOW is 10:17 Monday
        assert overdue_posture(svc, NOW) == frozenset()  # never ran: a first start keeps the schedule

        st.start_run("posture", NOW - timedelta(hours=7, minutes=30))  # 02:47: today's 03:00 passed unseen
        assert overdue_posture(svc, NOW) == {"posture"}
        jobs = {j.id: j for j in build_scheduler(svc.config, lambda name: None, NOW, frozenset({"posture"})).get_jobs()}
        assert jobs["posture"].next_run_time == NOW
        assert not hasattr(jobs["report"], "next_run_time")  # the others wait for their triggers

        st.start_run("posture", NOW - timedelta(hours=7))  # 03:17: today's run happened
        assert overdue_posture(svc, NOW) == frozenset()
    finally:
        st.close()

"""CloudWatch Logs source against moto server over HTTP.

moto ignores JSON filter patterns and returns every event: exactly what shows that the
client-side re-check drops what the pattern would have kept out.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta

import pytest

import queries
from monitor import aws
from monitor.collectors.base import CycleWindow
from monitor.collectors.cloudwatch_logs import CloudWatchLogsCollector, slices
from monitor.collectors.ratelimit import TokenBucket
from monitor.pipeline import make_collector, run_cycle, store_batch
from tests.collectors.conftest import make_config, record
from tests.collectors.test_ratelimit import FakeClock

NOW = datetime.now(UTC).replace(microsecond=0)  # CloudWatch Logs refuses events older than 14 days


def ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def put(logs, group: str, stream: str, events: list[tuple[datetime, str]]) -> None:
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
        {"timestamp": int(t.timestamp() * 1000), "message": m} for t, m in sorted(events)])


@pytest.fixture
def logs(aws_config):
    return aws.client("logs", aws_config)


def cw_config(tmp_path, aws_config, groups, **extra):
    # one slice per window keeps the request count (and the test) small
    return make_config(tmp_path, [{"type": "cloudwatch_logs", "log_groups": groups, "slice_minutes": 1440,
                                   "requests_per_second": 1000, **extra}], aws_config)


def test_filter_pattern_is_loaded_from_queries() -> None:
    pattern = queries.load("filter_patterns", "assume_role_family")
    assert pattern.startswith("{") and pattern.endswith("}")
    for name in ("AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity", "sts.amazonaws.com"):
        assert f'"{name}"' in pattern


def test_non_assume_role_events_returned_by_the_service_are_dropped(tmp_path, logs, aws_config, state) -> None:
    t = NOW - timedelta(minutes=30)
    put(logs, "trail", "111122223333_CloudTrail_us-east-1", [
        (t, json.dumps(record("ar1", time=ts(t)))),
        (t + timedelta(seconds=1), json.dumps(record("get1", name="GetObject", time=ts(t)))),
        (t + timedelta(seconds=2), json.dumps({**record("login1", time=ts(t)), "eventName": "ConsoleLogin",
                                               "eventSource": "signin.amazonaws.com"})),
        (t + timedelta(seconds=3), json.dumps(record("saml1", name="AssumeRoleWithSAML", time=ts(t)))),
        # an event naming AssumeRole from another service is not an STS AssumeRole call
        (t + timedelta(seconds=4), json.dumps({**record("fake1", time=ts(t)), "eventSource": "iam.amazonaws.com"})),
        (t + timedelta(seconds=5), '{"eventName": "AssumeRole", truncated'),
    ])
    res = run_cycle(cw_config(tmp_path, aws_config, ["trail"]), state, now=NOW)
    assert sorted(state.load_events()["event_id"]) == ["ar1", "saml1"]
    assert res.events_new == 2 and res.skipped == 1
    [cov] = res.coverage
    assert (cov.source, cov.status, cov.records, cov.skipped, cov.region) == (
        "cloudwatch_logs:trail", "ok", 2, 1, "us-east-1")
    assert cov.start == ts(NOW - timedelta(hours=24)) and cov.end == ts(NOW)


def test_every_page_of_every_slice_and_group_is_read(tmp_path, logs, aws_config, state) -> None:
    base = NOW - timedelta(hours=5)
    put(logs, "g1", "s", [(base + timedelta(minutes=7 * i), json.dumps(record(f"g1-{i}", time=ts(base))))
                          for i in range(40)])
    put(logs, "g2", "s", [(base + timedelta(minutes=i), json.dumps(record(f"g2-{i}", time=ts(base))))
                          for i in range(9)])
    cfg = cw_config(tmp_path, aws_config, ["g1", "g2"], slice_minutes=60)
    collector = make_collector(cfg.sources[0], cfg, state)
    assert isinstance(collector, CloudWatchLogsCollector)
    clock = FakeClock()
    collector.bucket = TokenBucket(5, clock=clock, sleep=clock.sleep)
    collector.page_size = 3
    window = CycleWindow(NOW, NOW, None, timedelta(hours=6), timedelta(minutes=20))
    stored = 0
    batches = 0
    for batch in collector.batches(window):
        stored += store_batch(state, "cloudwatch_logs:g1,g2", batch)[0]
        batches += 1
    assert stored == 49
    assert batches == 2 * 6  # one batch (and checkpoint) per hour slice per group
    assert state.get_checkpoint("cloudwatch_logs:g1,g2", "g1") == ts(NOW)
    # 12 slices, several of them several pages: all paced at 5 requests/s on the fake clock
    requests = 5 + len(clock.sleeps)
    assert requests > 12 + 40 // 3
    assert clock.now - 1000.0 == pytest.approx((requests - 5) / 5)


def test_missing_log_group_fails_alone_and_checkpoints_resume(tmp_path, logs, aws_config, state) -> None:
    t = NOW - timedelta(minutes=10)
    put(logs, "good", "s", [(t, json.dumps(record("ok1", time=ts(t))))])
    cfg = cw_config(tmp_path, aws_config, ["missing", "good"])
    res = run_cycle(cfg, state, now=NOW)
    assert list(state.load_events()["event_id"]) == ["ok1"]
    assert [c.status for c in res.coverage] == ["failed", "ok"]
    assert "ResourceNotFoundException" in res.errors[0] and "missing" in res.errors[0]
    sid = "cloudwatch_logs:missing,good"
    assert state.get_checkpoint(sid, "missing") is None
    assert state.get_checkpoint(sid, "good") == ts(NOW)
    # next cycle: the good group re-reads only its overlap, the failed one its whole initial window
    later = NOW + timedelta(minutes=5)
    put(logs, "good", "s2", [(later - timedelta(minutes=1), json.dumps(record("ok2", time=ts(later))))])
    res2 = run_cycle(cfg, state, now=later)
    assert res2.events_new == 1
    missing, good = res2.coverage
    assert good.start == ts(NOW - timedelta(minutes=20))
    assert missing.start == ts(later - timedelta(hours=24)) and missing.status == "failed"


def test_slices_cover_the_window_exactly() -> None:
    a = datetime(2024, 1, 1, tzinfo=UTC)
    got = slices(a, a + timedelta(minutes=150), 60)
    assert [(s - a, e - a) for s, e in got] == [
        (timedelta(0), timedelta(minutes=60)), (timedelta(minutes=60), timedelta(minutes=120)),
        (timedelta(minutes=120), timedelta(minutes=150))]
    assert slices(a, a, 60) == []


def test_big_slices_are_stored_in_parts_and_checkpointed_at_the_end(tmp_path, logs, aws_config, state,
                                                                  monkeypatch) -> None:
    monkeypatch.setattr("monitor.collectors.base.RECORDS_PER_BATCH", 4)
    base = NOW - timedelta(hours=2)
    put(logs, "big", "s", [(base + timedelta(minutes=i), json.dumps(record(f"b-{i}", time=ts(base))))
                           for i in range(10)])
    cfg = cw_config(tmp_path, aws_config, ["big"])
    collector = make_collector(cfg.sources[0], cfg, state)
    collector.page_size = 2
    window = CycleWindow(NOW, NOW, None, timedelta(hours=6), timedelta(minutes=20))
    batches = list(collector.batches(window))
    assert [len(b.records) for b in batches] == [4, 4, 2]
    assert [bool(b.checkpoints) for b in batches] == [False, False, True]

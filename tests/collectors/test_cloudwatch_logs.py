"""CloudWatch Logs source against moto server over HTTP.

moto ignores JSON filter patterns and returns every event: exactly what shows that the
client-side re-check drops what the pattern would have kept out.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
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
    assert cov.delivered == 6  # every event FilterLogEvents returned, before the client-side re-check
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


# --------------------------------------------------------------------------- slices fetched concurrently

HOUR = timedelta(hours=1)


def hours_window(hours: int) -> CycleWindow:
    return CycleWindow(NOW, NOW, None, timedelta(hours=hours), timedelta(minutes=20))


def put_hourly(logs, group: str, hours: int, per_hour: int) -> set[str]:
    """`per_hour` events in each hour slice of the last `hours`, with IDs GROUP-HOUR-N. None sits on a
    slice boundary: FilterLogEvents' endTime is inclusive, so both slices would read it."""
    start = NOW - hours * HOUR
    events = [(start + h * HOUR + timedelta(minutes=5 + 7 * i, seconds=30), f"{group}-{h}-{i}")
              for h in range(hours) for i in range(per_hour)]
    put(logs, group, "s", [(t, json.dumps(record(eid, time=ts(t)))) for t, eid in events])
    return {eid for _, eid in events}


Hook = Callable[[str, datetime, bool], None]


class Requests:
    """One client's FilterLogEvents calls as they start and finish, seen through botocore's event hooks.

    `on_start(group, slice start, first page?)` runs in the calling thread before the request goes
    out, so a test can hold a slice back until something else has happened; `on_end(group, slice
    start, last page?)` runs once the response is in.
    """

    def __init__(self, client, on_start: Hook | None = None, on_end: Hook | None = None) -> None:  # noqa: ANN001
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0
        self.log: list[tuple[str, str, datetime]] = []  # ("start" | "done" | "consumed", group, slice start)
        self.on_start, self.on_end = on_start, on_end
        client.meta.events.register("before-parameter-build.logs.FilterLogEvents", self._start)
        client.meta.events.register("after-call.logs.FilterLogEvents", self._end)

    def note(self, kind: str, group: str = "", start: datetime = NOW) -> None:
        with self.lock:
            self.log.append((kind, group, start))

    def _start(self, params, context, **_) -> None:  # noqa: ANN001
        group, start = context["slice"] = (params["logGroupName"],
                                           datetime.fromtimestamp(params["startTime"] / 1000, UTC))
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if "nextToken" not in params:
            self.note("start", group, start)
        if self.on_start is not None:
            self.on_start(group, start, "nextToken" not in params)

    def _end(self, parsed, context, **_) -> None:  # noqa: ANN001
        with self.lock:
            self.in_flight -= 1
        group, start = context["slice"]
        if not parsed.get("nextToken"):
            self.note("done", group, start)
        if self.on_end is not None:
            self.on_end(group, start, not parsed.get("nextToken"))


def hooked_collector(cfg, state, *, page_size: int | None = None, **hooks: Hook):  # noqa: ANN001, ANN201
    """The configured collector on a fake-clock bucket, its client's requests seen by a `Requests`."""
    collector = make_collector(cfg.sources[0], cfg, state)
    clock = FakeClock()
    collector.bucket = TokenBucket(5, clock=clock, sleep=clock.sleep)
    collector.page_size = page_size
    client = aws.client("logs", cfg.aws)
    requests = Requests(client, **hooks)
    collector.client = lambda: client
    return collector, requests


def ids_of(batch) -> list[str]:  # noqa: ANN001
    return [r.record["eventID"] for r in batch.records]


def test_concurrent_slices_read_exactly_what_one_at_a_time_reads(tmp_path, logs, aws_config, state) -> None:
    groups = ["g1", "g2", "g3"]
    expected = put_hourly(logs, "g1", 5, 4) | put_hourly(logs, "g2", 5, 1) | put_hourly(logs, "g3", 5, 7)
    sid = "cloudwatch_logs:g1,g2,g3"

    def run(workers: int, *, store: bool) -> tuple[list[str], Requests]:
        cfg = cw_config(tmp_path, aws_config, groups, slice_minutes=60, max_workers=workers)
        collector, requests = hooked_collector(cfg, state, page_size=3)
        ids = []
        for batch in collector.batches(hours_window(5)):
            ids += ids_of(batch)
            if store:
                store_batch(state, sid, batch)
        return ids, requests

    one_at_a_time, _ = run(1, store=False)  # stores nothing: both runs start from no checkpoint
    concurrent, requests = run(4, store=True)
    assert len(concurrent) == len(set(concurrent)) == len(expected) == 60  # no loss, no duplicate
    assert set(concurrent) == expected
    assert sorted(one_at_a_time) == sorted(concurrent)
    assert 1 < requests.max_in_flight <= 4
    assert [state.get_checkpoint(sid, g) for g in groups] == [ts(NOW)] * 3


def test_slices_of_all_groups_are_in_flight_together_up_to_max_workers(tmp_path, logs, aws_config, state) -> None:
    put_hourly(logs, "g1", 3, 2)
    put_hourly(logs, "g2", 3, 2)
    workers = 4  # more than g1's three slices: the first wave must take one of g2's
    all_in, gave_up = threading.Event(), threading.Event()

    def hold_first_wave(group: str, start: datetime, first_page: bool) -> None:
        # each request waits until `workers` are in flight; read one slice at a time, that never
        # happens and the assertions below fail (after one timeout) instead of hanging
        with requests.lock:
            if requests.in_flight >= workers:
                all_in.set()
        if not gave_up.is_set() and not all_in.wait(timeout=10):
            gave_up.set()

    cfg = cw_config(tmp_path, aws_config, ["g1", "g2"], slice_minutes=60, max_workers=workers)
    collector, requests = hooked_collector(cfg, state, on_start=hold_first_wave)
    ids = []
    for batch in collector.batches(hours_window(3)):
        ids += ids_of(batch)
        if batch.checkpoints:
            requests.note("consumed")
    assert all_in.is_set()
    assert requests.max_in_flight == workers
    assert len(ids) == len(set(ids)) == 12
    log = requests.log
    first_wave = log[:log.index(("consumed", "", NOW))]
    assert {(kind, g) for kind, g, _ in first_wave if kind == "start"} >= {("start", "g1"), ("start", "g2")}
    # a slice starts only while fewer than `workers` are started and not yet handed on: memory stays bounded
    ahead = 0
    for kind, _, _ in log:
        ahead += {"start": 1, "consumed": -1}.get(kind, 0)
        assert ahead <= workers
    assert log.count(("consumed", "", NOW)) == 6


def test_a_later_slice_read_first_does_not_move_the_checkpoint_past_an_earlier_one(
        tmp_path, logs, aws_config, state, monkeypatch) -> None:
    monkeypatch.setattr("monitor.collectors.base.RECORDS_PER_BATCH", 2)  # the slices ahead fill up and wait
    expected = put_hourly(logs, "g", 3, 5)
    start = NOW - 3 * HOUR
    second_read = threading.Event()

    def hold_first_slice(group: str, slice_start: datetime, first_page: bool) -> None:
        if slice_start == start:
            second_read.wait(timeout=10)

    def note_second(group: str, slice_start: datetime, last_page: bool) -> None:
        if slice_start == start + HOUR and last_page:
            second_read.set()

    cfg = cw_config(tmp_path, aws_config, ["g"], slice_minutes=60, max_workers=3)
    collector, requests = hooked_collector(cfg, state, page_size=10, on_start=hold_first_slice,
                                           on_end=note_second)
    sid = "cloudwatch_logs:g"
    batches = collector.batches(hours_window(3))
    for batch in batches:
        store_batch(state, sid, batch)
        if batch.checkpoints:
            assert batch.checkpoints == {"g": ts(start + HOUR)}  # the first slice's end, not the second's
            break  # the process dies here, the second slice read but not stored
    batches.close()
    done = [s for kind, _, s in requests.log if kind == "done"]
    assert second_read.is_set() and done.index(start + HOUR) < done.index(start)
    assert state.get_checkpoint(sid, "g") == ts(start + HOUR)
    assert not [t for t in threading.enumerate() if t.name.startswith("cwlogs")]  # no reader left waiting
    # the next cycle resumes at the first slice's end (less the overlap): nothing is skipped
    resumed = make_collector(cfg.sources[0], cfg, state)
    resumed.bucket = collector.bucket
    read = []
    for batch in resumed.batches(hours_window(3)):
        store_batch(state, sid, batch)
        read += ids_of(batch)
    assert not [i for i in read if i.startswith("g-0-")] and len([i for i in read if i.startswith("g-2-")]) == 5
    assert set(state.load_events()["event_id"]) == expected
    assert state.get_checkpoint(sid, "g") == ts(NOW)


def test_a_group_failing_mid_window_keeps_its_checkpoint_and_the_others_go_on(
        tmp_path, logs, aws_config, state) -> None:
    a = put_hourly(logs, "trail-a", 3, 2)
    b = put_hourly(logs, "trail-b", 3, 2)
    start = NOW - 3 * HOUR
    first_read = threading.Event()

    def delete_before_second_slice(group: str, slice_start: datetime, first_page: bool) -> None:
        if (group, slice_start) == ("trail-a", start + HOUR):
            first_read.wait(timeout=10)
            logs.delete_log_group(logGroupName="trail-a")  # this request and later ones fail on the server

    def note_first(group: str, slice_start: datetime, last_page: bool) -> None:
        if (group, slice_start) == ("trail-a", start):
            first_read.set()

    cfg = cw_config(tmp_path, aws_config, ["trail-a", "trail-b"], slice_minutes=60, max_workers=2)
    collector, _ = hooked_collector(cfg, state, on_start=delete_before_second_slice, on_end=note_first)
    sid = "cloudwatch_logs:trail-a,trail-b"
    for batch in collector.batches(hours_window(3)):
        store_batch(state, sid, batch)
    span_a, span_b = collector.spans
    assert span_a.status == "failed" and "ResourceNotFoundException" in span_a.message
    assert span_a.message.count("trail-a:") == 1 and span_b.status == "ok"  # one failure, reported once
    assert state.get_checkpoint(sid, "trail-a") == ts(start + HOUR)
    assert state.get_checkpoint(sid, "trail-b") == ts(NOW)
    assert set(state.load_events()["event_id"]) == {i for i in a if i.startswith("trail-a-0-")} | b

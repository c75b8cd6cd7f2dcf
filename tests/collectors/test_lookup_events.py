"""LookupEvents source with the botocore Stubber (moto does not implement LookupEvents)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import ANY, Stubber

from monitor.collectors.lookup_events import EVENT_NAMES, LookupEventsCollector
from monitor.collectors.ratelimit import TokenBucket
from monitor.pipeline import run_cycle
from tests.assume_root import ROOT_ARN, assume_root_record
from tests.collectors.conftest import make_config, record
from tests.collectors.test_ratelimit import FakeClock

NOW = datetime(2024, 3, 5, 12, 0, tzinfo=UTC)


def page(records: list[dict | str], token: str | None = None) -> dict:
    events = [{"EventId": (r.get("eventID") or "no-id") if isinstance(r, dict) else "x",
               "EventName": (r["eventName"] if isinstance(r, dict) else "AssumeRole"),
               "CloudTrailEvent": r if isinstance(r, str) else json.dumps(r)} for r in records]
    out: dict = {"Events": events}
    if token:
        out["NextToken"] = token
    return out


def params(name: str, token: str | None = None) -> dict:
    p = {"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": name}],
         "StartTime": ANY, "EndTime": ANY}
    if token:
        p["NextToken"] = token
    return p


@pytest.fixture
def stubbed(monkeypatch):
    """region -> (client, Stubber); the collector gets these clients instead of real ones."""
    made: dict[str, tuple] = {}

    def client_for(region: str):
        if region not in made:
            c = boto3.client("cloudtrail", region_name=region, aws_access_key_id="x", aws_secret_access_key="x")
            made[region] = (c, Stubber(c))
        return made[region]

    monkeypatch.setattr(LookupEventsCollector, "client", lambda self, region: client_for(region)[0])
    clock = FakeClock()
    monkeypatch.setattr(LookupEventsCollector, "buckets", {
        r: TokenBucket(2, clock=clock, sleep=clock.sleep) for r in ("us-east-1", "eu-west-1")})
    return client_for, clock


def test_every_page_of_every_event_name_and_region(tmp_path, stubbed, state) -> None:
    client_for, clock = stubbed
    t = "2024-03-05T11:00:00Z"
    expected = set()
    for region in ("us-east-1", "eu-west-1"):
        _, stub = client_for(region)
        for name in EVENT_NAMES:
            p1 = [record(f"{region}-{name}-{i}", name=name, time=t) for i in range(50)]
            p2 = [record(f"{region}-{name}-p2", name=name, time=t)]
            stub.add_response("lookup_events", page(p1, "tok-1"), params(name))
            stub.add_response("lookup_events", page(p2, "tok-2"), params(name, "tok-1"))
            stub.add_response("lookup_events", page([]), params(name, "tok-2"))
            expected |= {r["eventID"] for r in p1 + p2}
        stub.activate()
    cfg = make_config(tmp_path, [{"type": "lookup_events", "regions": ["us-east-1", "eu-west-1"]}])
    res = run_cycle(cfg, state, now=NOW)
    for region in ("us-east-1", "eu-west-1"):
        client_for(region)[1].assert_no_pending_responses()  # every NextToken was followed
    assert set(state.load_events()["event_id"]) == expected
    per_region = len(EVENT_NAMES) * 51  # the AssumeRole family: one query per event name
    assert res.events_new == len(expected) == 2 * per_region
    assert [(c.region, c.status, c.records, c.delivered) for c in res.coverage] == [
        ("us-east-1", "ok", per_region, per_region), ("eu-west-1", "ok", per_region, per_region)]
    assert state.get_checkpoint("lookup_events", "us-east-1") == "2024-03-05T12:00:00Z"
    # 9 requests per region, two regions sharing one fake clock at 2/s each: paced, never waited for real
    assert len(clock.sleeps) > 0 and max(clock.sleeps) <= 0.5 + 1e-9


def test_window_and_overlap_are_sent_to_the_api(tmp_path, stubbed, state) -> None:
    client_for, _ = stubbed
    _, stub = client_for("us-east-1")
    state.set_checkpoint("lookup_events", "2024-03-05T11:00:00Z", "us-east-1")
    for name in EVENT_NAMES:
        stub.add_response("lookup_events", page([]), {
            "LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": name}],
            "StartTime": datetime(2024, 3, 5, 10, 40, tzinfo=UTC), "EndTime": NOW})
    stub.activate()
    res = run_cycle(make_config(tmp_path, [{"type": "lookup_events"}]), state, now=NOW)
    stub.assert_no_pending_responses()
    assert res.errors == []


def test_bad_records_skipped_and_a_throttled_region_keeps_its_window(tmp_path, stubbed, state) -> None:
    client_for, _ = stubbed
    _, stub = client_for("us-east-1")
    t = "2024-03-05T11:00:00Z"
    stub.add_response("lookup_events", page([record("a1", time=t), "{not json AssumeRole",
                                             record("noid", time=t, eventID=None),
                                             record("other", name="GetObject", time=t)]), params(EVENT_NAMES[0]))
    stub.add_client_error("lookup_events", service_error_code="ThrottlingException", service_message="Rate exceeded",
                          http_status_code=400, expected_params=params(EVENT_NAMES[1]))
    stub.activate()
    res = run_cycle(make_config(tmp_path, [{"type": "lookup_events"}]), state, now=NOW)
    assert list(state.load_events()["event_id"]) == ["a1"]
    assert res.skipped == 2
    [cov] = res.coverage
    assert cov.status == "failed" and "ThrottlingException" in cov.message
    assert state.get_checkpoint("lookup_events", "us-east-1") is None  # the next cycle reads the window again
    assert res.errors and "us-east-1" in res.errors[0]


def test_client_is_made_per_region_with_adaptive_retries(tmp_path, state) -> None:
    cfg = make_config(tmp_path, [{"type": "lookup_events", "regions": ["eu-west-1"]}])
    c = LookupEventsCollector(cfg.sources[0], "lookup_events", cfg, state).client("eu-west-1")
    assert c.meta.region_name == "eu-west-1"
    assert c.meta.config.retries["mode"] == "adaptive"


def test_assume_root_has_its_own_query(tmp_path, stubbed, state) -> None:
    client_for, _ = stubbed
    assert EVENT_NAMES[-1] == "AssumeRoot"  # after the three AssumeRole names, whose queries keep their order
    _, stub = client_for("us-east-1")
    for name in EVENT_NAMES:
        found = [assume_root_record("root1", time="2024-03-05T11:00:00Z")] if name == "AssumeRoot" else []
        stub.add_response("lookup_events", page(found), params(name))
    stub.activate()
    res = run_cycle(make_config(tmp_path, [{"type": "lookup_events", "regions": ["us-east-1"]}]), state,
                    now=datetime(2024, 3, 5, 12, 0, tzinfo=UTC))
    stub.assert_no_pending_responses()
    events = state.load_events()
    assert res.errors == [] and list(events["event_id"]) == ["root1"]
    assert events["role_arn"][0] == ROOT_ARN

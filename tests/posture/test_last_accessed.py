"""Service last accessed (moto lacks it): botocore Stubber, fake clock, real SQLite cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber

from monitor.collectors.last_accessed import CACHE_NAMESPACE, LastAccessedCollector

NOW = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)
T = datetime(2026, 5, 31, 9, 0, tzinfo=UTC)
R1, R2, R3 = (f"arn:aws:iam::111111111111:role/r{i}" for i in (1, 2, 3))
J1, J2, J3, J4 = (f"2b5b7c7e-0000-4000-8000-00000000000{i}" for i in (1, 2, 3, 4))  # JobId is a UUID (min 36)


class FakeTime:
    def __init__(self) -> None:
        self.t = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


@pytest.fixture
def iam():  # noqa: ANN201
    client = boto3.client("iam", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def job(status: str, services: list[dict] | None = None, **extra: object) -> dict:
    return {"JobStatus": status, "JobType": "SERVICE_LEVEL", "JobCreationDate": NOW, "JobCompletionDate": NOW,
            "ServicesLastAccessed": services or [], **extra}


def service(ns: str, last: datetime | None = None, **extra: object) -> dict:
    s = {"ServiceName": ns.upper(), "ServiceNamespace": ns, "TotalAuthenticatedEntities": 1 if last else 0, **extra}
    if last:
        s["LastAuthenticated"] = last
        s["LastAuthenticatedEntity"] = R1
        s["LastAuthenticatedRegion"] = "us-east-1"
    return s


def gen(stub: Stubber, arn: str, job_id: str, granularity: str = "SERVICE_LEVEL") -> None:
    stub.add_response("generate_service_last_accessed_details", {"JobId": job_id},
                      {"Arn": arn, "Granularity": granularity})


def collector(client, time: FakeTime, **kw: object) -> LastAccessedCollector:  # noqa: ANN001
    defaults: dict = {"now": NOW, "sleep": time.sleep, "clock": time.clock, "base_delay": 1.0, "max_delay": 4.0}
    return LastAccessedCollector(client, **{**defaults, **kw})


def test_jobs_in_flight_polled_with_capped_backoff_paginated_and_failed(iam) -> None:  # noqa: ANN001
    client, stub = iam
    time = FakeTime()
    gen(stub, R1, J1)
    gen(stub, R2, J2)
    stub.add_response("get_service_last_accessed_details", job("IN_PROGRESS"), {"JobId": J1})
    stub.add_response("get_service_last_accessed_details",
                      job("COMPLETED", [service("s3", T), service("ec2")], IsTruncated=True, Marker="m1"),
                      {"JobId": J2})
    stub.add_response("get_service_last_accessed_details", job("COMPLETED", [service("sqs", T)], IsTruncated=False),
                      {"JobId": J2, "Marker": "m1"})
    stub.add_response("get_service_last_accessed_details", job("IN_PROGRESS"), {"JobId": J1})
    stub.add_response("get_service_last_accessed_details",
                      job("FAILED", Error={"Code": "InternalError", "Message": "report failed"}), {"JobId": J1})
    c = collector(client, time, max_in_flight=2)
    out = c.collect([R1, R2])
    assert time.slept == [1.0, 2.0, 4.0]  # first poll after 1s, then 2s, then capped at 4s
    assert out[R2].status == "COMPLETED" and out[R2].services == {"s3": T, "ec2": None, "sqs": T}
    assert out[R1].status == "FAILED" and "report failed" in out[R1].error
    assert c.api_calls == 7


def test_max_in_flight_bounds_jobs_and_throttled_generate_backs_off(iam) -> None:  # noqa: ANN001
    client, stub = iam
    time = FakeTime()
    stub.add_client_error("generate_service_last_accessed_details", "Throttling", "Rate exceeded", 400,
                          expected_params={"Arn": R1, "Granularity": "SERVICE_LEVEL"})
    gen(stub, R1, J1)
    # only one job at a time: r2 is generated after j1 finished
    stub.add_client_error("get_service_last_accessed_details", "Throttling", "Rate exceeded", 400,
                          expected_params={"JobId": J1})
    stub.add_response("get_service_last_accessed_details", job("COMPLETED", [service("s3", T)]), {"JobId": J1})
    gen(stub, R2, J2)
    stub.add_response("get_service_last_accessed_details", job("COMPLETED", [service("iam")]), {"JobId": J2})
    out = collector(client, time, max_in_flight=1).collect([R1, R2])
    assert time.slept == [1.0, 1.0, 2.0, 1.0]  # generate backoff, first poll, throttled poll backoff, j2 poll
    assert out[R1].services == {"s3": T} and out[R2].services == {"iam": None}


def test_gives_up_after_max_polls(iam) -> None:  # noqa: ANN001
    client, stub = iam
    gen(stub, R1, J1)
    for _ in range(3):
        stub.add_response("get_service_last_accessed_details", job("IN_PROGRESS"), {"JobId": J1})
    out = collector(client, FakeTime(), max_polls=3).collect([R1])
    assert out[R1].status == "TIMEOUT" and J1 in out[R1].error


def test_results_cached_in_state_for_cache_hours(iam, state) -> None:  # noqa: ANN001
    client, stub = iam
    gen(stub, R1, J1)
    gen(stub, R2, J2)
    stub.add_response("get_service_last_accessed_details", job("COMPLETED", [service("s3", T)]), {"JobId": J1})
    stub.add_response("get_service_last_accessed_details", job("FAILED", Error={"Code": "X", "Message": "no"}),
                      {"JobId": J2})
    collector(client, FakeTime(), cache=state).collect([R1, R2])
    assert state.get_json(CACHE_NAMESPACE, R1)["services"] == {"s3": "2026-05-31T09:00:00Z"}
    assert state.get_json(CACHE_NAMESPACE, R2) is None  # a failed report is not cached

    # 23 hours later: R1 comes from the cache, R2 is asked again
    gen(stub, R2, J3)
    stub.add_response("get_service_last_accessed_details", job("COMPLETED", []), {"JobId": J3})
    later = collector(client, FakeTime(), cache=state, now=NOW + timedelta(hours=23))
    out = later.collect([R1, R2])
    assert out[R1].from_cache and out[R1].services == {"s3": T} and later.api_calls == 2

    # 24 hours after the report: regenerated
    gen(stub, R1, J4)
    stub.add_response("get_service_last_accessed_details", job("COMPLETED", [service("s3", NOW)]), {"JobId": J4})
    out = collector(client, FakeTime(), cache=state, now=NOW + timedelta(hours=24)).collect([R1])
    assert not out[R1].from_cache and out[R1].services == {"s3": NOW}


def test_action_level_tracked_actions(iam, state) -> None:  # noqa: ANN001
    client, stub = iam
    gen(stub, R1, J1, "ACTION_LEVEL")
    stub.add_response("get_service_last_accessed_details", job("COMPLETED", [service("s3", T, TrackedActionsLastAccessed=[
        {"ActionName": "GetObject", "LastAccessedTime": T, "LastAccessedRegion": "us-east-1",
         "LastAccessedEntity": R1},
        {"ActionName": "PutObject"}])], JobType="ACTION_LEVEL"), {"JobId": J1})
    out = collector(client, FakeTime(), granularity="ACTION_LEVEL", cache=state).collect([R1])
    assert out[R1].actions == {"s3:GetObject": T, "s3:PutObject": None}
    # a SERVICE_LEVEL run does not reuse an ACTION_LEVEL report blindly: granularity is part of the cache
    gen(stub, R1, J2)
    stub.add_response("get_service_last_accessed_details", job("COMPLETED", []), {"JobId": J2})
    assert not collector(client, FakeTime(), cache=state).collect([R1])[R1].from_cache


def test_generate_error_other_than_throttling_marks_role(iam) -> None:  # noqa: ANN001
    client, stub = iam
    stub.add_client_error("generate_service_last_accessed_details", "NoSuchEntity", "gone", 404,
                          expected_params={"Arn": R3, "Granularity": "SERVICE_LEVEL"})
    out = collector(client, FakeTime()).collect([R3])
    assert out[R3].status == "ERROR" and "NoSuchEntity" in out[R3].error

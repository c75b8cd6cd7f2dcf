"""Event-based findings carry the AWS region of their first event (notifiers link to that console region)."""

from __future__ import annotations

from datetime import UTC, datetime

from monitor.config import Config
from monitor.detect.context import DetectionContext
from monitor.detect.engine import run_detectors
from monitor.events.normalise import normalise
from monitor.events.schema import frame_from_rows


def test_failed_attempt_finding_names_the_region_of_its_events() -> None:
    def denied(i: int) -> dict:
        return {
            "eventVersion": "1.08", "eventID": f"e{i}", "eventName": "AssumeRole", "eventSource": "sts.amazonaws.com",
            "eventTime": f"2026-03-02T10:0{i}:00Z", "awsRegion": "eu-west-3", "recipientAccountId": "111122223333",
            "sourceIPAddress": "198.51.100.7", "errorCode": "AccessDenied",
            "errorMessage": "User: arn:aws:iam::444455556666:user/mallory is not authorized to perform: "
                            "sts:AssumeRole on resource: arn:aws:iam::111122223333:role/Payments",
            "userIdentity": {"type": "AWSAccount", "principalId": "AIDAEXAMPLE", "accountId": "444455556666"},
        }

    events = frame_from_rows([normalise(denied(i)) for i in range(3)])
    ctx = DetectionContext(now=datetime(2026, 3, 3, tzinfo=UTC))
    found = [f for f in run_detectors(events, ctx, Config()).findings if f.detector == "failed_assume_role"]
    assert found and all(f.details["region"] == "eu-west-3" for f in found)

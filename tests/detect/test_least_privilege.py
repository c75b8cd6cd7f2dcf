from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.config import Config, UnusedRoleConfig, parse_config
from monitor.detect.context import DetectionContext
from monitor.detect.engine import run_detectors
from monitor.detect.least_privilege import least_privilege_findings
from monitor.events.schema import empty_frame
from monitor.posture.model import AnalyzerFinding, Posture, RoleInfo
from monitor.posture.usage import analyzer_last_accessed, analyzer_unused_role, last_activity, service_usage

NOW = datetime(2026, 6, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def role_with(services: dict[str, datetime | None] | None, name: str = "Reader", path: str = "/") -> RoleInfo:
    return RoleInfo(arn=f"arn:aws:iam::111111111111:role{path}{name}", name=name, account_id="111111111111",
                    path=path, services_last_accessed=services,
                    attached_policies=["arn:aws:iam::aws:policy/ReadOnlyAccess"])


def findings(role: RoleInfo, cfg: UnusedRoleConfig | None = None):  # noqa: ANN201
    return least_privilege_findings(Posture(roles={role.arn: role}, accounts=["111111111111"]),
                                    cfg or UnusedRoleConfig(), NOW)


def test_read_only_role_using_only_s3() -> None:
    services = {"s3": NOW - 3 * DAY, "ec2": None, "dynamodb": NOW - 200 * DAY, "lambda": None}
    [f] = findings(role_with(services))
    assert f.detector == "least_privilege" and f.severity == "low"
    assert f.details["unused_services"] == ["dynamodb", "ec2", "lambda"]
    assert list(f.details["used_services"]) == ["s3"]
    assert f.details["unused_ratio"] == 0.75


@pytest.mark.parametrize(("services", "ratio", "flagged"), [
    pytest.param({"s3": NOW - DAY, "ec2": None}, 0.5, True, id="exactly at the ratio"),
    pytest.param({"s3": NOW - DAY, "ec2": NOW - DAY, "sqs": None}, 0.5, False, id="one third unused, below ratio"),
    pytest.param({"s3": None, "ec2": None}, 0.5, False, id="never used anything: unused_role's case"),
    pytest.param({"s3": NOW - DAY}, 0.0, False, id="one granted service"),
    pytest.param({"s3": NOW - 90 * DAY, "ec2": None}, 0.5, True, id="used exactly 90 days ago still counts as used"),
    pytest.param({"s3": NOW - 91 * DAY, "ec2": None, "sqs": NOW - DAY}, 0.6, True, id="used outside window is unused"),
    pytest.param(None, 0.5, False, id="no last-accessed data collected"),
])
def test_boundaries(services: dict | None, ratio: float, flagged: bool) -> None:
    assert bool(findings(role_with(services), UnusedRoleConfig(unused_services_ratio=ratio))) is flagged


def test_service_linked_and_disabled_are_skipped() -> None:
    services = {"s3": NOW - DAY, "ec2": None, "sqs": None}
    assert findings(role_with(services, path="/aws-service-role/x.amazonaws.com/")) == []
    assert findings(role_with(services), UnusedRoleConfig(enabled=False)) == []


def test_usage_helpers_for_unused_role() -> None:
    r = role_with({"s3": NOW - 5 * DAY, "ec2": None})
    r.last_used = NOW - 10 * DAY
    assert last_activity(r) == NOW - 5 * DAY
    assert last_activity(role_with(None)) is None
    usage = service_usage(r, NOW, 90)
    assert usage is not None and usage.unused == ["ec2"]
    af = AnalyzerFinding(id="f1", account_id="111111111111", region="us-east-1",
                         resource_arn="arn:aws:iam::111111111111:role/Reader", finding_type="UnusedIAMRole",
                         status="ACTIVE", details={"unusedIamRoleDetails": {"lastAccessed": "2026-01-01T00:00:00Z"}})
    archived = AnalyzerFinding(**{**af.__dict__, "id": "f2", "status": "ARCHIVED",
                                  "resource_arn": "arn:aws:iam::111111111111:role/Other"})
    posture = Posture(roles={r.arn: r}, analyzer_findings=[af, archived], accounts=["111111111111"])
    assert analyzer_unused_role(posture, r.arn) is af
    assert analyzer_unused_role(posture, "arn:aws:iam::111111111111:role/Other") is None
    assert analyzer_last_accessed(af) == datetime(2026, 1, 1, tzinfo=UTC)


def test_engine_runs_posture_detectors_and_notices_without_inventory() -> None:
    r = role_with({"s3": NOW - DAY, "ec2": None})
    r.trust_policy = {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}]}
    ctx = DetectionContext(now=NOW, posture=Posture(roles={r.arn: r}, accounts=["111111111111"]))
    result = run_detectors(empty_frame(), ctx, Config())
    assert {f.detector for f in result.findings} >= {"trust_policy", "least_privilege"}
    empty = run_detectors(empty_frame(), DetectionContext(now=NOW), Config())
    assert not [f for f in empty.findings if f.detector in ("trust_policy", "least_privilege")]
    assert any("no IAM inventory" in n for n in empty.notices)


@pytest.mark.parametrize(("detectors", "expected"), [
    ({}, ["trust_policy and least_privilege skipped: no IAM inventory (collect posture or give --iam-snapshot)"]),
    ({"trust_policy": {"enabled": False}},
     ["least_privilege skipped: no IAM inventory (collect posture or give --iam-snapshot)"]),
    # least_privilege is switched with unused_role: off, it is not "skipped"
    ({"unused_role": {"enabled": False}},
     ["trust_policy skipped: no IAM inventory (collect posture or give --iam-snapshot)"]),
    ({"trust_policy": {"enabled": False}, "unused_role": {"enabled": False}}, []),
])
def test_each_skipped_posture_detector_is_named_without_inventory(detectors: dict, expected: list[str]) -> None:
    result = run_detectors(empty_frame(), DetectionContext(now=NOW), parse_config({"detectors": detectors}))
    assert [n for n in result.notices if "trust_policy" in n or "least_privilege" in n] == expected

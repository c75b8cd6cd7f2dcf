"""Access Analyzer (moto lacks it): botocore Stubber with responses shaped as the API model says."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from monitor.collectors.access_analyzer import ROLE_FILTER, analyzer_findings

T = datetime(2026, 5, 20, 8, 0, tzinfo=UTC)
ACCOUNT = "111111111111"
EXT_ARN = f"arn:aws:access-analyzer:us-east-1:{ACCOUNT}:analyzer/external"
UNUSED_ARN = f"arn:aws:access-analyzer:us-east-1:{ACCOUNT}:analyzer/unused"


def analyzer(arn: str, type_: str, status: str = "ACTIVE") -> dict:
    return {"arn": arn, "name": arn.rsplit("/", 1)[-1], "type": type_, "createdAt": T, "status": status}


def summary(id_: str, finding_type: str, status: str, role: str) -> dict:
    return {"id": id_, "resource": f"arn:aws:iam::{ACCOUNT}:role/{role}", "resourceType": "AWS::IAM::Role",
            "resourceOwnerAccount": ACCOUNT, "status": status, "findingType": finding_type,
            "analyzedAt": T, "createdAt": T, "updatedAt": T}


@pytest.fixture
def aa():  # noqa: ANN201
    client = boto3.client("accessanalyzer", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def no_sleep(_: float) -> None:
    pass


def test_paginated_findings_of_both_analyzers_with_status_kept(aa) -> None:  # noqa: ANN001
    client, stub = aa
    stub.add_response("list_analyzers", {"analyzers": [analyzer(EXT_ARN, "ACCOUNT")], "nextToken": "page2"}, {})
    stub.add_response("list_analyzers", {"analyzers": [analyzer(UNUSED_ARN, "ACCOUNT_UNUSED_ACCESS")]},
                      {"nextToken": "page2"})
    stub.add_response("list_findings_v2", {"findings": [summary("e1", "ExternalAccess", "ACTIVE", "vendor")],
                                           "nextToken": "f2"}, {"analyzerArn": EXT_ARN, "filter": ROLE_FILTER})
    stub.add_response("list_findings_v2", {"findings": [summary("e2", "ExternalAccess", "ARCHIVED", "partner")]},
                      {"analyzerArn": EXT_ARN, "filter": ROLE_FILTER, "nextToken": "f2"})
    stub.add_response("list_findings_v2", {"findings": [summary("u1", "UnusedIAMRole", "ACTIVE", "old"),
                                                        summary("u2", "UnusedPermission", "RESOLVED", "app")]},
                      {"analyzerArn": UNUSED_ARN, "filter": ROLE_FILTER})
    stub.add_response("get_finding_v2", {
        **{k: v for k, v in summary("u1", "UnusedIAMRole", "ACTIVE", "old").items()},
        "findingDetails": [{"unusedIamRoleDetails": {"lastAccessed": datetime(2025, 12, 1, tzinfo=UTC)}}],
    }, {"analyzerArn": UNUSED_ARN, "id": "u1"})
    notices: list[str] = []
    found = analyzer_findings(client, ACCOUNT, "us-east-1", notices=notices, sleep=no_sleep)
    assert notices == []
    assert [(f.id, f.finding_type, f.status) for f in found] == [
        ("e1", "ExternalAccess", "ACTIVE"), ("e2", "ExternalAccess", "ARCHIVED"),
        ("u1", "UnusedIAMRole", "ACTIVE"), ("u2", "UnusedPermission", "RESOLVED")]
    u1 = found[2]
    assert u1.details["unusedIamRoleDetails"]["lastAccessed"] == "2025-12-01T00:00:00+00:00"
    assert u1.analyzer_arn == UNUSED_ARN and u1.resource_arn.endswith("role/old") and u1.updated_at == T


def test_missing_unused_analyzer_is_one_notice_with_the_command(aa) -> None:  # noqa: ANN001
    client, stub = aa
    stub.add_response("list_analyzers", {"analyzers": [analyzer(EXT_ARN, "ACCOUNT"),
                                                       analyzer(UNUSED_ARN, "ACCOUNT_UNUSED_ACCESS", "DISABLED")]}, {})
    stub.add_response("list_findings_v2", {"findings": []}, {"analyzerArn": EXT_ARN, "filter": ROLE_FILTER})
    notices: list[str] = []
    assert analyzer_findings(client, ACCOUNT, "eu-west-1", notices=notices, sleep=no_sleep) == []
    [notice] = notices
    assert ACCOUNT in notice and "eu-west-1" in notice and "unused-access" in notice
    assert "aws accessanalyzer create-analyzer" in notice and "--type ACCOUNT_UNUSED_ACCESS" in notice


def test_no_analyzer_at_all_and_access_denied(aa) -> None:  # noqa: ANN001
    client, stub = aa
    stub.add_response("list_analyzers", {"analyzers": []}, {})
    stub.add_client_error("list_analyzers", "AccessDeniedException", "not authorized", 403)
    notices: list[str] = []
    assert analyzer_findings(client, ACCOUNT, "us-east-1", notices=notices, sleep=no_sleep) == []
    assert "external-access and unused-access" in notices[0] and notices[0].count("create-analyzer") == 2
    assert analyzer_findings(client, ACCOUNT, "us-east-1", notices=notices, sleep=no_sleep) == []
    assert "AccessDeniedException" in notices[1]


def test_throttled_page_is_retried_with_backoff(aa) -> None:  # noqa: ANN001
    client, stub = aa
    slept: list[float] = []
    stub.add_response("list_analyzers", {"analyzers": [analyzer(EXT_ARN, "ACCOUNT"),
                                                       analyzer(UNUSED_ARN, "ACCOUNT_UNUSED_ACCESS")]}, {})
    stub.add_response("list_findings_v2", {"findings": [summary("e1", "ExternalAccess", "ACTIVE", "a")],
                                           "nextToken": "n"}, {"analyzerArn": EXT_ARN, "filter": ROLE_FILTER})
    for _ in range(2):
        stub.add_client_error("list_findings_v2", "ThrottlingException", "Rate exceeded", 429,
                              expected_params={"analyzerArn": EXT_ARN, "filter": ROLE_FILTER, "nextToken": "n"})
    stub.add_response("list_findings_v2", {"findings": [summary("e2", "ExternalAccess", "ACTIVE", "b")]},
                      {"analyzerArn": EXT_ARN, "filter": ROLE_FILTER, "nextToken": "n"})
    stub.add_response("list_findings_v2", {"findings": []}, {"analyzerArn": UNUSED_ARN, "filter": ROLE_FILTER})
    found = analyzer_findings(client, ACCOUNT, "us-east-1", notices=[], sleep=slept.append)
    assert [f.id for f in found] == ["e1", "e2"] and slept == [1.0, 2.0]


def test_failing_analyzer_is_a_notice_and_the_other_still_counts(aa) -> None:  # noqa: ANN001
    client, stub = aa
    stub.add_response("list_analyzers", {"analyzers": [analyzer(EXT_ARN, "ACCOUNT"),
                                                       analyzer(UNUSED_ARN, "ACCOUNT_UNUSED_ACCESS")]}, {})
    stub.add_client_error("list_findings_v2", "InternalServerException", "oops", 500)
    stub.add_response("list_findings_v2", {"findings": [summary("u2", "UnusedPermission", "ACTIVE", "app")]},
                      {"analyzerArn": UNUSED_ARN, "filter": ROLE_FILTER})
    notices: list[str] = []
    assert [f.id for f in analyzer_findings(client, ACCOUNT, "us-east-1", notices=notices, sleep=no_sleep)] == ["u2"]
    assert "external" in notices[0] and "InternalServerException" in notices[0]

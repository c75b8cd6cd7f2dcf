"""AssumeRoot rows: the target account's root in role_arn, the issued root-session key, refusals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.events.normalise import is_assume_role_record, normalise, parse_denied_message, root_arn
from tests.assume_root import (
    CALLER_ARN,
    CALLER_ROLE,
    MANAGEMENT,
    MEMBER,
    ROOT_ARN,
    assume_root_record,
    refused_assume_root_record,
)


def test_a_successful_assume_root_names_the_target_root_as_its_role() -> None:
    rec = assume_root_record(duration=900)
    assert is_assume_role_record(rec)
    row = normalise(rec)
    assert row["event_name"] == "AssumeRoot" and row["success"] is True
    assert (row["role_arn"], row["role_account_id"]) == (ROOT_ARN, MEMBER)
    assert row["account_id"] == MANAGEMENT  # the caller's trail holds the record
    assert (row["principal_arn"], row["principal_type"], row["principal_account_id"]) == (
        CALLER_ARN, "AssumedRole", MANAGEMENT)
    assert row["principal_role_arn"] == CALLER_ROLE
    assert row["is_cross_account"] is True
    assert row["duration_seconds"] == 900
    # the key the member account's trail shows on every privileged task of the session
    assert row["access_key_id"] == "ASIAROOTSESSIONEXAMPLE"
    assert row["credentials_expiration"] == datetime(2024, 10, 25, 21, 7, 11, tzinfo=UTC)
    assert row["caller_access_key_id"] == "ASIAIOSFODNN7EXAMPLE"
    # AssumeRoot has no session name and issues no assumed-role session; the task policy has no column
    assert row["role_session_name"] is None and row["assumed_role_arn"] is None
    assert "S3UnlockBucketPolicy" not in repr(row)


def test_duration_is_null_when_the_caller_did_not_send_one() -> None:
    assert normalise(assume_root_record())["duration_seconds"] is None  # AWS's default is not guessed


@pytest.mark.parametrize(("target", "expected"), [
    (MEMBER, ROOT_ARN),
    (f"arn:aws:iam::{MEMBER}:root", ROOT_ARN),  # "the member account principal ARN or account ID"
    ("not-an-account", None),
    ("2222222222223", None),
])
def test_target_principal_as_account_id_or_arn(target: str, expected: str | None) -> None:
    assert normalise(assume_root_record(target=target))["role_arn"] == expected


def test_the_partition_is_the_callers() -> None:
    rec = assume_root_record()
    rec["userIdentity"]["arn"] = f"arn:aws-us-gov:sts::{MANAGEMENT}:assumed-role/JohnDoe/JohnRole1"
    assert normalise(rec)["role_arn"] == f"arn:aws-us-gov:iam::{MEMBER}:root"
    del rec["userIdentity"]["arn"]
    rec["awsRegion"] = "cn-north-1"
    assert normalise(rec)["role_arn"] == f"arn:aws-cn:iam::{MEMBER}:root"
    assert root_arn(MEMBER, "aws") == ROOT_ARN


def test_a_refused_assume_root_keeps_target_and_caller_from_the_message() -> None:
    rec = refused_assume_root_record()
    assert parse_denied_message(rec["errorMessage"]) == (CALLER_ARN, ROOT_ARN)
    row = normalise(rec)
    assert row["success"] is False and row["error_code"] == "AccessDenied"
    assert (row["role_arn"], row["role_account_id"]) == (ROOT_ARN, MEMBER)
    assert row["principal_arn"] == CALLER_ARN
    assert row["external_id_supplied"] is None  # request parameters unknown
    assert row["access_key_id"] is None and row["credentials_expiration"] is None


def test_a_refusal_naming_something_else_than_a_root_gives_no_role() -> None:
    rec = refused_assume_root_record()
    rec["errorMessage"] = (f"User: {CALLER_ARN} is not authorized to perform: sts:AssumeRoot on resource: "
                           f"arn:aws:iam::{MEMBER}:role/NotARoot")
    row = normalise(rec)
    assert row["role_arn"] is None and row["principal_arn"] == CALLER_ARN


def test_only_sts_assume_root_belongs_to_the_family() -> None:
    assert not is_assume_role_record({**assume_root_record(), "eventSource": "iam.amazonaws.com"})
    assert not is_assume_role_record({**assume_root_record(), "eventName": "AssumeRootX"})

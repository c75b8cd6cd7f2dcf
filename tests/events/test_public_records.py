"""Every real public CloudTrail record in ../shared/data through the normaliser, and a sample field by field."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import pytest

from monitor.events.merge import merge_shared_copies
from monitor.events.normalise import RecordError, normalise, parse_expiration
from monitor.events.schema import COLUMNS, frame_from_rows

# (dataset, 0-based line) of the records the sources published without an eventID
NO_EVENT_ID = {("aws_docs_examples", 5), ("aws_docs_examples", 6), ("panther_analysis", 1),
               ("panther_analysis", 4), ("panther_analysis", 14)}


def row(public_records, dataset: str, line: int) -> dict:
    return normalise(public_records[dataset][line])


def test_every_public_record_normalises_or_is_rejected_for_a_stated_reason(public_records) -> None:
    rows, rejected = [], set()
    for dataset, records in public_records.items():
        for line, rec in enumerate(records):
            try:
                r = normalise(rec)
            except RecordError as exc:
                assert "eventID" in str(exc)
                rejected.add((dataset, line))
                continue
            assert set(r) == set(COLUMNS)
            assert r["event_id"] == rec["eventID"]
            assert r["event_name"] == rec["eventName"]
            assert r["event_time"] is None or r["event_time"].tzinfo == UTC
            assert r["success"] == (rec.get("errorCode") is None)
            rows.append(r)
    assert rejected == NO_EVENT_ID
    assert len(rows) == sum(len(v) for v in public_records.values()) - len(NO_EVENT_ID) == 87
    df = frame_from_rows(rows)
    assert list(df.columns) == list(COLUMNS)
    assert str(df["event_time"].dtype) == "datetime64[ns, UTC]"
    # every failed AssumeRole in the real data still names the role (parsed from errorMessage)
    failed = df[~df["success"] & df["error_code"].eq("AccessDenied")]
    assert len(failed) >= 15
    assert failed["role_arn"].notna().all()


def test_failed_call_takes_role_from_error_message(public_records) -> None:
    rec = public_records["invictus_aws_dataset"][0]
    assert rec["requestParameters"] is None and rec.get("responseElements") is None
    r = row(public_records, "invictus_aws_dataset", 0)
    assert r["event_id"] == "e4bad408-6272-4892-bf47-bd41b435ce40"
    assert r["event_time"] == datetime(2023, 7, 10, 11, 54, 42, tzinfo=UTC)
    assert r["error_code"] == "AccessDenied" and r["success"] is False
    assert r["role_arn"] == "arn:aws:iam::123837392027:role/stratus-red-team-ec2-get-password-data-role"
    assert r["role_account_id"] == "123837392027"
    assert r["principal_arn"] == "arn:aws:iam::123837392027:user/bert-jan"
    assert r["principal_type"] == "IAMUser"
    assert r["source_ip"] == "192.168.10.20"
    assert r["role_session_name"] is None
    assert r["external_id_supplied"] is None  # no request parameters: unknown, not "no"
    assert r["duration_seconds"] is None and r["access_key_id"] is None and r["assumed_role_arn"] is None
    assert r["is_cross_account"] is False


def test_owner_copy_with_awsaccount_caller_is_merged_by_shared_event_id(public_records) -> None:
    caller_copy = row(public_records, "aws_docs_examples", 0)
    owner_copy = row(public_records, "aws_docs_examples", 1)
    assert owner_copy["principal_type"] == "AWSAccount"
    assert owner_copy["principal_arn"] is None
    assert owner_copy["principal_account_id"] == "777788889999"
    assert owner_copy["shared_event_id"] == caller_copy["shared_event_id"] == "bEXAMPLE-efea-4a70-b951-19a88EXAMPLE"
    merged = merge_shared_copies(frame_from_rows([owner_copy, caller_copy]))
    assert list(merged["principal_arn"]) == ["arn:aws:iam::777788889999:user/JohnDoe"] * 2
    assert list(merged["principal_type"]) == ["IAMUser"] * 2
    assert list(merged["principal_key"]) == ["arn:aws:iam::777788889999:user/JohnDoe"] * 2
    assert list(merged["is_cross_account"]) == [True, True]
    assert merged.loc[0, "role_arn"] == "arn:aws:iam::111122223333:role/EC2-dev"


def test_aws_service_caller_with_service_source_and_missing_event_time(public_records) -> None:
    rec = public_records["otrf_security_datasets"][0]
    assert "eventTime" not in rec
    r = row(public_records, "otrf_security_datasets", 0)
    assert r["event_time"] is None  # @timestamp is Logstash's, not CloudTrail's: not guessed
    assert r["principal_type"] == "AWSService"
    assert r["principal_service"] == "ec2.amazonaws.com"
    assert r["principal_key"] == "ec2.amazonaws.com"
    assert r["principal_arn"] is None
    assert r["source_ip"] is None
    assert r["via_aws_service"] == "ec2.amazonaws.com"
    assert r["source_ip_raw"] == "ec2.amazonaws.com"
    assert r["role_arn"] == "arn:aws:iam::123456789123:role/MordorNginxStack-BankingWAFRole-9S3E0UAE1MM0"
    assert r["role_session_name"] == "i-0317f6c6b66ae9c40"
    assert r["access_key_id"] == "ASIA5FLZVX4OAET5K4P5"
    assert r["credentials_expiration"] == datetime(2020, 9, 14, 6, 57, 19, tzinfo=UTC)
    assert r["shared_event_id"] == "92f07606-76c1-461f-806b-8dcb1d068136"
    assert r["is_cross_account"] is False


@pytest.mark.parametrize("line", [6, 7, 8, 9])
def test_invalid_ip_string_is_kept_raw_but_not_as_an_address(public_records, line: int) -> None:
    rec = public_records["stratus_red_team"][line]
    assert rec["sourceIPAddress"] == "255.18.064.253"
    r = normalise(rec)
    assert r["source_ip"] is None
    assert r["source_ip_raw"] == "255.18.064.253"
    assert r["via_aws_service"] is None
    assert r["aws_region"] == "apiso-westcentral-3r"  # anonymised region, kept as recorded


def test_expiration_formats(public_records) -> None:
    assert parse_expiration("Jul 5, 2021 1:18:34 PM") == datetime(2021, 7, 5, 13, 18, 34, tzinfo=UTC)
    assert parse_expiration("Jul 10, 2023, 12:31:14 PM") == datetime(2023, 7, 10, 12, 31, 14, tzinfo=UTC)
    assert parse_expiration("2023-07-10T12:31:14Z") == datetime(2023, 7, 10, 12, 31, 14, tzinfo=UTC)
    assert parse_expiration("Jan 01, 2019 0:00:00 PM") is None  # hand-edited fixture: no such hour
    r = row(public_records, "trailscraper", 0)
    assert r["credentials_expiration"] == datetime(2017, 11, 18, 1, 21, 51, tzinfo=UTC)
    assert r["principal_service"] == "config.amazonaws.com"
    assert r["assumed_role_arn"] == "arn:aws:sts::111111111111:assumed-role/someRoleOther/AutoScalingDescribeHandlerSession"


def test_role_chaining_keeps_session_and_underlying_role(public_records) -> None:
    r = row(public_records, "aws_docs_examples", 2)
    assert r["principal_type"] == "AssumedRole"
    assert r["principal_arn"] == "arn:aws:sts::111111111111:assumed-role/JohnDoe/JohnRole1"
    assert r["principal_role_arn"] == "arn:aws:iam::111111111111:role/JohnRole1"  # sessionIssuer wins
    assert r["role_arn"] == "arn:aws:iam::111111111111:role/JohnRole2"
    assert r["assumed_role_arn"] == "arn:aws:sts::111111111111:assumed-role/test-role/Role2WithTags"
    assert r["caller_access_key_id"] == "AKIAI44QH8DHBEXAMPLE"
    assert r["access_key_id"] == "ASIAWHOJDLGPOEXAMPLE"
    assert r["source_identity"] == "JohnDoe"
    assert r["mfa_authenticated"] is False
    assert r["duration_seconds"] == 3600
    assert r["is_cross_account"] is False
    assert r["credentials_expiration"] == datetime(2019, 10, 2, 23, 12, 29, tzinfo=UTC)


def test_federated_calls(public_records) -> None:
    saml = row(public_records, "aws_docs_examples", 3)
    assert saml["event_name"] == "AssumeRoleWithSAML" and saml["principal_type"] == "SAMLUser"
    assert saml["identity_provider"] == "bdGOnTesti4+ExamplexL/jEvs="
    web = row(public_records, "aws_docs_examples", 4)
    assert web["event_name"] == "AssumeRoleWithWebIdentity" and web["identity_provider"] == "accounts.google.com"


def test_panther_style_event_time(public_records) -> None:
    records = public_records["panther_analysis"]
    line = next(i for i, rec in enumerate(records)
                if rec.get("eventID") and isinstance(rec.get("eventTime"), str) and "T" not in rec["eventTime"])
    r = row(public_records, "panther_analysis", line)
    assert r["event_time"] == pd.Timestamp(records[line]["eventTime"].replace(" ", "T") + "Z").to_pydatetime()


def test_unknown_event_version_is_rejected_and_missing_version_accepted(public_records) -> None:
    rec = dict(public_records["invictus_aws_dataset"][0])
    with pytest.raises(RecordError, match="eventVersion"):
        normalise({**rec, "eventVersion": "2.0"})
    assert normalise({k: v for k, v in rec.items() if k != "eventVersion"})["event_version"] is None
    assert normalise({**rec, "eventVersion": "1.11"})["event_version"] == "1.11"


def test_missing_event_id_is_rejected(public_records) -> None:
    with pytest.raises(RecordError, match="eventID"):
        normalise({k: v for k, v in public_records["trailscraper"][0].items() if k != "eventID"})


def test_secrets_in_records_never_reach_the_row(public_records) -> None:
    # the samples carry session tokens (some already redacted by their publishers) but no ExternalId,
    # so every AssumeRole among them is also checked with one added: that check must run too
    external_id = "rw-test-external-id-7Q2x"
    tokens = with_external_id = 0
    for records in public_records.values():
        for rec in records:
            if not rec.get("eventID"):
                continue
            tokens += "sessionToken" in json.dumps(rec)
            text = json.dumps(normalise(rec), default=str)
            assert "sessionToken" not in text and "REDACTED_BY_RESEARCH" not in text
            if rec.get("eventName") == "AssumeRole" and isinstance(rec.get("requestParameters"), dict):
                row = normalise({**rec, "requestParameters": {**rec["requestParameters"], "externalId": external_id}})
                assert row["external_id_supplied"] is True  # that one was supplied is kept, not its value
                assert external_id not in json.dumps(row, default=str)
                with_external_id += 1
    assert tokens > 0 and with_external_id > 0

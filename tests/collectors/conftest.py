"""Fixtures for collector tests: trail records and files, configs, and a small trail in the S3 layout
built from real public records."""

from __future__ import annotations

import gzip
import json
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from monitor.config import Config, parse_config
from monitor.events.schema import ASSUME_ROLE_EVENTS

EXTERNAL_ID = "ext-id-do-not-leak-7731"

# what the public samples lack: an ExternalId and an MFA code supplied, a duration as a string
CRAFTED = [
    {
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE1", "accountId": "444455556666",
                         "arn": "arn:aws:iam::444455556666:user/DevUser", "accessKeyId": "AKIAEXAMPLE1",
                         "userName": "DevUser"},
        "eventTime": "2024-03-05T09:15:00Z", "eventSource": "sts.amazonaws.com", "eventName": "AssumeRole",
        "awsRegion": "eu-west-1", "sourceIPAddress": "203.0.113.10", "userAgent": "aws-cli/2.15.0",
        "requestParameters": {"roleArn": "arn:aws:iam::111122223333:role/cross-account/CrossAccountDeveloperRole",
                              "roleSessionName": "dev", "externalId": EXTERNAL_ID, "durationSeconds": "7200",
                              "serialNumber": "arn:aws:iam::444455556666:mfa/DevUser", "tokenCode": "918273"},
        "responseElements": {"credentials": {"accessKeyId": "ASIAEXAMPLE1", "expiration": "Mar 5, 2024, 11:15:00 AM",
                                             "sessionToken": "FQoGZXIvYXdzEXAMPLETOKEN"},
                             "assumedRoleUser": {"assumedRoleId": "AROAEXAMPLE:dev",
                                                 "arn": "arn:aws:sts::111122223333:assumed-role/CrossAccountDeveloperRole/dev"}},
        "eventID": "crafted-0001", "sharedEventID": "crafted-shared-0001", "recipientAccountId": "111122223333",
        "eventType": "AwsApiCall",
    },
]


@pytest.fixture(scope="session")
def layout_trail(tmp_path_factory: pytest.TempPathFactory, shared_data: Path,
                 public_records: dict[str, list[dict]]) -> Path:
    """The invictus trail (all event types) plus every public AssumeRole record, in the S3 layout.

    Records lacking an account, region or time land in a placeholder partition, as a
    misdelivered file would.
    """
    root = tmp_path_factory.mktemp("layout_trail")
    shutil.copytree(shared_data / "s3_layout", root, dirs_exist_ok=True)
    groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    seen: set[str] = set()
    for records in public_records.values():
        for rec in records:
            # hand-edited test fixtures reuse event IDs for different records; the pipeline keeps
            # the first one it sees, and so does this trail
            if rec.get("eventID") in seen:
                continue
            seen.add(rec.get("eventID"))
            account = str(rec.get("recipientAccountId") or "000000000000")
            region = str(rec.get("awsRegion") or "us-east-1")
            day = str(rec.get("eventTime") or "1970-01-01")[:10].replace("-", "/")
            groups[(account, region, day)].append(rec)
    for rec in CRAFTED:
        groups[("111122223333", "eu-west-1", "2024/03/05")].append(rec)
    for n, ((account, region, day), records) in enumerate(sorted(groups.items())):
        folder = root / "public" / "AWSLogs" / account / "CloudTrail" / region / day
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{account}_CloudTrail_{region}_{day.replace('/', '')}T0000Z_public{n:03d}.json.gz"
        (folder / name).write_bytes(gzip.compress(json.dumps({"Records": records}).encode()))
    return root


LAYOUT_ACCOUNT = "218007301253"
LAYOUT_DAY = "2023/07/10"


def record(event_id: str, *, name: str = "AssumeRole", time: str = "2023-07-10T12:00:00Z", **extra: Any) -> dict:
    """A minimal successful cross-account AssumeRole record (or any event name)."""
    rec = {
        "eventVersion": "1.08",
        "eventID": event_id,
        "eventTime": time,
        "eventSource": "sts.amazonaws.com" if name in ASSUME_ROLE_EVENTS else "s3.amazonaws.com",
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.10",
        "userAgent": "aws-cli/2.15",
        "recipientAccountId": "111122223333",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::444455556666:user/DevUser",
                         "accountId": "444455556666", "principalId": "AIDAEXAMPLE"},
        "requestParameters": {"roleArn": "arn:aws:iam::111122223333:role/Dev", "roleSessionName": "s1"},
        "responseElements": None,
    }
    rec.update(extra)
    return rec


def write_records_file(path: Path, records: list[dict], *, gz: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps({"Records": records}).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_jsonl(path: Path, lines: list[dict | str], *, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines).encode()
    path.write_bytes(gzip.compress(text) if gz else text)
    return path


def make_config(tmp_path: Path, sources: list[dict], aws: Any = None, **sections: Any) -> Config:
    data: dict[str, Any] = {"state": {"path": str(tmp_path / "state.db")}, "sources": sources, **sections}
    if aws is not None:
        data["aws"] = aws.model_dump(exclude_none=True)
    return parse_config(data)


def layout_files(shared_data: Path) -> list[Path]:
    return sorted((shared_data / "s3_layout" / "invictus").rglob("*.json.gz"))


@pytest.fixture(scope="session")
def layout_assume_role_ids(shared_data: Path) -> set[str]:
    ids = set()
    for f in layout_files(shared_data):
        for rec in json.loads(gzip.decompress(f.read_bytes()))["Records"]:
            if rec["eventName"].startswith("AssumeRole"):
                ids.add(rec["eventID"])
    return ids

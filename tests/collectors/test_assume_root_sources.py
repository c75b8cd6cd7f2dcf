"""AssumeRoot reaches the event table through trail files (the byte-marker fast path and JSON
Lines), CloudWatch Logs (the filter pattern) and the Athena push-down queries (same rows and
aggregates as the in-process path). LookupEvents: tests/collectors/test_lookup_events.py."""

from __future__ import annotations

import gzip
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest

import queries
from monitor import aws
from monitor.collectors.base import RawRecord
from monitor.collectors.files import assume_role_records_fast, record_from_line, records_from_bytes
from monitor.collectors.pushdown import record_from_columns
from monitor.events.schema import ASSUME_ROLE_EVENTS
from monitor.pipeline import run_cycle
from tests.assume_root import MANAGEMENT, ROOT_ARN, assume_root_record, refused_assume_root_record
from tests.collectors.athena_mirror import mirror, run_athena_sql
from tests.collectors.conftest import record
from tests.collectors.test_cloudwatch_logs import cw_config, put, ts
from tests.collectors.test_pushdown_equivalence import (
    WIDE,
    assert_same_table,
    athena_sql,
    calls_frame,
    canonical,
    in_process_rows,
    normalise_or_none,
)


def _other(event_id: str) -> dict[str, Any]:
    return record(event_id, name="GetObject", time="2024-10-25T20:51:00Z")


def test_the_byte_marker_fast_path_cuts_out_assume_root() -> None:
    records = [_other("get1"), assume_root_record(), _other("get2"), refused_assume_root_record(),
               {**assume_root_record("x"), "eventName": "AssumeRootLookalike"}]
    data = orjson.dumps({"Records": records})
    fast = assume_role_records_fast(data, "f")
    assert fast is not None  # CloudTrail's compact layout: no whole-document parse
    assert fast == [RawRecord(records[1], "f", "Records[1]"), RawRecord(records[3], "f", "Records[3]")]
    assert list(records_from_bytes(json.dumps({"Records": records}, indent=1).encode(), "f")) == [
        RawRecord(records[1], "f", "Records[1]"), RawRecord(records[3], "f", "Records[3]")]  # the general way


def test_a_json_lines_assume_root_line_is_kept() -> None:
    item = record_from_line(orjson.dumps(assume_root_record()), "f", "line 1")
    assert isinstance(item, RawRecord) and item.record["eventName"] == "AssumeRoot"


# --------------------------------------------------------------------------- CloudWatch Logs


def _matches(pattern: str, rec: dict[str, Any]) -> bool:
    """Evaluate the family's filter pattern (`$.key = "value"`, `&&`, `||`, brackets) on a record.

    moto accepts JSON filter patterns but does not apply them, so the pattern's meaning is checked
    here; the moto test below checks the path around it.
    """
    assert set(re.findall(r"\$\.(\w+)", pattern)) <= {"eventSource", "eventName"}
    expr = re.sub(r'\$\.(\w+) = ("[^"]*")', lambda m: f"(rec.get({m.group(1)!r}) == {m.group(2)})", pattern)
    expr = expr.strip().removeprefix("{").removesuffix("}").replace("&&", " and ").replace("||", " or ")
    assert re.fullmatch(r"[\s()]*(\(rec\.get\('\w+'\) == \"[\w.]+\"\)|and|or|[\s()])*", expr), expr
    return bool(eval(expr, {"__builtins__": {}}, {"rec": rec}))  # noqa: S307 - checked to be comparisons only


def test_the_filter_pattern_matches_assume_root_and_the_whole_family_only() -> None:
    pattern = queries.load("filter_patterns", "assume_role_family")
    assert _matches(pattern, assume_root_record()) and _matches(pattern, refused_assume_root_record())
    for name in ASSUME_ROLE_EVENTS:
        assert _matches(pattern, {"eventSource": "sts.amazonaws.com", "eventName": name})
    assert not _matches(pattern, {"eventSource": "sts.amazonaws.com", "eventName": "GetCallerIdentity"})
    assert not _matches(pattern, {**assume_root_record(), "eventSource": "iam.amazonaws.com"})
    assert set(re.findall(r'\$\.eventName = "(\w+)"', pattern)) == ASSUME_ROLE_EVENTS


def test_assume_root_from_a_log_group_is_stored(tmp_path, aws_config, state) -> None:  # noqa: ANN001
    now = datetime.now(UTC).replace(microsecond=0)  # CloudWatch Logs refuses events older than 14 days
    t = now - timedelta(minutes=30)
    logs = aws.client("logs", aws_config)
    put(logs, "org-trail", f"{MANAGEMENT}_CloudTrail_us-west-2", [
        (t, json.dumps(assume_root_record("root1", time=ts(t)))),
        (t + timedelta(seconds=1), json.dumps(_other("get1"))),
    ])
    res = run_cycle(cw_config(tmp_path, aws_config, ["org-trail"]), state, now=now)
    events = state.load_events()
    assert res.events_new == 1 and list(events["event_id"]) == ["root1"]
    assert (events["event_name"][0], events["role_arn"][0]) == ("AssumeRoot", ROOT_ARN)


# --------------------------------------------------------------------------- Athena push-down


@pytest.fixture
def root_trail(tmp_path: Path) -> Path:
    """AssumeRoot calls (two targets, one refused, one as an ARN target) beside an AssumeRole, S3 layout."""
    other_member = "333333333333"
    records = [
        assume_root_record("root-ok-1", duration=600),
        assume_root_record("root-ok-2", time="2024-10-25T20:58:00Z"),
        assume_root_record("root-ok-3", time="2024-10-25T21:10:00Z", target=f"arn:aws:iam::{other_member}:root"),
        refused_assume_root_record("root-denied-1"),
        refused_assume_root_record("root-denied-2", time="2024-10-25T20:51:00Z"),
        {**refused_assume_root_record("root-denied-3"), "requestParameters": {"targetPrincipal": other_member}},
        record("role-1", time="2024-10-25T20:59:00Z", recipientAccountId=MANAGEMENT, awsRegion="us-west-2"),
        _other("get1"),
    ]
    folder = tmp_path / "AWSLogs" / MANAGEMENT / "CloudTrail" / "us-west-2" / "2024" / "10" / "25"
    folder.mkdir(parents=True)
    (folder / f"{MANAGEMENT}_CloudTrail_us-west-2_20241025T2100Z_root.json.gz").write_bytes(
        gzip.compress(json.dumps({"Records": records}).encode()))
    return tmp_path


def test_athena_rebuilds_the_same_assume_root_rows(root_trail: Path) -> None:
    con = mirror(root_trail)
    expected = in_process_rows(root_trail, *WIDE)
    got = [r for r in map(normalise_or_none, map(record_from_columns,
                                                 run_athena_sql(con, athena_sql("assume_role_events", WIDE))))
           if r is not None]
    assert sum(r["event_name"] == "AssumeRoot" for r in expected) == 6
    assert canonical(got) == canonical(expected)


def test_athena_aggregates_name_the_target_root_as_in_process(root_trail: Path) -> None:
    con = mirror(root_trail)
    calls = calls_frame(root_trail)
    used = calls[calls["success"] & calls["role_arn"].notna()]
    expected_use = (used.groupby(["role_arn", "principal_key"], dropna=False)
                    .agg(uses=("event_id", "size"), first_used=("event_time", "min"),
                         last_used=("event_time", "max"))
                    .reset_index().rename(columns={"principal_key": "principal"}))
    assert ROOT_ARN in set(expected_use["role_arn"]) and "arn:aws:iam::333333333333:root" in set(
        expected_use["role_arn"])
    assert_same_table(pd.DataFrame(run_athena_sql(con, athena_sql("first_last_use", WIDE))), expected_use)

    failed = calls[~calls["success"]]
    keys = ["account_id", "role_arn", "principal_key", "source_ip_raw", "error_code"]
    expected_failed = (failed.groupby(keys, dropna=False)
                       .agg(attempts=("event_id", "size"), first_seen=("event_time", "min"),
                            last_seen=("event_time", "max"))
                       .reset_index()
                       .rename(columns={"principal_key": "principal", "source_ip_raw": "source_ip_address"}))
    assert set(expected_failed["role_arn"]) == {ROOT_ARN, "arn:aws:iam::333333333333:root"}
    assert_same_table(pd.DataFrame(run_athena_sql(con, athena_sql("failed_attempts", WIDE))), expected_failed)

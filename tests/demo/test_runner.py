"""The demo's plumbing: the trail lands in the bucket and the log group, the config points at them."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.config import load_config
from monitor.demo import runner, scenario, synth

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def test_upload_writes_bucket_layout_and_recent_log_events(aws_config, tmp_path: Path) -> None:  # noqa: ANN001
    made = scenario.provision(aws_config, seed=7)
    spec = synth.make_spec(3, synth.DEMO_ACCOUNTS, end=NOW, records=1500, seed=7, records_per_file=300)
    since = NOW - timedelta(hours=6)
    stats = runner.upload_trail(aws_config, made, spec, cloudwatch_since=since)
    assert stats.records == 1500
    s3 = scenario.account_client("s3", aws_config, made.owner_account)
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=made.trail_bucket)
            for o in page.get("Contents", [])]
    assert len(keys) == stats.files
    assert {k.split("/")[1] for k in keys} == set(synth.DEMO_ACCOUNTS)
    total = 0
    for key in keys:
        assert key.startswith("AWSLogs/") and "/CloudTrail/us-east-1/" in key and key.endswith(".json.gz")
        body = s3.get_object(Bucket=made.trail_bucket, Key=key)["Body"].read()
        recs = json.loads(gzip.decompress(body))["Records"]
        assert 1 <= len(recs) <= 300
        total += len(recs)
    assert total == 1500
    logs = scenario.account_client("logs", aws_config, made.owner_account)
    events = []
    for stream in stats.log_streams:
        events += logs.get_log_events(logGroupName=made.log_group, logStreamName=stream,
                                      startFromHead=True, limit=10_000)["events"]
    assert len(events) == stats.log_events > 0
    for ev in events:
        record = json.loads(ev["message"])
        assert record["eventTime"] >= since.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert ev["timestamp"] == int(datetime.fromisoformat(record["eventTime"].replace("Z", "+00:00"))
                                      .timestamp() * 1000)


def test_config_points_both_sources_at_the_local_endpoint(tmp_path: Path) -> None:
    made = scenario.DemoScenario(owner_account=scenario.OWNER, dev_account=scenario.DEV_ACCOUNT, region="us-east-1",
                                 trail_bucket=scenario.TRAIL_BUCKET, log_group=scenario.LOG_GROUP,
                                 dev_role_arn=scenario.DEV_ROLE_ARN, unused_role_arn="x", roles={})
    spec = synth.make_spec(21, synth.DEMO_ACCOUNTS, end=NOW)
    cfg = load_config(runner.write_config(tmp_path, "http://127.0.0.1:5999", made, spec))
    assert cfg.aws.endpoint_url == "http://127.0.0.1:5999"
    assert [s.type for s in cfg.sources] == ["cloudwatch_logs", "s3"]
    assert cfg.sources[1].bucket == scenario.TRAIL_BUCKET and cfg.sources[0].log_groups == ["aws-cloudtrail-logs"]
    assert cfg.detectors.off_hours.timezone == synth.TIMEZONE
    assert cfg.collection.initial_lookback_hours >= 21 * 24
    assert cfg.resolve_path(cfg.state.path) == tmp_path / "state.db"


def test_log_batches_respect_put_log_events_limits() -> None:
    records = [{"eventTime": "2026-01-01T00:00:00Z", "pad": "x" * 5000} for _ in range(450)]
    batches = list(runner._log_batches(records))
    assert sum(len(b) for b in batches) == 450 and len(batches) > 1
    for b in batches:
        assert sum(len(e["message"]) + 26 for e in b) <= 1_048_576 and len(b) <= 10_000


def test_only_log_events_cloudwatch_accepted_are_counted() -> None:
    from monitor.demo.runner import accepted_log_events

    assert accepted_log_events(10, {"nextSequenceToken": "x"}) == 10
    # indexes as PutLogEvents gives them: too-old/expired end exclusive, too-new start inclusive
    assert accepted_log_events(10, {"rejectedLogEventsInfo": {"tooOldLogEventEndIndex": 3}}) == 7
    assert accepted_log_events(10, {"rejectedLogEventsInfo": {"expiredLogEventEndIndex": 4,
                                                              "tooOldLogEventEndIndex": 2}}) == 6
    assert accepted_log_events(10, {"rejectedLogEventsInfo": {"tooNewLogEventStartIndex": 8}}) == 8
    assert accepted_log_events(10, {"rejectedLogEventsInfo": {"tooNewLogEventStartIndex": 0}}) == 0

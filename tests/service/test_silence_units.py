"""Silence per account/region of an S3 organisation trail, and of a bucket with no account at all:
real cycles against the moto server, state in a SQLite file, cycles five minutes apart on an
injected clock, alerts through a file notifier and the outbox."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.dispatch import notify
from monitor import aws
from monitor.detect.monitor_health import silence_fingerprint
from monitor.health import check_health, last_deliveries
from monitor.pipeline import run_cycle
from monitor.state.sqlite import SqliteState
from tests.collectors.conftest import make_config, record

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
ORG = "AWSLogs/o-abc123def4/"
ACCOUNTS = ("111111111111", "222222222222", "333333333333")
DELIVERING = ("us-east-1", "eu-west-1")
NEVER = "ap-south-1"  # in the configured regions, but no account's trail ever delivers there
SOURCE = "s3:trail/" + ORG


@pytest.fixture
def s3(aws_config):
    client = aws.client("s3", aws_config)
    client.create_bucket(Bucket="trail")
    client.create_bucket(Bucket="empty")
    return client


def deliver(s3, account: str, region: str, at: datetime) -> None:
    key = f"{ORG}{account}/CloudTrail/{region}/{at:%Y/%m/%d}/{account}_CloudTrail_{region}_{at:%Y%m%dT%H%MZ}.json.gz"
    rec = record(f"{account}-{region}-{at:%H%M}", name="GetObject", time=at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    s3.put_object(Bucket="trail", Key=key, Body=gzip.compress(json.dumps({"Records": [rec]}).encode()))


def alerted(path: Path) -> list[str]:
    return [json.loads(line)["fingerprint"] for line in path.read_text().splitlines()] if path.exists() else []


def org_trail_config(tmp_path: Path, aws_config, out: Path):
    """The organisation trail over every delivering region and the one never delivered from; alerts to `out`."""
    return make_config(tmp_path, [{"type": "s3", "bucket": "trail", "prefix": ORG,
                                   "regions": [*DELIVERING, NEVER]}], aws_config,
                       detectors={"monitor_health": {"max_silence_minutes": 60}},
                       notifiers=[{"type": "file", "path": str(out)}])


def tick(state, cfg, now: datetime) -> list:
    """One `once`: the cycle, then the monitor_health check and its alerts, as the service runs them."""
    run_cycle(cfg, state, now=now, notify=False)
    found = check_health(state, cfg, now)
    notify(found, state, cfg, now)
    return [f for f, _, _ in found]


def test_one_accounts_stopped_region_is_alerted_once_until_it_delivers_again(tmp_path, s3, aws_config) -> None:
    out = tmp_path / "alerts.jsonl"
    cfg = org_trail_config(tmp_path, aws_config, out)
    stopped = ("222222222222", "eu-west-1")
    fp = silence_fingerprint(SOURCE, *stopped)
    state = SqliteState(tmp_path / "state.db")
    try:
        for minute in range(0, 145, 5):
            now = NOW + timedelta(minutes=minute)
            for account in ACCOUNTS:
                for region in DELIVERING:
                    if (account, region) != stopped or minute <= 10:  # its trail is stopped after 12:10
                        deliver(s3, account, region, now)
            if minute == 100:  # a restart: the silence is judged from what the state file holds
                state.close()
                state = SqliteState(tmp_path / "state.db")
            found = tick(state, cfg, now)
            # the 60 minutes run from its last delivery, at 12:10
            assert [f.fingerprint for f in found] == ([fp] if minute >= 75 else []), minute
        [f] = found
        assert f.account_id == "222222222222" and f.severity == "high"
        assert (f.details["check"], f.details["source"], f.details["region"]) == ("silence", SOURCE, "eu-west-1")
        assert f.details["last_records_at"] == "2026-03-02T12:10:00Z" and f.details["silent_minutes"] == 130
        assert "222222222222 eu-west-1" in f.title
        # open for 70 minutes, its last delivery long out of the history read, alerted once
        assert alerted(out) == [fp]
        assert state.get_finding(fp).status == "open"

        later = NOW + timedelta(minutes=145)
        deliver(s3, *stopped, later)
        assert tick(state, cfg, later) == []
        assert state.get_finding(fp).status == "resolved"
        # the region no account ever delivered from was read every cycle and raised nothing
        cov = state.coverage()
        assert {(c.account, c.delivered) for c in cov if c.region == NEVER} == {(a, 0) for a in ACCOUNTS}
    finally:
        state.close()


def test_a_unit_quiet_before_a_long_downtime_is_alerted_from_its_remembered_last_delivery(tmp_path, s3,
                                                                                        aws_config) -> None:
    out = tmp_path / "alerts.jsonl"
    cfg = org_trail_config(tmp_path, aws_config, out)
    stopped = ("333333333333", "us-east-1")
    fp = silence_fingerprint(SOURCE, *stopped)
    state = SqliteState(tmp_path / "state.db")
    try:
        for minute in range(0, 35, 5):  # its trail stops after 12:10; the service goes down after 12:30
            now = NOW + timedelta(minutes=minute)
            for account in ACCOUNTS:
                for region in DELIVERING:
                    if (account, region) != stopped or minute <= 10:
                        deliver(s3, account, region, now)
            assert tick(state, cfg, now) == [], minute  # quiet for 20 minutes only: not yet silent
        state.close()

        # down for 3 x max_silence_minutes: no cycles, the other units' trails keep delivering
        back = NOW + timedelta(minutes=30 + 180)
        for account in ACCOUNTS:
            for region in DELIVERING:
                if (account, region) != stopped:
                    deliver(s3, account, region, back - timedelta(minutes=90))
                    deliver(s3, account, region, back)
        state = SqliteState(tmp_path / "state.db")  # a restart: a new state object on the same file
        # the memory came through the restart; the runs still read hold no delivery of the unit
        assert last_deliveries(state, cfg)[(SOURCE, *stopped)] == NOW + timedelta(minutes=10)
        assert (SOURCE, "111111111111", NEVER) not in last_deliveries(state, cfg)  # never delivered: no record
        [f] = tick(state, cfg, back)
        assert (f.fingerprint, f.account_id, f.details["region"]) == (fp, "333333333333", "us-east-1")
        assert f.details["last_records_at"] == "2026-03-02T12:10:00Z" and f.details["silent_minutes"] == 200
        assert f.first_seen == "2026-03-02T12:10:00Z"
        assert alerted(out) == [fp]
        # the region no account ever delivered from was read after the restart too, and raised nothing
        assert {(c.account, c.delivered) for c in state.coverage() if c.region == NEVER and c.account == "111111111111"
                } == {("111111111111", 0)}
    finally:
        state.close()


def test_a_bucket_without_any_account_is_covered_as_a_whole_and_can_go_silent(tmp_path, s3, aws_config,
                                                                             state) -> None:
    cfg = make_config(tmp_path, [{"type": "s3", "bucket": "empty"}], aws_config,
                      detectors={"monitor_health": {"max_silence_minutes": 60}})
    fp = silence_fingerprint("s3:empty/")
    for minute in range(0, 65, 5):
        now = NOW + timedelta(minutes=minute)
        res = run_cycle(cfg, state, now=now, notify=False)
        [cov] = res.coverage
        assert (cov.account, cov.region, cov.status, cov.delivered) == (None, None, "ok", 0)
        assert cov.message == "no AWSLogs/<account>/ prefixes found under s3://empty/AWSLogs/"
        found = [f for f, _, _ in check_health(state, cfg, now)]
        assert [f.fingerprint for f in found] == ([fp] if minute >= 60 else []), minute
    assert found[0].account_id is None and found[0].details["last_records_at"] is None

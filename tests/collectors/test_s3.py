"""S3 trail bucket source against moto server over HTTP."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor import aws
from monitor.collectors.s3 import days_between, trail_root
from monitor.pipeline import run_cycle
from tests.collectors.conftest import LAYOUT_ACCOUNT, layout_files, make_config, record

NOW = datetime(2023, 7, 10, 13, 0, tzinfo=UTC)


def upload_layout(s3, bucket: str, shared_data: Path, prefix: str = "") -> int:
    root = shared_data / "s3_layout" / "invictus"
    files = layout_files(shared_data)
    for f in files:
        key = prefix + f.relative_to(root).as_posix()
        if prefix.startswith("AWSLogs/o-"):
            key = prefix + f.relative_to(root / "AWSLogs").as_posix()
        s3.put_object(Bucket=bucket, Key=key, Body=f.read_bytes())
    return len(files)


def put_records(s3, bucket: str, key: str, records: list[dict]) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(json.dumps({"Records": records}).encode()))


@pytest.fixture
def s3(aws_config):
    client = aws.client("s3", aws_config)
    client.create_bucket(Bucket="trail")
    return client


def test_trail_root_and_days() -> None:
    assert trail_root("") == "AWSLogs/"
    assert trail_root("AWSLogs/o-abc123/") == "AWSLogs/o-abc123/"
    assert trail_root("custom") == "custom/AWSLogs/"
    assert days_between(datetime(2023, 7, 9, 23, tzinfo=UTC), datetime(2023, 7, 11, 1, tzinfo=UTC))[-1].day == 11
    assert len(days_between(datetime(2023, 7, 9, 23, tzinfo=UTC), datetime(2023, 7, 11, 1, tzinfo=UTC))) == 3


def test_reads_the_public_trail_once(tmp_path, s3, aws_config, shared_data, layout_assume_role_ids, state) -> None:
    n = upload_layout(s3, "trail", shared_data)
    cfg = make_config(tmp_path, [{"type": "s3", "bucket": "trail"}], aws_config)
    res = run_cycle(cfg, state, now=NOW)
    assert res.errors == [] and res.skipped == 0
    assert res.events_new == 49
    assert set(state.load_events()["event_id"]) == layout_assume_role_ids
    [cov] = res.coverage
    assert (cov.account, cov.region, cov.status, cov.records) == (LAYOUT_ACCOUNT, "us-east-1", "ok", 49)
    assert cov.delivered == n  # every trail file read, whatever it held
    assert cov.start == "2023-07-09T13:00:00Z" and cov.end == "2023-07-10T13:00:00Z"
    assert len(state.processed_files("s3:trail/")) == n
    assert state.get_checkpoint("s3:trail/", f"{LAYOUT_ACCOUNT}/us-east-1") == "2023-07-10T13:00:00Z"

    again = run_cycle(cfg, state, now=NOW)
    assert again.events_new == 0
    assert again.coverage[0].message == "0 new object(s)" and again.coverage[0].delivered == 0


def test_lists_only_the_days_in_the_window(tmp_path, s3, aws_config, state) -> None:
    base = "AWSLogs/111122223333/CloudTrail/us-east-1/"
    put_records(s3, "trail", base + "2023/07/10/a.json.gz", [record("in-window")])
    put_records(s3, "trail", base + "2023/07/01/old.json.gz", [record("too-old", time="2023-07-01T10:00:00Z")])
    put_records(s3, "trail", base + "2023/07/10/b.json.gz", [record("gets", name="GetObject")])
    cfg = make_config(tmp_path, [{"type": "s3", "bucket": "trail"}], aws_config)
    res = run_cycle(cfg, state, now=NOW)
    assert list(state.load_events()["event_id"]) == ["in-window"]
    assert res.events_new == 1
    assert res.coverage[0].delivered == 2  # the GetObject-only file counts: the trail delivered it
    # an explicit backfill reaches the older day
    res = run_cycle(cfg, state, now=NOW, since=datetime(2023, 7, 1, tzinfo=UTC))
    assert res.events_new == 1
    assert sorted(state.load_events()["event_id"]) == ["in-window", "too-old"]


def test_overlap_rereads_but_never_double_counts(tmp_path, s3, aws_config, state) -> None:
    base = "AWSLogs/111122223333/CloudTrail/us-east-1/2023/07/10/"
    put_records(s3, "trail", base + "a.json.gz", [record("e1")])
    cfg = make_config(tmp_path, [{"type": "s3", "bucket": "trail"}], aws_config)
    assert run_cycle(cfg, state, now=NOW).events_new == 1
    # a late file repeating e1 (CloudTrail may deliver twice) and a new e2
    put_records(s3, "trail", base + "late.json.gz", [record("e1"), record("e2")])
    res = run_cycle(cfg, state, now=NOW.replace(minute=5))
    assert res.events_new == 1
    assert res.coverage[0].start == "2023-07-10T12:40:00Z"  # checkpoint 13:00 - 20 min overlap


def test_organization_trail_and_account_subset(tmp_path, s3, aws_config, state) -> None:
    org = "AWSLogs/o-abc123/"
    put_records(s3, "trail", org + "111122223333/CloudTrail/us-east-1/2023/07/10/a.json.gz", [record("a1")])
    put_records(s3, "trail", org + "111122223333/CloudTrail/eu-west-1/2023/07/10/a.json.gz", [record("a2")])
    put_records(s3, "trail", org + "444455556666/CloudTrail/us-east-1/2023/07/10/b.json.gz", [record("b1")])
    put_records(s3, "trail", org + "444455556666/CloudTrail-Digest/us-east-1/2023/07/10/d.json.gz", [record("dg")])
    cfg = make_config(tmp_path, [{"type": "s3", "bucket": "trail"}], aws_config)
    res = run_cycle(cfg, state, now=NOW)
    assert sorted(state.load_events()["event_id"]) == ["a1", "a2", "b1"]
    assert sorted((c.account, c.region) for c in res.coverage) == [
        ("111122223333", "eu-west-1"), ("111122223333", "us-east-1"), ("444455556666", "us-east-1")]

    cfg2 = make_config(tmp_path / "two", [{"type": "s3", "bucket": "trail", "prefix": org,
                                          "accounts": ["444455556666", "999999999999"],
                                          "regions": ["us-east-1"]}], aws_config)
    from monitor.state.sqlite import SqliteState

    other = SqliteState(tmp_path / "two" / "state.db")
    res2 = run_cycle(cfg2, other, now=NOW)
    assert list(other.load_events()["event_id"]) == ["b1"]
    statuses = {(c.account, c.status) for c in res2.coverage}
    assert statuses == {("444455556666", "ok"), ("999999999999", "failed")}
    assert any("999999999999" in e for e in res2.errors)
    other.close()


def test_bad_objects_are_skipped_and_reported_by_key(tmp_path, s3, aws_config, state) -> None:
    base = "AWSLogs/111122223333/CloudTrail/us-east-1/2023/07/10/"
    good = gzip.compress(json.dumps({"Records": [record("ok1")]}).encode())
    s3.put_object(Bucket="trail", Key=base + "cut.json.gz", Body=good[:-10])
    put_records(s3, "trail", base + "good.json.gz", [record("ok2"), record("noid", eventID=None),
                                                     record("v9", eventVersion="9.0")])
    cfg = make_config(tmp_path, [{"type": "s3", "bucket": "trail"}], aws_config)
    res = run_cycle(cfg, state, now=NOW)
    assert res.events_new == 1
    assert res.skipped == 3
    assert res.coverage[0].skipped == 3 and res.coverage[0].status == "ok"
    assert res.coverage[0].delivered == 2  # a cut file arrived all the same
    # bad content is not retried: the key is processed
    assert run_cycle(cfg, state, now=NOW).skipped == 0


def test_missing_bucket_fails_the_source_not_the_cycle(tmp_path, s3, aws_config, state) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "x.jsonl").write_text(json.dumps(record("l1")) + "\n")
    cfg = make_config(tmp_path, [{"type": "s3", "bucket": "no-such-bucket"},
                                 {"type": "local", "path": str(tmp_path / "t")}], aws_config)
    res = run_cycle(cfg, state, now=NOW)
    assert res.events_new == 1
    assert [c.status for c in res.coverage] == ["failed", "ok"]
    assert "NoSuchBucket" in res.errors[0]


def test_an_account_the_source_cannot_read_is_a_monitor_health_finding_until_it_can(tmp_path, s3, aws_config,
                                                                                  state) -> None:
    from datetime import timedelta

    from monitor.detect.monitor_health import account_unreachable_fingerprint
    from monitor.health import check_health
    from monitor.state.sqlite import SqliteState

    put_records(s3, "trail", "AWSLogs/444455556666/CloudTrail/us-east-1/2023/07/10/b.json.gz", [record("b1")])
    cfg = make_config(tmp_path, [{"type": "s3", "bucket": "trail", "accounts": ["444455556666", "999999999999"],
                                  "regions": ["us-east-1"]}], aws_config,
                      detectors={"monitor_health": {"failed_cycles": 2}})
    fp = account_unreachable_fingerprint("999999999999", "s3:trail/")
    run_cycle(cfg, state, now=NOW)
    assert list(state.load_events()["event_id"]) == ["b1"]  # the readable account is collected all the same
    [(finding, is_new, _)] = check_health(state, cfg, NOW)
    assert is_new and finding.fingerprint == fp and finding.account_id == "999999999999"
    assert (finding.severity, finding.details["step"], finding.details["source"]) == ("medium", "read_source",
                                                                                       "s3:trail/")
    assert "no trail under s3://trail/AWSLogs/" in finding.details["last_error"]

    later = NOW + timedelta(minutes=5)
    run_cycle(cfg, state, now=later)
    [(finding, is_new, _)] = check_health(state, cfg, later)
    assert not is_new and (finding.severity, finding.count) == ("high", 2)

    # a restart over the same file: the streak is remembered, the finding is not new
    again = SqliteState(state.path)
    try:
        [(finding, is_new, _)] = check_health(again, cfg, later)
        assert not is_new and finding.severity == "high"
        # the account's trail shows up: the next cycle reads it and the finding is resolved
        put_records(s3, "trail", "AWSLogs/999999999999/CloudTrail/us-east-1/2023/07/10/c.json.gz", [record("c1")])
        latest = later + timedelta(minutes=5)
        run_cycle(cfg, again, now=latest)
        assert check_health(again, cfg, latest) == []
        assert again.get_finding(fp).status == "resolved"
        assert sorted(again.load_events()["event_id"]) == ["b1", "c1"]
    finally:
        again.close()


UNITS = ["111111111111", "222222222222", "333333333333"]


def unit_key(account: str, name: str) -> str:
    return f"AWSLogs/{account}/CloudTrail/us-east-1/2023/07/10/{name}"


def test_a_reader_crash_fails_the_unit_being_read_and_leaves_the_rest_for_the_next_cycle(
        tmp_path, s3, aws_config, state, caplog, monkeypatch) -> None:
    from monitor.collectors.files import read_stream
    from monitor.collectors.s3 import S3Collector

    first, middle, last = UNITS
    put_records(s3, "trail", unit_key(first, "a.json.gz"), [record("first-1")])
    put_records(s3, "trail", unit_key(middle, "a.json.gz"), [record("middle-1")])
    put_records(s3, "trail", unit_key(middle, "b.json.gz"), [record("middle-2")])
    put_records(s3, "trail", unit_key(last, "a.json.gz"), [record("last-1")])
    broken = {unit_key(middle, "b.json.gz")}

    def reader(fh, name, origin):  # noqa: ANN001, ANN202 - a reader bug no real input triggers any more
        if name in broken:
            raise TypeError("unhashable type: 'list'")
        return read_stream(fh, name, origin)

    monkeypatch.setattr(S3Collector, "reader", staticmethod(reader))
    # one worker and a short read-ahead still fetch the last unit's object before the crash surfaces
    cfg = make_config(tmp_path, [{"type": "s3", "bucket": "trail", "regions": ["us-east-1"], "max_workers": 1}],
                      aws_config)

    res = run_cycle(cfg, state, now=NOW)
    by_account = {c.account: c for c in res.coverage}
    assert [c.account for c in res.coverage] == UNITS  # no extra whole-source row
    assert (by_account[first].status, by_account[first].records) == ("ok", 1)
    assert by_account[middle].status == "failed" and by_account[middle].records == 0
    assert "TypeError" in by_account[middle].message
    assert unit_key(middle, "b.json.gz") in by_account[middle].message  # which object to look at
    assert by_account[last].status == "partial" and by_account[last].records == 0
    assert f"not read: cycle stopped at {middle}/us-east-1" in by_account[last].message
    assert list(state.load_events()["event_id"]) == ["first-1"]
    assert state.get_checkpoint("s3:trail/", f"{first}/us-east-1") == "2023-07-10T13:00:00Z"
    assert state.get_checkpoint("s3:trail/", f"{middle}/us-east-1") is None
    assert state.get_checkpoint("s3:trail/", f"{last}/us-east-1") is None
    assert len(res.errors) == 2 and "TypeError" in res.errors[0]
    # one account of the source failed while another was read: the cycle is partial, not failed
    assert state.runs("collect", limit=1)[0]["status"] == "partial"
    assert any("reading 222222222222/us-east-1 failed" in r.getMessage() for r in caplog.records)

    # the reader is fixed: the next cycle reads what was left, once
    broken.clear()
    again = run_cycle(cfg, state, now=NOW.replace(minute=5))
    assert again.errors == [] and [c.status for c in again.coverage] == ["ok", "ok", "ok"]
    assert [c.records for c in again.coverage] == [0, 2, 1]
    assert again.events_new == 3
    assert sorted(state.load_events()["event_id"]) == ["first-1", "last-1", "middle-1", "middle-2"]
    assert run_cycle(cfg, state, now=NOW.replace(minute=10)).events_new == 0


def test_units_not_reached_when_the_consumer_stops_are_not_reported_read(tmp_path, s3, aws_config, state) -> None:
    from monitor.collectors.base import CycleWindow
    from monitor.config import source_id
    from monitor.pipeline import make_collector

    for account in UNITS:
        put_records(s3, "trail", unit_key(account, "a.json.gz"), [record(f"{account}-1")])
    cfg = make_config(tmp_path, [{"type": "s3", "bucket": "trail", "regions": ["us-east-1"]}], aws_config)
    collector = make_collector(cfg.sources[0], cfg, state)
    assert source_id(cfg.sources[0]) == collector.source_id
    window = CycleWindow(now=NOW, until=NOW, since=None, initial_lookback=timedelta(hours=24),
                         overlap=timedelta(minutes=20))
    batches = collector.batches(window)
    first = next(batches)
    assert first.span is collector.spans[0]
    batches.close()  # as when storing that batch failed: the pipeline stops taking batches
    assert [s.status for s in collector.spans] == ["ok", "partial", "partial"]
    assert all(s.message.endswith(f"not read: cycle stopped at {UNITS[0]}/us-east-1") for s in collector.spans[1:])

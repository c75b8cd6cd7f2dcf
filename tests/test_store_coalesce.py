"""Small batches of one source share a transaction: fewer commits, the same events, checkpoints and coverage."""

from __future__ import annotations

import gzip
import json
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor import aws, pipeline
from monitor.collectors.files import Item
from monitor.collectors.s3 import S3Collector
from monitor.config import AwsConfig
from monitor.pipeline import run_cycle
from monitor.state.dynamodb import DynamoState, ensure_table
from monitor.state.sqlite import SqliteState
from tests.collectors.conftest import make_config, record

NOW = datetime(2023, 7, 10, 13, 0, tzinfo=UTC)
SID = "s3:trail/"
ACCOUNTS = ("111122223333", "444455556666", "777788889999")
REGIONS = ("eu-west-1", "us-east-1", "us-west-2")
FAILING_KEY_PART = "777788889999/CloudTrail/us-west-2/"  # the last unit in listing order


class CountingStores:
    """Counts the committed transactions that marked files processed: one per store of batches."""

    stores = 0
    _marked = False

    def mark_file_processed(self, source: str, path: str, version: str) -> None:
        self._marked = True
        super().mark_file_processed(source, path, version)  # type: ignore[misc]

    def _commit(self) -> None:
        super()._commit()  # type: ignore[misc]
        if self._marked:
            self.stores += 1
        self._marked = False

    def _rollback(self) -> None:
        super()._rollback()  # type: ignore[misc]
        self._marked = False


class CountingSqlite(CountingStores, SqliteState):
    pass


class CountingDynamo(CountingStores, DynamoState):
    pass


class FailingS3Collector(S3Collector):
    """Breaks on one object of the last unit, as a bug in reading it would (not an AWS error)."""

    def _fetch(self, s3: Any, key: str, etag: str) -> tuple[str, str | None, list[Item]]:
        if FAILING_KEY_PART in key:
            raise ValueError(f"cannot decode {key}")
        return super()._fetch(s3, key, etag)


def put(s3: Any, account: str, region: str, name: str, records: list[dict]) -> None:
    s3.put_object(Bucket="trail", Key=f"AWSLogs/{account}/CloudTrail/{region}/2023/07/10/{name}.json.gz",
                  Body=gzip.compress(json.dumps({"Records": records}).encode()))


@pytest.fixture
def trail(aws_config: AwsConfig) -> set[str]:
    """Nine account/region units of one or two small files each; returns every good event ID."""
    s3 = aws.client("s3", aws_config)
    s3.create_bucket(Bucket="trail")
    ids: set[str] = set()
    for account in ACCOUNTS:
        for region in REGIONS:
            recs = [record(f"{account}-{region}-{i}", recipientAccountId=account, awsRegion=region)
                    for i in range(2)]
            ids.update(r["eventID"] for r in recs)
            put(s3, account, region, "a", recs)
    # a second file in one unit, a record read before in another unit, and a record without an ID
    second = record("444455556666-us-east-1-extra", recipientAccountId="444455556666")
    put(s3, "444455556666", "us-east-1", "b", [second, record("111122223333-eu-west-1-0")])
    ids.add(second["eventID"])
    no_id = record("none")
    del no_id["eventID"]
    put(s3, "777788889999", "eu-west-1", "b", [no_id])
    return ids


def cycle(tmp_path: Path, aws_config: AwsConfig, st: Any) -> pipeline.CycleResult:
    cfg = make_config(tmp_path, [{"type": "s3", "bucket": "trail"}], aws_config)
    return run_cycle(cfg, st, now=NOW, notify=False)


def coverage(result: pipeline.CycleResult) -> list[tuple[Any, ...]]:
    return [(c.account, c.region, c.status, c.records, c.skipped, c.delivered, c.start, c.end)
            for c in result.coverage]


def snapshot(st: Any) -> tuple[list[str], dict[str, str], dict[str, Any]]:
    keys = [f"{a}/{r}" for a in ACCOUNTS for r in REGIONS]
    return (sorted(st.load_events()["event_id"]), st.processed_files(SID),
            {k: st.get_checkpoint(SID, k) for k in keys})


@pytest.fixture
def unbatched(tmp_path: Path, aws_config: AwsConfig, trail: set[str],
              monkeypatch: pytest.MonkeyPatch) -> tuple[pipeline.CycleResult, Any, int]:
    """The same cycle with one transaction per batch, as before coalescing: what to compare with."""
    st = CountingSqlite(tmp_path / "unbatched" / "state.db")
    with monkeypatch.context() as m:
        m.setattr(pipeline, "STORE_MAX_BATCHES", 1)
        result = cycle(tmp_path / "unbatched", aws_config, st)
    try:
        return result, snapshot(st), st.stores
    finally:
        st.close()


def dynamo_state(aws_config: AwsConfig) -> CountingDynamo:
    ddb = aws.client("dynamodb", aws_config)
    table = f"rolewatch-{uuid.uuid4().hex[:8]}"
    ensure_table(ddb, table)
    return CountingDynamo(ddb, table)


@pytest.mark.parametrize("backend", ["sqlite", "dynamodb"])
def test_many_small_batches_share_one_transaction_with_the_unbatched_result(
        tmp_path: Path, aws_config: AwsConfig, trail: set[str], unbatched: tuple[Any, Any, int],
        backend: str) -> None:
    st = CountingSqlite(tmp_path / "state.db") if backend == "sqlite" else dynamo_state(aws_config)
    result = cycle(tmp_path, aws_config, st)
    before, before_state, before_stores = unbatched

    assert before_stores == len(ACCOUNTS) * len(REGIONS)  # one batch per unit
    assert st.stores == 1
    assert result.events_new == before.events_new == len(trail)
    assert result.skipped == before.skipped == 1
    assert coverage(result) == coverage(before)
    by_unit = {(c.account, c.region): c for c in result.coverage}
    # the repeated record counts for the unit that brought it first; the second file is delivered
    assert by_unit["111122223333", "eu-west-1"].records == 2
    assert (by_unit["444455556666", "us-east-1"].records, by_unit["444455556666", "us-east-1"].delivered) == (3, 2)
    assert by_unit["777788889999", "eu-west-1"].skipped == 1
    assert snapshot(st) == before_state
    assert before_state[0] == sorted(trail) and len(before_state[1]) == 11
    assert all(before_state[2].values())


def test_a_collector_that_breaks_stores_what_it_read_before_and_fails_the_unit_in_progress(
        tmp_path: Path, aws_config: AwsConfig, trail: set[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(pipeline.COLLECTORS, "s3", f"{__name__}:FailingS3Collector")
    st = CountingSqlite(tmp_path / "state.db")
    result = cycle(tmp_path, aws_config, st)

    broken = {i for i in trail if i.startswith("777788889999-us-west-2")}
    assert result.events_new == len(trail) - len(broken)
    assert st.stores == 1  # the eight units read before the break, stored together
    failed = [c for c in result.coverage if c.status != "ok"]
    assert [(c.account, c.region, c.status) for c in failed] == [("777788889999", "us-west-2", "failed")]
    assert "ValueError: cannot decode" in (failed[0].message or "")
    assert any("ValueError" in e for e in result.errors)
    events, files, checkpoints = snapshot(st)
    assert set(events) == trail - broken
    assert not any(FAILING_KEY_PART in k for k in files) and len(files) == 10
    assert [k for k, v in checkpoints.items() if v is None] == ["777788889999/us-west-2"]

    monkeypatch.setitem(pipeline.COLLECTORS, "s3", "monitor.collectors.s3:S3Collector")
    again = cycle(tmp_path, aws_config, st)  # the broken unit is read again, nothing else
    assert again.events_new == len(broken) and not again.errors
    assert set(snapshot(st)[0]) == trail
    st.close()


class BrokenDisk(CountingSqlite):
    def add_events(self, events: Any) -> int:
        raise sqlite3.OperationalError("disk I/O error")


def test_a_failed_store_fails_every_unit_it_held(tmp_path: Path, aws_config: AwsConfig, trail: set[str]) -> None:
    st = BrokenDisk(tmp_path / "state.db")
    result = cycle(tmp_path, aws_config, st)

    assert result.events_new == 0 and st.stores == 0
    assert {c.status for c in result.coverage} == {"failed"}  # none of them claims what was not stored
    assert len(result.coverage) == len(ACCOUNTS) * len(REGIONS)  # no extra source-wide span
    assert all("OperationalError: disk I/O error" in (c.message or "") for c in result.coverage)
    assert st.processed_files(SID) == {}
    st.close()

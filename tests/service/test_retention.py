"""The retention job prunes what grows without bound, and nothing a later cycle or alert still needs:
real SQLite files, an injected `now`, moto over HTTP for the S3 trail."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from monitor.collectors.last_accessed import CACHE_NAMESPACE
from monitor.config import Config, parse_config
from monitor.findings import Finding, fingerprint
from monitor.posture.model import Posture, RoleInfo
from monitor.posture.store import save_posture
from monitor.retention import prune_file_marks, prune_last_accessed_cache, prune_outbox
from monitor.state.sqlite import SqliteState
from tests.collectors.conftest import record, write_jsonl
from tests.service.test_once import alert_lines, in_state, make_once, once_config
from tests.service.test_schedule import FakeClock

NOW = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
S3 = {"type": "s3", "bucket": "trail"}
SID = "s3:trail/"


def config(tmp_path: Path, **sections: Any) -> Config:
    return parse_config({"state": {"path": str(tmp_path / "state.db")}, **sections})


def key(account: str, day: str, name: str = "f.json.gz") -> str:
    return f"AWSLogs/{account}/CloudTrail/us-east-1/{day}/{name}"


def test_s3_marks_go_only_once_no_unit_window_can_list_their_day(tmp_path: Path) -> None:
    cfg = config(tmp_path, sources=[S3])  # initial lookback 24 h, overlap 20 min
    st = SqliteState(tmp_path / "state.db")
    try:
        st.set_checkpoint(SID, "2026-03-10T10:00:00Z", "111111111111/us-east-1")
        st.set_checkpoint(SID, "2026-02-28T10:00:00Z", "222222222222/us-east-1")  # failing for ten days
        marks = {
            key("111111111111", "2026/03/05"): False,
            key("111111111111", "2026/03/08"): True,  # the lookback reaches 03-09, and a day's margin
            key("111111111111", "2026/03/10"): True,
            key("222222222222", "2026/02/26"): False,
            key("222222222222", "2026/02/27"): True,  # its window starts 02-28 09:40: still needed
            key("333333333333", "2026/03/07"): False,  # no checkpoint: the initial lookback alone
            key("333333333333", "2026/03/08"): True,
            "exports/2020/old.json.gz": True,  # not the delivery layout: its time is unknown
        }
        for k in marks:
            st.mark_file_processed(SID, k, "etag")
        st.mark_file_processed("other", key("111111111111", "2026/01/01"), "etag")  # not configured

        assert prune_file_marks(cfg, st, NOW) == 3
        assert set(st.processed_files(SID)) == {k for k, keep in marks.items() if keep}
        assert len(st.processed_files("other")) == 1
    finally:
        st.close()


def test_local_marks_go_only_with_their_files_and_never_for_a_missing_directory(tmp_path: Path) -> None:
    trail = tmp_path / "trail"
    write_jsonl(trail / "2026" / "a.jsonl", [record("a")])
    write_jsonl(trail / "2026" / "b.jsonl", [record("b")])
    cfg = config(tmp_path, sources=[{"type": "local", "path": str(trail)}])
    sid = f"local:{trail}"
    st = SqliteState(tmp_path / "state.db")
    try:
        for name in ("2026/a.jsonl", "2026/b.jsonl"):
            st.mark_file_processed(sid, name, "1:1")
        (trail / "2026" / "b.jsonl").unlink()  # rotated away
        assert prune_file_marks(cfg, st, NOW) == 1
        assert set(st.processed_files(sid)) == {"2026/a.jsonl"}

        (trail / "2026" / "a.jsonl").rename(tmp_path / "a.jsonl")
        trail.joinpath("2026").rmdir()
        trail.rmdir()  # the volume is not mounted this time
        st.mark_file_processed(sid, "2026/a.jsonl", "1:1")
        assert prune_file_marks(cfg, st, NOW) == 0
        assert set(st.processed_files(sid)) == {"2026/a.jsonl"}
    finally:
        st.close()


def test_delivered_outbox_rows_go_only_once_their_finding_is_forgotten(tmp_path: Path) -> None:
    cfg = config(tmp_path, notifiers=[{"type": "file", "path": "a.jsonl", "realert_hours": 24 * 500}])
    old = NOW - timedelta(days=501)
    st = SqliteState(tmp_path / "state.db")
    try:
        kept = Finding(detector="off_hours", severity="medium", title="t", fingerprint=fingerprint("off_hours", "1"))
        st.upsert_finding(kept, "open", old)
        for fp, status, when in (
            (kept.fingerprint, "sent", old),  # its finding is stored: it may be detected again
            ("forgotten", "sent", old),
            ("forgotten-undelivered", "failed", old),  # never delivered: never dropped
            ("forgotten-recently-sent", "sent", NOW - timedelta(days=450)),  # inside realert_hours
        ):
            st.outbox_put(fp, "file", {"findings": []}, "pending", when)
            st.outbox_mark(fp, "file", status, when)
        assert prune_outbox(cfg, st, NOW) == 1
        assert {o.fingerprint for o in st.outbox_items()} == {
            kept.fingerprint, "forgotten-undelivered", "forgotten-recently-sent"}
    finally:
        st.close()


def test_last_accessed_cache_entries_go_with_their_roles_in_accounts_read_completely(tmp_path: Path) -> None:
    st = SqliteState(tmp_path / "state.db")
    arn = "arn:aws:iam::{}:role/{}".format
    try:
        for account, role in (("111111111111", "kept"), ("111111111111", "deleted"), ("222222222222", "unseen")):
            st.put_json(CACHE_NAMESPACE, arn(account, role), {"role_arn": arn(account, role)})
        assert prune_last_accessed_cache(st) == 0  # no inventory collected yet: nothing to compare with

        save_posture(st, Posture(
            roles={arn("111111111111", "kept"): RoleInfo(arn("111111111111", "kept"), "kept", "111111111111")},
            accounts=["111111111111", "222222222222"], errors={"222222222222": "AccessDenied"}, collected_at=NOW))
        assert prune_last_accessed_cache(st) == 1
        assert {k for k, _ in st.iter_json(CACHE_NAMESPACE)} == {
            arn("111111111111", "kept"), arn("222222222222", "unseen")}
    finally:
        st.close()


def test_once_prunes_old_s3_marks_and_does_not_read_a_key_still_in_the_window(moto: str, tmp_path: Path,
                                                                              capsys) -> None:
    s3 = boto3.client("s3", endpoint_url=moto, region_name="us-east-1")
    s3.create_bucket(Bucket="trail")
    old_key, new_key = key("111122223333", "2026/02/27", "old.json"), key("111122223333", "2026/03/10", "new.json")
    for k, eid, when in ((old_key, "old", "2026-02-27T12:00:00Z"), (new_key, "new", "2026-03-10T09:50:00Z")):
        s3.put_object(Bucket="trail", Key=k, Body=json.dumps({"Records": [record(eid, time=when)]}).encode())
    cfg = once_config(tmp_path, moto, sources=[S3], schedule={"posture": {"enabled": False}})
    clock = FakeClock(NOW)
    once = make_once(cfg, clock, capsys)

    code, out = once("--since", "2026-02-26T00:00:00Z")  # a backfill reads both; retention is due
    assert code == 0, out
    st = in_state(tmp_path)
    try:
        assert set(st.processed_files(SID)) == {new_key}  # 02-27 is before any window now
        assert len(st.load_events()) == 2  # the events stay for seen_retention_days
        alerts = len(alert_lines(tmp_path))
    finally:
        st.close()

    clock.advance(minutes=5)
    code, out = once()
    assert code == 0, out
    st = in_state(tmp_path)
    try:
        [cycle, _] = st.runs(job="collect")
        [cov] = st.coverage(cycle["run_id"])
        # 03-10 is listed again, its mark kept it from being fetched: nothing read, stored or alerted twice
        assert (cov.delivered, cov.records, cov.message) == (0, 0, "0 new object(s)")
        assert cycle["stats"]["events_new"] == 0
        assert len(st.load_events()) == 2
    finally:
        st.close()
    assert len(alert_lines(tmp_path)) == alerts

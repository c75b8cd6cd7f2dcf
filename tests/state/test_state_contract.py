"""The StateStore contract, run against every backend: SQLite (a real file) and DynamoDB (moto over HTTP)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from monitor.events.normalise import RecordError, is_assume_role_record, normalise
from monitor.events.schema import coerce, frame_from_rows
from monitor.findings import Finding, fingerprint
from monitor.state.base import Coverage, StateLockedError

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "dynamodb"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A factory: each call opens another handle on the same backing store (for lock tests)."""
    opened: list[Any] = []
    if request.param == "sqlite":
        from monitor.state.sqlite import SqliteState

        def factory(**kwargs: Any) -> Any:
            opened.append(SqliteState(tmp_path / "state.db", **kwargs))
            return opened[-1]
    else:
        from monitor.state.dynamodb import DynamoState, ensure_table

        # a fresh table per test instead of a moto reset (resets make moto's next DynamoDB calls slow),
        # and one client for the session (building a boto3 client costs more than the test)
        ddb = request.getfixturevalue("dynamodb_client")
        table = f"rolewatch-{uuid.uuid4().hex[:8]}"
        ensure_table(ddb, table)

        def factory(**kwargs: Any) -> Any:
            opened.append(DynamoState(ddb, table, **kwargs))
            return opened[-1]
    yield factory
    for st in opened:
        st.close()


@pytest.fixture
def store(open_store: Callable[[], Any]) -> Any:
    return open_store()


def row(event_id: str, when: str | None, **kw: Any) -> dict[str, Any]:
    return {"event_id": event_id, "event_time": when, "event_name": "AssumeRole", "success": True,
            "role_arn": "arn:aws:iam::111111111111:role/deploy", **kw}


def finding(fp_part: str, **kw: Any) -> Finding:
    base = {"detector": "off_hours", "severity": "medium", "title": f"t {fp_part}",
            "fingerprint": fingerprint("off_hours", fp_part)}
    return Finding(**{**base, **kw})


# --------------------------------------------------------------------------- checkpoints, files, documents


def test_checkpoints_round_trip_json_values(store) -> None:
    assert store.get_checkpoint("s3:trail/") is None
    store.set_checkpoint("s3:trail/", {"time": "2026-03-02T11:00:00Z", "keys": ["a", "b"]})
    store.set_checkpoint("s3:trail/", "token-1", key="next_token")
    assert store.get_checkpoint("s3:trail/") == {"time": "2026-03-02T11:00:00Z", "keys": ["a", "b"]}
    store.set_checkpoint("s3:trail/", 42)
    assert store.get_checkpoint("s3:trail/") == 42
    assert store.get_checkpoint("s3:trail/", "next_token") == "token-1"
    assert store.get_checkpoint("other") is None


def test_processed_files_per_source(store) -> None:
    store.mark_file_processed("local:/t", "/t/a.json.gz", "10:1")
    store.mark_file_processed("local:/t", "/t/b.json.gz", "20:1")
    store.mark_file_processed("local:/t", "/t/a.json.gz", "11:2")
    store.mark_file_processed("s3:b/", "k", "etag")
    assert store.processed_files("local:/t") == {"/t/a.json.gz": "11:2", "/t/b.json.gz": "20:1"}
    assert store.processed_files("nothing") == {}


def test_json_documents(store) -> None:
    store.put_json("baselines", "ips", {"role": ["10.0.0.0/24"]})
    store.put_json("baselines", "a-first", [1, 2])
    store.put_json("slack", "thread", "123.45")
    assert store.get_json("baselines", "ips") == {"role": ["10.0.0.0/24"]}
    assert list(store.iter_json("baselines")) == [("a-first", [1, 2]), ("ips", {"role": ["10.0.0.0/24"]})]
    store.delete_json("baselines", "a-first")
    assert store.get_json("baselines", "a-first") is None
    assert [k for k, _ in store.iter_json("baselines")] == ["ips"]


def test_json_documents_of_several_megabytes(store) -> None:
    """Bigger than one DynamoDB item even compressed: an Organization's role inventory."""
    big = {"roles": [{"arn": f"arn:aws:iam::{n:012d}:role/r-{uuid.uuid4().hex}", "external_id": uuid.uuid4().hex,
                      "principals": [uuid.uuid4().hex for _ in range(4)]} for n in range(15000)]}
    store.put_json("posture", "latest", big)
    store.put_json("posture", "b-small", {"n": 1})
    assert store.get_json("posture", "latest") == big
    assert list(store.iter_json("posture")) == [("b-small", {"n": 1}), ("latest", big)]
    store.put_json("posture", "latest", {"roles": []})
    assert list(store.iter_json("posture")) == [("b-small", {"n": 1}), ("latest", {"roles": []})]
    store.put_json("posture", "latest", big)
    store.delete_json("posture", "latest")
    assert store.get_json("posture", "latest") is None
    assert list(store.iter_json("posture")) == [("b-small", {"n": 1})]


# --------------------------------------------------------------------------- events


def test_events_store_once_and_load_by_window(store) -> None:
    rows = [
        row("e1", "2026-03-01T10:00:00Z", source_ip="198.51.100.7", duration_seconds=3600,
            external_id_supplied=True, mfa_authenticated=None, is_cross_account=True,
            credentials_expiration="2026-03-01T11:00:00Z"),
        row("e2", "2026-03-01T23:59:59Z", success=False, error_code="AccessDenied"),
        row("e3", "2026-03-02T00:00:00Z"),
    ]
    assert store.add_events(frame_from_rows(rows)) == 3
    assert store.add_events(frame_from_rows(rows[:2] + [row("e4", "2026-02-01T00:00:00Z")])) == 1
    assert store.unseen_event_ids(["e1", "e9", "e4", "e9"]) == {"e9"}

    everything = store.load_events()
    assert list(everything["event_id"]) == ["e4", "e1", "e2", "e3"]
    expected = coerce(frame_from_rows([rows[0]]))
    pd.testing.assert_frame_equal(everything[everything.event_id == "e1"].reset_index(drop=True), expected)

    window = store.load_events(since=datetime(2026, 3, 1, 10, tzinfo=UTC), until=datetime(2026, 3, 2, tzinfo=UTC))
    assert list(window["event_id"]) == ["e1", "e2"]  # since inclusive, until exclusive
    assert list(window.dtypes) == list(expected.dtypes)
    assert store.load_events(since=NOW).empty


def test_duplicates_inside_one_frame_count_once(store) -> None:
    df = frame_from_rows([row("d1", "2026-03-01T10:00:00Z"), row("d1", "2026-03-01T10:00:00Z")])
    assert store.add_events(df) == 1
    assert len(store.load_events()) == 1


def test_real_public_records_round_trip(store, public_records) -> None:
    rows = []
    for r in (r for recs in public_records.values() for r in recs if is_assume_role_record(r)):
        try:
            rows.append(normalise(r))
        except RecordError:  # samples without an eventID are the normaliser's business, not state's
            continue
    rows = rows[:60]
    assert rows, "the shared samples hold AssumeRole records"
    frame = frame_from_rows(rows)
    assert store.add_events(frame) == frame["event_id"].nunique()
    loaded = store.load_events()
    expected = store.load_events()  # loading twice is stable
    pd.testing.assert_frame_equal(loaded, expected)
    assert set(loaded["event_id"]) == set(frame["event_id"])
    by_id = loaded.set_index("event_id")
    for r in rows[:10]:
        stored = by_id.loc[r["event_id"], "role_arn"]
        # a role the record named comes back; only one it did not name may come back missing
        assert stored == r["role_arn"] if r["role_arn"] is not None else pd.isna(stored), r["event_id"]


def test_prune_removes_old_events_findings_and_coverage(store) -> None:
    store.add_events(frame_from_rows([row("old", "2026-01-01T00:00:00Z"), row("new", "2026-03-01T00:00:00Z")]))
    store.upsert_finding(finding("old"), "open", NOW - timedelta(days=500))
    store.upsert_finding(finding("new"), "open", NOW)
    old_run = store.start_run("collect", NOW - timedelta(days=500))
    store.record_coverage(Coverage(old_run, "src", None, None, "ok"))
    new_run = store.start_run("collect", NOW)
    store.record_coverage(Coverage(new_run, "src", None, None, "ok"))
    removed = store.prune(NOW, seen_days=30, findings_days=400)
    assert removed == {"events": 1, "findings": 1, "coverage": 1}
    assert list(store.load_events()["event_id"]) == ["new"]
    assert [s.finding.title for s in store.findings()] == ["t new"]
    assert [c.run_id for c in store.coverage()] == [new_run]


# --------------------------------------------------------------------------- transactions


def test_transaction_commits_together_or_not_at_all(store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.add_events(frame_from_rows([row("t1", "2026-03-01T00:00:00Z")]))
        store.set_checkpoint("src", "after-t1")
        store.put_json("ns", "k", 1)
        assert store.unseen_event_ids(["t1"]) == set()  # reads inside see the writes
        assert store.get_checkpoint("src") == "after-t1"
        raise RuntimeError("crash before commit")
    assert store.unseen_event_ids(["t1"]) == {"t1"}
    assert store.get_checkpoint("src") is None and store.get_json("ns", "k") is None

    with store.transaction():
        with store.transaction():  # nested joins the outer one
            store.add_events(frame_from_rows([row("t2", "2026-03-01T00:00:00Z")]))
        store.set_checkpoint("src", "after-t2")
        store.upsert_finding(finding("x"), "open", NOW)
        assert store.get_finding(finding("x").fingerprint) is not None
        assert list(store.load_events()["event_id"]) == ["t2"]
    assert store.get_checkpoint("src") == "after-t2"
    assert list(store.load_events()["event_id"]) == ["t2"]


# --------------------------------------------------------------------------- coverage and runs


def test_runs_newest_first_with_job_filter_and_stats(store) -> None:
    a = store.start_run("collect", NOW)
    b = store.start_run("retention", NOW + timedelta(minutes=1))
    c = store.start_run("collect", NOW + timedelta(minutes=5))
    d = store.start_run("collect", NOW + timedelta(minutes=5))  # same start: insertion order breaks the tie
    store.finish_run(a, NOW + timedelta(seconds=30), "ok", {"events_new": 3, "errors": []})
    runs = store.runs()
    assert [r["run_id"] for r in runs] == [d, c, b, a]
    assert [r["run_id"] for r in store.runs(job="collect", limit=2)] == [d, c]
    last = store.runs(job="collect")[-1]
    assert last == {"run_id": a, "job": "collect", "started_at": "2026-03-02T12:00:00Z",
                    "finished_at": "2026-03-02T12:00:30Z", "status": "ok", "stats": {"events_new": 3, "errors": []}}
    assert runs[0]["finished_at"] is None and runs[0]["status"] is None and runs[0]["stats"] == {}
    store.finish_run("no-such-run", NOW, "ok", {})  # unknown id: nothing happens
    assert len(store.runs()) == 4


def test_coverage_by_run_in_insertion_order(store) -> None:
    r1, r2 = store.start_run("collect", NOW), store.start_run("collect", NOW)
    store.record_coverage(Coverage(r1, "s3:b/", "2026-03-02T11:00:00Z", "2026-03-02T12:00:00Z", "ok",
                                   account="111111111111", region="us-east-1", records=10, skipped=1, delivered=4))
    store.record_coverage(Coverage(r1, "lookup_events", None, None, "failed", message="AccessDenied"))
    store.record_coverage(Coverage(r2, "s3:b/", None, None, "partial"))
    assert [c.source for c in store.coverage(r1)] == ["s3:b/", "lookup_events"]
    assert store.coverage(r1)[0] == Coverage(r1, "s3:b/", "2026-03-02T11:00:00Z", "2026-03-02T12:00:00Z", "ok",
                                             "111111111111", "us-east-1", 10, 1, None, 4)
    assert store.coverage(r2)[0].delivered is None  # not counted
    assert [(c.run_id, c.status) for c in store.coverage()] == [(r1, "ok"), (r1, "failed"), (r2, "partial")]


def test_unreachable_account_streaks_survive_a_reopen_and_end(open_store) -> None:
    from monitor.detect.monitor_health import POSTURE, AccountObservation
    from monitor.health import load_streaks, record_account_rounds

    first = open_store()

    def denied(account: str, at: datetime, via: str = POSTURE) -> AccountObservation:
        return AccountObservation(account, via, at, ok=False, step="assume_audit_role", error_code="AccessDenied",
                                  message="ClientError: AccessDenied", regions=("eu-west-1",))

    record_account_rounds(first, {POSTURE: [denied("222222222222", NOW)],
                                  "s3:b/": [denied("333333333333", NOW, "s3:b/")]})
    second = open_store()  # another handle on the same store, as after a restart
    record_account_rounds(second, {POSTURE: [denied("222222222222", NOW + timedelta(days=1))]})
    streaks = {(s.via, s.account_id): s for s in load_streaks(second)}
    assert set(streaks) == {(POSTURE, "222222222222"), ("s3:b/", "333333333333")}  # a channel not folded is kept
    kept = streaks[(POSTURE, "222222222222")]
    assert (kept.since, kept.last, kept.rounds, kept.error_code, kept.regions) == (
        NOW, NOW + timedelta(days=1), 2, "AccessDenied", ("eu-west-1",))
    record_account_rounds(second, {POSTURE: [AccountObservation("222222222222", POSTURE, NOW, ok=True)]})
    assert [(s.via, s.account_id) for s in load_streaks(open_store())] == [("s3:b/", "333333333333")]


def test_unit_delivery_memory_survives_a_reopen_and_is_forgotten_only_when_unlisted(open_store, tmp_path) -> None:
    from monitor.health import DELIVERIES_NS, forget_unlisted_units, last_deliveries, record_deliveries
    from tests.collectors.conftest import make_config

    cfg = make_config(tmp_path, [{"type": "s3", "bucket": "b"}], None)

    def cov(account: str, region: str | None, delivered: int | None, records: int = 0) -> Coverage:
        return Coverage("r", "s3:b/", None, None, "ok", account, region, records=records, delivered=delivered)

    first = open_store()
    record_deliveries(first, [cov("111111111111", "us-east-1", 4), cov("111111111111", "ap-south-1", 0),
                              cov("222222222222", "eu-west-1", None, records=2)], NOW)
    record_deliveries(first, [cov("111111111111", "us-east-1", 0), cov("222222222222", "eu-west-1", 1)],
                      NOW + timedelta(hours=1))
    second = open_store()  # another handle on the same store, as after a restart
    assert last_deliveries(second, cfg) == {("s3:b/", "111111111111", "us-east-1"): NOW,  # 0 delivered keeps it
                                            ("s3:b/", "222222222222", "eu-west-1"): NOW + timedelta(hours=1)}
    # the first unit is still listed later, the second is not
    record_deliveries(second, [cov("111111111111", "us-east-1", 0)], NOW + timedelta(days=10))
    assert forget_unlisted_units(second, NOW + timedelta(days=5)) == 1
    assert list(last_deliveries(open_store(), cfg)) == [("s3:b/", "111111111111", "us-east-1")]
    assert forget_unlisted_units(second, NOW + timedelta(days=11)) == 1
    assert list(second.iter_json(DELIVERIES_NS)) == []  # the emptied document itself is gone


# --------------------------------------------------------------------------- findings


def test_upsert_finding_merges_and_reports_previous(store) -> None:
    f1 = finding("a", first_seen="2026-03-02T10:00:00Z", last_seen="2026-03-02T10:05:00Z", count=2,
                 event_ids=["e1", "e2"])
    assert store.upsert_finding(f1, "open", NOW) == (True, None)
    f2 = finding("a", severity="high", first_seen="2026-03-02T09:00:00Z", last_seen="2026-03-02T10:01:00Z",
                 count=1, event_ids=["e3"])
    is_new, prev = store.upsert_finding(f2, "open", NOW + timedelta(hours=1))
    assert not is_new and prev == f1
    stored = store.get_finding(f1.fingerprint)
    assert stored.status == "open" and stored.finding.severity == "high"
    assert (stored.finding.first_seen, stored.finding.last_seen, stored.finding.count) == (
        "2026-03-02T09:00:00Z", "2026-03-02T10:05:00Z", 2)
    assert stored.finding.event_ids == ["e1", "e2", "e3"]
    assert (stored.created_at, stored.updated_at) == ("2026-03-02T12:00:00Z", "2026-03-02T13:00:00Z")
    assert store.get_finding("nope") is None


def test_findings_filter_by_update_time_and_status(store) -> None:
    store.upsert_finding(finding("b", first_seen="2026-03-01T00:00:00Z"), "open", NOW - timedelta(days=2))
    store.upsert_finding(finding("a", first_seen="2026-03-02T00:00:00Z"), "suppressed", NOW)
    store.upsert_finding(finding("c", first_seen="2026-02-01T00:00:00Z"), "open", NOW)
    assert [s.finding.title for s in store.findings()] == ["t c", "t b", "t a"]  # by first_seen
    assert [s.finding.title for s in store.findings(since=NOW - timedelta(days=1))] == ["t c", "t a"]
    assert [s.finding.title for s in store.findings(status="open")] == ["t c", "t b"]
    store.upsert_finding(finding("b", first_seen="2026-03-01T00:00:00Z"), "resolved", NOW)
    assert [s.status for s in store.findings(since=NOW)] == ["open", "resolved", "suppressed"]


# --------------------------------------------------------------------------- lifecycle


def test_lock_is_exclusive_across_handles(open_store) -> None:
    first, second = open_store(), open_store()
    with first.lock("service"):
        with pytest.raises(StateLockedError, match="is in use by pid"), second.lock("service"):
            pass
        with second.lock("other-name"):  # locks are per name
            pass
    with second.lock("service"):  # released: the next one gets it
        pass


class NapClock:
    """A clock that only moves when the code under test sleeps: a bounded wait without waiting."""

    def __init__(self, on_nap: Callable[[int], None] = lambda n: None) -> None:
        self.now = 1_000_000.0
        self.naps: list[float] = []
        self.on_nap = on_nap

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        self.now += seconds
        self.on_nap(len(self.naps))


def test_lock_wait_gives_up_after_its_timeout(open_store) -> None:
    clock = NapClock()
    first, second = open_store(), open_store(clock=clock, sleep=clock.sleep)
    busy = pytest.raises(StateLockedError, match=r"is in use by pid .*\(waited 30s\)")
    with first.lock("delivery"), busy, second.lock("delivery", wait=True, timeout=30):
        pass
    assert clock.naps and sum(clock.naps) == pytest.approx(30)  # it did wait, and no longer than asked
    with second.lock("delivery", wait=True, timeout=30):  # free again: taken at once
        pass
    assert sum(clock.naps) == pytest.approx(30)


def test_lock_wait_takes_the_lock_once_its_holder_lets_go(open_store) -> None:
    holding: list[Any] = []
    clock = NapClock(on_nap=lambda n: holding.pop().__exit__(None, None, None) if n == 1 else None)
    # one clock for both handles: DynamoDB leases compare the holders' clocks
    first, second = open_store(clock=clock, sleep=clock.sleep), open_store(clock=clock, sleep=clock.sleep)
    holding.append(first.lock("delivery"))
    holding[0].__enter__()
    with second.lock("delivery", wait=True, timeout=30):
        assert len(clock.naps) == 1  # the first retry after the release got it
        with pytest.raises(StateLockedError), first.lock("delivery"):  # and holds it now
            pass


def test_schema_version_is_reported(open_store) -> None:
    from monitor.state.sqlite import MIGRATIONS, SqliteState

    store = open_store()
    versions = store.schema_version()
    assert versions and versions == sorted(versions) and all(isinstance(v, str) and v for v in versions)
    if isinstance(store, SqliteState):
        assert versions == sorted(MIGRATIONS)  # every registered migration applied, each once
    assert open_store().schema_version() == versions  # reopening the store migrates nothing again


# --------------------------------------------------------------------------- alert outbox


def test_outbox_lifecycle(store) -> None:
    store.outbox_put("fp1", "slack-high", {"text": "one"}, "pending", NOW)
    store.outbox_put("fp2", "file", {"text": "two"}, "held", NOW)
    store.outbox_put("fp1", "file", {"text": "one"}, "pending", NOW)
    assert [(o.fingerprint, o.notifier) for o in store.outbox_items()] == [
        ("fp1", "slack-high"), ("fp2", "file"), ("fp1", "file")]  # insertion order
    assert [o.fingerprint for o in store.outbox_items(statuses=["pending"], notifier="file")] == ["fp1"]

    store.outbox_mark("fp1", "slack-high", "sending", NOW)
    store.outbox_mark("fp1", "slack-high", "failed", NOW, error="HTTP 503")
    store.outbox_mark("fp1", "slack-high", "sending", NOW)
    store.outbox_mark("fp1", "slack-high", "sent", NOW + timedelta(minutes=1), receipt={"ts": "1.2"})
    item = store.outbox_get("fp1", "slack-high")
    assert (item.status, item.attempts, item.last_error, item.receipt) == ("sent", 2, None, {"ts": "1.2"})
    assert (item.created_at, item.sent_at) == ("2026-03-02T12:00:00Z", "2026-03-02T12:01:00Z")
    assert store.outbox_counts() == {"sent": 1, "held": 1, "pending": 1}

    first_id = item.id
    store.outbox_put("fp1", "slack-high", {"text": "one, severity raised"}, "pending", NOW + timedelta(hours=1))
    rearmed = store.outbox_get("fp1", "slack-high")
    assert (rearmed.id, rearmed.status, rearmed.attempts, rearmed.receipt) == (first_id, "pending", 0, {"ts": "1.2"})
    assert rearmed.payload == {"text": "one, severity raised"}
    assert store.outbox_get("fp9", "file") is None
    store.outbox_mark("fp9", "file", "sent", NOW)  # unknown row: nothing happens
    assert store.outbox_get("fp9", "file") is None


def test_outbox_rows_roll_back_with_their_transaction(store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.outbox_put("fp1", "file", {"text": "x"}, "pending", NOW)
        assert store.outbox_get("fp1", "file").status == "pending"
        raise RuntimeError("crash")
    assert store.outbox_items() == [] and store.outbox_counts() == {}


def test_retention_forgets_chosen_file_marks_and_outbox_rows_only(store) -> None:
    store.mark_file_processed("s3:a/", "k1", "e1")
    store.mark_file_processed("s3:a/", "k2", "e2")
    store.mark_file_processed("s3:b/", "k1", "e1")
    assert store.forget_files("s3:a/", ["k1", "missing"]) == 1
    assert store.processed_files("s3:a/") == {"k2": "e2"}
    assert store.processed_files("s3:b/") == {"k1": "e1"}  # another source's mark of the same key stays

    store.outbox_put("fp1", "file", {"text": "one"}, "pending", NOW)
    store.outbox_put("fp1", "slack", {"text": "one"}, "pending", NOW)
    store.outbox_put("fp2", "file", {"text": "two"}, "pending", NOW)
    assert store.outbox_delete([("fp1", "file"), ("fp9", "file")]) == 1
    assert [(o.fingerprint, o.notifier) for o in store.outbox_items()] == [("fp1", "slack"), ("fp2", "file")]


def test_an_outbox_digest_of_megabytes_round_trips_and_is_deleted_whole(store) -> None:
    rnd = random.Random(23)
    # a busy day's digest: random event IDs compress ~2x, so this is past 1 MB even compressed
    digest = {"kind": "digest", "findings": [
        {"fingerprint": f"{rnd.getrandbits(64):016x}", "severity": "low",
         "event_ids": [str(uuid.UUID(int=rnd.getrandbits(128), version=4)) for _ in range(100)]}
        for _ in range(600)]}
    store.outbox_put("digest:2026-03-02", "slack", digest, "pending", NOW)
    store.outbox_mark("digest:2026-03-02", "slack", "sending", NOW)
    store.outbox_mark("digest:2026-03-02", "slack", "sent", NOW, receipt={"ts": "1.2"})
    (item,) = store.outbox_items()
    assert (item.payload, item.status, item.attempts) == (digest, "sent", 1)
    assert store.outbox_delete([("digest:2026-03-02", "slack")]) == 1
    assert store.outbox_get("digest:2026-03-02", "slack") is None and store.outbox_items() == []
    assert list(store.iter_json("outbox-payload")) == []  # no payload document outlives its row

"""Documents past DynamoDB's 400 KB item limit: compressed, split into parts, flipped atomically (moto over HTTP)."""

from __future__ import annotations

import json
import random
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor.state.dynamodb import DOC_PARTS, OUTBOX_PAYLOADS, DynamoState, ensure_table

ITEM_LIMIT = 400 * 1024
NOW = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture
def st(dynamodb_client: Any) -> DynamoState:
    table = f"rolewatch-{uuid.uuid4().hex[:8]}"
    ensure_table(dynamodb_client, table)
    return DynamoState(dynamodb_client, table)


def posture_like(roles: int, seed: int) -> dict[str, Any]:
    """A posture inventory shaped like posture/latest; random ids keep it from compressing to nothing."""
    rnd = random.Random(seed)
    out = []
    for n in range(roles):
        account = f"{rnd.randrange(10**12):012d}"
        out.append({
            "arn": f"arn:aws:iam::{account}:role/team-{n}-{rnd.getrandbits(64):016x}",
            "role_id": f"AROA{rnd.getrandbits(80):020X}",
            "created": f"2025-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}T00:00:00Z",
            "trust_policy": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow",
                "Principal": {"AWS": [f"arn:aws:iam::{rnd.randrange(10**12):012d}:root" for _ in range(3)]},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": f"{rnd.getrandbits(128):032x}"}},
            }]},
            "tags": {"owner": f"user{rnd.randrange(10**6)}", "cost": rnd.random()},
        })
    return {"generated_at": "2026-11-29T00:00:00Z", "roles": out}


def scan(st: DynamoState) -> list[dict[str, Any]]:
    pages = st._ddb.get_paginator("scan").paginate(TableName=st.table)
    return [item for page in pages for item in page["Items"]]


def item_size(raw: dict[str, Any]) -> int:
    """DynamoDB's item size: attribute names plus values (numbers counted generously)."""
    size = 0
    for name, value in raw.items():
        ((kind, v),) = value.items()
        size += len(name.encode())
        size += len(v) if kind == "B" else len(v.encode()) if kind == "S" else 21 if kind == "N" else 1
    return size


def part_items(st: DynamoState) -> list[dict[str, Any]]:
    return [i for i in scan(st) if i["pk"]["S"].startswith(DOC_PARTS)]


def test_a_5mb_document_round_trips_in_items_under_the_limit(st: DynamoState) -> None:
    doc = posture_like(10_000, seed=1)
    assert len(json.dumps(doc)) > 5_000_000
    st.put_json("posture", "latest", doc)
    assert st.get_json("posture", "latest") == doc
    assert DynamoState(st._ddb, st.table).get_json("posture", "latest") == doc  # another handle, nothing cached
    items = scan(st)
    assert len(part_items(st)) >= 2  # compression alone did not make it fit: the split path ran
    assert max(item_size(i) for i in items) < ITEM_LIMIT


def test_iter_json_returns_whole_documents_only(st: DynamoState) -> None:
    big, other = posture_like(6000, seed=2), posture_like(6000, seed=3)
    st.put_json("posture", "latest", big)
    st.put_json("posture", "a-small", {"n": 1})
    st.put_json("posture-archive", "latest", other)  # a namespace whose name starts like this one
    assert list(st.iter_json("posture")) == [("a-small", {"n": 1}), ("latest", big)]
    assert list(st.iter_json("posture-archive")) == [("latest", other)]


def test_overwriting_a_large_document_leaves_no_stale_parts(st: DynamoState) -> None:
    st.put_json("posture", "latest", posture_like(6000, seed=4))
    newer = posture_like(5000, seed=5)
    st.put_json("posture", "latest", newer)
    assert st.get_json("posture", "latest") == newer
    versions = {i["version"]["S"] for i in part_items(st)}
    head = st._get("doc#posture", "latest")
    assert head is not None and versions == {head["version"]}
    st.put_json("posture", "latest", {"roles": []})  # small again: one plain item, every part gone
    assert st.get_json("posture", "latest") == {"roles": []}
    assert part_items(st) == []
    assert list(st.iter_json("posture")) == [("latest", {"roles": []})]


def test_a_crash_before_the_head_flip_leaves_the_old_document(st: DynamoState) -> None:
    old = posture_like(6000, seed=6)
    st.put_json("posture", "latest", old)
    head, parts = st._doc_items("posture", "latest", posture_like(7000, seed=7))
    st._write_doc_parts(parts)  # the crash: new parts written, head never flipped
    assert len(part_items(st)) > len(parts)
    reader = DynamoState(st._ddb, st.table)
    assert reader.get_json("posture", "latest") == old
    assert list(reader.iter_json("posture")) == [("latest", old)]
    newest = posture_like(6500, seed=8)
    st.put_json("posture", "latest", newest)  # the next write sweeps the orphans too
    current = st._get("doc#posture", "latest")
    assert current is not None and {i["version"]["S"] for i in part_items(st)} == {current["version"]}
    assert head["version"] != current["version"]
    assert reader.get_json("posture", "latest") == newest


def test_a_crash_while_writing_a_small_document_over_a_large_one_keeps_the_large_one(st: DynamoState) -> None:
    old = posture_like(6000, seed=9)
    st.put_json("posture", "latest", old)
    parts_before = part_items(st)
    head, parts = st._doc_items("posture", "latest", {"roles": []})
    assert parts == [] and "value" in head
    assert st.get_json("posture", "latest") == old and part_items(st) == parts_before


def test_documents_in_the_original_single_item_layout_still_read(st: DynamoState) -> None:
    st._ddb.put_item(TableName=st.table, Item={"pk": {"S": "doc#baselines"}, "sk": {"S": "ips"},
                                               "value": {"S": '{"role": ["10.0.0.0/24"]}'},
                                               "updated_at": {"S": "2026-01-01T00:00:00Z"}})
    assert st.get_json("baselines", "ips") == {"role": ["10.0.0.0/24"]}
    assert list(st.iter_json("baselines")) == [("ips", {"role": ["10.0.0.0/24"]})]
    big = posture_like(6000, seed=10)
    st.put_json("baselines", "ips", big)  # replaced by a split document: the plain value is gone with it
    head = st._get("doc#baselines", "ips")
    assert head is not None and "value" not in head and st.get_json("baselines", "ips") == big


def test_a_compressible_large_document_is_one_compressed_item(st: DynamoState) -> None:
    doc = {"roles": [{"arn": f"arn:aws:iam::111111111111:role/r{n}", "trust": "same"} for n in range(20000)]}
    st.put_json("posture", "latest", doc)
    head = st._get("doc#posture", "latest")
    assert head is not None and "zbody" in head and "value" not in head and part_items(st) == []
    assert st.get_json("posture", "latest") == doc


def test_delete_removes_the_parts_too(st: DynamoState) -> None:
    st.put_json("posture", "latest", posture_like(6000, seed=11))
    st.delete_json("posture", "latest")
    assert st.get_json("posture", "latest") is None and part_items(st) == [] and scan(st) == []


def test_a_missing_part_is_reported_not_returned_as_a_partial_document(st: DynamoState) -> None:
    st.put_json("posture", "latest", posture_like(6000, seed=12))
    victim = part_items(st)[0]
    st._ddb.delete_item(TableName=st.table, Key={"pk": victim["pk"], "sk": victim["sk"]})
    with pytest.raises(ValueError, match="posture/latest is damaged"):
        st.get_json("posture", "latest")


def test_a_reader_whose_head_was_replaced_reads_the_new_document(st: DynamoState) -> None:
    st.put_json("posture", "latest", posture_like(6000, seed=13))
    stale_head = st._get("doc#posture", "latest")
    newer = posture_like(6000, seed=14)
    st.put_json("posture", "latest", newer)  # deletes the parts stale_head names
    assert stale_head is not None
    assert st._read_doc("posture", "latest", stale_head) == newer


def test_large_documents_in_a_transaction_commit_together_or_not_at_all(st: DynamoState) -> None:
    big = posture_like(6000, seed=15)
    with pytest.raises(RuntimeError), st.transaction():
        st.put_json("posture", "latest", big)
        assert st.get_json("posture", "latest") == big  # reads inside see the buffered parts
        raise RuntimeError("crash before commit")
    assert st.get_json("posture", "latest") is None and scan(st) == []
    with st.transaction():
        st.put_json("posture", "latest", posture_like(6000, seed=16))
        st.put_json("posture", "latest", big)  # the first version's parts never reach the table
    assert st.get_json("posture", "latest") == big
    head = st._get("doc#posture", "latest")
    assert head is not None and {i["version"]["S"] for i in part_items(st)} == {head["version"]}


def test_a_crash_mid_commit_leaves_the_old_document_readable(st: DynamoState) -> None:
    old = posture_like(6000, seed=17)
    st.put_json("posture", "latest", old)
    flushes: list[int] = []
    real_batch_write = st._batch_write

    def crash_after_the_first_flush(ops: list[Any]) -> None:
        if flushes:
            raise ConnectionError("process killed mid-commit")
        flushes.append(len(ops))
        real_batch_write(ops)

    st._batch_write = crash_after_the_first_flush  # type: ignore[method-assign]
    with pytest.raises(ConnectionError), st.transaction():
        st.put_json("posture", "latest", posture_like(7000, seed=18))
    assert flushes and flushes[0] > 0  # the new parts did reach the table before the crash
    assert DynamoState(st._ddb, st.table).get_json("posture", "latest") == old


def test_an_outbox_payload_past_the_item_limit_is_stored_compressed(st: DynamoState) -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 3, 2, tzinfo=UTC)
    rnd = random.Random(19)
    digest = {"kind": "digest", "findings": [
        {"fingerprint": f"{rnd.getrandbits(64):016x}", "title": "role assumed from a new IP " * 4,
         "event_ids": [f"{rnd.getrandbits(32):08x}-0000-4000-8000-000000000000" for _ in range(20)]}
        for _ in range(1500)]}
    assert len(json.dumps(digest)) > ITEM_LIMIT
    st.outbox_put("digest:2026-03-02", "slack", digest, "pending", now)
    st.outbox_mark("digest:2026-03-02", "slack", "sending", now)  # read, changed and written back whole
    got = st.outbox_get("digest:2026-03-02", "slack")
    assert got is not None and got.payload == digest and got.attempts == 1
    assert [o.payload for o in st.outbox_items(["sending"])] == [digest]
    assert max(item_size(i) for i in scan(st)) < ITEM_LIMIT
    st.outbox_put("digest:2026-03-02", "slack", {"kind": "digest", "findings": []}, "pending", now)
    raw = st._get("outbox#slack", "digest:2026-03-02")
    assert raw is not None and "payload_z" not in raw
    assert st.outbox_get("digest:2026-03-02", "slack").payload == {"kind": "digest", "findings": []}  # type: ignore[union-attr]


def busy_digest(findings: int, seed: int) -> dict[str, Any]:
    """A daily digest of a busy organisation: low findings with 100 random event IDs each (compresses ~2x)."""
    rnd = random.Random(seed)
    return {"kind": "digest", "period": "2026-03-02", "findings": [
        {"fingerprint": f"{rnd.getrandbits(64):016x}", "detector": "failed_assume_role", "severity": "low",
         "title": f"AssumeRole denied for role team-{n}",
         "event_ids": [str(uuid.UUID(int=rnd.getrandbits(128), version=4)) for _ in range(100)]}
        for n in range(findings)]}


def outbox_doc_heads(st: DynamoState) -> list[dict[str, Any]]:
    return [i for i in scan(st) if i["pk"]["S"] == f"doc#{OUTBOX_PAYLOADS}"]


@pytest.fixture(scope="module")
def digest() -> dict[str, Any]:
    doc = busy_digest(600, seed=20)
    assert len(zlib.compress(json.dumps(doc).encode(), 6)) > 1_000_000  # past what payload_z could hold
    return doc


def test_a_digest_past_the_compressed_limit_round_trips_through_parts(st: DynamoState,
                                                                       digest: dict[str, Any]) -> None:
    st.outbox_put("digest:2026-03-02", "slack", digest, "pending", NOW)
    st.outbox_put("fp1", "slack", {"text": "small"}, "pending", NOW)
    assert [(o.fingerprint, o.payload) for o in st.outbox_items()] == [
        ("digest:2026-03-02", digest), ("fp1", {"text": "small"})]
    other = DynamoState(st._ddb, st.table)  # another handle: nothing cached, read from the table
    assert other.outbox_get("digest:2026-03-02", "slack").payload == digest  # type: ignore[union-attr]
    assert [o.payload for o in other.outbox_items(["pending"], notifier="slack")] == [digest, {"text": "small"}]
    row = st._get("outbox#slack", "digest:2026-03-02")
    assert row is not None and "payload" not in row and "payload_z" not in row
    assert row["payload_ref"] == '["slack","digest:2026-03-02"]'
    assert len(part_items(st)) >= 3
    assert max(item_size(i) for i in scan(st)) < ITEM_LIMIT


def test_status_updates_keep_an_out_of_line_payload_untouched(st: DynamoState, digest: dict[str, Any]) -> None:
    st.outbox_put("digest:2026-03-02", "slack", digest, "pending", NOW)
    before = sorted((i["sk"]["S"], i["data"]["B"]) for i in part_items(st))
    head_before = outbox_doc_heads(st)
    st.outbox_mark("digest:2026-03-02", "slack", "sending", NOW)
    st.outbox_mark("digest:2026-03-02", "slack", "failed", NOW, error="HTTP 503")
    st.outbox_mark("digest:2026-03-02", "slack", "sending", NOW)
    st.outbox_mark("digest:2026-03-02", "slack", "sent", NOW, receipt={"ts": "1.2"})
    got = st.outbox_get("digest:2026-03-02", "slack")
    assert got is not None and (got.status, got.attempts, got.receipt) == ("sent", 2, {"ts": "1.2"})
    assert got.payload == digest
    # the same version's parts and head: marking rewrote the row only, never the payload document
    assert sorted((i["sk"]["S"], i["data"]["B"]) for i in part_items(st)) == before
    assert outbox_doc_heads(st) == head_before


def test_deleting_or_pruning_an_outbox_row_deletes_its_payload_parts(st: DynamoState,
                                                                     digest: dict[str, Any]) -> None:
    from monitor.config import Config
    from monitor.retention import prune_outbox

    st.outbox_put("digest:2026-03-02", "slack", digest, "pending", NOW)
    st.outbox_put("digest:2026-03-03", "slack", busy_digest(600, seed=21), "pending", NOW)
    st.outbox_put("fp1", "slack", {"text": "small"}, "pending", NOW)
    assert st.outbox_delete([("digest:2026-03-02", "slack")]) == 1
    assert st.outbox_get("digest:2026-03-02", "slack") is None
    assert [json.loads(i["sk"]["S"]) for i in outbox_doc_heads(st)] == [["slack", "digest:2026-03-03"]]
    assert {i["pk"]["S"] for i in part_items(st)} == {DOC_PARTS + '["outbox-payload","[\\"slack\\",\\"digest:2026-03-03\\"]"]'}

    st.outbox_mark("digest:2026-03-03", "slack", "sent", NOW)
    assert prune_outbox(Config.model_validate({}), st, NOW + timedelta(days=500)) == 1  # retention
    assert outbox_doc_heads(st) == [] and part_items(st) == []
    assert [i["sk"]["S"] for i in scan(st)] == ["fp1"]


def test_a_digest_shrinking_back_inline_drops_its_document(st: DynamoState, digest: dict[str, Any]) -> None:
    st.outbox_put("digest:2026-03-02", "slack", digest, "pending", NOW)
    st.outbox_put("digest:2026-03-02", "slack", {"kind": "digest", "findings": []}, "pending", NOW)
    row = st._get("outbox#slack", "digest:2026-03-02")
    assert row is not None and "payload_ref" not in row and json.loads(row["payload"])["findings"] == []
    assert outbox_doc_heads(st) == [] and part_items(st) == []
    bigger = busy_digest(700, seed=22)
    st.outbox_put("digest:2026-03-02", "slack", digest, "pending", NOW)
    st.outbox_put("digest:2026-03-02", "slack", bigger, "pending", NOW)  # replaced in place, old parts swept
    assert st.outbox_get("digest:2026-03-02", "slack").payload == bigger  # type: ignore[union-attr]
    head = outbox_doc_heads(st)
    assert len(head) == 1 and {i["version"]["S"] for i in part_items(st)} == {head[0]["version"]["S"]}


def test_small_outbox_rows_keep_their_inline_layout(st: DynamoState) -> None:
    st.outbox_put("fp1", "slack", {"text": "one"}, "pending", NOW)
    ((raw,),) = [[i for i in scan(st)]]
    assert raw["payload"] == {"S": '{"text": "one"}'}
    assert not {"payload_z", "payload_ref"} & raw.keys()
    assert outbox_doc_heads(st) == [] and part_items(st) == []


def test_an_out_of_line_digest_commits_with_its_transaction_or_not_at_all(st: DynamoState,
                                                                          digest: dict[str, Any]) -> None:
    with pytest.raises(RuntimeError), st.transaction():
        st.outbox_put("digest:2026-03-02", "slack", digest, "pending", NOW)
        assert st.outbox_get("digest:2026-03-02", "slack").payload == digest  # type: ignore[union-attr]
        raise RuntimeError("crash before commit")
    assert scan(st) == []
    with st.transaction():
        st.outbox_put("digest:2026-03-02", "slack", digest, "pending", NOW)
    assert DynamoState(st._ddb, st.table).outbox_get("digest:2026-03-02", "slack").payload == digest  # type: ignore[union-attr]
    with st.transaction():
        st.outbox_delete([("digest:2026-03-02", "slack")])
    assert scan(st) == []


def test_a_row_whose_payload_document_is_missing_is_reported(st: DynamoState, digest: dict[str, Any]) -> None:
    st.outbox_put("digest:2026-03-02", "slack", digest, "pending", NOW)
    (head,) = outbox_doc_heads(st)
    st._ddb.delete_item(TableName=st.table, Key={"pk": head["pk"], "sk": head["sk"]})
    with pytest.raises(ValueError, match="outbox row slack/digest:2026-03-02 is damaged"):
        st.outbox_items()

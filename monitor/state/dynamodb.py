"""DynamoDB state: the StateStore interface for deployments without a durable disk (ECS, Lambda, CronJobs).

Single-table design. Every item has `pk` / `sk`; items that must be listed in order carry
`gsi1pk` / `gsi1sk` for the one global secondary index; `expires_at` is the TTL attribute.

    item            pk                  sk              gsi1pk              gsi1sk
    checkpoint      ckpt#<source>       <key>
    processed file  files#<source>      <path>
    event           event#<event_id>    -               events#<YYYY-MM-DD> <event_time>#<event_id>
    event day       eventdays           <YYYY-MM-DD>
    coverage        cov#<run_id>        <seq>           cov                 <seq>
    run             run#<run_id>        -               run                 <started_at>#<seq>
    finding         finding#<fp>        -               finding             <updated_at>#<fp>
    outbox row      outbox#<notifier>   <fingerprint>   outbox              <seq>
    outbox payload  doc#outbox-payload  ["<notifier>","<fingerprint>"]   (a document, only when too big inline)
    document        doc#<namespace>     <key>
    document part   docpart#<ns+key>    <version>#<n>
    lock            lock#<name>         -

The event item doubles as the seen-ID record (TTL: event time + `seen_retention_days`), so
`unseen_event_ids` is one consistent BatchGetItem.

Transactions: DynamoDB's own transactions stop at 100 items, a batch of CloudTrail records is
larger. So `transaction()` buffers writes (reads inside see them) and flushes them on success
with checkpoints and processed-file marks written last: a crash mid-flush leaves the checkpoint
behind, the batch is read again, and the event items already written keep it from counting twice
-- the same guarantee the SQLite backend gives. Outbox rows go before the findings they alert, so a
crash mid-flush cannot leave a stored finding whose alert was never queued. An exception discards
the buffer. Outbox rows are flushed with conditional writes (`_put_outbox`): another process may
deliver a row between the transaction's read and its flush, and that delivery must not be undone.

Documents (`put_json`) must fit DynamoDB's 400 KB item limit, and a posture inventory of a whole
Organization does not. Up to ~350 KB of JSON stays one item with the text in `value` (the original
layout, so older releases still read it); larger JSON is zlib-compressed into `zbody`; still too big,
the compressed bytes are split into part items under a fresh version id in the document's own part
partition, and the head item (`version`, `parts`, `sha256`) is written only after every part: the
head write is atomic, so a reader sees the old or the new document, never a mix. Old versions' parts
are deleted after the flip; if that is cut short, the next write of the document deletes them.
An outbox row's payload (a digest holds a whole period's findings) follows the same size rules:
inline `payload`, compressed `payload_z`, or, past both, a document in the `outbox-payload`
namespace that the row names in `payload_ref`, written before the row and deleted with it.

Locks are conditional writes with an expiry, renewed by a background thread while held; a holder
that dies without releasing is taken over once its lease runs out.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from monitor.events.schema import coerce, empty_frame, frame_from_rows
from monitor.findings import Finding, iso
from monitor.state.base import (
    Coverage,
    OutboxItem,
    ReentrantTransactions,
    StateLockedError,
    StoredFinding,
    merge_seen_again,
    retry_until,
    storable,
)

log = logging.getLogger("rolewatch.state.dynamodb")

GSI = "gsi1"
NO_TIME_DAY = "none"  # bucket for events without a parseable time
_ser, _de = TypeSerializer(), TypeDeserializer()
_seq = itertools.count()

Key = tuple[str, str]
DeliveryState = tuple[str, int, str | None]  # an outbox row's status, attempts, sent_at
_PAYLOAD_ATTRS = ("payload", "payload_z", "payload_ref")

# the item limit is 400 KB including attribute names and keys (up to ~3 KB here): 350 KB of value leaves room
DOC_INLINE_MAX = 350_000
DOC_PART_BYTES = 350_000
DOC_PARTS = "docpart#"
OUTBOX_PAYLOADS = "outbox-payload"  # document namespace of outbox payloads too big for their row


def _outbox_ref(notifier: str, fingerprint: str) -> str:
    # JSON-quoted for the same reason as the part partition: notifier names and fingerprints may hold '#'
    return json.dumps([notifier, fingerprint], separators=(",", ":"))


def _doc_parts_pk(namespace: str, key: str) -> str:
    # JSON-quoted so a '#' inside a namespace or key cannot make two documents share a part partition
    return DOC_PARTS + json.dumps([namespace, key], separators=(",", ":"))


class _StaleHead(Exception):
    """The parts a head item names are gone: a writer replaced the document between our two reads."""


def _delivery_state(item: dict[str, Any] | None) -> DeliveryState | None:
    return None if item is None else (item["status"], int(item["attempts"]), item.get("sent_at"))


def _delivery_condition(read: DeliveryState | None) -> dict[str, Any]:
    """put_item arguments: write only if the row is as `read` saw it (None: still absent)."""
    if read is None:
        return {"ConditionExpression": "attribute_not_exists(pk)"}
    status, attempts, sent_at = read
    values = {":st": {"S": status}, ":at": {"N": str(attempts)}}
    condition = "#st = :st AND attempts = :at AND "
    if sent_at is None:
        condition += "attribute_not_exists(sent_at)"
    else:  # a re-armed row sent again since has the same status, maybe the same attempts, not the same time
        condition += "sent_at = :sa"
        values[":sa"] = {"S": sent_at}
    return {"ConditionExpression": condition, "ExpressionAttributeNames": {"#st": "status"},
            "ExpressionAttributeValues": values}


def _now_iso() -> str:
    return iso(datetime.now(UTC))  # type: ignore[return-value]


def _epoch(ts: datetime) -> int:
    return int(ts.timestamp())


def _sequence() -> str:
    """Monotonic within a process and roughly ordered across processes: insertion order for ties."""
    return f"{time.time_ns():020d}{next(_seq) % 1000:03d}"


def _plain(value: Any) -> Any:
    """DynamoDB Decimals and numpy scalars -> plain Python for JSON."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        return value.item()
    return value


def ensure_table(client: Any, table: str) -> None:
    """Create the state table (on-demand billing, GSI, TTL) if it does not exist yet."""
    try:
        client.describe_table(TableName=table)
        return
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
    try:
        client.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "gsi1pk", "gsi1sk")],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[{
                "IndexName": GSI,
                "KeySchema": [{"AttributeName": "gsi1pk", "KeyType": "HASH"},
                              {"AttributeName": "gsi1sk", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"},
            }],
            SSESpecification={"Enabled": True},
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":  # another instance created it first
            raise
    client.get_waiter("table_exists").wait(TableName=table)
    client.update_time_to_live(TableName=table,
                               TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})
    log.info("created DynamoDB state table %s", table)


class DynamoState(ReentrantTransactions):
    def __init__(self, client: Any, table: str, *, seen_days: int = 30, findings_days: int = 400,
                 clock: Callable[[], float] = time.time, lock_lease_seconds: float = 120,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._ddb = client
        self.table = table
        self.path_or_table = f"dynamodb://{table}"
        self.seen_days = seen_days
        self.findings_days = findings_days
        self._clock = clock
        self._lease = lock_lease_seconds
        self._sleep = sleep  # between tries of a lock held by another process
        self._mutex = threading.RLock()
        self._buffer: dict[Key, dict[str, Any] | None] | None = None
        # outbox rows written in the open transaction -> their delivery state as read from the table
        self._outbox_read: dict[Key, DeliveryState | None] = {}
        self._depth = 0

    @classmethod
    def from_config(cls, config: Any) -> DynamoState:
        from monitor.aws import client

        ddb = client("dynamodb", config.aws)
        ensure_table(ddb, config.state.dynamodb_table)
        return cls(ddb, config.state.dynamodb_table, seen_days=config.state.seen_retention_days,
                   findings_days=config.state.findings_retention_days)

    # ------------------------------------------------------------------ low level

    def _put(self, item: dict[str, Any]) -> None:
        with self._mutex:
            if self._buffer is not None:
                self._buffer[(item["pk"], item["sk"])] = item
                return
        self._ddb.put_item(TableName=self.table, Item={k: _ser.serialize(v) for k, v in item.items()})

    def _delete(self, pk: str, sk: str) -> None:
        with self._mutex:
            if self._buffer is not None:
                self._buffer[(pk, sk)] = None
                return
        self._ddb.delete_item(TableName=self.table, Key={"pk": {"S": pk}, "sk": {"S": sk}})

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        return self._get_many([(pk, sk)]).get((pk, sk))

    def _get_many(self, keys: Iterable[Key]) -> dict[Key, dict[str, Any]]:
        out: dict[Key, dict[str, Any]] = {}
        remote: list[Key] = []
        with self._mutex:
            buffered = self._buffer or {}
            for key in dict.fromkeys(keys):
                if key in buffered:
                    if buffered[key] is not None:
                        out[key] = buffered[key]  # type: ignore[assignment]
                else:
                    remote.append(key)
        for i in range(0, len(remote), 100):
            request: dict[str, Any] = {self.table: {
                "Keys": [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in remote[i : i + 100]],
                "ConsistentRead": True,
            }}
            for attempt in itertools.count():
                resp = self._ddb.batch_get_item(RequestItems=request)
                for raw in resp["Responses"].get(self.table, []):
                    item = self._decode(raw)
                    out[(item["pk"], item["sk"])] = item
                request = resp.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(0.05 * 2**attempt, 2))  # throttled: DynamoDB asks to back off
        return out

    @staticmethod
    def _decode(raw: dict[str, Any]) -> dict[str, Any]:
        return {k: _plain(_de.deserialize(v)) for k, v in raw.items()}

    def _query(self, partition: str, lo: str | None = None, hi: str | None = None, *, index: bool = False,
               descending: bool = False) -> Iterator[dict[str, Any]]:
        """Items of one partition with lo <= range key < hi, in range-key order, overlaid with the buffer."""
        pk_name, sk_name = ("gsi1pk", "gsi1sk") if index else ("pk", "sk")
        names = {"#p": pk_name}
        values: dict[str, Any] = {":p": {"S": partition}}
        cond = "#p = :p"
        if lo is not None and hi is not None:
            cond += " AND #s BETWEEN :lo AND :hi"
        elif lo is not None:
            cond += " AND #s >= :lo"
        elif hi is not None:
            cond += " AND #s < :hi"
        if lo is not None or hi is not None:
            names["#s"] = sk_name
        if lo is not None:
            values[":lo"] = {"S": lo}
        if hi is not None:
            values[":hi"] = {"S": hi}
        kwargs: dict[str, Any] = {"TableName": self.table, "KeyConditionExpression": cond,
                                  "ExpressionAttributeNames": names, "ExpressionAttributeValues": values,
                                  "ScanIndexForward": not descending}
        if index:
            kwargs["IndexName"] = GSI
        else:
            kwargs["ConsistentRead"] = True

        def wanted(item: dict[str, Any]) -> bool:
            key = item.get(sk_name)
            return (item.get(pk_name) == partition and key is not None
                    and (lo is None or key >= lo) and (hi is None or key < hi))

        with self._mutex:
            buffered = dict(self._buffer or {})
        if not buffered:
            for page in self._ddb.get_paginator("query").paginate(**kwargs):
                for raw in page["Items"]:
                    item = self._decode(raw)
                    if wanted(item):
                        yield item
            return
        items = [self._decode(raw) for page in self._ddb.get_paginator("query").paginate(**kwargs)
                 for raw in page["Items"]]
        items = [i for i in items if (i["pk"], i["sk"]) not in buffered and wanted(i)]
        items += [i for i in buffered.values() if i is not None and wanted(i)]
        yield from sorted(items, key=lambda i: i[sk_name], reverse=descending)

    def _batch_write(self, ops: list[tuple[Key, dict[str, Any] | None]]) -> None:
        for i in range(0, len(ops), 25):
            requests = []
            for (pk, sk), item in ops[i : i + 25]:
                if item is None:
                    requests.append({"DeleteRequest": {"Key": {"pk": {"S": pk}, "sk": {"S": sk}}}})
                else:
                    requests.append({"PutRequest": {"Item": {k: _ser.serialize(v) for k, v in item.items()}}})
            pending: dict[str, Any] = {self.table: requests}
            for attempt in itertools.count():
                resp = self._ddb.batch_write_item(RequestItems=pending)
                pending = resp.get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(min(0.05 * 2**attempt, 2))

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        pass  # the client holds no state worth closing; kept for the interface

    def schema_version(self) -> list[str]:
        return ["dynamodb_0001_single_table"]

    def _begin(self) -> None:
        self._buffer = {}
        self._outbox_read = {}

    def _rollback(self) -> None:
        self._buffer = None
        self._outbox_read = {}

    def _commit(self) -> None:
        assert self._buffer is not None
        ops = list(self._buffer.items())
        outbox_read, self._outbox_read = self._outbox_read, {}
        self._buffer = None

        def stage(op: tuple[Key, dict[str, Any] | None]) -> int:
            (pk, _), item = op
            if pk.startswith(DOC_PARTS):
                # a document's new parts before the head that names them, the old ones after it
                return 0 if item is not None else 6
            if pk.startswith("doc#"):
                # heads before the outbox rows that reference them, and deleted only after those rows
                return 1 if item is not None else 4
            if pk.startswith("outbox#"):
                # alerts before the findings they are for: a crash between leaves an alert queued for a
                # finding the next detection stores again, never a stored finding that is not alerted
                return 2
            # progress markers after the data: a crash before them means the batch is read again
            return 5 if pk.startswith(("ckpt#", "files#")) else 3

        for n in range(7):
            batch = [op for op in ops if stage(op) == n]
            for key, item in batch:
                if item is not None and key in outbox_read:
                    self._put_outbox(item, outbox_read[key])
            self._batch_write([(key, item) for key, item in batch if item is None or key not in outbox_read])

    @contextmanager
    def lock(self, name: str = "service", *, wait: bool = False, timeout: float | None = None) -> Iterator[None]:
        """wait: retry until the lock is free (or its holder's lease ran out); with `timeout`, give up after
        that many seconds."""
        key = {"pk": {"S": f"lock#{name}"}, "sk": {"S": "-"}}
        holder = f"pid {os.getpid()} on {socket.gethostname()}"
        token = uuid.uuid4().hex

        def write(take_over: bool) -> None:
            values = {":me": {"S": token}}
            condition = "#o = :me"
            if take_over:  # free, expired, or already ours
                condition = "attribute_not_exists(pk) OR expires_at < :now OR #o = :me"
                values[":now"] = {"N": str(int(self._clock()))}
            self._ddb.put_item(
                TableName=self.table,
                Item={**key, "owner": {"S": token}, "holder": {"S": holder},
                      "expires_at": {"N": str(int(self._clock() + self._lease))}},
                ConditionExpression=condition, ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues=values,
            )

        def attempt() -> bool:
            try:
                write(take_over=True)
                return True
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                return False

        if not retry_until(attempt, wait=wait, timeout=timeout, interval=min(5.0, self._lease / 4),
                           clock=self._clock, sleep=self._sleep):
            current = self._ddb.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item", {})
            other = current.get("holder", {}).get("S", "another process")
            waited = f" (waited {timeout:g}s)" if wait else ""
            raise StateLockedError(
                f"state {self.path_or_table} is in use by {other}{waited}; wait for it to finish or stop it "
                f"(its lease expires within {int(self._lease)}s if it died)"
            )

        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self._lease / 3):
                try:
                    write(take_over=False)
                except Exception:  # noqa: BLE001 - a missed renewal is retried; a lost lease is reported
                    log.exception("could not renew the state lock %s", name)

        renewer = threading.Thread(target=renew, name=f"rolewatch-lock-{name}", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join(timeout=10)
            try:
                self._ddb.delete_item(TableName=self.table, Key=key, ConditionExpression="#o = :me",
                                      ExpressionAttributeNames={"#o": "owner"},
                                      ExpressionAttributeValues={":me": {"S": token}})
            except ClientError:
                log.warning("state lock %s was taken over before release", name)

    # ------------------------------------------------------------------ checkpoints

    def get_checkpoint(self, source: str, key: str = "position") -> Any | None:
        item = self._get(f"ckpt#{source}", key)
        return json.loads(item["value"]) if item else None

    def set_checkpoint(self, source: str, value: Any, key: str = "position") -> None:
        self._put({"pk": f"ckpt#{source}", "sk": key, "value": json.dumps(value, default=str),
                   "updated_at": _now_iso()})

    def processed_files(self, source: str) -> dict[str, str]:
        return {i["sk"]: i["version"] for i in self._query(f"files#{source}")}

    def mark_file_processed(self, source: str, path: str, version: str) -> None:
        self._put({"pk": f"files#{source}", "sk": path, "version": version, "processed_at": _now_iso()})

    def forget_files(self, source: str, paths: Iterable[str]) -> int:
        keys = [(f"files#{source}", p) for p in paths]
        with self.transaction():
            found = self._get_many(keys)
            for pk, sk in found:
                self._delete(pk, sk)
        return len(found)

    # ------------------------------------------------------------------ events

    def unseen_event_ids(self, event_ids: Iterable[str]) -> set[str]:
        ids = list(dict.fromkeys(event_ids))
        found = self._get_many((f"event#{i}", "-") for i in ids)
        return {i for i in ids if (f"event#{i}", "-") not in found}

    def add_events(self, events: pd.DataFrame) -> int:
        if events.empty:
            return 0
        df = storable(events)
        rows = list(dict((r["event_id"], r) for r in reversed(df.to_dict("records"))).values())[::-1]
        stored_at = _now_iso()
        with self.transaction():
            new = self.unseen_event_ids(r["event_id"] for r in rows)
            days = set()
            for row in rows:
                if row["event_id"] not in new:
                    continue
                when = row["event_time"]
                day = when[:10] if when else NO_TIME_DAY
                days.add(day)
                expires = (datetime.fromisoformat(when.replace("Z", "+00:00")) if when
                           else datetime.now(UTC)) + timedelta(days=self.seen_days)
                self._put({"pk": f"event#{row['event_id']}", "sk": "-", "gsi1pk": f"events#{day}",
                           "gsi1sk": f"{when or ''}#{row['event_id']}", "expires_at": _epoch(expires),
                           "body": json.dumps({k: _plain(v) for k, v in row.items()}, default=str),
                           "stored_at": stored_at})
            for day in days:
                self._put({"pk": "eventdays", "sk": day})
        return len(new)

    def _days(self, since: datetime | None, until: datetime | None) -> list[str]:
        days = [i["sk"] for i in self._query("eventdays")]
        lo = iso(since)[:10] if since is not None else None  # type: ignore[index]
        hi = iso(until)[:10] if until is not None else None  # type: ignore[index]
        out = []
        for d in days:
            if d == NO_TIME_DAY:
                if lo is None and hi is None:
                    out.append(d)
            elif (lo is None or d >= lo) and (hi is None or d <= hi):
                out.append(d)
        return out

    def load_events(self, since: datetime | None = None, until: datetime | None = None) -> pd.DataFrame:
        lo = iso(since) if since is not None else None
        hi = iso(until) if until is not None else None
        rows = [json.loads(item["body"]) for day in self._days(since, until)
                for item in self._query(f"events#{day}", lo, hi, index=True)]
        if not rows:
            return empty_frame()
        rows.sort(key=lambda r: (r.get("event_time") or "", r["event_id"]))
        return coerce(frame_from_rows(rows))

    def prune(self, now: datetime, *, seen_days: int | None = None, findings_days: int | None = None) -> dict[str, int]:
        event_cutoff = iso(now - timedelta(days=seen_days or self.seen_days))
        old_cutoff = iso(now - timedelta(days=findings_days or self.findings_days))
        out = {"events": 0, "findings": 0, "coverage": 0}
        with self.transaction():
            for day in self._days(None, now - timedelta(days=seen_days or self.seen_days)):
                if day == NO_TIME_DAY:
                    continue
                for item in self._query(f"events#{day}", None, event_cutoff, index=True):
                    self._delete(item["pk"], item["sk"])
                    out["events"] += 1
                if day < event_cutoff[:10]:  # type: ignore[index]
                    self._delete("eventdays", day)
            for item in self._query("finding", None, old_cutoff, index=True):
                self._delete(item["pk"], item["sk"])
                out["findings"] += 1
            for run in self._query("run", None, old_cutoff, index=True):
                for cov in self._query(f"cov#{run['run_id']}"):
                    self._delete(cov["pk"], cov["sk"])
                    out["coverage"] += 1
        return out

    # ------------------------------------------------------------------ coverage and runs

    def record_coverage(self, cov: Coverage) -> None:
        seq = _sequence()
        self._put({"pk": f"cov#{cov.run_id}", "sk": seq, "gsi1pk": "cov", "gsi1sk": seq,
                   "body": json.dumps(cov.__dict__), "expires_at": _epoch(datetime.now(UTC))
                   + self.findings_days * 86400})

    def coverage(self, run_id: str | None = None) -> list[Coverage]:
        items = self._query(f"cov#{run_id}") if run_id else self._query("cov", index=True)
        return [Coverage(**json.loads(i["body"])) for i in items]

    def start_run(self, job: str, now: datetime) -> str:
        run_id = uuid.uuid4().hex[:12]
        self._put({"pk": f"run#{run_id}", "sk": "-", "gsi1pk": "run", "gsi1sk": f"{iso(now)}#{_sequence()}",
                   "run_id": run_id, "job": job, "started_at": iso(now),
                   "expires_at": _epoch(now) + self.findings_days * 86400})
        return run_id

    def finish_run(self, run_id: str, now: datetime, status: str, stats: dict[str, Any]) -> None:
        with self._mutex:
            item = self._get(f"run#{run_id}", "-")
            if item is None:
                return
            item.update(finished_at=iso(now), status=status, stats=json.dumps(stats, default=str))
            self._put(item)

    def runs(self, job: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        out = []
        for item in self._query("run", index=True, descending=True):
            if job and item["job"] != job:
                continue
            out.append({"run_id": item["run_id"], "job": item["job"], "started_at": item["started_at"],
                        "finished_at": item.get("finished_at"), "status": item.get("status"),
                        "stats": json.loads(item["stats"]) if item.get("stats") else {}})
            if len(out) >= limit:
                break
        return out

    # ------------------------------------------------------------------ findings

    def _put_finding(self, finding: Finding, status: str, created_at: str, updated_at: str) -> None:
        self._put({"pk": f"finding#{finding.fingerprint}", "sk": "-", "gsi1pk": "finding",
                   "gsi1sk": f"{updated_at}#{finding.fingerprint}", "body": finding.to_json(),
                   "status": status, "created_at": created_at, "updated_at": updated_at})

    def upsert_finding(self, finding: Finding, status: str, now: datetime) -> tuple[bool, Finding | None]:
        """Store a finding; seen again it widens first/last seen and takes the new count.

        Returns (is_new, previous version).
        """
        stamp: str = iso(now)  # type: ignore[assignment]
        with self._mutex:
            prev = self.get_finding(finding.fingerprint)
            if prev is None:
                self._put_finding(finding, status, stamp, stamp)
                return True, None
            self._put_finding(merge_seen_again(prev.finding, finding), status, prev.created_at, stamp)
            return False, prev.finding

    def get_finding(self, fp: str) -> StoredFinding | None:
        item = self._get(f"finding#{fp}", "-")
        return self._stored(item) if item else None

    @staticmethod
    def _stored(item: dict[str, Any]) -> StoredFinding:
        return StoredFinding(Finding.from_dict(json.loads(item["body"])), item["status"], item["created_at"],
                             item["updated_at"])

    def findings(self, since: datetime | None = None, status: str | None = None) -> list[StoredFinding]:
        items = self._query("finding", iso(since) if since is not None else None, index=True)
        out = [self._stored(i) for i in items if status is None or i["status"] == status]
        return sorted(out, key=lambda s: (s.finding.first_seen or "", s.finding.fingerprint))

    # ------------------------------------------------------------------ documents

    def get_json(self, namespace: str, key: str) -> Any | None:
        item = self._get(f"doc#{namespace}", key)
        return self._read_doc(namespace, key, item) if item else None

    def put_json(self, namespace: str, key: str, value: Any) -> None:
        head, parts = self._doc_items(namespace, key, value)
        self._write_doc(namespace, key, head, parts)

    def _write_doc(self, namespace: str, key: str, head: dict[str, Any], parts: list[dict[str, Any]]) -> None:
        self._write_doc_parts(parts)
        self._put(head)  # the flip: from here on readers get the new document
        self._drop_doc_parts(_doc_parts_pk(namespace, key), keep=head.get("version"))

    def iter_json(self, namespace: str) -> Iterator[tuple[str, Any]]:
        # part items live in their own partitions, so this partition holds whole documents' heads only
        for item in list(self._query(f"doc#{namespace}")):
            yield item["sk"], self._read_doc(namespace, item["sk"], item)

    def delete_json(self, namespace: str, key: str) -> None:
        self._delete(f"doc#{namespace}", key)
        self._drop_doc_parts(_doc_parts_pk(namespace, key), keep=None)

    def _doc_items(self, namespace: str, key: str, value: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The head item and the part items (none for a document that fits one item) that store `value`."""
        text = json.dumps(value, default=str)
        head: dict[str, Any] = {"pk": f"doc#{namespace}", "sk": key, "updated_at": _now_iso()}
        raw = text.encode()
        if len(raw) <= DOC_INLINE_MAX:
            head["value"] = text
            return head, []
        packed = zlib.compress(raw, 6)
        if len(packed) <= DOC_INLINE_MAX:
            head["zbody"] = packed
            return head, []
        version = uuid.uuid4().hex
        chunks = [packed[i : i + DOC_PART_BYTES] for i in range(0, len(packed), DOC_PART_BYTES)]
        head.update(version=version, parts=len(chunks), sha256=hashlib.sha256(packed).hexdigest())
        pk = _doc_parts_pk(namespace, key)
        return head, [{"pk": pk, "sk": f"{version}#{n:05d}", "version": version, "data": chunk}
                      for n, chunk in enumerate(chunks)]

    def _write_doc_parts(self, parts: list[dict[str, Any]]) -> None:
        with self._mutex:
            if self._buffer is not None:
                for part in parts:
                    self._put(part)
                return
        self._batch_write([((p["pk"], p["sk"]), p) for p in parts])

    def _drop_doc_parts(self, parts_pk: str, keep: str | None) -> None:
        """Delete a document's parts of every version but `keep`: the old version's and any a crash left."""
        with self._mutex:
            if self._buffer is not None:
                for item in list(self._query(parts_pk)):
                    if item["version"] != keep:
                        self._delete(item["pk"], item["sk"])
                return
        try:
            # keys only: reading the parts' data just to delete them would cost the document's size again
            stale = [((parts_pk, raw["sk"]["S"]), None)
                     for page in self._ddb.get_paginator("query").paginate(
                         TableName=self.table, KeyConditionExpression="pk = :p",
                         ExpressionAttributeValues={":p": {"S": parts_pk}}, ProjectionExpression="sk",
                         ConsistentRead=True)
                     for raw in page["Items"] if raw["sk"]["S"].split("#", 1)[0] != keep]
            self._batch_write(stale)  # type: ignore[arg-type]
        except ClientError:
            # the new document is already in place; the leftovers are unreferenced and the next write retries
            log.warning("could not delete old parts of %s; the next write of it retries", parts_pk, exc_info=True)

    def _read_doc(self, namespace: str, key: str, head: dict[str, Any]) -> Any:
        for _ in range(5):
            try:
                return json.loads(self._doc_text(namespace, key, head))
            except _StaleHead:
                # replaced (or deleted) between reading the head and its parts: read the new one instead
                fresh = self._get(f"doc#{namespace}", key)
                if fresh is None:
                    return None
                if fresh.get("version") == head.get("version"):
                    raise ValueError(f"document {namespace}/{key} is damaged: parts of version "
                                     f"{head.get('version')} are missing") from None
                head = fresh
        raise RuntimeError(f"document {namespace}/{key} kept changing while being read")

    def _doc_text(self, namespace: str, key: str, head: dict[str, Any]) -> str | bytes:
        if "value" in head:
            return head["value"]  # type: ignore[no-any-return]
        if "zbody" in head:
            return zlib.decompress(bytes(head["zbody"]))
        pk, version = _doc_parts_pk(namespace, key), head["version"]
        keys = [(pk, f"{version}#{n:05d}") for n in range(int(head["parts"]))]
        found = self._get_many(keys)
        if len(found) != len(keys):
            raise _StaleHead
        packed = b"".join(bytes(found[k]["data"]) for k in keys)
        if hashlib.sha256(packed).hexdigest() != head["sha256"]:
            raise ValueError(f"document {namespace}/{key} is damaged: its parts do not match the checksum")
        return zlib.decompress(packed)

    # ------------------------------------------------------------------ alert outbox

    def _outbox_item(self, item: dict[str, Any]) -> OutboxItem | None:
        """The row as an OutboxItem; None if it was deleted while its out-of-line payload was being read."""
        if "payload_ref" in item:
            payload = self.get_json(OUTBOX_PAYLOADS, item["payload_ref"])
            if payload is None:
                # rows are deleted before their payload document: a row still present means real damage
                if self._get(item["pk"], item["sk"]) is None:
                    return None
                raise ValueError(f"outbox row {item['notifier']}/{item['sk']} is damaged: "
                                 f"its payload document {item['payload_ref']} is missing")
        else:
            text = item["payload"] if "payload" in item else zlib.decompress(bytes(item["payload_z"]))
            payload = json.loads(text)
        return OutboxItem(int(item["id"]), item["sk"], item["notifier"], payload,
                          int(item["attempts"]), item["status"], item.get("last_error"),
                          json.loads(item["receipt"]) if item.get("receipt") else None, item["created_at"],
                          item["updated_at"], item.get("sent_at"))

    def outbox_put(self, fingerprint: str, notifier: str, payload: dict[str, Any], status: str,
                   now: datetime) -> None:
        stamp = iso(now)
        key = (f"outbox#{notifier}", fingerprint)
        with self._mutex:
            item = self._get(*key)
            read = _delivery_state(item)
            if item is None:
                seq = _sequence()
                item = {"pk": f"outbox#{notifier}", "sk": fingerprint, "gsi1pk": "outbox", "gsi1sk": seq,
                        "id": int(seq), "notifier": notifier, "attempts": 0, "created_at": stamp}
            elif item["status"] == "sent":  # re-armed: a new delivery, counted afresh
                item["attempts"] = 0
                item.pop("last_error", None)
            # the document layout decides: a digest carries a whole period's findings, and random event
            # IDs compress only ~2x, so a busy day's digest needs parts like any large document
            ref = _outbox_ref(notifier, fingerprint)
            head, parts = self._doc_items(OUTBOX_PAYLOADS, ref, payload)
            had_ref = item.pop("payload_ref", None) is not None
            item.pop("payload", None)
            item.pop("payload_z", None)
            if "value" in head:
                item["payload"] = head["value"]
            elif "zbody" in head:
                item["payload_z"] = head["zbody"]
            else:
                self._write_doc(OUTBOX_PAYLOADS, ref, head, parts)  # complete before the row points at it
                item["payload_ref"] = ref
            item.update(status=status, updated_at=stamp)
            if self._buffer is None:
                self._put_outbox(item, read)
            else:
                if key not in self._buffer:  # read from the table, not from this transaction's own writes
                    self._outbox_read[key] = read
                self._put(item)
            if had_ref and "payload_ref" not in item:
                self.delete_json(OUTBOX_PAYLOADS, ref)  # after the row stopped naming it

    def outbox_get(self, fingerprint: str, notifier: str) -> OutboxItem | None:
        item = self._get(f"outbox#{notifier}", fingerprint)
        return self._outbox_item(item) if item else None

    def outbox_items(self, statuses: Iterable[str] | None = None, notifier: str | None = None) -> list[OutboxItem]:
        wanted = set(statuses) if statuses is not None else None
        items = self._query(f"outbox#{notifier}") if notifier is not None else self._query("outbox", index=True)
        out = [o for i in items if wanted is None or i["status"] in wanted
               if (o := self._outbox_item(i)) is not None]
        return sorted(out, key=lambda o: o.id)

    def _put_outbox(self, item: dict[str, Any], read: DeliveryState | None) -> None:
        """Write an outbox row only if its delivery state is still what `read` saw.

        A cycle reads a row, decides (refresh, re-arm) and writes the whole row back when its transaction
        commits, while another process may have delivered it in between (delivery holds the `delivery`
        lock, queueing does not): written back blindly, a `sent` row would turn `pending` again and go out
        twice. So the write is conditional; if the row changed, a row since sent or being sent is left
        alone (the next cycle decides about it again) and a row still queued takes the new content and
        keeps its delivery state. (A payload too big for the row, only a digest's, is written by a deliverer, which holds the
        lock: its document is not part of this check.)
        """
        for _ in range(5):
            try:
                self._ddb.put_item(TableName=self.table, Item={k: _ser.serialize(v) for k, v in item.items()},
                                   **_delivery_condition(read))
                return
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
            current = self._get(item["pk"], item["sk"])
            if current is not None and current["status"] in ("sent", "sending"):  # `enqueue` leaves those too
                log.info("outbox %s/%s was sent while being queued again: left as %s", item["pk"], item["sk"],
                         current["status"])
                return
            if current is not None:
                content = {k: item[k] for k in (*_PAYLOAD_ATTRS, "updated_at") if k in item}
                item = {**{k: v for k, v in current.items() if k not in _PAYLOAD_ATTRS}, **content}
            read = _delivery_state(current)
        raise RuntimeError(f"outbox row {item['pk']}/{item['sk']} kept changing while being written")

    def outbox_mark(self, fingerprint: str, notifier: str, status: str, now: datetime, *,
                    error: str | None = None, receipt: dict[str, Any] | None = None) -> None:
        # A whole-row write back, unconditional: marks come from the one deliverer holding the `delivery`
        # lock, so no other writer changes a queued row's delivery state. A cycle may refresh the row's
        # content between our read and write (`_put_outbox` lets it, the state being unchanged); this write
        # then puts back the content being sent or just sent, which is what the row should record: the next
        # cycle compares the finding with it and escalates if the severity rose.
        with self._mutex:
            item = self._get(f"outbox#{notifier}", fingerprint)
            if item is None:
                return
            item.update(status=status, updated_at=iso(now))
            if error is None:
                item.pop("last_error", None)
            else:
                item["last_error"] = error
            if status == "sending":
                item["attempts"] = int(item["attempts"]) + 1
            if status == "sent":
                item["sent_at"] = iso(now)
            if receipt is not None:
                item["receipt"] = json.dumps(receipt, default=str)
            self._put(item)

    def outbox_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self._query("outbox", index=True):
            counts[item["status"]] = counts.get(item["status"], 0) + 1
        return counts

    def outbox_delete(self, keys: Iterable[tuple[str, str]]) -> int:
        wanted = [(f"outbox#{notifier}", fp) for fp, notifier in keys]
        with self.transaction():
            found = self._get_many(wanted)
            for (pk, sk), item in found.items():
                self._delete(pk, sk)
                if "payload_ref" in item:
                    self.delete_json(OUTBOX_PAYLOADS, item["payload_ref"])  # flushed after the row's delete
        return len(found)

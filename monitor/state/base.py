"""The state interface. SQLite (default) and DynamoDB implement it.

Everything a cycle must remember lives behind this interface: checkpoints per source, the
files and event IDs already processed, the events themselves (for baselines and reports),
coverage of each cycle, findings history, the alert outbox and Slack threads, run history,
and small JSON blobs (baselines, caches).

Crash safety rests on one rule: what a batch of records changes (events, seen IDs, findings,
outbox rows, checkpoint) is written in one `transaction()`; a crash before it commits means
the batch is read again, and seen IDs keep it from counting twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import pandas as pd

from monitor.events.schema import COLUMNS, coerce
from monitor.findings import Finding, iso


class StateLockedError(RuntimeError):
    """Another rolewatch process holds the state."""


def retry_until(attempt: Callable[[], bool], *, wait: bool, timeout: float | None, interval: float,
                clock: Callable[[], float], sleep: Callable[[float], None]) -> bool:
    """Whether `attempt` succeeded: tried once without `wait`, else again every `interval` seconds until
    `timeout` seconds have passed (forever when None). The lock waits of both backends."""
    deadline = clock() + timeout if wait and timeout is not None else None
    while True:
        if attempt():
            return True
        left = (deadline - clock() if deadline is not None else float("inf")) if wait else 0
        if left <= 0:
            return False
        sleep(min(interval, left))


@dataclass
class Coverage:
    run_id: str
    source: str
    start: str | None
    end: str | None
    status: str  # ok | partial | failed
    account: str | None = None
    region: str | None = None
    records: int = 0  # AssumeRole-family events newly stored
    skipped: int = 0
    message: str | None = None
    # what the source delivered, whatever it held (`monitor.collectors.base.Batch.delivered`);
    # None in rows recorded before it was counted
    delivered: int | None = None


@dataclass
class StoredFinding:
    finding: Finding
    status: str  # open | suppressed | resolved
    created_at: str
    updated_at: str


@dataclass
class OutboxItem:
    """One notification for one notifier, keyed by (fingerprint, notifier).

    status: held (waiting for a digest) | pending | sending (committed before the send, so a crash
    leaves a trace) | sent | failed (retried next cycle). `receipt` is what the notifier returned
    (e.g. Slack channel + ts, kept for threading); `payload` is opaque JSON owned by `alerts/`.
    """

    id: int
    fingerprint: str
    notifier: str
    payload: dict[str, Any]
    attempts: int
    status: str
    last_error: str | None
    receipt: dict[str, Any] | None = None
    created_at: str | None = None
    updated_at: str | None = None
    sent_at: str | None = None


def storable(events: pd.DataFrame) -> pd.DataFrame:
    """The event table as plain values for a store: times as ISO 8601 UTC strings, missing values as None."""
    df = coerce(events)
    for name, dtype in COLUMNS.items():
        if dtype.startswith("datetime64"):
            df[name] = df[name].map(iso, na_action="ignore")
    return df.astype(object).where(df.notna(), None)


class ReentrantTransactions:
    """`transaction()` shared by the backends: one per thread at a time, nested calls join the outer one.

    A backend provides `_mutex` (an RLock), `_depth` (0) and the three hooks.
    """

    _mutex: threading.RLock
    _depth: int

    def _begin(self) -> None: ...
    def _commit(self) -> None: ...
    def _rollback(self) -> None: ...

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together or not at all (nested calls join the outer one)."""
        with self._mutex:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._begin()
            self._depth = 1
            try:
                yield
            except BaseException:
                self._rollback()
                raise
            else:
                self._commit()
            finally:
                self._depth = 0


def merge_seen_again(old: Finding, new: Finding) -> Finding:
    """A finding seen again: the new version, with first/last seen widened and counts kept (every backend)."""
    merged = Finding.from_dict(new.to_dict())
    firsts = [t for t in (old.first_seen, new.first_seen) if t]
    lasts = [t for t in (old.last_seen, new.last_seen) if t]
    merged.first_seen = min(firsts) if firsts else None
    merged.last_seen = max(lasts) if lasts else None
    merged.count = max(old.count, new.count)
    merged.event_ids = sorted(set(old.event_ids) | set(new.event_ids))[:100]
    return merged


class StateStore(Protocol):
    path_or_table: str

    # -- lifecycle
    def close(self) -> None: ...
    def transaction(self) -> AbstractContextManager[None]: ...
    # an exclusive lock per name across processes and threads; StateLockedError when busy (with `wait`:
    # after `timeout` seconds, or never when it is None)
    def lock(self, name: str = "service", *, wait: bool = False,
             timeout: float | None = None) -> AbstractContextManager[None]: ...
    def schema_version(self) -> list[str]: ...

    # -- checkpoints and processed files
    def get_checkpoint(self, source: str, key: str = "position") -> Any | None: ...
    def set_checkpoint(self, source: str, value: Any, key: str = "position") -> None: ...
    def processed_files(self, source: str) -> dict[str, str]: ...  # path -> version (size:mtime / etag)
    def mark_file_processed(self, source: str, path: str, version: str) -> None: ...
    # retention only (`monitor.retention` decides which marks no window can need again); returns rows removed
    def forget_files(self, source: str, paths: Iterable[str]) -> int: ...

    # -- events
    def unseen_event_ids(self, event_ids: Iterable[str]) -> set[str]: ...
    def add_events(self, events: pd.DataFrame) -> int: ...  # returns rows newly stored
    def load_events(self, since: datetime | None = None, until: datetime | None = None) -> pd.DataFrame: ...
    def prune(self, now: datetime) -> dict[str, int]: ...

    # -- coverage and runs
    def record_coverage(self, cov: Coverage) -> None: ...
    def coverage(self, run_id: str | None = None) -> list[Coverage]: ...
    def start_run(self, job: str, now: datetime) -> str: ...
    def finish_run(self, run_id: str, now: datetime, status: str, stats: dict[str, Any]) -> None: ...
    def runs(self, job: str | None = None, limit: int = 20) -> list[dict[str, Any]]: ...

    # -- findings
    def upsert_finding(self, finding: Finding, status: str, now: datetime) -> tuple[bool, Finding | None]: ...
    def get_finding(self, fp: str) -> StoredFinding | None: ...
    def findings(self, since: datetime | None = None, status: str | None = None) -> list[StoredFinding]: ...

    # -- alert outbox (alerts/outbox.py): one row per (fingerprint, notifier); each call commits on its own
    #    unless inside transaction()
    def outbox_put(self, fingerprint: str, notifier: str, payload: dict[str, Any], status: str,
                   now: datetime) -> None: ...  # upsert; re-arming a `sent` row resets attempts and error
    def outbox_get(self, fingerprint: str, notifier: str) -> OutboxItem | None: ...
    def outbox_items(self, statuses: Iterable[str] | None = None, notifier: str | None = None) -> list[OutboxItem]: ...
    def outbox_mark(self, fingerprint: str, notifier: str, status: str, now: datetime, *,
                    error: str | None = None, receipt: dict[str, Any] | None = None) -> None: ...
    # `sending` counts an attempt; `sent` stamps sent_at and keeps the receipt
    def outbox_counts(self) -> dict[str, int]: ...  # status -> rows (the backlog for `status`)
    # retention only: (fingerprint, notifier) rows to drop; returns rows removed
    def outbox_delete(self, keys: Iterable[tuple[str, str]]) -> int: ...

    # -- small JSON documents: baselines, caches, Slack thread ts, report snapshots
    def get_json(self, namespace: str, key: str) -> Any | None: ...
    def put_json(self, namespace: str, key: str, value: Any) -> None: ...
    def iter_json(self, namespace: str) -> Iterator[tuple[str, Any]]: ...
    def delete_json(self, namespace: str, key: str) -> None: ...

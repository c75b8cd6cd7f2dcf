"""SQLite state (stdlib sqlite3, WAL). The default backend.

Migrations are named (`0001_core`, `0002_alerts`, ...) and applied in name order, each once,
recorded in `schema_migrations`; a module that needs tables registers its migration with
`register_migration`, so features add schema without editing each other's SQL.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from monitor.events.schema import COLUMNS, coerce, empty_frame
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

MIGRATIONS: dict[str, str] = {}


def register_migration(name: str, sql: str) -> None:
    MIGRATIONS[name] = sql


register_migration(
    "0001_core",
    f"""
    CREATE TABLE checkpoints (source TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
        updated_at TEXT NOT NULL, PRIMARY KEY (source, key));
    CREATE TABLE processed_files (source TEXT NOT NULL, path TEXT NOT NULL, version TEXT NOT NULL,
        processed_at TEXT NOT NULL, PRIMARY KEY (source, path));
    CREATE TABLE events ({", ".join(f'"{c}"' + (" TEXT PRIMARY KEY" if c == "event_id" else "") for c in COLUMNS)},
        stored_at TEXT NOT NULL);
    CREATE INDEX events_time ON events (event_time);
    CREATE INDEX events_shared ON events (shared_event_id);
    CREATE TABLE coverage (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, source TEXT NOT NULL,
        account TEXT, region TEXT, start TEXT, "end" TEXT, status TEXT NOT NULL, records INTEGER NOT NULL,
        skipped INTEGER NOT NULL, message TEXT);
    CREATE INDEX coverage_run ON coverage (run_id);
    CREATE TABLE runs (run_id TEXT PRIMARY KEY, job TEXT NOT NULL, started_at TEXT NOT NULL,
        finished_at TEXT, status TEXT, stats TEXT);
    CREATE INDEX runs_job ON runs (job, started_at);
    CREATE TABLE findings (fingerprint TEXT PRIMARY KEY, detector TEXT NOT NULL, severity TEXT NOT NULL,
        status TEXT NOT NULL, first_seen TEXT, last_seen TEXT, count INTEGER NOT NULL, body TEXT NOT NULL,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
    CREATE INDEX findings_updated ON findings (updated_at);
    CREATE TABLE documents (namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
        updated_at TEXT NOT NULL, PRIMARY KEY (namespace, key));
    """,
)

register_migration(
    "0100_alerts_outbox",
    """
    CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, fingerprint TEXT NOT NULL, notifier TEXT NOT NULL,
        payload TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
        receipt TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, sent_at TEXT,
        UNIQUE (fingerprint, notifier));
    CREATE INDEX outbox_status ON outbox (status, notifier);
    """,
)

# what a source delivered, apart from the AssumeRole rows it stored (NULL in older rows: not counted then)
register_migration("0002_coverage_delivered", "ALTER TABLE coverage ADD COLUMN delivered INTEGER")

# how often a bounded `lock(wait=True, timeout=...)` retries: flock itself has no timeout
LOCK_POLL_SECONDS = 0.2

_OUTBOX_COLUMNS = "id, fingerprint, notifier, payload, attempts, status, last_error, receipt, created_at, updated_at, sent_at"



def _now_iso() -> str:
    return iso(datetime.now().astimezone())  # type: ignore[return-value]


class SqliteState(ReentrantTransactions):
    def __init__(self, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.path = Path(path)
        self._clock = clock  # only a bounded lock wait reads these
        self._sleep = sleep
        self.path_or_table = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # one connection shared by the threads of this process, serialised by a lock
        self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._mutex = threading.RLock()
        self._depth = 0
        self._lock_fh: Any = None
        self._migrate()

    # ------------------------------------------------------------------ lifecycle

    def _migrate(self) -> None:
        with self._mutex:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
                )
                done = {r[0] for r in self._conn.execute("SELECT name FROM schema_migrations")}
                for name in sorted(MIGRATIONS):
                    if name in done:
                        continue
                    for stmt in MIGRATIONS[name].split(";"):
                        if stmt.strip():
                            self._conn.execute(stmt)
                    self._conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (name, _now_iso()))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def schema_version(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT name FROM schema_migrations ORDER BY name")]

    def close(self) -> None:
        with self._mutex:
            self._conn.close()
            if self._lock_fh:
                self._lock_fh.close()
                self._lock_fh = None

    def _begin(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self._conn.execute("COMMIT")

    def _rollback(self) -> None:
        self._conn.execute("ROLLBACK")

    def _exec(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        with self._mutex:
            return self._conn.execute(sql, tuple(params))

    @contextmanager
    def lock(self, name: str = "service", *, wait: bool = False, timeout: float | None = None) -> Iterator[None]:
        """An exclusive process lock on this state (flock: released by the kernel if we die).

        wait: block until it is free; with `timeout`, give up after that many seconds.
        """
        lock_path = self.path.with_name(self.path.name + f".{name}.lock")
        fh = open(lock_path, "a+")  # noqa: SIM115 - held for the duration of the context
        try:
            self._flock(fh, wait, timeout)
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()}")
            fh.flush()
            yield
        finally:
            fh.close()

    def _flock(self, fh: Any, wait: bool, timeout: float | None) -> None:
        if wait and timeout is None:
            fcntl.flock(fh, fcntl.LOCK_EX)
            return

        def attempt() -> bool:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False

        if not retry_until(attempt, wait=wait, timeout=timeout, interval=LOCK_POLL_SECONDS, clock=self._clock,
                           sleep=self._sleep):
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            waited = f" (waited {timeout:g}s)" if wait else ""
            raise StateLockedError(
                f"state {self.path} is in use by {holder}{waited}; wait for it to finish or stop it"
            ) from None

    # ------------------------------------------------------------------ checkpoints

    def get_checkpoint(self, source: str, key: str = "position") -> Any | None:
        row = self._exec("SELECT value FROM checkpoints WHERE source=? AND key=?", (source, key)).fetchone()
        return json.loads(row[0]) if row else None

    def set_checkpoint(self, source: str, value: Any, key: str = "position") -> None:
        self._exec(
            "INSERT INTO checkpoints VALUES (?, ?, ?, ?) ON CONFLICT(source, key) DO UPDATE SET "
            "value=excluded.value, updated_at=excluded.updated_at",
            (source, key, json.dumps(value, default=str), _now_iso()),
        )

    def processed_files(self, source: str) -> dict[str, str]:
        return dict(self._exec("SELECT path, version FROM processed_files WHERE source=?", (source,)).fetchall())

    def mark_file_processed(self, source: str, path: str, version: str) -> None:
        self._exec(
            "INSERT INTO processed_files VALUES (?, ?, ?, ?) ON CONFLICT(source, path) DO UPDATE SET "
            "version=excluded.version, processed_at=excluded.processed_at",
            (source, path, version, _now_iso()),
        )

    def forget_files(self, source: str, paths: Iterable[str]) -> int:
        with self.transaction():
            return sum(self._exec("DELETE FROM processed_files WHERE source=? AND path=?", (source, p)).rowcount
                       for p in paths)

    # ------------------------------------------------------------------ events

    def unseen_event_ids(self, event_ids: Iterable[str]) -> set[str]:
        ids = list(dict.fromkeys(event_ids))
        seen: set[str] = set()
        for i in range(0, len(ids), 900):
            chunk = ids[i : i + 900]
            q = f"SELECT event_id FROM events WHERE event_id IN ({','.join('?' * len(chunk))})"
            seen.update(r[0] for r in self._exec(q, chunk))
        return set(ids) - seen

    def add_events(self, events: pd.DataFrame) -> int:
        if events.empty:
            return 0
        df = storable(events)
        stored_at = _now_iso()
        rows = [(*r, stored_at) for r in df.itertuples(index=False, name=None)]
        cols = ", ".join(f'"{c}"' for c in COLUMNS)
        marks = ", ".join("?" * (len(COLUMNS) + 1))
        with self._mutex:
            before = self._conn.total_changes
            self._conn.executemany(f"INSERT OR IGNORE INTO events ({cols}, stored_at) VALUES ({marks})", rows)
            return self._conn.total_changes - before

    def load_events(self, since: datetime | None = None, until: datetime | None = None) -> pd.DataFrame:
        where, params = [], []
        if since is not None:
            where.append("event_time >= ?")
            params.append(iso(since))
        if until is not None:
            where.append("event_time < ?")
            params.append(iso(until))
        sql = f"SELECT {', '.join(chr(34) + c + chr(34) for c in COLUMNS)} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY event_time, event_id"
        with self._mutex:
            rows = self._conn.execute(sql, params).fetchall()
        if not rows:
            return empty_frame()
        df = pd.DataFrame(rows, columns=list(COLUMNS))
        for c in ("external_id_supplied", "mfa_authenticated", "is_cross_account", "success"):
            df[c] = df[c].map(lambda v: None if v is None else bool(v))
        return coerce(df)

    def prune(self, now: datetime, *, seen_days: int = 30, findings_days: int = 400) -> dict[str, int]:
        out = {}
        with self.transaction():
            cur = self._exec("DELETE FROM events WHERE event_time < ?", (iso(now - timedelta(days=seen_days)),))
            out["events"] = cur.rowcount
            cur = self._exec(
                "DELETE FROM findings WHERE updated_at < ?", (iso(now - timedelta(days=findings_days)),)
            )
            out["findings"] = cur.rowcount
            cur = self._exec("DELETE FROM coverage WHERE run_id IN (SELECT run_id FROM runs WHERE started_at < ?)",
                             (iso(now - timedelta(days=findings_days)),))
            out["coverage"] = cur.rowcount
        return out

    # ------------------------------------------------------------------ coverage and runs

    def record_coverage(self, cov: Coverage) -> None:
        self._exec(
            'INSERT INTO coverage (run_id, source, account, region, start, "end", status, records, skipped, message,'
            " delivered) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (cov.run_id, cov.source, cov.account, cov.region, cov.start, cov.end, cov.status, cov.records,
             cov.skipped, cov.message, cov.delivered),
        )

    def coverage(self, run_id: str | None = None) -> list[Coverage]:
        sql = ('SELECT run_id, source, start, "end", status, account, region, records, skipped, message, delivered'
               " FROM coverage")
        params: tuple[Any, ...] = ()
        if run_id:
            sql += " WHERE run_id=?"
            params = (run_id,)
        return [Coverage(*r) for r in self._exec(sql + " ORDER BY id", params).fetchall()]

    def start_run(self, job: str, now: datetime) -> str:
        run_id = uuid.uuid4().hex[:12]
        self._exec("INSERT INTO runs (run_id, job, started_at) VALUES (?, ?, ?)", (run_id, job, iso(now)))
        return run_id

    def finish_run(self, run_id: str, now: datetime, status: str, stats: dict[str, Any]) -> None:
        self._exec(
            "UPDATE runs SET finished_at=?, status=?, stats=? WHERE run_id=?",
            (iso(now), status, json.dumps(stats, default=str), run_id),
        )

    def runs(self, job: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        sql = "SELECT run_id, job, started_at, finished_at, status, stats FROM runs"
        params: tuple[Any, ...] = ()
        if job:
            sql += " WHERE job=?"
            params = (job,)
        rows = self._exec(sql + " ORDER BY started_at DESC, rowid DESC LIMIT ?", (*params, limit)).fetchall()
        keys = ("run_id", "job", "started_at", "finished_at", "status", "stats")
        out = []
        for r in rows:
            d = dict(zip(keys, r, strict=True))
            d["stats"] = json.loads(d["stats"]) if d["stats"] else {}
            out.append(d)
        return out

    # ------------------------------------------------------------------ findings

    def upsert_finding(self, finding: Finding, status: str, now: datetime) -> tuple[bool, Finding | None]:
        """Store a finding; seen again it widens first/last seen and takes the new count.

        Returns (is_new, previous version).
        """
        prev = self.get_finding(finding.fingerprint)
        stamp = iso(now)
        if prev is None:
            self._exec(
                "INSERT INTO findings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (finding.fingerprint, finding.detector, finding.severity, status, finding.first_seen,
                 finding.last_seen, finding.count, finding.to_json(), stamp, stamp),
            )
            return True, None
        old = prev.finding
        merged = merge_seen_again(old, finding)
        self._exec(
            "UPDATE findings SET severity=?, status=?, first_seen=?, last_seen=?, count=?, body=?, updated_at=? "
            "WHERE fingerprint=?",
            (merged.severity, status, merged.first_seen, merged.last_seen, merged.count, merged.to_json(), stamp,
             finding.fingerprint),
        )
        return False, old

    def get_finding(self, fp: str) -> StoredFinding | None:
        row = self._exec(
            "SELECT body, status, created_at, updated_at FROM findings WHERE fingerprint=?", (fp,)
        ).fetchone()
        if not row:
            return None
        return StoredFinding(Finding.from_dict(json.loads(row[0])), row[1], row[2], row[3])

    def findings(self, since: datetime | None = None, status: str | None = None) -> list[StoredFinding]:
        sql = "SELECT body, status, created_at, updated_at FROM findings"
        where, params = [], []
        if since is not None:
            where.append("updated_at >= ?")
            params.append(iso(since))
        if status:
            where.append("status = ?")
            params.append(status)
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._exec(sql + " ORDER BY first_seen, fingerprint", params).fetchall()
        return [StoredFinding(Finding.from_dict(json.loads(b)), s, c, u) for b, s, c, u in rows]

    # ------------------------------------------------------------------ documents

    def get_json(self, namespace: str, key: str) -> Any | None:
        row = self._exec("SELECT value FROM documents WHERE namespace=? AND key=?", (namespace, key)).fetchone()
        return json.loads(row[0]) if row else None

    def put_json(self, namespace: str, key: str, value: Any) -> None:
        self._exec(
            "INSERT INTO documents VALUES (?, ?, ?, ?) ON CONFLICT(namespace, key) DO UPDATE SET "
            "value=excluded.value, updated_at=excluded.updated_at",
            (namespace, key, json.dumps(value, default=str), _now_iso()),
        )

    def iter_json(self, namespace: str) -> Iterator[tuple[str, Any]]:
        rows = self._exec("SELECT key, value FROM documents WHERE namespace=? ORDER BY key", (namespace,)).fetchall()
        for k, v in rows:
            yield k, json.loads(v)

    def delete_json(self, namespace: str, key: str) -> None:
        self._exec("DELETE FROM documents WHERE namespace=? AND key=?", (namespace, key))

    # ------------------------------------------------------------------ alert outbox

    def outbox_put(self, fingerprint: str, notifier: str, payload: dict[str, Any], status: str,
                   now: datetime) -> None:
        stamp = iso(now)
        self._exec(
            "INSERT INTO outbox (fingerprint, notifier, payload, status, attempts, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, 0, ?, ?) ON CONFLICT(fingerprint, notifier) DO UPDATE SET "
            "payload=excluded.payload, status=excluded.status, updated_at=excluded.updated_at, "
            "attempts=CASE WHEN outbox.status='sent' THEN 0 ELSE outbox.attempts END, "
            "last_error=CASE WHEN outbox.status='sent' THEN NULL ELSE outbox.last_error END",
            (fingerprint, notifier, json.dumps(payload, default=str), status, stamp, stamp),
        )

    def outbox_get(self, fingerprint: str, notifier: str) -> OutboxItem | None:
        row = self._exec(
            f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE fingerprint=? AND notifier=?", (fingerprint, notifier)
        ).fetchone()
        return _outbox_item(row) if row else None

    def outbox_items(self, statuses: Iterable[str] | None = None, notifier: str | None = None) -> list[OutboxItem]:
        where, params = [], []
        if statuses is not None:
            wanted = list(statuses)
            where.append(f"status IN ({','.join('?' * len(wanted))})")
            params.extend(wanted)
        if notifier is not None:
            where.append("notifier=?")
            params.append(notifier)
        sql = f"SELECT {_OUTBOX_COLUMNS} FROM outbox"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [_outbox_item(r) for r in self._exec(sql + " ORDER BY id", params).fetchall()]

    def outbox_mark(self, fingerprint: str, notifier: str, status: str, now: datetime, *,
                    error: str | None = None, receipt: dict[str, Any] | None = None) -> None:
        sets = ["status=?", "updated_at=?", "last_error=?"]
        params: list[Any] = [status, iso(now), error]
        if status == "sending":
            sets.append("attempts=attempts+1")
        if status == "sent":
            sets.append("sent_at=?")
            params.append(iso(now))
        if receipt is not None:
            sets.append("receipt=?")
            params.append(json.dumps(receipt, default=str))
        self._exec(f"UPDATE outbox SET {', '.join(sets)} WHERE fingerprint=? AND notifier=?",
                   (*params, fingerprint, notifier))

    def outbox_counts(self) -> dict[str, int]:
        return dict(self._exec("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall())

    def outbox_delete(self, keys: Iterable[tuple[str, str]]) -> int:
        with self.transaction():
            return sum(self._exec("DELETE FROM outbox WHERE fingerprint=? AND notifier=?", key).rowcount
                       for key in keys)


def _outbox_item(row: tuple[Any, ...]) -> OutboxItem:
    (id_, fp, notifier, payload, attempts, status, error, receipt, created, updated, sent) = row
    return OutboxItem(id_, fp, notifier, json.loads(payload), attempts, status, error,
                      json.loads(receipt) if receipt else None, created, updated, sent)

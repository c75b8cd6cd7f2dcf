"""One cycle: collect -> normalise -> store -> detect -> findings -> notify.

Crash safety: each batch's events, checkpoints and processed-file marks commit together; a
crash before the commit means the batch is read again next cycle and seen event IDs keep it
from counting twice. Consecutive small batches of one source share one transaction (see
`_StoreGroup`): still all or nothing for every file in it. Detection always runs over the
stored window, so a cycle that dies after storing events still gets its findings from the next one.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from monitor.collectors.base import RECORDS_PER_BATCH, BadInput, Batch, Collector, CycleWindow, Span
from monitor.config import Config, source_id
from monitor.coverage_summary import capped, render_source, summarise
from monitor.events.merge import merge_shared_copies
from monitor.events.normalise import RecordError, normalise, parse_event_time
from monitor.events.schema import frame_from_rows
from monitor.findings import Finding, iso
from monitor.health import record_account_rounds, record_deliveries, source_account_round
from monitor.logs import run_id_var
from monitor.posture.model import Posture
from monitor.redact import redact_text
from monitor.state.base import Coverage, StateLockedError, StateStore

log = logging.getLogger(__name__)

# source type -> "module:Class"; a source type without an entry here is reported, not ignored
COLLECTORS: dict[str, str] = {
    "local": "monitor.collectors.local:LocalCollector",
    "s3": "monitor.collectors.s3:S3Collector",
    "cloudwatch_logs": "monitor.collectors.cloudwatch_logs:CloudWatchLogsCollector",
    "lookup_events": "monitor.collectors.lookup_events:LookupEventsCollector",
    "athena": "monitor.collectors.athena:AthenaCollector",
    "cloudtrail_lake": "monitor.collectors.cloudtrail_lake:CloudTrailLakeCollector",
    "logs_insights": "monitor.collectors.logs_insights:LogsInsightsCollector",
}

CYCLE_LOCK = "cycle"
KILL_HOOK_ENV = "ROLEWATCH_TEST_KILL_AT"  # tests only: "before_commit:N" / "after_commit:N" -> SIGKILL
# An S3 organisation trail yields one batch of a file or two per account/region: storing each in
# its own transaction (frame building, seen-ID lookup, commit) cost more than reading them.
STORE_MAX_BATCHES = 256  # batches per transaction at most, whatever their size


@dataclass
class CycleResult:
    run_id: str
    events_new: int  # rows newly stored this cycle
    skipped: int  # bad records/files skipped (each logged with file + position)
    coverage: list[Coverage]
    findings: list[Finding]  # new or updated this cycle (not suppressed)
    suppressed: list[Finding]
    notices: list[str]
    errors: list[str]  # per source/account failures that did not stop the cycle
    stats: dict[str, Any] = field(default_factory=dict)


def make_collector(source: Any, config: Config, state: StateStore) -> Collector:
    target = COLLECTORS.get(source.type)
    if target is None:
        raise NotImplementedError(f"no collector for source type {source.type!r} in this build")
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(source, source_id(source), config, state)  # type: ignore[no-any-return]


def load_events(state: StateStore, since: datetime | None = None, until: datetime | None = None) -> pd.DataFrame:
    """Stored events with the two copies of cross-account calls merged (the twin may have come later)."""
    return merge_shared_copies(state.load_events(since, until))


def load_posture(state: StateStore) -> Posture:
    """What the posture collectors last stored; empty until they exist or have run."""
    try:
        from monitor.posture.store import load_posture as load  # type: ignore[import-not-found]
    except ImportError:
        return Posture()
    return load(state)  # type: ignore[no-any-return]


_kill_counts: dict[str, int] = {}


def _test_kill_hook(point: str) -> None:
    """Crash tests: die by SIGKILL at the Nth batch at `point` (no cleanup, like a real kill -9)."""
    spec = os.environ.get(KILL_HOOK_ENV)
    if not spec:
        return
    want, _, n = spec.partition(":")
    if want != point:
        return
    _kill_counts[point] = _kill_counts.get(point, 0) + 1
    if _kill_counts[point] >= int(n or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def _rows_of(batch: Batch) -> tuple[list[dict[str, Any]], list[BadInput]]:
    rows: list[dict[str, Any]] = []
    bad = list(batch.bad)
    for raw in batch.records:
        try:
            rows.append(normalise(raw.record))
        except RecordError as exc:
            bad.append(BadInput(raw.origin, raw.position, str(exc)))
    return rows, bad


def store_batch(state: StateStore, sid: str, batch: Batch) -> tuple[int, list[BadInput]]:
    """One batch in its own transaction (see `store_batches`)."""
    return store_batches(state, sid, [batch])


def store_batches(state: StateStore, sid: str, batches: list[Batch]) -> tuple[int, list[BadInput]]:
    """Normalise, drop seen event IDs, and store the batches' events + checkpoints + file marks in one transaction.

    Each batch's new rows still count towards its own span; an event ID met twice counts for the
    batch it came first in, as it did when each batch was stored on its own.
    """
    by_id: dict[str, tuple[int, dict[str, Any]]] = {}
    bad_of: list[list[BadInput]] = []
    for i, batch in enumerate(batches):
        rows, bad = _rows_of(batch)
        for item in bad:
            log.warning("skipped bad input: %s", item, extra={"source": sid, "file": item.origin})
        bad_of.append(bad)
        for row in rows:
            by_id.setdefault(row["event_id"], (i, row))
    unseen = state.unseen_event_ids(by_id) if by_id else set()
    new_of: list[list[dict[str, Any]]] = [[] for _ in batches]
    for eid, (i, row) in by_id.items():
        if eid in unseen:
            new_of[i].append(row)
    new_rows = [row for rows in new_of for row in rows]
    checkpoints: dict[str, Any] = {}
    files: dict[str, str] = {}
    for batch in batches:  # in yield order: a later checkpoint of the same key wins
        checkpoints.update(batch.checkpoints)
        files.update(batch.files)
    with state.transaction():
        # most overlap re-reads and empty slices bring nothing new: skip building an empty frame
        stored = state.add_events(merge_shared_copies(frame_from_rows(new_rows))) if new_rows else 0
        for key, value in checkpoints.items():
            state.set_checkpoint(sid, value, key)
        for path, version in files.items():
            state.mark_file_processed(sid, path, version)
        _test_kill_hook("before_commit")
    _test_kill_hook("after_commit")
    # the seen-ID check ran under the cycle lock, so each batch's unseen rows are what it stored
    for batch, rows, bad in zip(batches, new_of, bad_of, strict=True):
        if batch.span is not None:
            batch.span.count(len(rows), len(bad), [r["event_time"] for r in rows], batch.delivered)
    return stored, [item for bad in bad_of for item in bad]


class _StoreGroup:
    """Consecutive batches of one source, stored together once they are big or many enough.

    Holds at most RECORDS_PER_BATCH records (a batch that would cross it goes into the next group)
    and STORE_MAX_BATCHES batches, so memory stays as flat as with one batch per transaction.
    Batches are stored in the order the collector yielded them.
    """

    def __init__(self, state: StateStore, sid: str, result: CycleResult) -> None:
        self.state, self.sid, self.result = state, sid, result
        self.batches: list[Batch] = []
        self.records = 0
        self.unstored: list[Span] = []  # spans of a group whose store failed: their files were not written

    def add(self, batch: Batch) -> None:
        if self.batches and self.records + len(batch.records) > RECORDS_PER_BATCH:
            self.flush()
        self.batches.append(batch)
        self.records += len(batch.records)
        if self.records >= RECORDS_PER_BATCH or len(self.batches) >= STORE_MAX_BATCHES:
            self.flush()

    def flush(self) -> None:
        batches, self.batches, self.records = self.batches, [], 0
        if not batches:
            return
        try:
            stored, bad = store_batches(self.state, self.sid, batches)
        except Exception:
            spans = {id(b.span): b.span for b in batches if b.span is not None}
            self.unstored.extend(spans.values())
            raise
        self.result.events_new += stored
        self.result.skipped += len(bad)


def _collect_source(source: Any, config: Config, state: StateStore, window: CycleWindow,
                    result: CycleResult) -> None:
    sid = source_id(source)
    spans: list[Span] = []
    group = _StoreGroup(state, sid, result)
    collector: Collector | None = None
    try:
        collector = make_collector(source, config, state)
        spans = collector.spans
        try:
            for batch in collector.batches(window):
                group.add(batch)
        finally:
            # what was read before the collector broke was read fine: store it, then report the failure
            group.flush()
    except Exception as exc:  # one unreadable source must not stop the others
        log.error("source %s failed: %s", sid, exc, exc_info=True, extra={"source": sid})
        message = f"{type(exc).__name__}: {exc}"
        for span in group.unstored:
            span.fail(f"not stored: {message}")
        if spans and spans[-1].status == "ok":  # the unit in progress when it broke
            spans[-1].fail(message)
        elif not group.unstored:
            spans.append(Span(window.since, window.until, status="failed", message=message))
    if not spans and collector is not None:
        # a source that found nothing to read (an S3 bucket with no AWSLogs/<account>/ folder at all)
        # would leave no coverage, and monitor_health could then neither call it silent nor see a
        # failed streak end: it is covered as a whole, having delivered nothing
        spans.append(Span(window.since, window.until, message=collector.nothing_found()))
    for span in spans:
        # a collector's message can quote what it was given (a path, an AWS error repeating a request
        # parameter): it is stored, and printed by `once` and `status`, so it is redacted here, once
        cov = Coverage(
            run_id=result.run_id, source=sid, start=iso(span.start), end=iso(span.end), status=span.status,
            account=span.account, region=span.region, records=span.records, skipped=span.skipped,
            message=span.message and redact_text(span.message), delivered=span.delivered,
        )
        state.record_coverage(cov)
        result.coverage.append(cov)
        if span.status != "ok":
            where = "/".join(p for p in (span.account, span.region) if p)
            result.errors.append(f"{sid}{' ' + where if where else ''}: {span.status}: {cov.message}")


def _record_account_rounds(state: StateStore, sources: list[Any], now: datetime, result: CycleResult) -> None:
    """What each source saw of its accounts this cycle, for monitor_health's account_unreachable check."""
    rounds = {}
    for source in sources:
        sid = source_id(source)
        seen = source_account_round([c for c in result.coverage if c.source == sid], now)
        if seen is not None:
            rounds[sid] = seen
    record_account_rounds(state, rounds)


def _data_start(state: StateStore, window: CycleWindow, events: pd.DataFrame) -> datetime:
    """When rolewatch's knowledge starts: learning periods count from here."""
    first = parse_event_time(state.get_json("pipeline", "data_start"))
    if first is None:
        first = window.since or (window.now - window.initial_lookback)
        state.put_json("pipeline", "data_start", iso(first))
    if not events.empty and events["event_time"].notna().any():
        first = min(first, events["event_time"].min().to_pydatetime())
    return first


def _changed(finding: Finding, prev: Finding | None) -> bool:
    if prev is None:
        return True
    return (finding.count, finding.last_seen, finding.severity) != (prev.count, prev.last_seen, prev.severity)


def _detect_and_queue(config: Config, state: StateStore, window: CycleWindow, posture: Posture | None,
                      notify: bool, result: CycleResult) -> None:
    from monitor.detect.context import DetectionContext
    from monitor.detect.engine import run_detectors

    now = window.now
    events = load_events(state, now - timedelta(days=config.state.seen_retention_days), window.until)
    ctx = DetectionContext(
        now=now,
        posture=posture if posture is not None else load_posture(state),
        baselines=dict(state.iter_json("baselines")),
        data_start=_data_start(state, window, events),
    )
    detected = run_detectors(events, ctx, config)
    result.notices.extend(detected.notices)
    outcomes: list[tuple[Finding, bool, Finding | None]] = []
    with state.transaction():
        for finding in detected.findings:
            is_new, prev = state.upsert_finding(finding, "open", now)
            outcomes.append((finding, is_new, prev))
            if _changed(finding, prev):
                result.findings.append(finding)
        for finding in detected.suppressed:
            state.upsert_finding(finding, "suppressed", now)
            result.suppressed.append(finding)
        for key, value in detected.baselines.items():
            state.put_json("baselines", key, value)
        if notify:  # with the findings: a crash after this commit leaves their alerts queued
            from alerts.dispatch import queue

            queue(outcomes, state, config, now)


def _deliver(config: Config, state: StateStore, now: datetime, result: CycleResult) -> None:
    """Send what is queued and the digests that fell due, after the cycle lock is released.

    Every cycle that notifies delivers, also with no findings: queued alerts are retried and digests
    fall due. Delivery has its own lock, so holding the cycle's too would only let a slow notifier
    (Slack's 429 waits) keep the next cycle from starting. A delivery that raises fails no part of the
    cycle: the findings are stored and their alerts queued, and the next run sends them.
    """
    from alerts.dispatch import notify as send

    try:
        result.stats["alerts"] = send([], state, config, now)
    except Exception as exc:
        message = redact_text(f"{type(exc).__name__}: {exc}")
        log.error("alert delivery failed: %s", message, exc_info=True)
        result.stats["alerts"] = {"error": message}
        result.notices.append(f"alert delivery failed ({message}): the alerts stay queued for the next run")


def check_window(since: datetime | None, until: datetime) -> None:
    """Raises ValueError for a backfill window that ends before it starts."""
    if since is not None and since >= until:
        raise ValueError(f"--since {iso(since)} is not before --until {iso(until)}")


def _window(config: Config, now: datetime, since: datetime | None, until: datetime) -> CycleWindow:
    return CycleWindow(
        now=now, until=until, since=since,
        initial_lookback=timedelta(hours=config.collection.initial_lookback_hours),
        overlap=timedelta(minutes=config.collection.overlap_minutes),
    )


def detect_stored(config: Config, state: StateStore, *, now: datetime, notify: bool = True) -> CycleResult | None:
    """Detection and alerts over the events already stored, collecting nothing: the end of a posture run.

    The cycle reads the inventory as it stands when it detects, so without this what a new inventory
    shows (trust_policy, least_privilege, unused_role, failures explained by a changed trust policy)
    would wait for the next cycle: a day, for a daily `once`. Findings the last cycle already stored
    are upserted unchanged and not alerted again. None when a cycle holds the lock: it, or the next
    one, detects with the new inventory. Alerts go out after the lock is released, as in `run_cycle`.
    """
    try:
        with state.lock(CYCLE_LOCK):
            result = CycleResult(run_id_var.get() or "", 0, 0, [], [], [], [], [])
            _detect_and_queue(config, state, _window(config, now, None, now), None, notify, result)
    except StateLockedError:
        log.info("a cycle is running: the new inventory's findings come with it or the next one")
        return None
    if notify:
        _deliver(config, state, now, result)
    return result


def _finish_run(state: StateStore, result: CycleResult, sources: list[Any], now: datetime, started: float) -> None:
    # what callers print (`once`) and record (the run history) is redacted here, whoever appended it
    result.errors[:] = [redact_text(e) for e in result.errors]
    # a source failed when none of its units could be read: one account of an organisation
    # trail failing leaves the cycle partial, not failed
    read_any = {c.source for c in result.coverage if c.status != "failed"}
    failed_sources = {c.source for c in result.coverage if c.status == "failed"} - read_any
    status = "ok" if not result.errors else (
        "failed" if sources and failed_sources >= {source_id(s) for s in sources} else "partial")
    result.stats.update(events_new=result.events_new, skipped=result.skipped,
                        findings=len(result.findings), suppressed=len(result.suppressed),
                        errors=len(result.errors), duration_seconds=round(time.monotonic() - started, 3))
    state.finish_run(result.run_id, now, status, result.stats)


def run_cycle(config: Config, state: StateStore, *, now: datetime, since: datetime | None = None,
              until: datetime | None = None, notify: bool = True, posture: Posture | None = None,
              lock_wait: float = 0.0) -> CycleResult:
    """One collection + detection + alert cycle. Raises StateLockedError if another cycle holds the state
    (still, after waiting up to `lock_wait` seconds for it).

    The cycle lock covers collection, detection and queueing the alerts; delivery runs after it is
    released, and the run is recorded finished (with the delivery's counts) once delivery is done.
    """
    until = until or now
    check_window(since, until)
    window = _window(config, now, since, until)
    with ExitStack() as cycle_lock:
        # taken before the run is recorded: a cycle that finds it held records nothing
        cycle_lock.enter_context(state.lock(CYCLE_LOCK, wait=lock_wait > 0, timeout=lock_wait or None))
        run_id = state.start_run("collect", now)
        token = run_id_var.set(run_id)
        started = time.monotonic()
        result = CycleResult(run_id, 0, 0, [], [], [], [], [])
        sources = [s for s in config.sources if s.enabled]
        try:
            with cycle_lock.pop_all():  # released at the end of this block, or as an exception leaves it
                _collect_and_detect(config, state, window, sources, posture, notify, result)
            if notify:
                _deliver(config, state, now, result)
        finally:
            _finish_run(state, result, sources, now, started)
            run_id_var.reset(token)
    return result


def _collect_and_detect(config: Config, state: StateStore, window: CycleWindow, sources: list[Any],
                        posture: Posture | None, notify: bool, result: CycleResult) -> None:
    """Everything of a cycle that needs the cycle lock: collecting, storing, detecting, queueing alerts."""
    if not sources:
        result.notices.append("no enabled sources configured: nothing collected")
    for source in sources:
        _collect_source(source, config, state, window, result)
    try:
        _record_account_rounds(state, sources, window.now, result)
    except Exception as exc:  # the events are stored; only the accounts' streaks miss this cycle
        log.error("recording what the sources saw of their accounts failed: %s", exc, exc_info=True)
        result.errors.append(f"account streaks: {type(exc).__name__}: {exc}")
    try:
        record_deliveries(state, result.coverage, window.now)
    except Exception as exc:  # the events are stored; a unit's memory misses at most this cycle
        log.error("recording the units' last deliveries failed: %s", exc, exc_info=True)
        result.errors.append(f"unit deliveries: {type(exc).__name__}: {exc}")
    if result.skipped:
        result.notices.append(f"{result.skipped} bad record(s)/file(s) skipped (see log for file and position)")
    try:
        _detect_and_queue(config, state, window, posture, notify, result)
    except Exception as exc:  # stored events stay stored; the next cycle detects over them again
        log.error("detection/alerting failed: %s", exc, exc_info=True)
        result.errors.append(f"detection/alerts: {type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------- `rolewatch once` output


def parse_time_arg(value: str | None, flag: str) -> datetime | None:
    if value is None:
        return None
    parsed = parse_event_time(value)
    if parsed is None:
        raise ValueError(f"{flag}: not an ISO 8601 time: {value!r}")
    return parsed


def format_summary(result: CycleResult) -> str:
    lines = [
        f"run {result.run_id}: {result.events_new} new event(s), {result.skipped} skipped, "
        f"{len(result.findings)} finding(s) new or updated, {len(result.suppressed)} suppressed",
        "coverage:",
    ]
    for name, summary in summarise(result.coverage).items():
        lines += render_source(summary.as_dict(), name, once=True)
    lines += [f"notice: {n}" for n in result.notices]
    # each unit that failed is an error too: capped like the unit lists above, which name them
    lines += capped([f"error: {e}" for e in result.errors], "error(s)")
    return "\n".join(lines)

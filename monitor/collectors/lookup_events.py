"""CloudTrail event history source (LookupEvents), for accounts without a trail.

LookupEvents takes a single lookup attribute, so there is one query per event name of the
AssumeRole family and per region, and every page is followed via NextToken (stopping at the
first page would silently lose everything past 50 events). Requests are paced to the
LookupEvents quota (2/s per account and region). Each region keeps its own checkpoint, advanced
only when every event name was read.

Event history is per account. With `accounts` set ("organization" or account ids) every member
account is read through its audit role (`monitor.collectors.organizations`), accounts in a
bounded pool, each account/region its own unit: checkpoint `<account>/<region>`, its own token
bucket and coverage row. An account whose audit role cannot be assumed is one failed coverage
row (message `assume_audit_role: ...`, which monitor_health reads as the step); the others go on.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import jmespath
from botocore.exceptions import BotoCoreError, ClientError

import queries
from monitor import aws
from monitor.collectors.base import Batch, Collector, CycleWindow, Span
from monitor.collectors.files import record_from_line
from monitor.collectors.organizations import (
    ASSUME_AUDIT_ROLE,
    AccountResults,
    AuditSessions,
    in_audit_account,
    list_accounts,
    run_per_account,
)
from monitor.collectors.ratelimit import TokenBucket, paced, shared_bucket
from monitor.detect.monitor_health import READ_SOURCE
from monitor.events.schema import ASSUME_ROLE_EVENTS

AWS_ERRORS = (BotoCoreError, ClientError)
EVENT_NAMES = tuple(sorted(ASSUME_ROLE_EVENTS))
# batches read ahead by the account threads: the pipeline stores them in this thread, and a
# backfill of a busy organisation must not pile up in memory while it does
QUEUE_BATCHES = 8


class _Stopped(Exception):
    """The consumer of the batches went away (the cycle stopped): an account thread ends here."""


_DONE = object()


class LookupEventsCollector(Collector):
    # region (own account) or "<account>/<region>" (member account) -> bucket; tests inject fake-clock ones
    buckets: dict[str, TokenBucket] | None = None

    def client(self, region: str) -> Any:
        return aws.client("cloudtrail", self.config.aws, region=region)

    def member_client(self, session: Any, account: str, region: str) -> Any:
        """A client acting in `account` through its audit-role session."""
        return aws.client("cloudtrail", self.config.aws, sess=session, region=region)

    def _bucket(self, region: str, account: str | None = None) -> TokenBucket:
        key = region if account is None else f"{account}/{region}"
        if self.buckets is not None and key in self.buckets:
            return self.buckets[key]
        a = self.config.aws
        # the quota is the member account's own, whichever credentials reach it
        who = a.profile if account is None else f"account:{account}"
        return shared_bucket(("cloudtrail:LookupEvents", who, a.endpoint_url, region),
                             self.source.requests_per_second)

    def batches(self, window: CycleWindow) -> Iterator[Batch]:
        if self.source.accounts is None:
            yield from self._own_batches(window)
        else:
            yield from self._member_batches(window)

    def _unit_batches(self, client: Any, bucket: TokenBucket, span: Span, start: datetime, end: datetime,
                      where: str) -> Iterator[tuple[Batch, bool]]:
        """One account/region's batches; True with the last one when all three event names were read."""
        projection = jmespath.compile(queries.load("jmespath", "lookup_events_records"))
        for i, name in enumerate(EVENT_NAMES):
            batch = Batch(span=span)
            origin = f"lookup_events:{where}/{name}"
            try:
                pages = client.get_paginator("lookup_events").paginate(
                    LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": name}],
                    StartTime=start, EndTime=end,
                )
                for page_no, page in enumerate(paced(pages, bucket), 1):
                    events = projection.search(page) or []
                    batch.delivered += len(events)
                    for n, text in enumerate(events):
                        batch.add(record_from_line((text or "").encode(), origin, f"page {page_no} event {n}"))
                    if batch.full():
                        yield batch, False
                        batch = Batch(span=span)
            except AWS_ERRORS as exc:
                span.fail(f"{name}: {exc}")
                yield batch, False  # what was read is stored; the unit's checkpoint stays put
                return
            yield batch, i == len(EVENT_NAMES) - 1

    def _own_batches(self, window: CycleWindow) -> Iterator[Batch]:
        for region in self.source.regions or [self.config.aws.region]:
            start, end = self.start_for(window, region), window.until
            span = Span(start, end, region=region)
            self.spans.append(span)
            for batch, done in self._unit_batches(self.client(region), self._bucket(region), span, start, end, region):
                if done:
                    batch.checkpoints[region] = self.checkpoint_value(region, end)
                yield batch

    def _member_accounts(self) -> list[str]:
        if self.source.accounts == "organization":
            return [a.account_id for a in list_accounts(self.config)]
        return sorted(set(self.source.accounts))

    def _member_batches(self, window: CycleWindow) -> Iterator[Batch]:
        """Every member account's units, read by a bounded pool of account threads.

        The threads only talk to AWS; checkpoints are read and written through the pipeline in
        this thread (the state store's connection is not shared), so they hand their batches
        over a bounded queue and this generator yields them as they come.
        """
        org = self.config.organization
        accounts = self._member_accounts()  # a failure here fails the whole source
        regions = self.source.regions or [self.config.aws.region]
        end = window.until
        starts = {f"{a}/{r}": self.start_for(window, f"{a}/{r}") for a in accounts for r in regions}
        sessions = AuditSessions(self.config, now=window.now)  # resolves the ExternalId once
        handoff: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_BATCHES)
        stop = threading.Event()
        steps: dict[str, str] = {}
        outcome: list[AccountResults] = []

        def put(item: Any) -> None:
            while not stop.is_set():
                try:
                    handoff.put(item, timeout=0.5)
                    return
                except queue.Full:
                    continue
            raise _Stopped("the cycle stopped taking batches")

        def read_account(account: str, session: Any) -> None:
            for region in regions:
                key = f"{account}/{region}"
                span = Span(starts[key], end, account=account, region=region)
                put(span)
                client = self.member_client(session, account, region)
                for batch, done in self._unit_batches(client, self._bucket(region, account), span,
                                                      starts[key], end, key):
                    put((key if done else None, batch))

        def run() -> None:
            try:
                outcome.append(run_per_account(accounts, in_audit_account(sessions, READ_SOURCE, steps, read_account),
                                               max_workers=org.max_workers,
                                               timeout_seconds=org.account_timeout_seconds,
                                               step=READ_SOURCE, steps=steps))
            finally:
                with contextlib.suppress(_Stopped):  # nobody is waiting for the end any more
                    put(_DONE)

        runner = threading.Thread(target=run, name="lookup-events-accounts", daemon=True)
        runner.start()
        units: dict[str, list[Span]] = {}
        completed: set[str] = set()
        try:
            while (item := handoff.get()) is not _DONE:
                if isinstance(item, Span):
                    self.spans.append(item)
                    units.setdefault(item.account or "", []).append(item)
                    continue
                key, batch = item
                if key is not None:
                    batch.checkpoints[key] = self.checkpoint_value(key, end)
                    completed.add(key)
                yield batch
        finally:
            # also when the pipeline stops taking batches: the account threads end at their next hand-over
            stop.set()
        runner.join()
        failures = outcome[0].failures if outcome else {}
        for account, failure in sorted(failures.items()):
            # the message is run_per_account's, redacted; the step goes first so monitor_health can tell
            # an audit role it cannot assume from a trail it cannot read
            message = f"{ASSUME_AUDIT_ROLE}: {failure.message}" if failure.step == ASSUME_AUDIT_ROLE else failure.message
            unfinished = [s for s in units.get(account, [])
                          if f"{account}/{s.region}" not in completed and s.status == "ok"]
            for span in unfinished:  # a timed-out or crashed account: what it had not finished stays open
                span.fail(message)
            if not units.get(account):
                first = min(starts[f"{account}/{r}"] for r in regions)
                self.spans.append(Span(first, end, account=account, status="failed", message=message))

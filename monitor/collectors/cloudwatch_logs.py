"""CloudWatch Logs source: FilterLogEvents over the window, the filter pattern pushed to AWS.

The filter pattern comes from `queries/filter_patterns/` so only AssumeRole-family events cross
the network; every record is re-checked here anyway (a pattern can be edited, and some
implementations ignore it). All pages are followed; requests are paced to the FilterLogEvents
quota (5/s per account and region) shared by every log group of the account.

The window of each log group is cut into slices, and the slices of all the source's log groups
are fetched concurrently by `max_workers` threads: one slice's pages come one after another
(each needs the previous page's token), so only several slices at once keep the quota busy
while requests wait on the network. Every thread takes its tokens from the one shared bucket,
so the rate stays within the quota however many threads run.

Each log group keeps its own checkpoint, advanced slice by slice, so a long backfill that dies
resumes from the last slice it stored. Batches are handed on in slice order per log group
whatever order the slices finish in, so a checkpoint never passes a slice still being read. At
most `max_workers` slices are in flight, from the oldest unfinished one on; the oldest streams
its batches as they fill and the others hold at most two each, so memory stays bounded.

CloudWatch Logs drops CloudTrail events larger than 256 KB: the S3 trail is the complete copy.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import jmespath
from botocore.exceptions import BotoCoreError, ClientError

import queries
from monitor import aws
from monitor.collectors.base import Batch, Collector, CycleWindow, Span
from monitor.collectors.files import record_from_line
from monitor.collectors.ratelimit import TokenBucket, paced, shared_bucket

AWS_ERRORS = (BotoCoreError, ClientError)


def slices(start: datetime, end: datetime, minutes: int) -> list[tuple[datetime, datetime]]:
    """[start, end) cut into consecutive slices of at most `minutes`."""
    out, step, t = [], timedelta(minutes=minutes), start
    while t < end:
        out.append((t, min(t + step, end)))
        t += step
    return out


def epoch_ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


@dataclass
class _Group:
    """One log group of the cycle: its coverage, and a flag that stops its remaining slices."""

    name: str
    span: Span
    stop: threading.Event = field(default_factory=threading.Event)


@dataclass
class _End:
    """A slice's last item: the partial batch after its last page, or why it stopped."""

    batch: Batch
    error: Exception | None = None


@dataclass
class _Slice:
    group: _Group
    start: datetime
    end: datetime
    # one full batch may wait here while the next fills: a slice ahead of the consumer holds two
    # batches at most, and the thread reading it blocks until the consumer catches up
    out: queue.Queue[Batch | _End] = field(default_factory=lambda: queue.Queue(maxsize=1))
    future: Future[None] | None = None
    ended: bool = False  # its `_End` has been taken off `out`


class CloudWatchLogsCollector(Collector):
    bucket: TokenBucket | None = None  # tests inject one on a fake clock
    page_size: int | None = None  # None: the service default (up to 10,000 events or 1 MB per page)

    def client(self) -> Any:
        return aws.client("logs", self.config.aws)

    def _bucket(self) -> TokenBucket:
        if self.bucket is None:
            a = self.config.aws
            self.bucket = shared_bucket(("logs:FilterLogEvents", a.profile, a.endpoint_url, a.region),
                                        self.source.requests_per_second)
        return self.bucket

    def batches(self, window: CycleWindow) -> Iterator[Batch]:
        pattern = queries.load("filter_patterns", self.source.filter_pattern)
        projection = jmespath.compile(queries.load("jmespath", "filter_log_events_messages"))
        logs = self.client()
        bucket = self._bucket()
        # checkpoints are read here, in this thread: the state store's connection is not shared
        plan: list[tuple[_Group, list[_Slice]]] = []
        for name in self.source.log_groups:
            start, end = self.start_for(window, name), window.until
            group = _Group(name, Span(start, end, region=self.config.aws.region, message=f"log group {name}"))
            plan.append((group, [_Slice(group, s, e) for s, e in slices(start, end, self.source.slice_minutes)]))
        # a slice of a group that has failed is not started: the group stops at its last stored slice
        unstarted = (sl for _, group_slices in plan for sl in group_slices if not sl.group.stop.is_set())
        in_flight: deque[_Slice] = deque()
        workers = self.source.max_workers
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cwlogs") as pool:

            def top_up() -> None:
                while len(in_flight) < workers and (sl := next(unstarted, None)) is not None:
                    sl.future = pool.submit(self._read_slice, logs, bucket, pattern, projection, sl)
                    in_flight.append(sl)

            try:
                for group, group_slices in plan:
                    # appended as reading reaches the group: the pipeline blames the last span for a crash
                    self.spans.append(group.span)
                    for sl in group_slices:
                        top_up()
                        if sl.future is None:  # skipped: an earlier slice of its group failed
                            continue
                        yield from self._slice_batches(sl)
                        # slices start in the order they are consumed: this one is the oldest
                        in_flight.popleft()
            finally:
                # a consumer that stops early (or an error) must not leave threads blocked on full queues
                for group, _ in plan:
                    group.stop.set()
                for sl in in_flight:
                    if sl.future is not None and not sl.future.cancel() and not sl.ended:
                        while not isinstance(sl.out.get(), _End):
                            pass

    def _slice_batches(self, sl: _Slice) -> Iterator[Batch]:
        """The slice's batches as its thread hands them on; the last one carries the checkpoint."""
        group = sl.group
        while not isinstance(item := sl.out.get(), _End):
            if not group.stop.is_set():  # store as we go; the checkpoint waits for the slice's end
                yield item
        sl.ended = True
        if group.stop.is_set():  # an earlier slice of the group failed: this one cannot count
            return
        if item.error is None:
            item.batch.checkpoints[group.name] = self.checkpoint_value(group.name, sl.end)
            yield item.batch
        elif isinstance(item.error, AWS_ERRORS):  # this group stops at its last stored slice; the others go on
            group.stop.set()
            group.span.fail(f"{group.name}: {item.error}")
        else:
            raise item.error

    def _read_slice(self, logs: Any, bucket: TokenBucket, pattern: str, projection: Any, sl: _Slice) -> None:
        """In a pool thread: every page of one slice into batches on `sl.out`, then an `_End`."""
        group = sl.group
        batch = Batch(span=group.span)
        error: Exception | None = None
        try:
            pages = logs.get_paginator("filter_log_events").paginate(
                logGroupName=group.name, startTime=epoch_ms(sl.start), endTime=epoch_ms(sl.end),
                filterPattern=pattern, PaginationConfig={"PageSize": self.page_size} if self.page_size else {},
            )
            for page in paced(pages, bucket):
                if group.stop.is_set():  # its group failed or the consumer went away: no more requests
                    break
                events = projection.search(page) or []
                batch.delivered += len(events)
                for message, stream, event_id in events:
                    batch.add(record_from_line((message or "").encode(), f"{group.name}/{stream}",
                                               f"event {event_id}"))
                if batch.full():
                    sl.out.put(batch)
                    batch = Batch(span=group.span)
        except Exception as exc:  # handed to the consumer, which reports or re-raises it in order
            error = exc
        sl.out.put(_End(batch, error))

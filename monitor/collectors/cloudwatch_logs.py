"""CloudWatch Logs source: FilterLogEvents over the window, the filter pattern pushed to AWS.

The filter pattern comes from `queries/filter_patterns/` so only AssumeRole-family events cross
the network; every record is re-checked here anyway (a pattern can be edited, and some
implementations ignore it). All pages are followed; requests are paced to the FilterLogEvents
quota (5/s per account and region) shared by every log group of the account. Each log group
keeps its own checkpoint, advanced slice by slice, so a long backfill that dies resumes from
the last slice it stored.

CloudWatch Logs drops CloudTrail events larger than 256 KB: the S3 trail is the complete copy.
"""

from __future__ import annotations

from collections.abc import Iterator
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
        for group in self.source.log_groups:
            start, end = self.start_for(window, group), window.until
            span = Span(start, end, region=self.config.aws.region, message=f"log group {group}")
            self.spans.append(span)
            try:
                for s, e in slices(start, end, self.source.slice_minutes):
                    batch = Batch(span=span)
                    pages = logs.get_paginator("filter_log_events").paginate(
                        logGroupName=group, startTime=epoch_ms(s), endTime=epoch_ms(e), filterPattern=pattern,
                        PaginationConfig={"PageSize": self.page_size} if self.page_size else {},
                    )
                    for page in paced(pages, self._bucket()):
                        for message, stream, event_id in projection.search(page) or []:
                            batch.add(record_from_line((message or "").encode(), f"{group}/{stream}", f"event {event_id}"))
                        if batch.full():  # store as we go; the checkpoint waits for the slice's end
                            yield batch
                            batch = Batch(span=span)
                    batch.checkpoints[group] = self.checkpoint_value(group, e)
                    yield batch
            except AWS_ERRORS as exc:  # this group stops at its last stored slice; the others go on
                span.fail(f"{group}: {exc}")

"""CloudTrail event history source (LookupEvents), for accounts without a trail.

LookupEvents takes a single lookup attribute, so there is one query per event name of the
AssumeRole family and per region, and every page is followed via NextToken (stopping at the
first page would silently lose everything past 50 events). Requests are paced to the
LookupEvents quota (2/s per account and region). Each region keeps its own checkpoint, advanced
only when all three event names were read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jmespath
from botocore.exceptions import BotoCoreError, ClientError

import queries
from monitor import aws
from monitor.collectors.base import Batch, Collector, CycleWindow, Span
from monitor.collectors.files import record_from_line
from monitor.collectors.ratelimit import TokenBucket, paced, shared_bucket
from monitor.events.schema import ASSUME_ROLE_EVENTS

AWS_ERRORS = (BotoCoreError, ClientError)
EVENT_NAMES = tuple(sorted(ASSUME_ROLE_EVENTS))


class LookupEventsCollector(Collector):
    buckets: dict[str, TokenBucket] | None = None  # region -> bucket; tests inject fake-clock ones

    def client(self, region: str) -> Any:
        return aws.client("cloudtrail", self.config.aws, region=region)

    def _bucket(self, region: str) -> TokenBucket:
        if self.buckets is not None and region in self.buckets:
            return self.buckets[region]
        a = self.config.aws
        return shared_bucket(("cloudtrail:LookupEvents", a.profile, a.endpoint_url, region),
                             self.source.requests_per_second)

    def batches(self, window: CycleWindow) -> Iterator[Batch]:
        projection = jmespath.compile(queries.load("jmespath", "lookup_events_records"))
        for region in self.source.regions or [self.config.aws.region]:
            start, end = self.start_for(window, region), window.until
            span = Span(start, end, region=region)
            self.spans.append(span)
            client = self.client(region)
            for i, name in enumerate(EVENT_NAMES):
                batch = Batch(span=span)
                origin = f"lookup_events:{region}/{name}"
                try:
                    pages = client.get_paginator("lookup_events").paginate(
                        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": name}],
                        StartTime=start, EndTime=end,
                    )
                    for page_no, page in enumerate(paced(pages, self._bucket(region)), 1):
                        events = projection.search(page) or []
                        batch.delivered += len(events)
                        for n, text in enumerate(events):
                            batch.add(record_from_line((text or "").encode(), origin, f"page {page_no} event {n}"))
                        if batch.full():
                            yield batch
                            batch = Batch(span=span)
                except AWS_ERRORS as exc:
                    span.fail(f"{name}: {exc}")
                    yield batch  # what was read is stored; the region's checkpoint stays put
                    break
                if i == len(EVENT_NAMES) - 1:  # all three names read: the region's window is done
                    batch.checkpoints[region] = self.checkpoint_value(region, end)
                yield batch

"""Source `logs_insights`: the filtering runs in CloudWatch Logs Insights.

The window is cut into time slices, one query each, with at most `max_concurrent_queries` in
flight (Insights allows 30 per account, shared with people at the console). A query returns at
most 10,000 rows: a slice that comes back full is halved and asked again, so nothing is cut off
silently. Polling is one loop with an injected sleep; results are handed on in time order.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from monitor.collectors.pushdown import (
    Backoff,
    PushdownCollector,
    PushdownError,
    load_query,
    record_from_columns,
)
from monitor.config import LogsInsightsSource

Row = tuple[str, str, dict[str, Any]]
MAX_ROWS = 10_000  # the most one Insights query returns
_FAILED = ("Failed", "Cancelled", "Timeout", "Unknown")


@dataclass
class Slice:
    start: int  # epoch seconds, inclusive
    end: int  # epoch seconds, inclusive (Insights' endTime is inclusive)
    query_id: str | None = None
    rows: list[dict[str, str]] | None = None
    children: list[Slice] = field(default_factory=list)

    def halves(self) -> list[Slice]:
        mid = (self.start + self.end) // 2
        return [Slice(self.start, mid), Slice(mid + 1, self.end)]


def split_window(start: datetime, end: datetime, parts: int) -> list[Slice]:
    """[start, end) as up to `parts` contiguous inclusive second ranges."""
    lo, hi = int(start.timestamp()), int(end.timestamp()) - 1
    if hi < lo:
        return []
    parts = max(1, min(parts, hi - lo + 1))
    step = (hi - lo + 1) / parts
    bounds = [lo + round(i * step) for i in range(parts)] + [hi + 1]
    return [Slice(bounds[i], bounds[i + 1] - 1) for i in range(parts)]


def _fields(cells: list[dict[str, str]]) -> dict[str, str]:
    return {c["field"]: c.get("value") for c in cells if not c.get("field", "").startswith("@")}


class _Runner:
    def __init__(self, client: Any, source: LogsInsightsSource, query: str, max_rows: int) -> None:
        self.client, self.source, self.query, self.max_rows = client, source, query, max_rows

    def start(self, s: Slice) -> bool:
        try:
            resp = self.client.start_query(logGroupNames=self.source.log_groups, startTime=s.start,
                                           endTime=s.end, queryString=self.query, limit=self.max_rows)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "LimitExceededException":
                return False  # the account's concurrent-query limit: wait for one to finish
            raise
        s.query_id = resp["queryId"]
        return True

    def poll(self, s: Slice) -> bool:
        """True when the slice's query finished (rows stored); raises when it failed."""
        resp = self.client.get_query_results(queryId=s.query_id)
        status = resp.get("status")
        if status in _FAILED:
            raise PushdownError(f"logs insights query {s.query_id} ({s.start}..{s.end}) {status.lower()}")
        if status != "Complete":
            return False
        rows = [_fields(cells) for cells in resp.get("results", [])]
        token = resp.get("nextToken")
        while token:
            page = self.client.get_query_results(queryId=s.query_id, nextToken=token)
            rows.extend(_fields(cells) for cells in page.get("results", []))
            token = page.get("nextToken")
        s.rows = rows
        return True


def _leaves(s: Slice) -> Iterator[Slice]:
    if s.children:
        for child in s.children:
            yield from _leaves(child)
    else:
        yield s


def collect(client: Any, source: LogsInsightsSource, start: datetime, end: datetime, *,
            sleep: Callable[[float], None] = time.sleep, backoff: Backoff | None = None,
            max_rows: int = MAX_ROWS) -> Iterator[Row]:
    """AssumeRole-family records in [start, end) as (origin, position, record), in slice order."""
    backoff = backoff or Backoff()
    runner = _Runner(client, source, load_query("logs_insights", "assume_role_events", limit=str(max_rows)),
                     max_rows)
    roots = split_window(start, end, source.max_concurrent_queries)
    pending: deque[Slice] = deque(roots)
    running: list[Slice] = []
    emitted: set[int] = set()
    delay, waited = backoff.first, 0.0
    while pending or running:
        while pending and len(running) < source.max_concurrent_queries:
            if not runner.start(pending[0]):
                break
            running.append(pending.popleft())
        progressed = False
        for s in list(running):
            if not runner.poll(s):
                continue
            running.remove(s)
            progressed = True
            if s.rows is not None and len(s.rows) >= max_rows and s.end > s.start:
                s.children, s.rows = s.halves(), None  # full: halve and ask again
                pending.extendleft(reversed(s.children))
        yield from _ready(roots, emitted)
        if (pending or running) and not progressed:
            if waited >= backoff.timeout:
                raise PushdownError(f"logs insights: queries still running after {backoff.timeout:.0f} s; gave up")
            sleep(delay)
            waited += delay
            delay = min(delay * backoff.factor, backoff.cap)
        elif progressed:
            delay = backoff.first
    yield from _ready(roots, emitted)


def _ready(roots: list[Slice], emitted: set[int]) -> Iterator[Row]:
    """Rows of finished slices, in time order, stopping at the first slice still outstanding."""
    for root in roots:
        for leaf in _leaves(root):
            if id(leaf) in emitted:
                continue
            if leaf.rows is None:
                return
            emitted.add(id(leaf))
            origin = f"logs_insights:{leaf.query_id}"
            for i, row in enumerate(leaf.rows):
                yield origin, f"row {i}", record_from_columns(row)
            leaf.rows = []  # handed on; keep memory bounded


class LogsInsightsCollector(PushdownCollector):
    service = "logs"

    def rows(self, client: Any, start: datetime, end: datetime) -> Iterator[Row]:
        return collect(client, self.source, start, end)

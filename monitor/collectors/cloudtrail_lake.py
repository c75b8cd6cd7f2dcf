"""Source `cloudtrail_lake`: the filtering runs in CloudTrail Lake over an event data store.

StartQuery with `queries/cloudtrail_lake/assume_role_events.sql`, poll GetQueryResults with
backoff until the query has finished, then follow NextToken through every page. Rows arrive as
lists of single-key objects; each becomes a CloudTrail-shaped record for the shared normaliser.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from monitor.collectors.pushdown import (
    Backoff,
    PushdownCollector,
    PushdownError,
    lake_params,
    load_query,
    record_from_columns,
    wait_until_done,
)
from monitor.config import CloudTrailLakeSource

Row = tuple[str, str, dict[str, Any]]
_RUNNING = ("QUEUED", "RUNNING")


def lake_query(source: CloudTrailLakeSource, start: datetime, end: datetime,
               name: str = "assume_role_events") -> str:
    return load_query("cloudtrail_lake", name, **lake_params(source.event_data_store, start, end))


def _row(cells: list[dict[str, str]]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for cell in cells:
        out.update(cell)
    return out


def result_rows(client: Any, source: CloudTrailLakeSource, query_id: str, *,
                sleep: Callable[[float], None] = time.sleep, backoff: Backoff | None = None
                ) -> Iterator[dict[str, str | None]]:
    first: dict[str, Any] = {}

    def done() -> bool:
        nonlocal first
        first = client.get_query_results(EventDataStore=source.event_data_store, QueryId=query_id)
        status = first.get("QueryStatus")
        if status == "FINISHED":
            return True
        if status in _RUNNING:
            return False
        raise PushdownError(f"cloudtrail lake query {query_id} {str(status).lower()}: "
                            f"{first.get('ErrorMessage', '')}".rstrip(": "))

    wait_until_done(done, sleep=sleep, backoff=backoff or Backoff(), what=f"cloudtrail lake query {query_id}")
    page = first
    while True:
        for cells in page.get("QueryResultRows", []):
            yield _row(cells)
        token = page.get("NextToken")
        if not token:
            return
        page = client.get_query_results(EventDataStore=source.event_data_store, QueryId=query_id, NextToken=token)


def collect(client: Any, source: CloudTrailLakeSource, start: datetime, end: datetime, *,
            sleep: Callable[[float], None] = time.sleep, backoff: Backoff | None = None) -> Iterator[Row]:
    """AssumeRole-family records in [start, end) as (origin, position, record)."""
    query_id = str(client.start_query(QueryStatement=lake_query(source, start, end))["QueryId"])
    origin = f"cloudtrail_lake:{query_id}"
    for i, row in enumerate(result_rows(client, source, query_id, sleep=sleep, backoff=backoff)):
        yield origin, f"row {i}", record_from_columns(row)


class CloudTrailLakeCollector(PushdownCollector):
    service = "cloudtrail"

    def rows(self, client: Any, start: datetime, end: datetime) -> Iterator[Row]:
        return collect(client, self.source, start, end)

"""Source `athena`: the filtering runs in Athena over the partition-projected CloudTrail table.

StartQueryExecution with `queries/athena/assume_role_events.sql`, poll GetQueryExecution with
backoff (the sleep is injected so tests never wait), then every page of GetQueryResults. Only
AssumeRole-family rows cross the network: an organisation with terabytes of trail never
downloads them. Each row becomes a CloudTrail-shaped record for the shared normaliser.
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
    athena_params,
    load_query,
    record_from_columns,
    wait_until_done,
)
from monitor.config import AthenaSource

Row = tuple[str, str, dict[str, Any]]  # (origin, position, record)


def athena_query(source: AthenaSource, start: datetime, end: datetime, *, accounts: list[str] | None = None,
                 regions: list[str] | None = None, name: str = "assume_role_events") -> str:
    table = f"{source.database}.{source.table}"
    return load_query("athena", name, **athena_params(table, start, end, accounts=accounts, regions=regions))


def start_query(client: Any, source: AthenaSource, query: str) -> str:
    kwargs: dict[str, Any] = {
        "QueryString": query,
        "QueryExecutionContext": {"Database": source.database},
        "WorkGroup": source.workgroup,
    }
    if source.output_location:
        kwargs["ResultConfiguration"] = {"OutputLocation": source.output_location}
    return str(client.start_query_execution(**kwargs)["QueryExecutionId"])


def wait_for_query(client: Any, execution_id: str, *, sleep: Callable[[float], None] = time.sleep,
                   backoff: Backoff | None = None) -> None:
    def done() -> bool:
        status = client.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]["Status"]
        state = status["State"]
        if state == "SUCCEEDED":
            return True
        if state in ("FAILED", "CANCELLED"):
            reason = status.get("StateChangeReason") or status.get("AthenaError", {}).get("ErrorMessage", "")
            raise PushdownError(f"athena query {execution_id} {state.lower()}: {reason}".rstrip(": "))
        return False  # QUEUED or RUNNING

    wait_until_done(done, sleep=sleep, backoff=backoff or Backoff(), what=f"athena query {execution_id}")


def result_rows(client: Any, execution_id: str) -> Iterator[dict[str, str | None]]:
    """Every row of every page, as {column: value}; the header row Athena puts first is dropped."""
    columns: list[str] | None = None
    first = True
    for page in client.get_paginator("get_query_results").paginate(QueryExecutionId=execution_id):
        result = page["ResultSet"]
        if columns is None:
            columns = [c["Name"] for c in result.get("ResultSetMetadata", {}).get("ColumnInfo", [])]
        for row in result.get("Rows", []):
            values = [cell.get("VarCharValue") for cell in row.get("Data", [])]
            if first:
                first = False
                if values == columns:
                    continue
            yield dict(zip(columns, values, strict=False))


def collect(client: Any, source: AthenaSource, start: datetime, end: datetime, *,
            accounts: list[str] | None = None, regions: list[str] | None = None,
            sleep: Callable[[float], None] = time.sleep, backoff: Backoff | None = None) -> Iterator[Row]:
    """AssumeRole-family records in [start, end) as (origin, position, record)."""
    execution_id = start_query(client, source, athena_query(source, start, end, accounts=accounts, regions=regions))
    wait_for_query(client, execution_id, sleep=sleep, backoff=backoff)
    origin = f"athena:{source.workgroup}/{execution_id}"
    for i, row in enumerate(result_rows(client, execution_id)):
        yield origin, f"row {i}", record_from_columns(row)


class AthenaCollector(PushdownCollector):
    service = "athena"

    def rows(self, client: Any, start: datetime, end: datetime) -> Iterator[Row]:
        return collect(client, self.source, start, end)


__all__ = ["AthenaCollector", "PushdownError", "athena_query", "collect", "result_rows", "start_query", "wait_for_query"]

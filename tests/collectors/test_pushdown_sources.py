"""Polling and paging of the push-down sources.

Athena runs against moto in server mode: its query results can be preset there, and its state
manager holds a query QUEUED and RUNNING for as many polls as a test asks. What moto does not do
goes through the botocore Stubber: paging GetQueryResults (moto answers every row at once), a
FAILED query, CloudTrail Lake queries (StartQuery is not implemented), and Logs Insights queries
that are still running, refused for concurrency or failed (moto completes every query at once).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from monitor.aws import client as aws_client
from monitor.collectors import athena, cloudtrail_lake, logs_insights
from monitor.collectors.pushdown import PUSHDOWN_COLUMNS, Backoff, PushdownError, athena_params, load_query
from monitor.config import AthenaSource, CloudTrailLakeSource, LogsInsightsSource
from tests.collectors.athena_mirror import mirror, run_athena_sql
from tests.collectors.test_pushdown_equivalence import WIDE, canonical, in_process_rows, normalise_or_none

Q1, Q2 = "0b1d2c3e-0000-4000-8000-00000000lq01", "0b1d2c3e-0000-4000-8000-00000000lq02"
START, END = datetime(2024, 3, 5, 9, tzinfo=UTC), datetime(2024, 3, 5, 10, tzinfo=UTC)


def text(value: object) -> str | None:
    """A value as the query services return it: text, booleans lower-case, null absent."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


@pytest.fixture(scope="module")
def pushdown_rows(layout_trail: Path) -> list[dict[str, str | None]]:
    """Real push-down rows: the Athena query run over the mirror of the public trail."""
    sql = load_query("athena", "assume_role_events", **athena_params("default.cloudtrail_logs", *WIDE))
    return [{k: text(v) for k, v in row.items()} for row in run_athena_sql(mirror(layout_trail), sql)]


def expected_rows(layout_trail: Path) -> list[dict]:
    return canonical(in_process_rows(layout_trail, *WIDE))


def rebuilt(items: list[tuple[str, str, dict]]) -> list[dict]:
    return canonical([r for r in (normalise_or_none(rec) for _, _, rec in items) if r is not None])


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def athena_result_set(rows: list[dict[str, str | None]], header: bool) -> dict:
    data = [{"Data": [{"VarCharValue": c} for c in PUSHDOWN_COLUMNS]}] if header else []
    data += [{"Data": [{"VarCharValue": r[c]} if r[c] is not None else {} for c in PUSHDOWN_COLUMNS]}
             for r in rows]
    return {"Rows": data, "ResultSetMetadata": {"ColumnInfo": [
        {"Name": c, "Type": "varchar", "CatalogName": "hive", "SchemaName": "", "TableName": "", "Label": c}
        for c in PUSHDOWN_COLUMNS]}}


# --------------------------------------------------------------------------- athena (moto server)


def preset_athena_results(moto: str, rows: list[dict[str, str | None]]) -> None:
    """Queue `rows` (header first) as the result the moto server gives the next Athena query."""
    preset = athena_result_set(rows, header=True)
    body = {"account_id": "123456789012", "region": "us-east-1",
            "results": [{"rows": preset["Rows"], "column_info": preset["ResultSetMetadata"]["ColumnInfo"]}]}
    urllib.request.urlopen(urllib.request.Request(
        f"{moto}/moto-api/static/athena/query-results", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"})).read()


def test_athena_source_against_moto(aws_config, moto: str, layout_trail: Path, pushdown_rows) -> None:  # noqa: ANN001
    preset_athena_results(moto, pushdown_rows)
    client = aws_client("athena", aws_config)
    source = AthenaSource(type="athena", database="trails", table="org_cloudtrail",
                          output_location="s3://athena-results/rolewatch/")
    sleeps = Sleeps()

    items = list(athena.collect(client, source, START, END, accounts=["111122223333"], sleep=sleeps))

    assert rebuilt(items) == expected_rows(layout_trail)
    origin = items[0][0]
    assert origin.startswith("athena:primary/") and items[0][1] == "row 0"
    execution = client.get_query_execution(QueryExecutionId=origin.rsplit("/", 1)[1])["QueryExecution"]
    assert '"trails"."org_cloudtrail"' in execution["Query"]
    assert "BETWEEN '2024/03/05' AND '2024/03/05'" in execution["Query"]
    assert "account IN ('111122223333')" in execution["Query"]
    assert execution["ResultConfiguration"]["OutputLocation"].startswith("s3://athena-results/rolewatch/")
    assert sleeps == []  # moto's queries have already succeeded


@pytest.fixture
def athena_polls(moto: str) -> Iterator[Callable[[int], None]]:
    """`hold(n)`: each Athena query then moves QUEUED -> RUNNING -> SUCCEEDED once every n polls."""
    def transition(action: str, body: dict) -> None:
        urllib.request.urlopen(urllib.request.Request(
            f"{moto}/moto-api/state-manager/{action}", data=json.dumps(body).encode(), method="POST")).read()

    def hold(polls: int) -> None:
        transition("set-transition", {"model_name": "athena::execution",
                                      "transition": {"progression": "manual", "times": polls}})

    yield hold
    transition("unset-transition", {"model_name": "athena::execution"})  # the server outlives this test


def test_athena_polls_with_backoff_until_the_query_succeeds(aws_config, moto: str, athena_polls,  # noqa: ANN001
                                                            pushdown_rows) -> None:
    preset_athena_results(moto, pushdown_rows)
    athena_polls(2)
    client = aws_client("athena", aws_config)
    states: list[str] = []
    client.meta.events.register("after-call.athena.GetQueryExecution", lambda parsed, **_: states.append(
        parsed["QueryExecution"]["Status"]["State"]))
    sleeps = Sleeps()

    items = list(athena.collect(client, AthenaSource(type="athena"), START, END,
                                sleep=sleeps, backoff=Backoff(first=1, factor=2, cap=3)))

    assert states == ["QUEUED", "RUNNING", "RUNNING", "SUCCEEDED"]
    assert sleeps == [1, 2, 3]  # one wait between each two polls, doubling up to the cap
    assert len(items) == len(pushdown_rows)


def test_athena_gives_up_after_the_timeout(aws_config, athena_polls) -> None:  # noqa: ANN001
    athena_polls(1000)  # never leaves QUEUED
    sleeps = Sleeps()
    with pytest.raises(PushdownError, match="still running after 7 s"):
        list(athena.collect(aws_client("athena", aws_config), AthenaSource(type="athena"), START, END,
                            sleep=sleeps, backoff=Backoff(first=2, factor=2, cap=10, timeout=7)))
    assert sleeps == [2, 4, 1]


# --------------------------------------------------------------------------- athena (Stubber)


def stubbed(service: str) -> tuple[object, Stubber]:
    client = boto3.client(service, region_name="us-east-1")
    return client, Stubber(client)


def test_athena_reads_every_page_without_taking_the_header_for_data(pushdown_rows) -> None:  # noqa: ANN001
    client, stub = stubbed("athena")
    stub.add_response("start_query_execution", {"QueryExecutionId": "q-1"})
    stub.add_response("get_query_execution", {"QueryExecution": {"Status": {"State": "SUCCEEDED"}}},
                      {"QueryExecutionId": "q-1"})
    first, second = pushdown_rows[:40], pushdown_rows[40:]
    stub.add_response("get_query_results", {"ResultSet": athena_result_set(first, header=True), "NextToken": "t2"},
                      {"QueryExecutionId": "q-1"})
    stub.add_response("get_query_results", {"ResultSet": athena_result_set(second, header=False)},
                      {"QueryExecutionId": "q-1", "NextToken": "t2"})
    with stub:
        items = list(athena.collect(client, AthenaSource(type="athena"), START, END, sleep=Sleeps()))
        stub.assert_no_pending_responses()
    assert len(items) == len(pushdown_rows)  # the second page too, and no header row as data
    assert [pos for _, pos, _ in items[38:42]] == ["row 38", "row 39", "row 40", "row 41"]


def test_athena_failure_names_the_query_and_reason() -> None:
    client, stub = stubbed("athena")
    stub.add_response("start_query_execution", {"QueryExecutionId": "q-9"})
    stub.add_response("get_query_execution", {"QueryExecution": {"Status": {
        "State": "FAILED", "StateChangeReason": "TABLE_NOT_FOUND: line 41:6: Table 'x' does not exist"}}})
    with stub, pytest.raises(PushdownError, match=r"athena query q-9 failed: TABLE_NOT_FOUND"):
        list(athena.collect(client, AthenaSource(type="athena"), START, END, sleep=Sleeps()))


# --------------------------------------------------------------------------- cloudtrail lake (Stubber)


def lake_rows(rows: list[dict[str, str | None]]) -> list[list[dict[str, str]]]:
    return [[{c: r[c]} for c in PUSHDOWN_COLUMNS if r[c] is not None] for r in rows]


def test_cloudtrail_lake_polls_then_follows_next_token(layout_trail: Path, pushdown_rows) -> None:  # noqa: ANN001
    client, stub = stubbed("cloudtrail")
    eds = "arn:aws:cloudtrail:us-east-1:111122223333:eventdatastore/EXAMPLE-f852-4e8f-8bd1-bcf6cEXAMPLE"
    source = CloudTrailLakeSource(type="cloudtrail_lake", event_data_store=eds)
    query = cloudtrail_lake.lake_query(source, START, END)
    assert "FROM EXAMPLE-f852-4e8f-8bd1-bcf6cEXAMPLE" in query and "eventTime >= '2024-03-05 09:00:00'" in query
    stub.add_response("start_query", {"QueryId": Q1}, {"QueryStatement": query})
    stub.add_response("get_query_results", {"QueryStatus": "QUEUED"}, {"EventDataStore": eds, "QueryId": Q1})
    stub.add_response("get_query_results", {"QueryStatus": "RUNNING"}, {"EventDataStore": eds, "QueryId": Q1})
    stub.add_response("get_query_results", {"QueryStatus": "FINISHED", "QueryResultRows": lake_rows(pushdown_rows[:30]),
                                            "NextToken": "page-2"}, {"EventDataStore": eds, "QueryId": Q1})
    stub.add_response("get_query_results", {"QueryStatus": "FINISHED", "QueryResultRows": lake_rows(pushdown_rows[30:])},
                      {"EventDataStore": eds, "QueryId": Q1, "NextToken": "page-2"})
    sleeps = Sleeps()
    with stub:
        items = list(cloudtrail_lake.collect(client, source, START, END, sleep=sleeps))
        stub.assert_no_pending_responses()
    assert len(sleeps) == 2
    assert rebuilt(items) == expected_rows(layout_trail)


def test_cloudtrail_lake_failure_carries_the_error_message() -> None:
    client, stub = stubbed("cloudtrail")
    stub.add_response("start_query", {"QueryId": Q2})
    stub.add_response("get_query_results", {"QueryStatus": "FAILED", "ErrorMessage": "Query timed out"})
    source = CloudTrailLakeSource(type="cloudtrail_lake", event_data_store="eds-1")
    with stub, pytest.raises(PushdownError, match=f"{Q2} failed: Query timed out"):
        list(cloudtrail_lake.collect(client, source, START, END, sleep=Sleeps()))


# --------------------------------------------------------------------------- logs insights (Stubber)


def insights_results(rows: list[dict[str, str | None]]) -> list[list[dict[str, str]]]:
    return [[{"field": c, "value": r[c]} for c in PUSHDOWN_COLUMNS if r[c] is not None]
            + [{"field": "@ptr", "value": "CmAKJwoj"}] for r in rows]


def test_logs_insights_keeps_within_the_concurrency_limit_and_splits_full_slices(pushdown_rows) -> None:  # noqa: ANN001
    client, stub = stubbed("logs")
    source = LogsInsightsSource(type="logs_insights", log_groups=["org-trail"], max_concurrent_queries=2)
    a, b, c = pushdown_rows[0:2], pushdown_rows[2:4], pushdown_rows[4:5]
    t0 = int(START.timestamp())
    # two slices of 30 minutes; the first comes back full (max_rows=3) and is asked again in halves
    stub.add_response("start_query", {"queryId": "s1"}, {"logGroupNames": ["org-trail"], "startTime": t0,
                      "endTime": t0 + 1799, "queryString": stub_any(), "limit": 3})
    stub.add_response("start_query", {"queryId": "s2"}, {"logGroupNames": ["org-trail"], "startTime": t0 + 1800,
                      "endTime": t0 + 3599, "queryString": stub_any(), "limit": 3})
    stub.add_response("get_query_results", {"status": "Running", "results": []}, {"queryId": "s1"})
    stub.add_response("get_query_results", {"status": "Complete", "results": insights_results(c)}, {"queryId": "s2"})
    stub.add_response("get_query_results", {"status": "Complete", "results": insights_results(a + b[:1])},
                      {"queryId": "s1"})
    stub.add_response("start_query", {"queryId": "s1a"}, {"logGroupNames": ["org-trail"], "startTime": t0,
                      "endTime": t0 + 899, "queryString": stub_any(), "limit": 3})
    error = {"Error": {"Code": "LimitExceededException", "Message": "too many concurrent queries"}}
    stub.add_client_error("start_query", "LimitExceededException", error["Error"]["Message"])
    stub.add_response("get_query_results", {"status": "Complete", "results": insights_results(a)}, {"queryId": "s1a"})
    stub.add_response("start_query", {"queryId": "s1b"}, {"logGroupNames": ["org-trail"], "startTime": t0 + 900,
                      "endTime": t0 + 1799, "queryString": stub_any(), "limit": 3})
    stub.add_response("get_query_results", {"status": "Complete", "results": insights_results(b)}, {"queryId": "s1b"})
    sleeps = Sleeps()
    with stub:
        items = list(logs_insights.collect(client, source, START, END, sleep=sleeps, max_rows=3))
        stub.assert_no_pending_responses()
    # time order: first half, second half of the first slice, then the second slice
    assert [origin for origin, _, _ in items] == ["logs_insights:s1a"] * 2 + ["logs_insights:s1b"] * 2 + [
        "logs_insights:s2"]
    assert [rec["eventID"] for _, _, rec in items] == [r["event_id"] for r in a + b + c]
    assert sleeps == []  # every round finished some query: no idle wait


def stub_any():  # noqa: ANN201
    from botocore.stub import ANY

    return ANY


def test_logs_insights_failed_query_is_an_error() -> None:
    client, stub = stubbed("logs")
    source = LogsInsightsSource(type="logs_insights", log_groups=["g"], max_concurrent_queries=1)
    stub.add_response("start_query", {"queryId": "f1"})
    stub.add_response("get_query_results", {"status": "Failed", "results": []})
    with stub, pytest.raises(PushdownError, match="f1"):
        list(logs_insights.collect(client, source, START, END, sleep=Sleeps()))


def test_split_window_covers_every_second_once() -> None:
    slices = logs_insights.split_window(START, END, 7)
    assert slices[0].start == int(START.timestamp()) and slices[-1].end == int(END.timestamp()) - 1
    assert all(x.end + 1 == y.start for x, y in zip(slices, slices[1:], strict=False))
    assert len(slices) == 7


# --------------------------------------------------------------------------- through the pipeline


def test_athena_source_in_a_cycle_stores_the_same_events(aws_config, moto: str, layout_trail: Path,
                                                          pushdown_rows, state) -> None:  # noqa: ANN001
    from monitor.config import parse_config
    from monitor.pipeline import load_events, run_cycle

    preset_athena_results(moto, pushdown_rows)
    config = parse_config({"aws": {"endpoint_url": moto, "max_attempts": 3},
                           "sources": [{"type": "athena", "database": "trails", "table": "org_cloudtrail"}]})
    now = datetime(2030, 1, 1, tzinfo=UTC)

    result = run_cycle(config, state, now=now, since=datetime(2000, 1, 1, tzinfo=UTC), notify=False)

    expected = {r["event_id"] for r in expected_rows(layout_trail)}
    assert result.errors == [] and result.events_new == len(expected)
    assert set(load_events(state)["event_id"]) == expected
    assert [c.status for c in result.coverage] == ["ok"]
    assert result.coverage[0].delivered == len(pushdown_rows)  # every row the query returned
    assert state.get_checkpoint("athena:trails.org_cloudtrail", "position").startswith("2030-01-01T00:00:00")

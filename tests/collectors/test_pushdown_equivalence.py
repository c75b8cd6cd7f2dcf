"""The Athena queries answer exactly what the in-process path computes.

Each query in queries/athena/ is rendered, transpiled by sqlglot from Trino to DuckDB and run
over a DuckDB view that mirrors the Athena CloudTrail table, on a trail of real public records
in the S3 layout. Its rows must equal what normalise + frame (+ merge of shared copies) give
for the same files.
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pandas as pd
import pytest

from monitor.collectors.pushdown import athena_params, load_query, record_from_columns
from monitor.events.merge import merge_shared_copies, one_row_per_call
from monitor.events.normalise import RecordError, is_assume_role_record, normalise
from monitor.events.schema import frame_from_rows
from tests.collectors.athena_mirror import mirror, run_athena_sql
from tests.collectors.conftest import EXTERNAL_ID

WIDE = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC))
INVICTUS_DAY = (datetime(2023, 7, 10, tzinfo=UTC), datetime(2023, 7, 11, tzinfo=UTC))


def in_process_rows(root: Path, start: datetime, end: datetime, accounts: list[str] | None = None) -> list[dict]:
    rows = []
    for path in sorted(root.rglob("*.json.gz")):
        if accounts and not any(f"/AWSLogs/{a}/CloudTrail/" in str(path) for a in accounts):
            continue  # the S3 layout's account folder is the partition (it may differ from recipientAccountId)
        for rec in orjson.loads(gzip.decompress(path.read_bytes()))["Records"]:
            if not is_assume_role_record(rec):
                continue
            try:
                row = normalise(rec)
            except RecordError:
                continue
            if row["event_time"] is None or not start <= row["event_time"] < end:
                continue
            rows.append(row)
    return rows


def normalise_or_none(record: dict) -> dict | None:
    """As the pipeline does: a record normalise refuses is reported and skipped, on either path."""
    try:
        return normalise(record)
    except RecordError:
        return None


def canonical(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: repr(sorted(r.items())))


@pytest.fixture(scope="module")
def con(layout_trail: Path):  # noqa: ANN201
    return mirror(layout_trail)


def athena_sql(name: str, window: tuple[datetime, datetime], accounts: list[str] | None = None) -> str:
    return load_query("athena", name, **athena_params("default.cloudtrail_logs", *window, accounts=accounts))


@pytest.mark.parametrize(("window", "accounts"), [(WIDE, None), (INVICTUS_DAY, ["218007301253"])])
def test_assume_role_events_rebuild_the_same_rows(con, layout_trail: Path, window, accounts) -> None:  # noqa: ANN001
    expected = in_process_rows(layout_trail, *window, accounts)
    got_rows = run_athena_sql(con, athena_sql("assume_role_events", window, accounts))
    got = [row for row in map(normalise_or_none, map(record_from_columns, got_rows)) if row is not None]
    if accounts is None:  # the whole trail: the awkward cases are all in it
        assert len(expected) > 80
        assert any(r["error_code"] for r in expected) and any(r["external_id_supplied"] for r in expected)
    else:  # one account and day: the partition filters left the rest out
        assert 40 < len(expected) < len(in_process_rows(layout_trail, *WIDE))
    assert canonical(got) == canonical(expected)
    pd.testing.assert_frame_equal(
        frame_from_rows(canonical(got)), frame_from_rows(canonical(expected)), check_exact=True
    )


def test_the_external_id_value_never_leaves_the_table(con) -> None:  # noqa: ANN001
    rows = run_athena_sql(con, athena_sql("assume_role_events", WIDE))
    text = repr(rows)
    assert EXTERNAL_ID not in text and "918273" not in text and "FQoGZXIvYXdzEXAMPLETOKEN" not in text
    assert any(r["rp_external_id_supplied"] and r["rp_mfa_supplied"] for r in rows)


def calls_frame(root: Path) -> pd.DataFrame:
    return one_row_per_call(merge_shared_copies(frame_from_rows(in_process_rows(root, *WIDE))))


def test_failed_attempts_equal_the_in_process_aggregate(con, layout_trail: Path) -> None:  # noqa: ANN001
    calls = calls_frame(layout_trail)
    failed = calls[~calls["success"]]
    keys = ["account_id", "role_arn", "principal_key", "source_ip_raw", "error_code"]
    expected = (
        failed.groupby(keys, dropna=False)
        .agg(attempts=("event_id", "size"), first_seen=("event_time", "min"), last_seen=("event_time", "max"))
        .reset_index()
        .rename(columns={"principal_key": "principal", "source_ip_raw": "source_ip_address"})
    )
    got = pd.DataFrame(run_athena_sql(con, athena_sql("failed_attempts", WIDE)))
    assert len(expected) >= 5
    assert_same_table(got, expected)


def test_first_last_use_equals_the_in_process_aggregate(con, layout_trail: Path) -> None:  # noqa: ANN001
    calls = calls_frame(layout_trail)
    used = calls[calls["success"] & calls["role_arn"].notna()]
    expected = (
        used.groupby(["role_arn", "principal_key"], dropna=False)
        .agg(uses=("event_id", "size"), first_used=("event_time", "min"), last_used=("event_time", "max"))
        .reset_index()
        .rename(columns={"principal_key": "principal"})
    )
    got = pd.DataFrame(run_athena_sql(con, athena_sql("first_last_use", WIDE)))
    assert len(expected) >= 10
    assert_same_table(got, expected)


def assert_same_table(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    def norm(df: pd.DataFrame) -> list[tuple]:
        out = []
        for rec in df[list(expected.columns)].to_dict("records"):
            out.append(tuple(
                pd.Timestamp(v).tz_convert("UTC") if isinstance(v, (datetime, pd.Timestamp))
                else (None if v is None or v is pd.NA or (isinstance(v, float) and pd.isna(v)) else
                      int(v) if hasattr(v, "__int__") and not isinstance(v, str) else v)
                for v in rec.values()
            ))
        return sorted(out, key=repr)

    got_rows, expected_rows = norm(got), norm(expected)
    missing = [r for r in expected_rows if r not in got_rows]
    extra = [r for r in got_rows if r not in expected_rows]
    assert got_rows == expected_rows, f"missing from SQL: {missing}\nonly in SQL: {extra}"

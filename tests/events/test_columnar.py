"""The scan's columnar path builds exactly the table the row-by-row path builds."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pandas as pd

from monitor.collectors.files import read_file
from monitor.collectors.trail_rows import file_rows
from monitor.events.columnar import COLUMN_NAMES, EncodedColumns, encode, to_frame
from monitor.events.normalise import is_assume_role_record, normalise, normalise_values
from monitor.events.schema import COLUMNS, empty_frame, frame_from_rows


def all_records(public_records: dict[str, list[dict]]) -> list[dict]:
    return [r for rs in public_records.values() for r in rs if is_assume_role_record(r) and r.get("eventID")]


def test_values_come_in_the_documented_column_order(public_records: dict[str, list[dict]]) -> None:
    rec = all_records(public_records)[0]
    assert tuple(COLUMNS) == COLUMN_NAMES
    assert list(normalise(rec)) == list(COLUMNS)
    assert tuple(normalise(rec).values()) == normalise_values(rec)


def test_encoded_parts_join_into_the_row_by_row_table(public_records: dict[str, list[dict]]) -> None:
    records = all_records(public_records)
    assert len(records) > 20
    reference = frame_from_rows([normalise(r) for r in records])
    values = [normalise_values(r) for r in records]
    # uneven parts, an empty one among them: codes must be offset per part and nulls stay null
    parts = [encode(values[:3]), encode([]), encode(values[3:17]), encode(values[17:])]
    joined = to_frame(parts)
    pd.testing.assert_frame_equal(joined, reference)
    assert joined["principal_arn"].isna().any() and joined["principal_arn"].notna().any()


def test_no_rows_give_the_empty_typed_table() -> None:
    pd.testing.assert_frame_equal(to_frame([EncodedColumns(), encode([])]), empty_frame())


def test_repeated_values_are_shared_objects(public_records: dict[str, list[dict]]) -> None:
    raw = orjson.dumps(all_records(public_records)[0])
    first, second = ([normalise_values(orjson.loads(raw)) for _ in range(50)] for _ in range(2))
    # a new string object in every row as read
    assert len({id(row[COLUMN_NAMES.index("aws_region")]) for row in first + second}) == 100
    joined = to_frame([encode(first), encode(second)])
    regions = joined["aws_region"].array._ndarray  # the Python strings behind the column
    assert len({id(v) for v in regions}) == 2  # one object per part, not one per row


def test_file_rows_match_the_general_reader_on_a_compact_delivery_file(
        tmp_path: Path, public_records: dict[str, list[dict]]) -> None:
    records = [{"eventVersion": r["eventVersion"], **r} for r in all_records(public_records)]
    noise = {"eventVersion": "1.08", "eventName": "GetObject", "eventSource": "s3.amazonaws.com", "eventID": "n",
             "requestParameters": {"policy": "{\"Action\": \"sts:AssumeRole\"}"}}
    broken = dict(records[1], eventID=None)  # an AssumeRole record that cannot become a row
    mixed = [noise, records[0], noise, broken, *records[2:]]
    path = tmp_path / "111122223333_CloudTrail_us-east-1_20240101T0000Z_x.json.gz"
    path.write_bytes(gzip.compress(orjson.dumps({"Records": mixed})))

    rows: list[tuple] = []
    skipped: list[str] = []
    assert file_rows(path, rows, skipped) == len(records)
    general = [i.record for i in read_file(path) if hasattr(i, "record") and i.record.get("eventID")]
    assert rows == [normalise_values(r) for r in general]
    assert skipped == [f"{path} [Records[3]]: record has no eventID"]


def test_file_rows_report_a_truncated_file_and_a_missing_one(tmp_path: Path) -> None:
    data = gzip.compress(orjson.dumps({"Records": [{"eventVersion": "1.08", "eventName": "AssumeRole"}] * 50}))
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(data[: len(data) // 2])
    rows: list[tuple] = []
    skipped: list[str] = []
    assert file_rows(cut, rows, skipped) == 0
    assert file_rows(tmp_path / "gone.json.gz", rows, skipped) == 0
    assert rows == []
    assert skipped[0].startswith(f"{cut} [file]: truncated or corrupt gzip")
    assert skipped[1].startswith(f"{tmp_path / 'gone.json.gz'} [file]: cannot open")

"""The trail file readers: both shapes, gzip or not, and every kind of bad input."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

from monitor.collectors.base import BadInput, RawRecord
from monitor.collectors.files import is_trail_file, read_file, read_stream, records_from_bytes
from tests.collectors.conftest import record, write_jsonl, write_records_file


def split(items: list) -> tuple[list[RawRecord], list[BadInput]]:
    return [i for i in items if isinstance(i, RawRecord)], [i for i in items if isinstance(i, BadInput)]


def test_records_file_gz_keeps_only_assume_role_family_with_positions(tmp_path: Path) -> None:
    recs = [record("a"), record("b", name="GetObject"), record("c", name="AssumeRoleWithSAML"),
            record("d", name="AssumeRoleWithWebIdentity")]
    path = write_records_file(tmp_path / "f.json.gz", recs)
    good, bad = split(list(read_file(path)))
    assert [r.record["eventID"] for r in good] == ["a", "c", "d"]
    assert [r.position for r in good] == ["Records[0]", "Records[2]", "Records[3]"]
    assert {r.origin for r in good} == {str(path)}
    assert bad == []


def test_plain_json_and_jsonl_and_jsonl_gz(tmp_path: Path) -> None:
    plain = write_records_file(tmp_path / "f.json", [record("a")], gz=False)
    lines = write_jsonl(tmp_path / "f.jsonl", [record("b"), record("x", name="ListBuckets"), record("c")])
    lines_gz = write_jsonl(tmp_path / "f.jsonl.gz", [record("d")], gz=True)
    assert [r.record["eventID"] for r in read_file(plain)] == ["a"]
    got = list(read_file(lines))
    assert [(r.record["eventID"], r.position) for r in got] == [("b", "line 1"), ("c", "line 3")]
    assert [r.record["eventID"] for r in read_file(lines_gz)] == ["d"]


def test_json_array_single_record_and_jsonl_saved_as_json(tmp_path: Path) -> None:
    arr = tmp_path / "arr.json"
    arr.write_text(json.dumps([record("a"), record("b")]))
    single = tmp_path / "one.json"
    single.write_text(json.dumps(record("c")))
    lines = write_jsonl(tmp_path / "lines.json", [record("d"), record("e")])
    assert [r.record["eventID"] for r in read_file(arr)] == ["a", "b"]
    assert [r.record["eventID"] for r in read_file(single)] == ["c"]
    assert [r.position for r in read_file(lines)] == ["line 1", "line 2"]


def test_truncated_gzip_jsonl_keeps_lines_before_the_break_and_reports_position(tmp_path: Path) -> None:
    data = gzip.compress("".join(json.dumps(record(f"id{i}")) + "\n" for i in range(400)).encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    good, bad = split(list(read_file(path)))
    assert 0 < len(good) < 400
    assert [r.record["eventID"] for r in good] == [f"id{i}" for i in range(len(good))]
    assert len(bad) == 1
    assert bad[0].origin == str(path)
    assert "truncated or corrupt gzip" in bad[0].reason
    assert bad[0].position.startswith("line ")


def test_truncated_gzip_records_file_is_one_bad_input(tmp_path: Path) -> None:
    path = write_records_file(tmp_path / "cut.json.gz", [record("a"), record("b")])
    path.write_bytes(path.read_bytes()[:-12])
    good, bad = split(list(read_file(path)))
    assert good == []
    assert [(b.origin, b.position) for b in bad] == [(str(path), "file")]
    assert "gzip" in bad[0].reason


def test_not_gzip_at_all_under_gz_name(tmp_path: Path) -> None:
    path = tmp_path / "fake.json.gz"
    path.write_bytes(b"this is not gzip")
    good, bad = split(list(read_file(path)))
    assert good == [] and len(bad) == 1


def test_non_json_lines_are_reported_and_the_rest_is_read(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mixed.jsonl", [
        record("a"),
        "this is not json at all",
        '{"eventName": "AssumeRole", "eventID": "broken", ',  # truncated line with the marker
        "",
        record("b"),
        '{"eventName": "GetObject"}',  # valid, not ours, never parsed
    ])
    good, bad = split(list(read_file(path)))
    assert [r.record["eventID"] for r in good] == ["a", "b"]
    assert [(b.position, b.reason.split(":")[0]) for b in bad] == [
        ("line 2", "not a JSON object (unparseable line)"),
        ("line 3", "not valid JSON"),
    ]


def test_json_line_that_is_not_an_object(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "arr.jsonl", ['["AssumeRole"]', record("a")])
    good, bad = split(list(read_file(path)))
    assert [r.record["eventID"] for r in good] == ["a"]
    assert len(bad) == 1 and bad[0].position == "line 1"


def test_precheck_skips_documents_without_the_marker_without_parsing() -> None:
    # not valid JSON, but without AssumeRole it is never parsed: nothing of ours can be inside
    assert list(records_from_bytes(b'{"Records": [{"eventName": "GetObject"', "x")) == []
    bad = list(records_from_bytes(b"garbage", "x"))
    assert len(bad) == 1 and isinstance(bad[0], BadInput)


def test_invalid_json_document_with_marker_names_the_byte() -> None:
    items = list(records_from_bytes(b'{"Records": [{"eventName": "AssumeRole",,}]}', "s3://b/k"))
    assert len(items) == 1 and isinstance(items[0], BadInput)
    assert items[0].origin == "s3://b/k" and items[0].position.startswith("byte ")


def test_read_stream_takes_bytes_from_anywhere() -> None:
    body = gzip.compress(json.dumps({"Records": [record("a")]}).encode())
    got = list(read_stream(io.BytesIO(body), "AWSLogs/1/CloudTrail/r/x.json.gz", "s3://b/x.json.gz"))
    assert [(r.record["eventID"], r.origin) for r in got] == [("a", "s3://b/x.json.gz")]


def test_digest_and_other_files_are_not_trail_files() -> None:
    assert is_trail_file("AWSLogs/1/CloudTrail/us-east-1/2023/07/10/x.json.gz")
    assert is_trail_file("export.jsonl")
    assert not is_trail_file("AWSLogs/1/CloudTrail-Digest/us-east-1/2023/07/10/x.json.gz")
    assert not is_trail_file("notes.txt")
    assert not is_trail_file("x.csv.gz")


def test_unreadable_file_is_bad_input(tmp_path: Path) -> None:
    bad = list(read_file(tmp_path / "missing.json"))
    assert len(bad) == 1 and isinstance(bad[0], BadInput) and "cannot open" in bad[0].reason


def test_pretty_printed_records_file_cut_short_is_one_bad_input(tmp_path: Path) -> None:
    text = json.dumps({"Records": [record("a"), record("b")]}, indent=2)
    path = tmp_path / "pretty.json"
    path.write_text(text[: len(text) - 40])
    good, bad = split(list(read_file(path)))
    assert good == [] and len(bad) == 1 and bad[0].position.startswith("byte ")
    path.write_text(text)
    assert [r.record["eventID"] for r in read_file(path)] == ["a", "b"]

"""The byte-level fast path of the trail reader gives exactly what parsing the whole file gives."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import orjson
import pytest

from monitor.collectors.base import RawRecord
from monitor.collectors.files import assume_role_records_fast, records_from_bytes


def general(data: bytes, origin: str) -> list:
    """What the reader yields when it parses the whole document (the reference)."""
    doc = orjson.loads(data)
    out = []
    for i, rec in enumerate(doc["Records"]):
        if rec.get("eventName") in ("AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity") and \
                rec.get("eventSource", "sts.amazonaws.com") in ("sts.amazonaws.com", None):
            out.append(RawRecord(rec, origin, f"Records[{i}]"))
    return out


def compact(records: list[dict]) -> bytes:
    return orjson.dumps({"Records": records})


def test_real_delivery_files_take_the_fast_path_with_the_same_result(shared_data: Path) -> None:
    files = sorted((shared_data / "s3_layout").rglob("*.json.gz"))
    kept = 0
    for path in files:
        data = gzip.decompress(path.read_bytes())
        fast = assume_role_records_fast(data, str(path))
        assert fast is not None, path  # CloudTrail's own layout
        assert fast == general(data, str(path))
        kept += len(fast)
    assert kept == 49


def test_every_record_position_and_the_last_record(public_records: dict[str, list[dict]]) -> None:
    records = [r for rs in public_records.values() for r in rs if "eventVersion" in r]
    records = [{"eventVersion": r.pop("eventVersion"), **r} for r in map(dict, records)]
    noise = {"eventVersion": "1.08", "eventName": "GetObject", "eventSource": "s3.amazonaws.com",
             "requestParameters": {"policy": "{\"Action\": \"sts:AssumeRole\"}"}}
    mixed = [x for r in records for x in (noise, r)]
    data = compact(mixed)
    fast = assume_role_records_fast(data, "f")
    assert fast is not None and fast == general(data, "f")
    assert fast[-1].position == f"Records[{len(mixed) - 1}]"
    assert list(records_from_bytes(data, "f")) == fast


@pytest.mark.parametrize("variant", ["pretty", "other_key_order", "embedded_event", "extra_top_level_key"])
def test_other_layouts_fall_back_to_the_general_path(variant: str, public_records: dict[str, list[dict]]) -> None:
    rec = dict(public_records["invictus_aws_dataset"][0])
    rec = {"eventVersion": rec.pop("eventVersion"), **rec}
    if variant == "pretty":
        data = json.dumps({"Records": [rec, rec]}, indent=2).encode()
    elif variant == "other_key_order":
        data = compact([{k: rec[k] for k in reversed(rec)}, rec])
    elif variant == "embedded_event":  # an event carried inside another record, as EventBridge does
        carrier = {"eventVersion": "1.08", "eventName": "PutEvents", "eventSource": "events.amazonaws.com",
                   "requestParameters": {"detail": rec}}
        data = compact([carrier, rec])
    else:
        data = orjson.dumps({"Records": [rec], "Trailer": {"eventName": "AssumeRole"}})
    fast = assume_role_records_fast(data, "f")
    assert fast is None or fast == general(data, "f")
    assert list(records_from_bytes(data, "f")) == general(data, "f")

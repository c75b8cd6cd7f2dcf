"""Each kind of bad input through a whole cycle: counted, logged with file and position, skipped; the rest goes on."""

from __future__ import annotations

import gzip
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.pipeline import run_cycle
from tests.collectors.conftest import make_config, record

NOW = datetime(2023, 7, 11, tzinfo=UTC)


def lines(*recs) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in recs).encode()


def truncated_gzip(path: Path) -> tuple[str, str]:
    data = gzip.compress(lines(*[record(f"t{i}") for i in range(300)]))
    path.with_suffix(".jsonl.gz").write_bytes(data[: len(data) // 2])
    return str(path.with_suffix(".jsonl.gz")), "line "


def non_json_line(path: Path) -> tuple[str, str]:
    path.with_suffix(".jsonl").write_bytes(lines(record("n1"), "<html>503 Service Unavailable</html>", record("n2")))
    return str(path.with_suffix(".jsonl")), "line 2"


def missing_event_id(path: Path) -> tuple[str, str]:
    recs = [record("m1"), record("m2", eventID=None), record("m3")]
    path.with_suffix(".json").write_text(json.dumps({"Records": recs}))
    return str(path.with_suffix(".json")), "Records[1]"


def unknown_event_version(path: Path) -> tuple[str, str]:
    path.with_suffix(".jsonl").write_bytes(lines(record("u1"), record("u2", eventVersion="2.0")))
    return str(path.with_suffix(".jsonl")), "line 2"


def event_name_not_a_string(path: Path) -> tuple[str, str]:
    recs = [record("e1"), record("e2", eventName=["AssumeRole"]), record("e3")]
    path.with_suffix(".json").write_text(json.dumps({"Records": recs}))
    return str(path.with_suffix(".json")), "Records[1]"


@pytest.mark.parametrize("make_bad", [truncated_gzip, non_json_line, missing_event_id, unknown_event_version,
                                      event_name_not_a_string])
def test_bad_input_is_counted_reported_and_skipped(tmp_path: Path, state, caplog, make_bad) -> None:
    trail = tmp_path / "trail"
    trail.mkdir()
    bad_file, position = make_bad(trail / "bad")
    (trail / "good.jsonl").write_bytes(lines(record("g1"), record("g2")))
    cfg = make_config(tmp_path, [{"type": "local", "path": str(trail)}])
    with caplog.at_level(logging.WARNING, logger="monitor.pipeline"):
        res = run_cycle(cfg, state, now=NOW)
    assert res.skipped == 1
    assert res.errors == []  # bad input is not a failed source
    assert res.coverage[0].skipped == 1 and res.coverage[0].status == "ok"
    assert any("1 bad record(s)/file(s) skipped" in n for n in res.notices)
    stored = set(state.load_events()["event_id"])
    assert {"g1", "g2"} <= stored
    assert len(stored) == res.events_new >= 3  # the good records of the bad file are kept too
    [message] = [r.getMessage() for r in caplog.records if "skipped bad input" in r.getMessage()]
    assert bad_file in message and position in message

"""Local directory source: every file not processed before (path + size + mtime)."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from monitor.pipeline import run_cycle
from tests.collectors.conftest import (
    layout_files,
    make_config,
    record,
    write_jsonl,
    write_records_file,
)

NOW = datetime(2023, 7, 11, tzinfo=UTC)


def test_reads_the_s3_layout_copied_to_disk_once(tmp_path: Path, shared_data: Path, layout_assume_role_ids,
                                                 state) -> None:
    trail = tmp_path / "trail"
    shutil.copytree(shared_data / "s3_layout", trail)
    cfg = make_config(tmp_path, [{"type": "local", "path": str(trail)}])
    first = run_cycle(cfg, state, now=NOW)
    assert first.events_new == len(layout_assume_role_ids) == 49
    events = state.load_events()
    assert set(events["event_id"]) == layout_assume_role_ids
    assert first.skipped == 0 and first.errors == []
    # every record of the real trail is complete enough to place in time and on a role
    assert events["event_time"].notna().all() and events["role_arn"].notna().all()
    assert events["account_id"].notna().all()  # recipientAccountId (anonymised: not the folder's account)
    assert set(events["event_name"]) <= {"AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity"}
    [cov] = first.coverage
    assert cov.status == "ok" and cov.records == 49
    assert (cov.start, cov.end) == ("2023-07-10T11:54:42Z", "2023-07-10T12:32:00Z")
    assert len(state.processed_files(f"local:{trail}")) == len(layout_files(shared_data))

    second = run_cycle(cfg, state, now=NOW)
    assert second.events_new == 0
    assert "0 new or changed file(s)" in second.coverage[0].message


def test_new_and_changed_files_are_read_and_duplicates_dropped(tmp_path: Path, state) -> None:
    trail = tmp_path / "trail"
    f1 = write_records_file(trail / "a.json.gz", [record("e1"), record("e2")])
    cfg = make_config(tmp_path, [{"type": "local", "path": str(trail)}])
    assert run_cycle(cfg, state, now=NOW).events_new == 2
    # the same file rewritten with one more record, plus a new export repeating e1
    write_records_file(f1, [record("e1"), record("e2"), record("e3")])
    os.utime(f1, ns=(1, 1))
    write_jsonl(trail / "sub" / "export.jsonl", [record("e1"), record("e4")])
    res = run_cycle(cfg, state, now=NOW)
    assert res.events_new == 2
    assert sorted(state.load_events()["event_id"]) == ["e1", "e2", "e3", "e4"]


def test_single_file_path(tmp_path: Path, state) -> None:
    f = write_jsonl(tmp_path / "one.jsonl", [record("x1")])
    cfg = make_config(tmp_path, [{"type": "local", "path": str(f)}])
    assert run_cycle(cfg, state, now=NOW).events_new == 1
    assert run_cycle(cfg, state, now=NOW).events_new == 0


def test_relative_path_resolves_against_the_config_file(tmp_path: Path, state) -> None:
    write_jsonl(tmp_path / "trail" / "x.jsonl", [record("r1")])
    cfg = make_config(tmp_path, [{"type": "local", "path": "trail"}])
    cfg.source_path = str(tmp_path / "rolewatch.toml")
    assert run_cycle(cfg, state, now=NOW).events_new == 1


def test_missing_directory_fails_that_source_only(tmp_path: Path, state) -> None:
    write_jsonl(tmp_path / "good" / "x.jsonl", [record("g1")])
    cfg = make_config(tmp_path, [{"type": "local", "path": str(tmp_path / "nope")},
                                 {"type": "local", "path": str(tmp_path / "good")}])
    res = run_cycle(cfg, state, now=NOW)
    assert res.events_new == 1
    assert [c.status for c in res.coverage] == ["failed", "ok"]
    assert len(res.errors) == 1 and "nope" in res.errors[0] and "no such file" in res.errors[0]
    assert state.runs()[0]["status"] == "partial"

"""The silence check counts what a source delivered, not the AssumeRole rows it stored: real cycles
over local trail folders, state in SQLite, cycles five minutes apart on an injected clock."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.config import parse_config
from monitor.detect.monitor_health import silence_fingerprint
from monitor.health import check_health
from monitor.pipeline import run_cycle
from monitor.state.base import Coverage
from monitor.state.sqlite import SqliteState
from tests.collectors.conftest import record, write_records_file

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_a_quiet_account_is_not_a_stopped_trail_but_a_trail_that_delivers_nothing_is(tmp_path: Path, state) -> None:
    quiet, stopped = tmp_path / "quiet", tmp_path / "stopped"
    write_records_file(stopped / "first.json.gz", [record("ar-1"), record("get-0", name="GetObject")])
    quiet.mkdir()
    cfg = parse_config({"sources": [{"type": "local", "path": str(quiet), "name": "quiet"},
                                    {"type": "local", "path": str(stopped), "name": "stopped"}],
                        "detectors": {"monitor_health": {"max_silence_minutes": 60}}})
    for i in range(14):  # 65 minutes of cycles
        now = NOW + timedelta(minutes=5 * i)
        # the quiet account's trail keeps delivering: S3, KMS, EC2 ... never an AssumeRole
        write_records_file(quiet / f"{i:02d}.json.gz", [record(f"get-{i}", name="GetObject"),
                                                       record(f"kms-{i}", name="Decrypt")])
        res = run_cycle(cfg, state, now=now, notify=False)
        cov = {c.source: c for c in res.coverage}
        assert (cov["quiet"].records, cov["quiet"].delivered) == (0, 1)  # nothing stored, one file read
        assert cov["stopped"].delivered == (1 if i == 0 else 0)
    found = check_health(state, cfg, now)
    assert [(f.fingerprint, f.details["check"]) for f, _, _ in found] == [(silence_fingerprint("stopped"), "silence")]
    [(finding, _, _)] = found
    assert finding.details["last_records_at"] == "2026-03-02T12:00:00Z" and finding.details["silent_minutes"] == 65


def test_coverage_from_before_delivered_was_counted_falls_back_to_the_rows_stored(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    SqliteState(path).close()
    # a state file as the previous release left it: no `delivered` column, a coverage row per cycle
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE coverage DROP COLUMN delivered")
    db.execute("DELETE FROM schema_migrations WHERE name = '0002_coverage_delivered'")
    db.commit()
    db.close()
    old = sqlite3.connect(path)
    for i in range(14):
        at = (NOW + timedelta(minutes=5 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        old.execute("INSERT INTO runs VALUES (?, 'collect', ?, ?, 'ok', '{}')", (f"r{i}", at, at))
        for source, stored in (("busy", 3 if i == 10 else 0), ("idle", 0)):
            old.execute('INSERT INTO coverage (run_id, source, start, "end", status, records, skipped) '
                        "VALUES (?, ?, NULL, NULL, 'ok', ?, 0)", (f"r{i}", source, stored))
    old.commit()
    old.close()
    state = SqliteState(path)  # the migration adds the column; old rows have no count
    try:
        assert "0002_coverage_delivered" in state.schema_version()
        assert {c.delivered for c in state.coverage()} == {None}
        cfg = parse_config({"sources": [{"type": "local", "path": str(tmp_path / n), "name": n}
                                        for n in ("busy", "idle")]})
        # judged by the rows stored, as before: rows stored 15 minutes ago mean the trail delivered
        found = check_health(state, cfg, NOW + timedelta(minutes=65))
        assert [f.fingerprint for f, _, _ in found] == [silence_fingerprint("idle")]
        state.record_coverage(Coverage("r14", "busy", None, None, "ok", delivered=2))
        assert state.coverage("r14")[0].delivered == 2
    finally:
        state.close()

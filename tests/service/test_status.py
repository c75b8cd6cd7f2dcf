from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.health import write_heartbeat
from monitor.state.base import Coverage
from monitor.state.sqlite import SqliteState
from monitor.status import cmd_status

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def seeded(tmp_path: Path) -> Path:
    cfg = tmp_path / "rolewatch.toml"
    cfg.write_text(f'[state]\npath = "{tmp_path / "state.db"}"\n')
    st = SqliteState(tmp_path / "state.db")
    rid = st.start_run("collect", NOW - timedelta(minutes=5))
    st.record_coverage(Coverage(rid, "s3:trail/", "2026-03-02T11:30:00Z", "2026-03-02T11:55:00Z", "ok",
                                records=42, skipped=1, delivered=7))
    st.record_coverage(Coverage(rid, "lookup_events", None, None, "failed", message="AccessDenied"))
    st.finish_run(rid, NOW - timedelta(minutes=4), "partial",
                  {"events_new": 40, "findings": 2, "errors": ["lookup_events: AccessDenied"],
                   "duration_seconds": 61.5})
    rid = st.start_run("retention", NOW - timedelta(hours=7))
    st.finish_run(rid, NOW - timedelta(hours=7), "ok", {"removed": {"events": 3}})
    st.outbox_put("fp1", "slack", {"text": "x"}, "failed", NOW)
    st.outbox_put("fp2", "slack", {"text": "y"}, "sent", NOW)
    write_heartbeat(st, NOW - timedelta(seconds=20), "running",
                    jobs={"collect": "2026-03-02T12:05:00+00:00", "posture": "2026-03-03T03:00:00+00:00"})
    st.close()
    return cfg


def test_status_json_reports_jobs_sources_and_heartbeat(tmp_path: Path, capsys) -> None:
    cfg = seeded(tmp_path)
    assert cmd_status(argparse.Namespace(config=str(cfg), json=True), now=NOW) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["healthy"] is True
    collect = out["jobs"]["collect"]
    assert (collect["result"], collect["events_new"], collect["findings"], collect["duration_seconds"]) == (
        "partial", 40, 2, 61.5)
    assert collect["errors"] == ["lookup_events: AccessDenied"]
    assert collect["next_run"] == "2026-03-02T12:05:00+00:00"
    assert out["jobs"]["posture"] == {"result": "never run", "next_run": "2026-03-03T03:00:00+00:00"}
    assert out["sources"]["s3:trail/"]["records"] == 42 and out["sources"]["s3:trail/"]["delivered"] == 7
    assert out["sources"]["lookup_events"]["status"] == "failed"
    assert out["outbox"] == {"backlog": 1, "by_status": {"failed": 1, "sent": 1}}


def test_status_text_and_stale_heartbeat_is_unhealthy(tmp_path: Path, capsys) -> None:
    cfg = seeded(tmp_path)
    assert cmd_status(argparse.Namespace(config=str(cfg), json=False), now=NOW + timedelta(minutes=10)) == 1
    text = capsys.readouterr().out
    assert text.startswith("UNHEALTHY: service heartbeat is 620s old")
    assert "collect    partial" in text and "lookup_events: failed" in text
    assert "s3:trail/: ok 2026-03-02T11:30:00Z .. 2026-03-02T11:55:00Z, 42 records, 7 delivered, 1 skipped" in text
    assert "outbox backlog: 1 (1 failed)" in text


def test_status_without_a_service_is_not_a_failure(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "rolewatch.toml"
    cfg.write_text(f'[state]\npath = "{tmp_path / "state.db"}"\n')
    assert cmd_status(argparse.Namespace(config=str(cfg), json=False), now=NOW) == 0
    assert "no service heartbeat" in capsys.readouterr().out

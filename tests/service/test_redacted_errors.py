"""A source's failure message quotes what it was given; a secret in it must not reach the
stored coverage, the run history, `rolewatch once` or `rolewatch status`. Real cycles on a real
SQLite file with an injected clock."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.cli import build_parser
from monitor.config import parse_config
from monitor.redact import register_secret
from monitor.schedule import run_once
from monitor.state.sqlite import SqliteState
from monitor.status import cmd_status
from tests.collectors.conftest import record, write_jsonl
from tests.service.test_schedule import FakeClock

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
KNOWN = "tenant-ext-9q2w7e"  # e.g. an organization.external_id resolved from the config
KEYED = "unregistered-ext-4411"  # never registered: only its `ExternalId=` key gives it away


def test_a_secret_in_a_source_error_is_masked_in_state_once_and_status(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    register_secret(KNOWN)
    trail = tmp_path / "trail"
    write_jsonl(trail / "a.jsonl", [record("a")])
    # files removed while their links stayed: the collector's error repeats each file's path
    for name in (f"copy-{KNOWN}.jsonl", f"ExternalId={KEYED}.jsonl"):
        (trail / name).symlink_to(tmp_path / "gone.jsonl")
    cfg = parse_config({
        "state": {"path": str(tmp_path / "state.db")},
        "sources": [{"type": "local", "path": str(trail)}],
        "report": {"output_dir": str(tmp_path / "reports"), "formats": ["json"]},
    })

    code = run_once(cfg, build_parser().parse_args(["once", "--posture", "never", "--no-notify"]),
                    clock=FakeClock(NOW))
    once_out = capsys.readouterr().out
    assert code == 1, once_out  # the failures are reported, just masked
    assert "No such file or directory" in once_out and "copy-***" in once_out, once_out

    st = SqliteState(tmp_path / "state.db")
    try:
        messages = [c.message or "" for c in st.coverage()]
        runs = json.dumps(st.runs(job="collect"))
    finally:
        st.close()
    assert any(m.count("No such file or directory") == 2 for m in messages), messages

    (tmp_path / "rolewatch.toml").write_text(f'[state]\npath = "{tmp_path / "state.db"}"\n')
    outputs = {}
    for as_json in (False, True):
        assert cmd_status(argparse.Namespace(config=str(tmp_path / "rolewatch.toml"), json=as_json), now=NOW) == 0
        outputs[as_json] = capsys.readouterr().out
    assert "No such file or directory" in outputs[False], outputs[False]

    for where, text in {"coverage rows": "\n".join(messages), "run history": runs, "once": once_out,
                        "status": outputs[False], "status --json": outputs[True]}.items():
        for secret in (KNOWN, KEYED):
            assert secret not in text, (where, secret, text)

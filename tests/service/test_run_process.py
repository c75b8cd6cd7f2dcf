"""One real `rolewatch run` process: runs its jobs, refuses a second instance, stops on SIGTERM."""

from __future__ import annotations

import json
import queue
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.conftest import REPO


def write_config(tmp_path: Path, trail: Path) -> Path:
    cfg = tmp_path / "rolewatch.toml"
    cfg.write_text(f"""
[state]
path = "{tmp_path / 'state.db'}"
seen_retention_days = 100000  # the sample trail is years old; retention runs every second here

[[sources]]
type = "local"
path = "{trail}"

[collection]
initial_lookback_hours = 175000

[schedule]
collect = {{ interval_minutes = 0.0167 }}
retention = {{ interval_minutes = 0.0167 }}
posture = {{ enabled = false }}
report = {{ enabled = false }}

[logging]
format = "json"
""")
    return cfg


def start(cfg: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config", str(cfg)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def log_lines(proc: subprocess.Popen[str]) -> queue.Queue[dict]:
    q: queue.Queue[dict] = queue.Queue()

    def pump() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            try:
                q.put(json.loads(line))
            except ValueError:
                q.put({"message": line})

    threading.Thread(target=pump, daemon=True).start()
    return q


def wait_for(q: queue.Queue[dict], predicate, timeout: float = 30) -> dict:
    while True:
        rec = q.get(timeout=timeout)  # raises queue.Empty if the process goes quiet
        if predicate(rec):
            return rec


def test_run_service_lock_and_sigterm(tmp_path: Path, shared_data: Path) -> None:
    trail = tmp_path / "trail"
    shutil.copytree(shared_data / "s3_layout" / "invictus", trail)
    cfg = write_config(tmp_path, trail)
    proc = start(cfg)
    try:
        q = log_lines(proc)
        done = wait_for(q, lambda r: r.get("message", "").startswith("job retention finished"))
        assert done["run_id"] and done["job"] == "retention"
        cycle = wait_for(q, lambda r: r.get("message", "").startswith("job collect finished"))
        assert cycle["message"].startswith("job collect finished: ok"), cycle

        second = subprocess.run([sys.executable, "-m", "monitor", "run", "--config", str(cfg)], cwd=REPO,
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert "is in use by pid" in second.stderr and str(proc.pid) in second.stderr

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        wait_for(q, lambda r: r.get("message") == "rolewatch service stopped", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    from monitor.state.sqlite import SqliteState

    st = SqliteState(tmp_path / "state.db")
    try:
        retention = st.runs(job="retention")
        assert retention and retention[0]["status"] == "ok"
        collect = st.runs(job="collect")
        assert collect and collect[-1]["status"] == "ok", "the collect job fired at start"
        assert collect[-1]["run_id"] == cycle["run_id"]
        assert len(st.load_events()) == collect[-1]["stats"]["events_new"] > 0
        assert st.get_json("service", "heartbeat")["status"] == "stopped"
    finally:
        st.close()

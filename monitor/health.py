"""Self-monitoring at the state edge: heartbeat, and monitor_health findings from run history.

The decision itself is pure (`monitor.detect.monitor_health`); this module reads what it needs
from state, stores the findings it returns, and resolves the ones whose condition has cleared.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.config import Config
from monitor.detect.monitor_health import DETECTOR, WHOLE_CYCLE, SourceObservation, detect_monitor_health
from monitor.findings import Finding, iso

HEARTBEAT_NS, HEARTBEAT_KEY = "service", "heartbeat"
HEARTBEAT_SECONDS = 30
# a heartbeat older than this, from a service that did not say it stopped, means it died or hung
HEARTBEAT_STALE_SECONDS = 4 * HEARTBEAT_SECONDS
# jobs that do not collect CloudTrail: their runs carry no coverage
NON_COLLECT_JOBS = frozenset({"posture", "report", "retention"})


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def write_heartbeat(state: Any, now: datetime, status: str, **extra: Any) -> None:
    state.put_json(HEARTBEAT_NS, HEARTBEAT_KEY, {
        "time": iso(now), "status": status, "pid": os.getpid(), "host": socket.gethostname(), **extra,
    })


def heartbeat_health(heartbeat: dict[str, Any] | None, now: datetime) -> tuple[bool, str]:
    """(healthy, why): unhealthy only when a service claims to run but has gone quiet."""
    if not heartbeat:
        return True, "no service heartbeat (rolewatch run has not run on this state)"
    at = parse_time(heartbeat.get("time"))
    if heartbeat.get("status") != "running":
        return True, f"service {heartbeat.get('status')} at {heartbeat.get('time')}"
    age = (now - at).total_seconds() if at else float("inf")
    if age > HEARTBEAT_STALE_SECONDS:
        return False, f"service heartbeat is {int(age)}s old (pid {heartbeat.get('pid')} on {heartbeat.get('host')})"
    return True, f"service running, heartbeat {int(age)}s ago (pid {heartbeat.get('pid')} on {heartbeat.get('host')})"


def collect_runs(state: Any, now: datetime, config: Config, limit: int = 500) -> list[dict[str, Any]]:
    """Recent collection runs, newest first: enough for the failure streak and the silence window."""
    cfg = config.detectors.monitor_health
    horizon = now - timedelta(minutes=cfg.max_silence_minutes * 2)
    out = []
    for run in state.runs(limit=limit):
        if run["job"] in NON_COLLECT_JOBS:
            continue
        started = parse_time(run["started_at"])
        if len(out) > cfg.failed_cycles and started is not None and started < horizon:
            break
        out.append(run)
    return out


def observations(state: Any, runs: list[dict[str, Any]]) -> list[SourceObservation]:
    obs = []
    for run in runs:
        at = parse_time(run["finished_at"] or run["started_at"])
        if at is None:
            continue
        # the pipeline may record coverage under its own cycle id
        run_ids = dict.fromkeys([run["run_id"], (run.get("stats") or {}).get("cycle_run_id")])
        covered = [cov for rid in filter(None, run_ids) for cov in state.coverage(rid)]
        obs.extend(SourceObservation(c.source, at, c.status, c.records, c.message) for c in covered)
        # the cycle as a whole: failed when it died before any source reported, else it ran
        dead = not covered and run["status"] == "failed"
        obs.append(SourceObservation(WHOLE_CYCLE, at, "failed" if dead else "ok", 0,
                                     (run.get("stats") or {}).get("error") if dead else None))
    return obs


def check_health(state: Any, config: Config, now: datetime) -> list[tuple[Finding, bool, Finding | None]]:
    """Store current monitor_health findings and resolve cleared ones; returns what to notify."""
    cfg = config.detectors.monitor_health
    if not cfg.enabled:
        return []
    found = detect_monitor_health(observations(state, collect_runs(state, now, config)), now, cfg)
    current = {f.fingerprint for f in found}
    out = []
    with state.transaction():
        for f in found:
            is_new, prev = state.upsert_finding(f, "open", now)
            out.append((f, is_new, prev))
        for stored in state.findings(status="open"):
            if stored.finding.detector == DETECTOR and stored.finding.fingerprint not in current:
                state.upsert_finding(stored.finding, "resolved", now)
    return out

"""`rolewatch status [--json]`: is the monitor alive, and what did it last do?

Exit 0 when healthy, 1 when a service claims to be running but its heartbeat is stale (it died
or hung) -- the Docker HEALTHCHECK and Kubernetes liveness probe rely on that. Open
monitor_health findings are shown but do not fail the probe: restarting the container does not
restart a stopped trail.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from monitor.coverage_summary import capped, render_source, summarise
from monitor.detect.monitor_health import DETECTOR
from monitor.health import HEARTBEAT_KEY, HEARTBEAT_NS, NON_COLLECT_JOBS, heartbeat_health, parse_time
from monitor.schedule import JOB_NAMES, posture_lines, utc_now


def _errors(stats: dict[str, Any]) -> list[str]:
    if stats.get("error_messages"):
        return list(stats["error_messages"])
    if isinstance(stats.get("errors"), list):
        return list(stats["errors"])
    return [stats["error"]] if stats.get("error") else []


def _job_summary(run: dict[str, Any]) -> dict[str, Any]:
    stats = run.get("stats") or {}
    started, finished = parse_time(run["started_at"]), parse_time(run["finished_at"])
    duration = stats.get("duration_seconds")
    if duration is None and started and finished:
        duration = (finished - started).total_seconds()
    summary = {
        "run_id": run["run_id"],
        "started_at": run["started_at"],
        "finished_at": run["finished_at"],
        "duration_seconds": duration,
        "result": run["status"] or "running",
        "events_new": stats.get("events_new"),
        "findings": stats.get("findings"),
        "errors": _errors(stats),
    }
    if "accounts_failed" in stats:  # a posture run that collected: which accounts it could not reach
        summary["posture"] = {k: stats.get(k) for k in POSTURE_KEYS}
    return summary


POSTURE_KEYS = ("accounts", "roles", "analyzer_findings", "accounts_failed", "failed_accounts")


BACKLOG_STATUSES = ("pending", "sending", "failed")  # `held` rows wait for their digest on purpose
BACKLOG_DETAIL = ("failed", "held", "pending", "sending")


def _outbox_backlog(state: Any) -> dict[str, Any]:
    """Notifications still to deliver (pending, in flight, failed and to be retried); digests' held rows apart."""
    counts = state.outbox_counts()
    return {"backlog": sum(counts.get(s, 0) for s in BACKLOG_STATUSES), "by_status": counts}


def open_monitor_health(state: Any) -> list[dict[str, Any]]:
    return [
        {"title": s.finding.title, "severity": s.finding.severity, "since": s.finding.first_seen,
         "fingerprint": s.finding.fingerprint}
        for s in state.findings(status="open") if s.finding.detector == DETECTOR
    ]


def render_monitor_health(health: list[dict[str, Any]]) -> list[str]:
    if not health:
        return []
    return ["monitor_health (open):"] + [f"  [{h['severity']}] {h['title']} since {h['since']}" for h in health]


def gather_status(state: Any, now: datetime) -> dict[str, Any]:
    heartbeat = state.get_json(HEARTBEAT_NS, HEARTBEAT_KEY)
    healthy, why = heartbeat_health(heartbeat, now)
    recent = state.runs(limit=200)
    jobs: dict[str, Any] = {}
    for run in recent:  # newest first: keep the first seen per job
        jobs.setdefault(run["job"], _job_summary(run))
    next_runs = (heartbeat or {}).get("jobs") or {}
    for name in JOB_NAMES:
        if name in jobs or name in next_runs:
            jobs.setdefault(name, {"result": "never run"})["next_run"] = next_runs.get(name)
    sources: dict[str, Any] = {}
    collect_runs = [r for r in recent if r["job"] not in NON_COLLECT_JOBS][:20]
    for run in collect_runs:  # newest first: each source is summarised from the last cycle that covered it
        stats = run.get("stats") or {}
        rows = [cov for rid in dict.fromkeys(filter(None, [run["run_id"], stats.get("cycle_run_id")]))
                for cov in state.coverage(rid)]
        for name, summary in summarise(rows).items():
            if name not in sources:  # as_dict walks every unit row: only for the newest cycle of each source
                sources[name] = summary.as_dict()
    return {
        "healthy": healthy,
        "service": why,
        "heartbeat": heartbeat,
        "jobs": jobs,
        "sources": sources,
        "outbox": _outbox_backlog(state),
        "monitor_health": open_monitor_health(state),
        "state": state.path_or_table,
    }


def render_text(status: dict[str, Any]) -> str:
    lines = [f"{'OK' if status['healthy'] else 'UNHEALTHY'}: {status['service']}", f"state: {status['state']}", ""]
    lines.append(f"{'job':<10} {'result':<10} {'last run (UTC)':<21} {'duration':>9} {'events':>7} {'findings':>8}"
                 "  next run")
    for name, j in status["jobs"].items():
        dur = j.get("duration_seconds")
        lines.append(
            f"{name:<10} {j.get('result', ''):<10} {j.get('started_at') or '-':<21} "
            f"{f'{dur:.1f}s' if dur is not None else '-':>9} {_n(j.get('events_new')):>7} "
            f"{_n(j.get('findings')):>8}  {j.get('next_run') or '-'}"
        )
        posture = j.get("posture")
        if posture and posture["accounts_failed"]:
            lines += [f"           {line.strip()}" for line in
                      posture_lines(j["result"], {**posture, "failed_accounts": posture["failed_accounts"] or []})]
        # a cycle of an organisation trail can fail thousands of units: the sources below name them
        lines += capped([f"           error: {err}" for err in j.get("errors") or []], "error(s)")
    if not status["jobs"]:
        lines.append("(no runs recorded)")
    lines.append("")
    outbox = status["outbox"]
    detail = ", ".join(f"{n} {s}" for s, n in sorted(outbox["by_status"].items()) if s in BACKLOG_DETAIL)
    lines.append(f"outbox backlog: {outbox['backlog']}" + (f" ({detail})" if detail else ""))
    if status["sources"]:
        lines.append("")
        lines.append("sources (last coverage):")
        for name, c in status["sources"].items():
            lines += render_source(c, name, once=False)
    if status["monitor_health"]:
        lines.append("")
        lines += render_monitor_health(status["monitor_health"])
    return "\n".join(lines)


def _n(v: Any) -> str:
    return "-" if v is None else str(v)


def cmd_status(args: argparse.Namespace, *, now: datetime | None = None) -> int:
    from monitor.commands import config_from_args
    from monitor.state import open_state

    config = config_from_args(args)
    state = open_state(config)
    try:
        status = gather_status(state, now or utc_now())
    finally:
        state.close()
    print(json.dumps(status, indent=2, default=str) if args.json else render_text(status))
    return 0 if status["healthy"] else 1

"""Self-monitoring at the state edge: heartbeat, and monitor_health findings from run history.

The decision itself is pure (`monitor.detect.monitor_health`); this module reads what it needs
from state, stores the findings it returns, and resolves the ones whose condition has cleared.

Sources are judged from their coverage rows in run history. Accounts out of sight are judged
from their streaks, kept as documents (namespace `unreachable_accounts`, one per account and
channel, deleted when the account is reachable again): the collection cycle folds in what each
source saw of its accounts, the posture collection what the audit roles let it see. A streak is
kept rather than rebuilt from run history because the posture job runs daily: finding its last
few runs among thousands of collection runs would walk the whole run index on DynamoDB.

Each account/region unit's last delivery is kept too (namespace `unit_deliveries`, one document
per source: account -> region -> when it last delivered and when the source last listed it),
because the silence check reads only `2 * max_silence_minutes` of run history: after a downtime
longer than that, a unit that went quiet before it would otherwise look like one that never
delivered.
"""

from __future__ import annotations

import os
import re
import socket
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.collectors.organizations import ASSUME_AUDIT_ROLE
from monitor.config import Config, source_id
from monitor.detect.monitor_health import (
    DETECTOR,
    POSTURE,
    READ_SOURCE,
    WHOLE_CYCLE,
    AccountObservation,
    AccountStreak,
    SourceObservation,
    UnitKey,
    detect_monitor_health,
    fold_streaks,
)
from monitor.findings import Finding, iso
from monitor.redact import redact_text

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


def _delivered(cov: Any) -> int:
    # rows from before `delivered` was counted know only the AssumeRole rows stored
    return int(cov.records if cov.delivered is None else cov.delivered)


# sources that see every record of a trail: their account/region units can be judged on their own.
# The others filter where the data lives (a filter pattern, an event name, a query), so a quiet
# member account there means "no AssumeRole calls", not a stopped trail.
WHOLE_TRAIL_SOURCES = frozenset({"local", "s3"})


def unit_sources(config: Config) -> set[str]:
    """Ids of the enabled sources whose account/region units the silence check judges one by one."""
    return {source_id(s) for s in config.sources if s.enabled and s.type in WHOLE_TRAIL_SOURCES}


def observations(state: Any, runs: list[dict[str, Any]], units_of: set[str] | None = None) -> list[SourceObservation]:
    """What each source saw in each run; rows of sources outside `units_of` (None: all) lose their unit."""
    obs = []
    for run in runs:
        at = parse_time(run["finished_at"] or run["started_at"])
        if at is None:
            continue
        # the pipeline may record coverage under its own cycle id
        run_ids = dict.fromkeys([run["run_id"], (run.get("stats") or {}).get("cycle_run_id")])
        covered = [cov for rid in filter(None, run_ids) for cov in state.coverage(rid)]
        obs.extend(SourceObservation(c.source, at, c.status, _delivered(c), c.message,
                                     *((c.account, c.region) if units_of is None or c.source in units_of
                                       else (None, None)))
                   for c in covered)
        # the cycle as a whole: failed when it died before any source reported, else it ran
        dead = not covered and run["status"] == "failed"
        obs.append(SourceObservation(WHOLE_CYCLE, at, "failed" if dead else "ok", 0,
                                     (run.get("stats") or {}).get("error") if dead else None))
    return obs


UNREACHABLE_NS = "unreachable_accounts"
_AWS_ERROR_CODE = re.compile(r"An error occurred \(([^)]+)\)")  # how botocore's ClientError reads


def aws_error_code(message: str | None) -> str | None:
    m = _AWS_ERROR_CODE.search(message or "")
    return m.group(1) if m else None


def _streak_key(streak: AccountStreak) -> str:
    return f"{streak.via}#{streak.account_id}"


def _streak_to_dict(s: AccountStreak) -> dict[str, Any]:
    return {"account_id": s.account_id, "via": s.via, "since": iso(s.since), "last": iso(s.last), "rounds": s.rounds,
            "step": s.step, "error_code": s.error_code, "message": s.message, "regions": list(s.regions)}


def _streak_from_dict(d: dict[str, Any]) -> AccountStreak | None:
    since, last = parse_time(d.get("since")), parse_time(d.get("last"))
    if since is None or last is None:
        return None
    return AccountStreak(d["account_id"], d["via"], since, last, int(d["rounds"]), d.get("step"),
                         d.get("error_code"), d.get("message"), tuple(d.get("regions") or ()))


def load_streaks(state: Any) -> list[AccountStreak]:
    """Every account currently out of sight, per channel."""
    return [s for _, d in state.iter_json(UNREACHABLE_NS) if (s := _streak_from_dict(d)) is not None]


def record_account_rounds(state: Any, rounds: Mapping[str, list[AccountObservation]]) -> None:
    """Fold one round per channel (via -> what it saw of every account in its scope) into the kept streaks."""
    if not rounds:
        return
    kept = load_streaks(state)
    with state.transaction():
        for via, seen in rounds.items():
            before = [s for s in kept if s.via == via]
            after = fold_streaks(before, seen)
            for gone in {_streak_key(s) for s in before} - {_streak_key(s) for s in after}:
                state.delete_json(UNREACHABLE_NS, gone)
            for streak in after:
                state.put_json(UNREACHABLE_NS, _streak_key(streak), _streak_to_dict(streak))


def source_account_round(coverage: list[Any], at: datetime) -> list[AccountObservation] | None:
    """What one cycle saw of a source's accounts, from its coverage rows (per account/region).

    An account is out of sight when any of its units failed (a region it cannot list is a blind
    spot too); `partial` (some objects to retry) is not. The step is `assume_audit_role` when a
    failed unit's message starts with it (`lookup_events` over member accounts), else `read_source`. None when the cycle cannot say which
    accounts the source covers -- it failed before listing them -- so the streaks stay as they were.
    """
    by_account: dict[str, list[Any]] = {}
    for cov in coverage:
        if cov.account:
            by_account.setdefault(cov.account, []).append(cov)
    if not by_account and coverage and all(c.status == "failed" for c in coverage):
        return None
    out = []
    for account, rows in sorted(by_account.items()):
        failed = [c for c in rows if c.status == "failed"]
        if not failed:
            out.append(AccountObservation(account, rows[0].source, at, ok=True))
            continue
        message = redact_text(failed[0].message or "")
        # a source reading member accounts through the audit role says so when it could not assume it
        assumed = any((c.message or "").startswith(f"{ASSUME_AUDIT_ROLE}:") for c in failed)
        out.append(AccountObservation(
            account, rows[0].source, at, ok=False, step=ASSUME_AUDIT_ROLE if assumed else READ_SOURCE,
            error_code=next((code for c in failed if (code := aws_error_code(c.message))), None),
            message=message or None, regions=tuple(sorted({c.region for c in failed if c.region})),
        ))
    return out


def current_streaks(state: Any, config: Config) -> list[AccountStreak]:
    """The kept streaks of channels still configured (a removed source's accounts are not its business now)."""
    vias = {source_id(s) for s in config.sources if s.enabled}
    if config.posture.enabled:
        vias.add(POSTURE)
    return [s for s in load_streaks(state) if s.via in vias]


def silent_units(open_findings: list[Finding], config: Config) -> dict[UnitKey, datetime | None]:
    """Units of configured sources whose silence is an open finding -> when they last delivered.

    The open finding is what remembers that a unit delivered once the delivery has aged out of the
    run history read: the history is `2 * max_silence_minutes` deep, a stopped trail stays stopped
    for longer.
    """
    sources = unit_sources(config)
    out: dict[UnitKey, datetime | None] = {}
    for f in open_findings:
        d = f.details
        if f.detector == DETECTOR and d.get("check") == "silence" and d.get("account_id") and d.get("source") in sources:
            out[(d["source"], d["account_id"], d.get("region"))] = parse_time(d.get("last_records_at"))
    return out


DELIVERIES_NS = "unit_deliveries"


def fold_deliveries(doc: Mapping[str, Any] | None, coverage: Iterable[Any], at: datetime) -> dict[str, Any]:
    """One source's delivery memory after one cycle's coverage rows (of that source) made at `at`.

    A unit gets a record only once it delivers: one that never did must stay "never delivered".
    A recorded unit the cycle listed without a delivery keeps its last delivery and is stamped
    `listed`, which is what retention judges, so a stopped trail is remembered for as long as the
    source still lists it.
    """
    units: dict[str, dict[str, dict[str, str]]] = {
        account: dict(regions) for account, regions in ((doc or {}).get("units") or {}).items()}
    stamp = iso(at)
    for cov in coverage:
        if not cov.account:
            continue  # a whole-source row: the source's own silence check needs no memory
        region = cov.region or ""
        kept = units.get(cov.account, {}).get(region)
        if _delivered(cov) > 0:
            units.setdefault(cov.account, {})[region] = {"delivered": stamp, "listed": stamp}
        elif kept is not None:
            units[cov.account][region] = {**kept, "listed": stamp}
    return {"units": units}


def record_deliveries(state: Any, coverage: Iterable[Any], at: datetime) -> None:
    """Fold one cycle's coverage into the delivery memory of each source that reported units."""
    by_source: dict[str, list[Any]] = defaultdict(list)
    for cov in coverage:
        if cov.account:
            by_source[cov.source].append(cov)
    with state.transaction():
        for source, rows in sorted(by_source.items()):
            before = state.get_json(DELIVERIES_NS, source)
            after = fold_deliveries(before, rows, at)
            if after["units"] and after != before:
                state.put_json(DELIVERIES_NS, source, after)


def last_deliveries(state: Any, config: Config) -> dict[UnitKey, datetime]:
    """Units of configured sources -> when they last delivered, as far back as the memory goes."""
    out: dict[UnitKey, datetime] = {}
    for sid in sorted(unit_sources(config)):
        doc = state.get_json(DELIVERIES_NS, sid) or {}
        for account, regions in (doc.get("units") or {}).items():
            for region, rec in regions.items():
                if (at := parse_time(rec.get("delivered"))) is not None:
                    out[(sid, account, region or None)] = at
    return out


def forget_unlisted_units(state: Any, cutoff: datetime) -> int:
    """Retention: drop the delivery records of units no source has listed since `cutoff`; returns units dropped.

    Every source's document is judged, configured or not: a removed source lists nothing, so its
    records go once the horizon has passed, and a source configured again starts afresh.
    """
    removed = 0
    for key, _ in list(state.iter_json(DELIVERIES_NS)):
        with state.transaction():  # read again inside it: a cycle may have just written the document
            doc = state.get_json(DELIVERIES_NS, key) or {}
            units: dict[str, dict[str, dict[str, str]]] = {}
            for account, regions in (doc.get("units") or {}).items():
                keep = {r: rec for r, rec in regions.items()
                        if (listed := parse_time(rec.get("listed"))) is None or listed >= cutoff}
                removed += len(regions) - len(keep)
                if keep:
                    units[account] = keep
            if not units:
                state.delete_json(DELIVERIES_NS, key)
            elif units != doc.get("units"):
                state.put_json(DELIVERIES_NS, key, {**doc, "units": units})
    return removed


def check_health(state: Any, config: Config, now: datetime, *,
                 alert: bool = False) -> list[tuple[Finding, bool, Finding | None]]:
    """Store current monitor_health findings and resolve cleared ones; returns what was found.

    alert: queue the findings' alerts in the transaction that stores them (delivery is the caller's).
    """
    cfg = config.detectors.monitor_health
    if not cfg.enabled:
        return []
    open_mine = [s.finding for s in state.findings(status="open") if s.finding.detector == DETECTOR]
    found = detect_monitor_health(observations(state, collect_runs(state, now, config), unit_sources(config)), now, cfg,
                                  current_streaks(state, config), silent_units(open_mine, config),
                                  last_deliveries(state, config))
    current = {f.fingerprint for f in found}
    out = []
    with state.transaction():
        for f in found:
            is_new, prev = state.upsert_finding(f, "open", now)
            out.append((f, is_new, prev))
        for stale in open_mine:
            if stale.fingerprint not in current:
                state.upsert_finding(stale, "resolved", now)
        if alert:
            from alerts.dispatch import queue

            queue(out, state, config, now)
    return out

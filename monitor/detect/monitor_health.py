"""monitor_health: the monitor watching itself.

Two incidents, both about the data feeding rolewatch rather than about AWS activity:
- a source failed `failed_cycles` collection cycles in a row (credentials revoked, bucket policy
  changed, throttled to death);
- a source delivered no CloudTrail records for `max_silence_minutes` while it was being polled
  successfully (a stopped or misconfigured trail is itself a security incident).

Pure: the per-source observation history and a clock in, findings out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.config import MonitorHealthConfig
from monitor.findings import Finding, fingerprint, iso

DETECTOR = "monitor_health"
WHOLE_CYCLE = "*"  # pseudo-source: the collection cycle died before any source reported


@dataclass(frozen=True)
class SourceObservation:
    """What one collection cycle saw of one source."""

    source: str
    at: datetime  # when the cycle ran
    status: str  # ok | partial | failed (Coverage.status)
    records: int  # CloudTrail records the source delivered in that cycle
    message: str | None = None


def failed_streak_fingerprint(source: str) -> str:
    return fingerprint(DETECTOR, "failed_cycles", source)


def silence_fingerprint(source: str) -> str:
    return fingerprint(DETECTOR, "silence", source)


def _failed_streak(obs: list[SourceObservation], cfg: MonitorHealthConfig) -> Finding | None:
    streak: list[SourceObservation] = []
    for o in reversed(obs):  # newest first
        if o.status != "failed":
            break
        streak.append(o)
    if len(streak) < cfg.failed_cycles:
        return None
    source, newest, oldest = obs[-1].source, streak[0], streak[-1]
    return Finding(
        detector=DETECTOR,
        severity="high",
        title=(f"rolewatch collection cycle failed {len(streak)} times in a row" if source == WHOLE_CYCLE
               else f"rolewatch source {source} failed {len(streak)} collection cycles in a row"),
        fingerprint=failed_streak_fingerprint(source),
        first_seen=iso(oldest.at),
        last_seen=iso(newest.at),
        count=len(streak),
        details={
            "check": "failed_cycles",
            "source": source,
            "consecutive_failures": len(streak),
            "threshold": cfg.failed_cycles,
            "last_error": newest.message,
        },
    )


def _silence(obs: list[SourceObservation], now: datetime, cfg: MonitorHealthConfig) -> Finding | None:
    window_start = now - timedelta(minutes=cfg.max_silence_minutes)
    if obs[0].at > window_start:
        return None  # not watched long enough to call it silence
    in_window = [o for o in obs if o.at >= window_start]
    if not any(o.status != "failed" for o in in_window):
        return None  # nothing polled successfully: that is the failure check's business
    if any(o.records > 0 for o in in_window):
        return None
    arrivals = [o.at for o in obs if o.records > 0]
    silent_since = max(arrivals) if arrivals else obs[0].at
    minutes = int((now - silent_since).total_seconds() // 60)
    source = obs[-1].source
    return Finding(
        detector=DETECTOR,
        severity="high",
        title=f"no CloudTrail records from {source} for {minutes} minutes (is the trail stopped?)",
        fingerprint=silence_fingerprint(source),
        first_seen=iso(silent_since),
        last_seen=iso(now),
        count=len(in_window),
        details={
            "check": "silence",
            "source": source,
            "silent_minutes": minutes,
            "max_silence_minutes": cfg.max_silence_minutes,
            "last_records_at": iso(max(arrivals)) if arrivals else None,
        },
    )


def detect_monitor_health(
    observations: Iterable[SourceObservation], now: datetime, cfg: MonitorHealthConfig
) -> list[Finding]:
    if not cfg.enabled:
        return []
    by_source: dict[str, list[SourceObservation]] = defaultdict(list)
    for o in observations:
        by_source[o.source].append(o)
    findings: list[Finding] = []
    for source in sorted(by_source):
        obs = sorted(by_source[source], key=lambda o: o.at)
        checks = [_failed_streak(obs, cfg)]
        if source != WHOLE_CYCLE:  # silence is a property of a source, not of the cycle
            checks.append(_silence(obs, now, cfg))
        for check in checks:
            if check is not None:
                findings.append(check)
    return findings

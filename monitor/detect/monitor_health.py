"""monitor_health: the monitor watching itself.

Three incidents, all about the data feeding rolewatch rather than about AWS activity:
- a source failed `failed_cycles` collection cycles in a row (credentials revoked, bucket policy
  changed, throttled to death);
- a source delivered no CloudTrail records for `max_silence_minutes` while it was being polled
  successfully (a stopped or misconfigured trail is itself a security incident). "Delivered"
  counts what the source read, AssumeRole-family or not (trail files for `local`/`s3`; events
  or rows returned for the others, whose filter runs where the data lives), never the
  AssumeRole rows stored: a quiet account with a working trail is not a stopped trail;
- a member account rolewatch can no longer see: its audit role could not be assumed or its roles
  not listed (posture collection), or a source could not read its part of the trail (an S3
  account/region). Someone may have deleted or changed the audit role to hide what they do, so
  this is alerted (medium), not just logged, and rises to high once the account has been out of
  sight for `failed_cycles` consecutive rounds; one finding per account and channel (the audit
  role, or the source), gone as soon as a round reaches the account again.

Pure: the per-source observation history, the accounts' unreachable streaks and a clock in,
findings out. `fold_streaks` is the pure step that turns one round's account observations into
the streaks the state keeps between rounds (and restarts).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from monitor.config import MonitorHealthConfig
from monitor.findings import Finding, fingerprint, iso

DETECTOR = "monitor_health"
WHOLE_CYCLE = "*"  # pseudo-source: the collection cycle died before any source reported
POSTURE = "posture"  # the channel of the posture collection: the account's audit role
READ_SOURCE = "read_source"  # the step of a source that could not read an account's trail
STEP_TEXT = {"assume_audit_role": "assuming the audit role", "list_roles": "listing its roles",
             READ_SOURCE: "reading its trail"}


@dataclass(frozen=True)
class SourceObservation:
    """What one collection cycle saw of one source."""

    source: str
    at: datetime  # when the cycle ran
    status: str  # ok | partial | failed (Coverage.status)
    delivered: int  # what the source delivered in that cycle, AssumeRole or not (Coverage.delivered)
    message: str | None = None


@dataclass(frozen=True)
class AccountObservation:
    """What one round (a collection cycle, a posture collection) saw of one account through one channel."""

    account_id: str
    via: str  # POSTURE, or the id of the source that reads the account's trail
    at: datetime  # when the round ran
    ok: bool
    step: str | None = None  # what failed: assume_audit_role | list_roles | read_source
    error_code: str | None = None  # AccessDenied, NoSuchBucket, TimeoutError, ...; None when not an AWS error
    message: str | None = None  # redacted
    regions: tuple[str, ...] = ()  # the source's account/region units that failed


@dataclass(frozen=True)
class AccountStreak:
    """An account out of sight through one channel: every round since `since` failed to reach it."""

    account_id: str
    via: str
    since: datetime  # the first failed round of the streak
    last: datetime  # the latest round, which failed too
    rounds: int  # consecutive failed rounds
    step: str | None
    error_code: str | None
    message: str | None
    regions: tuple[str, ...] = ()


def fold_streaks(previous: Iterable[AccountStreak], observations: Iterable[AccountObservation]) -> list[AccountStreak]:
    """The streaks of one channel after one round that observed every account in its scope.

    A failed account extends its streak (or starts one), a reachable one ends it, and an account
    the round did not observe at all has left the channel's scope (removed from the
    Organization, excluded) and is dropped: only a round that knows its scope may be folded.
    """
    before = {s.account_id: s for s in previous}
    out = []
    for o in observations:
        if o.ok:
            continue
        prev = before.get(o.account_id)
        fresh = AccountStreak(o.account_id, o.via, o.at, o.at, 1, o.step, o.error_code, o.message, o.regions)
        out.append(fresh if prev is None else replace(fresh, since=prev.since, rounds=prev.rounds + 1))
    return sorted(out, key=lambda s: s.account_id)


def account_unreachable_fingerprint(account_id: str, via: str) -> str:
    return fingerprint(DETECTOR, "account_unreachable", account_id, via)


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
    if any(o.delivered > 0 for o in in_window):
        return None
    arrivals = [o.at for o in obs if o.delivered > 0]
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


def _unreachable(streak: AccountStreak, cfg: MonitorHealthConfig) -> Finding:
    what = STEP_TEXT.get(streak.step or "", streak.step or "reaching it")
    through = "" if streak.via == POSTURE else f" through {streak.via}"
    code = f" ({streak.error_code})" if streak.error_code else ""
    return Finding(
        detector=DETECTOR,
        # one missed round is worth a look (a deleted audit role hides everything after it);
        # `failed_cycles` of them in a row is the same as a failing source
        severity="high" if streak.rounds >= cfg.failed_cycles else "medium",
        title=f"rolewatch cannot see account {streak.account_id}{through}: {what} failed{code}",
        fingerprint=account_unreachable_fingerprint(streak.account_id, streak.via),
        account_id=streak.account_id,
        first_seen=iso(streak.since),
        last_seen=iso(streak.last),
        count=streak.rounds,
        details={
            "check": "account_unreachable",
            "account_id": streak.account_id,
            "source": streak.via,
            "step": streak.step,
            "error_code": streak.error_code,
            "regions": list(streak.regions),
            "consecutive_failures": streak.rounds,
            "threshold": cfg.failed_cycles,
            "last_error": streak.message,
        },
    )


def detect_monitor_health(
    observations: Iterable[SourceObservation], now: datetime, cfg: MonitorHealthConfig,
    unreachable: Iterable[AccountStreak] = (),
) -> list[Finding]:
    """Findings about the sources (from their per-cycle observations) and about the accounts out of
    sight (their current streaks: one finding each, whatever its length)."""
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
    findings.extend(_unreachable(s, cfg) for s in sorted(unreachable, key=lambda s: (s.account_id, s.via)))
    return findings

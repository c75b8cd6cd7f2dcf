"""monitor_health: the monitor watching itself.

Three incidents, all about the data feeding rolewatch rather than about AWS activity:
- a source failed `failed_cycles` collection cycles in a row (credentials revoked, bucket policy
  changed, throttled to death);
- a source delivered no CloudTrail records for `max_silence_minutes` while it was being polled
  successfully (a stopped or misconfigured trail is itself a security incident). "Delivered"
  counts what the source read, AssumeRole-family or not (trail files for `local`/`s3`; events
  or rows returned for the others, whose filter runs where the data lives), never the
  AssumeRole rows stored: a quiet account with a working trail is not a stopped trail. A source
  read per account/region (an S3 organisation trail) is also judged per unit: one member account
  whose trail stopped is hidden by the other accounts' deliveries otherwise. Only a unit that
  delivered before and then went quiet counts -- a region an account never delivered from (a
  single-region trail, a disabled opt-in region) is not a stopped trail. "Before" reaches past
  the run history read through each unit's remembered last delivery, so a downtime of the
  service longer than that history does not turn a quiet unit into one that never delivered;
- a member account rolewatch can no longer see: its audit role could not be assumed or its roles
  not listed (posture collection), or a source could not read its part of the trail (an S3
  account/region). Someone may have deleted or changed the audit role to hide what they do, so
  this is alerted (medium), not just logged, and rises to high once the account has been out of
  sight for `failed_cycles` consecutive rounds; one finding per account and channel (the audit
  role, or the source), gone as soon as a round reaches the account again.

Pure: the per-source observation history, the accounts' unreachable streaks, the units' last
deliveries and a clock in,
findings out. `fold_streaks` is the pure step that turns one round's account observations into
the streaks the state keeps between rounds (and restarts).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
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
    account: str | None = None  # the unit, for sources read per account/region (Coverage.account/region)
    region: str | None = None


UnitKey = tuple[str, str, str | None]  # (source, account, region)


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


def silence_fingerprint(source: str, account: str | None = None, region: str | None = None) -> str:
    if account is None:  # unchanged for whole sources: their open findings keep their identity
        return fingerprint(DETECTOR, "silence", source)
    return fingerprint(DETECTOR, "silence", source, account, region)


def _by_cycle(obs: list[SourceObservation]) -> list[list[SourceObservation]]:
    """Observations grouped by the cycle that made them, oldest first: a unit source has one row per unit."""
    cycles: dict[datetime, list[SourceObservation]] = {}
    for o in obs:
        cycles.setdefault(o.at, []).append(o)
    return [cycles[at] for at in sorted(cycles)]


def _failed_streak(obs: list[SourceObservation], cfg: MonitorHealthConfig) -> Finding | None:
    # a cycle failed when nothing of the source could be read; one account/region failing while the
    # others are read is the account_unreachable check's business, and must not count three times
    streak: list[SourceObservation] = []
    for rows in reversed(_by_cycle(obs)):  # newest first
        if any(o.status != "failed" for o in rows):
            break
        streak.append(rows[0])
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


def _unit_silence(unit: UnitKey, obs: list[SourceObservation], now: datetime, cfg: MonitorHealthConfig,
                  known: bool, known_last: datetime | None, remembered: datetime | None,
                  source_ok: bool, source_silent: bool) -> Finding | None:
    """One account/region of a source: silent when it delivered before and nothing since the window began.

    `known`: this unit's silence is already an open finding, with `known_last` its last delivery.
    `remembered`: its last delivery as the state's delivery memory keeps it. Either is "delivered
    before" once the delivery has aged out of the history read (a long silence, or a downtime of the
    service): without them the unit would look like one that never delivered, and an open finding
    would resolve while the trail is still off.
    """
    window_start = now - timedelta(minutes=cfg.max_silence_minutes)
    arrivals = [o.at for o in obs if o.delivered > 0] + [t for t in (known_last, remembered) if t is not None]
    last = max(arrivals, default=None)
    if last is None or last >= window_start:
        return None  # never delivered (nothing to stop), or delivered recently
    in_window = [o for o in obs if o.at >= window_start]
    if known:
        if not in_window and source_ok:
            return None  # the source listed its units and this one was gone: out of scope now
    else:
        if not any(o.status != "failed" for o in in_window):
            return None  # not read successfully: account_unreachable's business, not silence
        if source_silent:
            return None  # the whole source is silent: one finding for it, not one per unit
    source, account, region = unit
    minutes = int((now - last).total_seconds() // 60)
    where = f"{account} {region}" if region else account
    return Finding(
        detector=DETECTOR,
        severity="high",
        title=f"account {where} stopped delivering CloudTrail to {source} for {minutes} minutes "
              f"(is its trail stopped?)",
        fingerprint=silence_fingerprint(source, account, region),
        account_id=account,
        first_seen=iso(last),
        last_seen=iso(now),
        count=max(len(in_window), 1),
        details={
            "check": "silence",
            "source": source,
            "account_id": account,
            "region": region,
            "silent_minutes": minutes,
            "max_silence_minutes": cfg.max_silence_minutes,
            "last_records_at": iso(last),
        },
    )


def detect_monitor_health(
    observations: Iterable[SourceObservation], now: datetime, cfg: MonitorHealthConfig,
    unreachable: Iterable[AccountStreak] = (),
    silent_units: Mapping[UnitKey, datetime | None] | None = None,
    last_deliveries: Mapping[UnitKey, datetime] | None = None,
) -> list[Finding]:
    """Findings about the sources (from their per-cycle observations), their account/region units,
    and the accounts out of sight (their current streaks: one finding each, whatever its length).

    `silent_units`: the units whose silence is an open finding, with their last delivery;
    `last_deliveries`: every unit's last delivery as far back as the state remembers (see
    `_unit_silence`). A remembered unit is judged only when the history holds it: the memory says
    when it delivered, not that the source still reads it.
    """
    if not cfg.enabled:
        return []
    known = dict(silent_units or {})
    remembered = dict(last_deliveries or {})
    by_source: dict[str, list[SourceObservation]] = defaultdict(list)
    for o in observations:
        by_source[o.source].append(o)
    findings: list[Finding] = []
    for source in sorted(by_source.keys() | {u[0] for u in known}):
        obs = sorted(by_source.get(source, []), key=lambda o: o.at)
        source_silent = False
        if obs:
            checks = [_failed_streak(obs, cfg)]
            if source != WHOLE_CYCLE:  # silence is a property of a source, not of the cycle
                checks.append(_silence(obs, now, cfg))
                source_silent = checks[-1] is not None
            findings.extend(c for c in checks if c is not None)
        window_start = now - timedelta(minutes=cfg.max_silence_minutes)
        source_ok = any(o.status != "failed" and o.at >= window_start for o in obs)
        by_unit: dict[UnitKey, list[SourceObservation]] = defaultdict(list)
        for o in obs:
            if o.account is not None:
                by_unit[(source, o.account, o.region)].append(o)
        for unit in sorted(by_unit.keys() | {u for u in known if u[0] == source}, key=lambda u: (u[1], u[2] or "")):
            f = _unit_silence(unit, by_unit.get(unit, []), now, cfg, unit in known, known.get(unit),
                              remembered.get(unit), source_ok, source_silent)
            if f is not None:
                findings.append(f)
    findings.extend(_unreachable(s, cfg) for s in sorted(unreachable, key=lambda s: (s.account_id, s.via)))
    return findings

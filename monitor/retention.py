"""The retention job: prune what a long-running deployment would otherwise keep forever.

Correctness beats space here: every rule below keeps a row while anything could still need it.

- events older than `[state] seen_retention_days`, findings and coverage older than
  `findings_retention_days` (`StateStore.prune`);
- processed-file marks, which keep a trail file from being read twice. An S3 key is listed again
  only while its day prefix is inside some account/region's read window (checkpoint - overlap, or
  now - initial lookback for a unit without a checkpoint), so a mark is dropped only when its day
  lies before the earliest window start of its unit *and* the initial lookback, with a day's margin.
  A local directory has no window: every file present is read unless marked, so a local mark is
  dropped only once its file is gone, and never while the directory itself is missing (an
  unmounted volume would otherwise wipe every mark and the volume coming back be read again);
- delivered (`sent`) outbox rows, which keep a finding still detected from being alerted again:
  only rows whose finding the findings retention already forgot and that were last touched
  before the re-alert horizon (`findings_retention_days`, or the longest `realert_hours` if
  that is longer). Rows not yet delivered are never dropped;
- service-last-accessed cache entries of roles no longer in the inventory, only for accounts the
  last posture collection read completely (an account it could not reach keeps its roles);
- the units' last-delivery records (monitor_health's memory of which account/region delivered
  before), only of units no source has listed for the longest of the two retention periods: a
  unit still listed keeps its record however long its trail has been stopped, since dropping it
  would turn a stopped trail into one that "never delivered".
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

from monitor.collectors.base import parse_checkpoint
from monitor.config import Config, source_id
from monitor.health import forget_unlisted_units

# the account/region and day of a CloudTrail key: .../AWSLogs/[o-ORG/]ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/file
_S3_KEY_RE = re.compile(r"(?:^|/)(\d{12})/CloudTrail/([^/]+)/(\d{4})/(\d{2})/(\d{2})/[^/]+$")
# beyond what the listing needs: an `overlap_minutes` raised later still finds yesterday's marks
S3_MARK_MARGIN = timedelta(days=1)


def run_retention(config: Config, state: Any, now: datetime) -> dict[str, int]:
    st = config.state
    removed = dict(state.prune(now, seen_days=st.seen_retention_days, findings_days=st.findings_retention_days))
    removed["processed_files"] = prune_file_marks(config, state, now)
    removed["outbox"] = prune_outbox(config, state, now)
    removed["last_accessed_cache"] = prune_last_accessed_cache(state)
    removed["unit_deliveries"] = forget_unlisted_units(state, now - delivery_memory_horizon(config))
    return removed


def delivery_memory_horizon(config: Config) -> timedelta:
    st = config.state
    return timedelta(days=max(st.seen_retention_days, st.findings_retention_days))


# --------------------------------------------------------------------------- processed-file marks


def prune_file_marks(config: Config, state: Any, now: datetime) -> int:
    """Marks of the configured local and S3 sources that no read window can reach again.

    Marks of sources no longer configured are left alone: they stopped growing, and a source
    configured again under the same name finds them.
    """
    removed = 0
    for source in config.sources:
        sid = source_id(source)
        if source.type == "s3":
            removed += state.forget_files(sid, stale_s3_marks(config, state, sid, now))
        elif source.type == "local":
            removed += state.forget_files(sid, stale_local_marks(config, state, source, sid))
    return removed


def s3_mark_day(key: str) -> tuple[str, date] | None:
    """(account/region, day) of a trail key; None for a key outside the delivery layout."""
    m = _S3_KEY_RE.search(key)
    if m is None:
        return None
    account, region, y, mo, d = m.groups()
    try:
        return f"{account}/{region}", date(int(y), int(mo), int(d))
    except ValueError:
        return None


def stale_s3_marks(config: Config, state: Any, sid: str, now: datetime) -> list[str]:
    collection = config.collection
    lookback_start = now - timedelta(hours=collection.initial_lookback_hours)
    overlap = timedelta(minutes=collection.overlap_minutes)
    cutoffs: dict[str, date] = {}  # unit -> first day a cycle may still list

    def first_day(unit: str) -> date:
        if unit not in cutoffs:
            # a unit that failed for days keeps its old checkpoint: its window reaches back that far
            checkpoint = parse_checkpoint(state.get_checkpoint(sid, unit))
            start = min(lookback_start, checkpoint - overlap) if checkpoint is not None else lookback_start
            cutoffs[unit] = (start - S3_MARK_MARGIN).date()
        return cutoffs[unit]

    stale = []
    for key in state.processed_files(sid):
        parsed = s3_mark_day(key)
        if parsed is not None and parsed[1] < first_day(parsed[0]):
            stale.append(key)
    return stale


def stale_local_marks(config: Config, state: Any, source: Any, sid: str) -> list[str]:
    root = config.resolve_path(source.path)
    if not root.exists():
        return []  # an unmounted or renamed directory: its files may come back
    if not root.is_dir():
        return []  # a single file: one mark, nothing grows
    return [k for k in state.processed_files(sid) if not (root / k).exists()]


# --------------------------------------------------------------------------- outbox


def realert_horizon(config: Config) -> timedelta:
    longest = max((n.realert_hours or 0 for n in config.notifiers), default=0)
    return max(timedelta(days=config.state.findings_retention_days), timedelta(hours=longest))


def prune_outbox(config: Config, state: Any, now: datetime) -> int:
    """Delivered rows of findings that are no longer stored, untouched for the re-alert horizon.

    While its finding is stored the row decides whether a detection again is an escalation, a
    reminder or nothing; dropping it would alert the same finding as new.
    """
    cutoff = now - realert_horizon(config)
    stored = {s.finding.fingerprint for s in state.findings()}
    return int(state.outbox_delete(
        (item.fingerprint, item.notifier) for item in state.outbox_items(["sent"])
        if item.fingerprint not in stored and _before(item.sent_at or item.updated_at, cutoff)))


def _before(stamp: str | None, cutoff: datetime) -> bool:
    parsed = parse_checkpoint(stamp)
    return parsed is not None and parsed < cutoff


# --------------------------------------------------------------------------- last-accessed cache


def prune_last_accessed_cache(state: Any) -> int:
    from monitor.collectors.last_accessed import CACHE_NAMESPACE
    from monitor.pipeline import load_posture

    posture = load_posture(state)
    if posture.collected_at is None:
        return 0  # no inventory to compare with
    complete = set(posture.accounts) - set(posture.errors)
    gone = [arn for arn, _ in state.iter_json(CACHE_NAMESPACE)
            if arn not in posture.roles and _account(arn) in complete]
    for arn in gone:
        state.delete_json(CACHE_NAMESPACE, arn)
    return len(gone)


def _account(role_arn: str) -> str | None:
    parts = role_arn.split(":")
    return parts[4] if len(parts) > 5 else None

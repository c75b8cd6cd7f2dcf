"""Runs the enabled detectors over the event table and applies allowlists.

Pure: a DataFrame, a context and the config in; findings out. No I/O here.

Baselines: `ctx.baselines` holds the documents a previous run returned in
`DetectionResult.baselines` (keyed by detector name: `unusual_source_ip`,
`first_time_principal`, `unused_role`); the caller stores each as a JSON state document and
passes them back next time. With none, the detectors learn from the data given.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from monitor.config import Config
from monitor.detect import (
    allowlist,
    failed_attempts,
    first_time_principal,
    long_session,
    off_hours,
    unused_role,
    unusual_source_ip,
    watched_role,
)
from monitor.detect.chain import CHAIN_COLUMNS, chain_of, issued_index
from monitor.detect.common import plain, prepare, records_by
from monitor.detect.context import DetectionContext
from monitor.detect.posture_detectors import run_posture_detectors
from monitor.findings import Finding

log = logging.getLogger(__name__)


@dataclass
class DetectionResult:
    findings: list[Finding] = field(default_factory=list)  # to store and alert
    suppressed: list[Finding] = field(default_factory=list)  # matched an allowlist entry: stored, not alerted
    baselines: dict[str, Any] = field(default_factory=dict)  # updated baselines to persist
    notices: list[str] = field(default_factory=list)  # e.g. "unused_role skipped: no IAM inventory"


# name -> detect(events, ctx, cfg) returning findings, or (findings, baseline document)
DETECTORS: dict[str, Callable[..., Any]] = {
    failed_attempts.NAME: failed_attempts.detect,
    unusual_source_ip.NAME: unusual_source_ip.detect,
    off_hours.NAME: off_hours.detect,
    unused_role.NAME: unused_role.detect,
    first_time_principal.NAME: first_time_principal.detect,
    long_session.NAME: long_session.detect,
    watched_role.NAME: watched_role.detect,
}
NEEDS_POSTURE = {unused_role.NAME}
NO_POSTURE_NOTICE = "{name} skipped: no IAM inventory (collect posture, or give `scan --iam-snapshot`)"


def run_detectors(events: pd.DataFrame, ctx: DetectionContext, config: Config) -> DetectionResult:
    df = prepare(events)
    result = DetectionResult(baselines=dict(ctx.baselines))
    untimed = int(df["event_time"].isna().sum())
    if untimed:
        result.notices.append(f"{untimed} event(s) without an event time were left out of time-based detectors")
    found: list[Finding] = []
    for name, detect in DETECTORS.items():
        cfg = getattr(config.detectors, name)
        if not cfg.enabled:
            continue
        if name in NEEDS_POSTURE and not ctx.posture.known:
            result.notices.append(NO_POSTURE_NOTICE.format(name=name))
            continue
        out = detect(df, ctx, cfg)
        if isinstance(out, tuple):
            out, result.baselines[name] = out
        found.extend(out)
    _attach_chains(found, df)
    # IAM posture detectors (trust_policy, least_privilege): owned by the posture area
    found.extend(run_posture_detectors(ctx, config, result.notices))
    applied = allowlist.apply(found, config.allowlist, pd.Timestamp(ctx.now).to_pydatetime())
    result.findings = _ordered(applied.kept + applied.expired)
    result.suppressed = _ordered(applied.suppressed)
    return result


def _attach_chains(findings: list[Finding], df: pd.DataFrame) -> None:
    """details.chain: the identity behind the caller of each event-based finding."""
    needing = [f for f in findings if f.event_ids]
    if not needing:
        return
    wanted = {f.event_ids[0] for f in needing}
    rows = df.loc[df["event_id"].isin(wanted), ["event_id", "aws_region", *CHAIN_COLUMNS]]
    # thousands of findings share a few hundred callers: follow each caller's chain once
    caller = rows.groupby(list(CHAIN_COLUMNS), dropna=False, sort=False).ngroup()
    issued = issued_index(df)
    chains = {c: chain_of(event, issued) for c, event in records_by(rows, caller, CHAIN_COLUMNS).items()}
    # the region of the event lets notifiers link to the right CloudTrail console region
    of_event = dict(zip(plain(rows["event_id"]), zip(caller.tolist(), plain(rows["aws_region"]), strict=True),
                        strict=True))
    for f in needing:
        c, region = of_event[f.event_ids[0]]
        if isinstance(region, str) and region:
            f.details.setdefault("region", region)
        chain = chains[c]
        f.details["chain"] = chain["chain"]
        f.details["chain_hops"] = [dict(hop) for hop in chain["hops"]]  # each finding owns its details
        if chain["source_identity"]:
            f.details["source_identity"] = chain["source_identity"]


def _ordered(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (f.first_seen or "", f.detector, f.fingerprint))

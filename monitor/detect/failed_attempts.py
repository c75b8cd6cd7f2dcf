"""`failed_assume_role`: AssumeRole calls that were refused, grouped into bursts.

First the bursts that look like role enumeration (one principal, or one source address, refused
on `enumeration_roles` or more distinct roles within `window_minutes`) become one high finding
each; the remaining failures become one finding per (principal, source, role) burst, high when
`burst_threshold` of them fall inside one window.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd

from monitor.config import FailedAssumeRoleConfig
from monitor.detect.common import (
    Summary,
    base_details,
    bursts,
    event_finding,
    max_distinct_in_window,
    max_in_window,
    principal_of,
    records_by,
    role_name,
    role_of,
    summarise,
    timed,
    who,
)
from monitor.detect.context import DetectionContext
from monitor.detect.trust import likely_cause
from monitor.findings import Finding, fingerprint

NAME = "failed_assume_role"
_FIRST_EVENT_COLUMNS = (
    "event_name",
    "error_code",
    "role_arn",
    "role_account_id",
    "principal_arn",
    "principal_role_arn",
    "principal_account_id",
    "principal_service",
    "identity_provider",
    "external_id_supplied",
    "mfa_authenticated",
    "source_ip",
    "event_time",
    "principal_type",
    "principal_id",
    "source_identity",
    "role_session_name",
)


def detect(events: pd.DataFrame, ctx: DetectionContext, cfg: FailedAssumeRoleConfig) -> list[Finding]:
    df = timed(events)
    df = df[~df["success"]]
    if df.empty:
        return []
    window = timedelta(minutes=cfg.window_minutes)
    source = df["source_ip"].fillna(df["source_ip_raw"]).fillna("").astype(str)
    keys = pd.DataFrame({"principal": principal_of(df), "source_ip": source, "role": role_of(df)}, index=df.index)
    findings: list[Finding] = []
    left = pd.Series(True, index=df.index)

    for by in ("principal", "source_ip"):
        candidates = left & keys[by].ne("")
        sub, sub_keys = df[candidates], keys[candidates]
        if sub.empty:
            continue
        burst = by + ":" + bursts(sub_keys[[by]], sub["event_time"], window)
        distinct = max_distinct_in_window(sub, burst, sub_keys["role"], window)
        hit = burst.isin(distinct[distinct >= cfg.enumeration_roles].index)
        if hit.any():
            findings += _enumeration(sub[hit], burst[hit], by, distinct, sub_keys[hit])
            left[hit[hit].index] = False

    rest, rest_keys = df[left], keys[left]
    if not rest.empty:
        burst = bursts(rest_keys, rest["event_time"], window)
        peaks = max_in_window(rest, burst, window).to_dict()
        firsts = records_by(rest, burst, _FIRST_EVENT_COLUMNS)
        for row in summarise(rest, burst):
            findings.append(_burst_finding(row, int(peaks[row.group]), cfg, firsts[row.group], ctx))
    return findings


def _causes(first: dict[str, Any], ctx: DetectionContext) -> dict[str, str]:
    cause = likely_cause(first, ctx.posture, ctx.now)  # records_by gives every column, None for missing
    return {"likely_cause": cause} if cause else {}


def _burst_finding(row: Summary, peak: int, cfg: FailedAssumeRoleConfig, first: dict[str, Any],
                   ctx: DetectionContext) -> Finding:
    high = peak >= cfg.burst_threshold
    details = base_details(row)
    details.update(
        max_in_window=peak,
        window_minutes=cfg.window_minutes,
        error_codes=row.error_codes,
        **_causes(first, ctx),
    )
    n = int(row.count)
    # a burst has one role; an AssumeRoot "role" is an account's root user, reached by no other call
    call = "AssumeRoot" if first.get("event_name") == "AssumeRoot" else "AssumeRole"
    return event_finding(
        NAME,
        "high" if high else "low",
        f"{n} failed {call} call{'s' if n != 1 else ''} by {who(row)} on {role_name(row.role_arn)}",
        fingerprint(NAME, row.group),
        row,
        details,
    )


def _enumeration(sub: pd.DataFrame, burst: pd.Series, by: str, distinct: pd.Series,
                 keys: pd.DataFrame) -> list[Finding]:
    roles = keys["role"].groupby(burst.values).agg(lambda s: sorted(set(s) - {""}))
    principals = keys["principal"].groupby(burst.values).agg(lambda s: sorted(set(s)))
    actors = keys[by].groupby(burst.values).first()
    out = []
    for row in summarise(sub, burst):
        role_list, callers = roles[row.group], principals[row.group]
        details = base_details(row)
        details.update(
            enumeration=True,
            note="likely role enumeration",
            grouped_by=by,
            distinct_roles=int(distinct[row.group]),
            roles=role_list[:100],
            principals=callers[:20],
            error_codes=row.error_codes,
        )
        actor = who(row) if by == "principal" else f"source {actors[row.group]}"
        out.append(
            event_finding(
                NAME,
                "high",
                f"Likely role enumeration: {actor} refused on {len(role_list)} roles",
                fingerprint(NAME, "enumeration", row.group),
                row,
                details,
                role_arn=role_list[0] if len(role_list) == 1 else None,
                principal_arn=row.principal_arn if len(callers) == 1 else None,
            )
        )
    return out

"""`first_time_principal`: a principal assuming a role it never assumed before.

A role learns who uses it for `learning_days` from its first observed assumption; a (role,
principal) pair first seen after that is one finding, covering the pair's first day. AWS service
callers are not people and never count.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from monitor.config import FirstTimePrincipalConfig
from monitor.detect import baseline
from monitor.detect.common import (
    base_details,
    event_finding,
    group_key,
    is_service_caller,
    principal_of,
    role_name,
    role_of,
    summarise,
    timed,
    who,
)
from monitor.detect.context import DetectionContext
from monitor.findings import Finding, fingerprint

NAME = "first_time_principal"
PAIR = ["role", "principal"]
_FIRST_DAY = pd.Timedelta(days=1)


def detect(events: pd.DataFrame, ctx: DetectionContext,
           cfg: FirstTimePrincipalConfig) -> tuple[list[Finding], dict[str, Any]]:
    stored = ctx.baselines.get(NAME) or {}
    df = timed(events)
    df = df[df["success"] & ~is_service_caller(df) & df["role_arn"].notna()]
    keys = pd.DataFrame(
        {"role": role_of(df), "principal": principal_of(df), "event_time": df["event_time"]}, index=df.index
    )
    pairs = baseline.first_seen(keys, stored.get("pairs"), PAIR)
    document = {"pairs": baseline.to_document(pairs)}
    if df.empty:
        return [], document

    role_first = pairs.groupby("role")["first_seen"].min()
    learning_end = keys["role"].map(role_first) + pd.Timedelta(days=cfg.learning_days)
    pair_first = baseline.first_seen_of(keys, pairs, PAIR)
    new = (pair_first > learning_end) & (keys["event_time"] <= pair_first + _FIRST_DAY)
    if not new.any():
        return [], document

    hits, hit_keys = df[new], keys[new]
    group = group_key(hit_keys[PAIR])
    firsts = hit_keys.assign(g=group).drop_duplicates("g").set_index("g").to_dict("index")
    earlier = _earlier_principals(pairs, hit_keys)
    findings = []
    for row in summarise(hits, group):
        k = firsts[row.group]
        cross = bool(row.is_cross_account)
        details = base_details(row)
        details.update(
            learning_days=cfg.learning_days,
            known_principals=[p for p in earlier.get(k["role"], []) if p != k["principal"]][:20],
        )
        findings.append(
            event_finding(
                NAME,
                "high" if cross else "medium",
                f"{who(row)} assumed {role_name(row.role_arn)} for the first time",
                fingerprint(NAME, k["role"], k["principal"]),
                row,
                details,
            )
        )
    return findings, document


def _earlier_principals(pairs: pd.DataFrame, hit_keys: pd.DataFrame) -> dict[str, list[str]]:
    """Who used each flagged role before (so a responder sees what "normal" was)."""
    subset = pairs[pairs["role"].isin(hit_keys["role"].unique())].sort_values("first_seen")
    return {r: list(g["principal"]) for r, g in subset.groupby("role")}

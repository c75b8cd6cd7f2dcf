"""`unusual_source_ip`: a successful assumption from a network the (role, principal) never used.

Each pair learns its networks (`/24` IPv4, `/64` IPv6 by default) for `learning_days` from its
first assumption; after that, the first day of use from a network outside the baseline and
outside `allowed_cidrs` is one finding per (role, principal, network). AWS service callers and
service-name source addresses are never treated as IPs.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from monitor.config import UnusualSourceIpConfig
from monitor.detect import baseline
from monitor.detect.common import (
    base_details,
    event_finding,
    group_key,
    in_cidrs,
    is_service_caller,
    network_of,
    principal_of,
    role_name,
    role_of,
    summarise,
    timed,
    who,
)
from monitor.detect.context import DetectionContext
from monitor.findings import Finding, fingerprint

NAME = "unusual_source_ip"
PAIR = ["role", "principal"]
NET = ["role", "principal", "network"]
_FIRST_DAY = pd.Timedelta(days=1)


def detect(events: pd.DataFrame, ctx: DetectionContext, cfg: UnusualSourceIpConfig) -> tuple[list[Finding], dict[str, Any]]:
    """Returns the findings and the updated baseline document."""
    stored = ctx.baselines.get(NAME) or {}
    df = timed(events)
    df = df[df["success"] & ~is_service_caller(df) & df["source_ip"].notna()]
    keys = pd.DataFrame(
        {
            "role": role_of(df),
            "principal": principal_of(df),
            "network": network_of(df["source_ip"], cfg.ipv4_prefix, cfg.ipv6_prefix),
            "event_time": df["event_time"],
        },
        index=df.index,
    )
    has_network = keys["network"].notna()
    if not has_network.all():  # copy the rows only when some address had no network
        keys, df = keys[has_network], df[has_network]
    pairs = baseline.first_seen(keys, stored.get("pairs"), PAIR)
    nets = baseline.first_seen(keys, stored.get("networks"), NET)
    document = {"pairs": baseline.to_document(pairs), "networks": baseline.to_document(nets)}
    if df.empty:
        return [], document

    learning_end = baseline.first_seen_of(keys, pairs, PAIR) + pd.Timedelta(days=cfg.learning_days)
    net_first = baseline.first_seen_of(keys, nets, NET)
    unusual = (net_first > learning_end) & (keys["event_time"] <= net_first + _FIRST_DAY)
    unusual &= ~in_cidrs(df["source_ip"], cfg.allowed_cidrs)
    if not unusual.any():
        return [], document

    hits, hit_keys = df[unusual], keys[unusual]
    group = group_key(hit_keys[NET])
    known = _known_networks(nets, pairs, hit_keys, cfg.learning_days)
    firsts = hit_keys.assign(g=group).drop_duplicates("g").set_index("g").to_dict("index")
    findings = []
    for row in summarise(hits, group):
        k = firsts[row.group]
        cross = bool(row.is_cross_account)
        details = base_details(row)
        details.update(
            network=k["network"],
            learning_days=cfg.learning_days,
            known_networks=known.get((k["role"], k["principal"]), [])[:20],
        )
        findings.append(
            event_finding(
                NAME,
                "high" if cross else "medium",
                f"{who(row)} assumed {role_name(row.role_arn)} from a new network {k['network']}",
                fingerprint(NAME, k["role"], k["principal"], k["network"]),
                row,
                details,
            )
        )
    return findings, document


def _known_networks(nets: pd.DataFrame, pairs: pd.DataFrame, hit_keys: pd.DataFrame,
                    learning_days: int) -> dict[tuple[str, str], list[str]]:
    """The baseline networks of the flagged pairs (learned inside their learning period)."""
    hit_pairs = hit_keys[PAIR].drop_duplicates()
    learned = nets.merge(hit_pairs, on=PAIR).merge(pairs, on=PAIR, suffixes=("", "_pair"))
    learned = learned[learned["first_seen"] <= learned["first_seen_pair"] + pd.Timedelta(days=learning_days)]
    grouped = learned.sort_values("first_seen").groupby(PAIR)["network"].agg(list)
    return {(r, p): v for (r, p), v in grouped.items()}

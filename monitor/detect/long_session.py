"""`long_session`: sessions requested for longer than `max_duration_seconds`.

The duration is the `DurationSeconds` the caller asked for (a call without it gets the one-hour
default). One finding per (role, principal, UTC day), severity low: session length is hygiene,
not an incident by itself.
"""

from __future__ import annotations

import pandas as pd

from monitor.config import LongSessionConfig
from monitor.detect.common import (
    base_details,
    event_finding,
    group_key,
    principal_of,
    role_name,
    role_of,
    summarise,
    timed,
    who,
)
from monitor.detect.context import DetectionContext
from monitor.findings import Finding, fingerprint

NAME = "long_session"


def detect(events: pd.DataFrame, ctx: DetectionContext, cfg: LongSessionConfig) -> list[Finding]:
    df = timed(events)
    # one mask, one copy of the (few) long sessions rather than of every success first
    long = (df["duration_seconds"] > cfg.max_duration_seconds).fillna(False).astype(bool)
    df = df[df["success"] & long]
    seconds = df["duration_seconds"]
    if df.empty:
        return []
    keys = pd.DataFrame(
        {"role": role_of(df), "principal": principal_of(df), "day": df["event_time"].dt.strftime("%Y-%m-%d")},
        index=df.index,
    )
    group = group_key(keys)
    firsts = keys.assign(g=group).drop_duplicates("g").set_index("g").to_dict("index")
    longest = seconds.groupby(group.values).max()
    findings = []
    for row in summarise(df, group):
        k = firsts[row.group]
        details = base_details(row)
        details.update(max_duration_seconds=int(longest[row.group]), limit_seconds=cfg.max_duration_seconds)
        hours = int(longest[row.group]) / 3600
        findings.append(
            event_finding(
                NAME,
                "low",
                f"{who(row)} took a {hours:g} h session on {role_name(row.role_arn)}",
                fingerprint(NAME, k["role"], k["principal"], k["day"]),
                row,
                details,
            )
        )
    return findings

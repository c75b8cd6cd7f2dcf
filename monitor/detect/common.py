"""What every detector needs: one row per call, caller classes, bursts, globs, and group summaries.

All of it works on whole columns (groupby, unique values), never row by row over the event table.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from monitor.events.merge import merge_shared_copies, one_row_per_call
from monitor.events.schema import coerce
from monitor.findings import MAX_EVENT_IDS, Finding

UNKNOWN_PRINCIPAL = "unknown"
_LIST_CAP = 20  # details lists (source IPs, user agents) stay readable


def prepare(events: pd.DataFrame) -> pd.DataFrame:
    """The frame every detector reads: typed, one row per event ID and per call, in time order."""
    df = coerce(events)
    if df.empty:
        return df
    df = df.drop_duplicates("event_id")
    df = one_row_per_call(merge_shared_copies(df))
    df = df.sort_values(["event_time", "event_id"], kind="stable", na_position="last").reset_index(drop=True)
    return df


def timed(df: pd.DataFrame) -> pd.DataFrame:
    """Rows that carry an event time (the time-based detectors cannot place the others)."""
    return df[df["event_time"].notna()]


def is_service_caller(df: pd.DataFrame) -> pd.Series:
    """AWS services assuming their roles: not people, never off-hours or unusual."""
    return (df["principal_type"].eq("AWSService").fillna(False) | df["principal_service"].notna()).astype(bool)


def principal_of(df: pd.DataFrame) -> pd.Series:
    """The caller as detectors group and baseline it.

    `principal_key` (ARN, else service, else account:principal-id), except for an assumed-role
    session: its session name is often random (CI jobs, SDK defaults), so the role behind the
    session is the principal. IAM Identity Center sessions keep their name: it is the person.
    """
    key = df["principal_key"].fillna(df["principal_arn"]).fillna(UNKNOWN_PRINCIPAL).astype(str)
    behind = df["principal_role_arn"]
    use_role = (
        df["principal_type"].eq("AssumedRole").fillna(False)
        & behind.notna()
        & ~behind.fillna("").str.contains(":role/(?:aws-reserved/sso.amazonaws.com/.*)?AWSReservedSSO_", regex=True)
    ).astype(bool)
    return key.where(~use_role, behind.astype(str))


def role_of(df: pd.DataFrame) -> pd.Series:
    return df["role_arn"].fillna("").astype(str)


def glob_mask(values: pd.Series, patterns: Iterable[str]) -> pd.Series:
    """values matching any glob (evaluated once per distinct value)."""
    pats = list(patterns)
    if not pats or values.empty:
        return pd.Series(False, index=values.index)
    uniq = pd.Series(values.dropna().unique())
    hit = {v: any(fnmatch.fnmatchcase(str(v), p) for p in pats) for v in uniq}
    return values.map(hit).eq(True)


def network_of(ips: pd.Series, v4_prefix: int, v6_prefix: int) -> pd.Series:
    """IP address -> its network (`/24`, `/64` by default), computed once per distinct address."""
    uniq = ips.dropna().unique()
    nets: dict[str, str | None] = {}
    for ip in uniq:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            nets[ip] = None
            continue
        prefix = v4_prefix if addr.version == 4 else v6_prefix
        nets[ip] = str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))
    return ips.map(nets)


def in_cidrs(ips: pd.Series, cidrs: Iterable[str]) -> pd.Series:
    nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]
    if not nets or ips.empty:
        return pd.Series(False, index=ips.index)
    hit = {}
    for ip in ips.dropna().unique():
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            hit[ip] = False
            continue
        hit[ip] = any(addr.version == n.version and addr in n for n in nets)
    return ips.map(hit).eq(True)


def group_key(keys: pd.DataFrame) -> pd.Series:
    """Several key columns -> one string key per row."""
    cols = [keys[c].astype(str) for c in keys.columns]
    out = cols[0]
    for c in cols[1:]:
        out = out + "\x1f" + c
    return out


def bursts(keys: pd.DataFrame, times: pd.Series, gap: timedelta) -> pd.Series:
    """Burst id per row: within one key, a new burst starts after a silence longer than `gap`.

    Ids are "<key>#<burst start ISO>", so they depend only on the data of the burst, never on
    the run that saw it.
    """
    if keys.empty:
        return pd.Series([], dtype=object, index=keys.index)
    order = pd.DataFrame({"k": group_key(keys), "t": times}).sort_values(["k", "t"], kind="stable")
    new_group = order["k"].ne(order["k"].shift())
    new_burst = new_group | (order["t"].diff() > pd.Timedelta(gap))
    burst_no = new_burst.cumsum()
    start = order["t"].groupby(burst_no).transform("min")
    ident = order["k"] + "#" + start.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return ident.reindex(keys.index)


def max_in_window(df: pd.DataFrame, group: pd.Series, window: timedelta) -> pd.Series:
    """Per group: the most events inside any window of `window` length (both ends inclusive).

    One sort and one binary search over a composite (group, second) key: for each event, the
    number of events of its group in [t - window, t]. CloudTrail times have whole seconds.
    """
    if df.empty:
        return pd.Series(dtype="int64")
    codes, uniques = pd.factorize(group.to_numpy())
    seconds = df["event_time"].astype("int64").to_numpy() // 1_000_000_000
    seconds = seconds - seconds.min()
    w = int(pd.Timedelta(window).total_seconds())
    span = int(seconds.max()) + w + 1
    key = codes.astype("int64") * span + seconds
    order = np.argsort(key, kind="stable")
    key = key[order]
    start = np.searchsorted(key, key - w, side="left")
    counts = np.arange(len(key)) - start + 1
    best = pd.Series(counts).groupby(codes[order]).max()
    return pd.Series(best.to_numpy(), index=uniques[best.index.to_numpy()]).astype("int64")


def records_by(df: pd.DataFrame, key: pd.Series, columns: Iterable[str]) -> dict[Any, dict[str, Any]]:
    """key -> {column: value} for the first row of each key (None for missing), without per-row pandas calls."""
    first = ~pd.Series(key.to_numpy()).duplicated().to_numpy()
    keys = key.to_numpy()[first]
    cols = {}
    for c in columns:
        s = df[c].iloc[first]
        cols[c] = s.astype(object).where(s.notna(), None).tolist()
    names = list(cols)
    return {k: dict(zip(names, vals, strict=True)) for k, vals in zip(keys, zip(*cols.values(), strict=True),
                                                                       strict=True)}


def max_distinct_in_window(df: pd.DataFrame, group: pd.Series, item: pd.Series, window: timedelta) -> pd.Series:
    """Per group: the most distinct `item`s seen inside any window of `window` length.

    Each item is "present" from each of its events to `window` later; the largest number of
    items present at once (a sweep over +1/-1 edges) is the answer. Vectorised, exact.
    """
    if df.empty:
        return pd.Series(dtype="int64")
    w = pd.Timedelta(window)
    frame = pd.DataFrame({"g": group.to_numpy(), "i": item.astype(str).to_numpy(), "t": df["event_time"].array})
    frame = frame.sort_values(["g", "i", "t"])
    new = frame["g"].ne(frame["g"].shift()) | frame["i"].ne(frame["i"].shift()) | (frame["t"].diff() > w)
    seg = new.cumsum()
    spans = frame.groupby(seg).agg(g=("g", "first"), start=("t", "min"), end=("t", "max"))
    spans["end"] = spans["end"] + w
    # at equal times a start counts before an end: the window is inclusive at both ends
    edges = pd.concat(
        [
            pd.DataFrame({"g": spans["g"], "t": spans["start"], "d": 1, "o": 0}),
            pd.DataFrame({"g": spans["g"], "t": spans["end"], "d": -1, "o": 1}),
        ]
    ).sort_values(["g", "t", "o"], kind="stable")
    edges["n"] = edges.groupby("g")["d"].cumsum()
    return edges.groupby("g")["n"].max().astype("int64")


def lists_by_group(groups: pd.Series, values: pd.Series, cap: int, *, unique: bool = True) -> dict[Any, list[str]]:
    """group -> sorted (distinct) values, at most `cap` of them; one sort, no per-group pandas calls."""
    frame = pd.DataFrame({"g": groups.to_numpy(), "v": values.astype("string").to_numpy()}).dropna()
    if unique:
        frame = frame.drop_duplicates()
    frame = frame.sort_values(["g", "v"], kind="stable")
    frame = frame[frame.groupby("g", sort=False).cumcount() < cap]
    if frame.empty:
        return {}
    keys = frame["g"].to_numpy()
    vals = frame["v"].astype(object).to_numpy()
    cuts = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    starts = np.concatenate([[0], cuts])
    return {keys[i]: list(chunk) for i, chunk in zip(starts, np.split(vals, cuts), strict=True)}


def summarise(df: pd.DataFrame, group: pd.Series) -> pd.DataFrame:
    """One row per group with what a finding needs (first/last seen, count, capped event ids, ...)."""
    work = df.assign(_g=group.to_numpy())
    grouped = work.groupby("_g", sort=True)
    out = grouped.agg(
        first_seen=("event_time", "min"),
        last_seen=("event_time", "max"),
        count=("event_id", "size"),
        role_arn=("role_arn", "first"),
        role_account_id=("role_account_id", "first"),
        account_id=("account_id", "first"),
        principal_arn=("principal_arn", "first"),
        principal_key=("principal_key", "first"),
        principal_id=("principal_id", "first"),
        principal_account_id=("principal_account_id", "first"),
        principal_type=("principal_type", "first"),
        source_ip=("source_ip", "first"),
        is_cross_account=("is_cross_account", "max"),
    )
    g = work["_g"]
    for name, col, cap in (("event_ids", "event_id", MAX_EVENT_IDS), ("source_ips", "source_ip", _LIST_CAP),
                           ("user_agents", "user_agent", _LIST_CAP), ("event_names", "event_name", _LIST_CAP),
                           ("error_codes", "error_code", _LIST_CAP)):
        lists = lists_by_group(g, work[col], cap)
        out[name] = [lists.get(k, []) for k in out.index]
    return out


def na(value: Any) -> Any:
    """pandas missing values -> None, numpy scalars -> Python."""
    if value is None:
        return None
    if isinstance(value, list | dict):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def base_details(row: Any) -> dict[str, Any]:
    """Details every event-based finding carries: who (when no ARN), from where, with what."""
    details: dict[str, Any] = {}
    if na(row.principal_arn) is None:
        details["principal_id"] = na(row.principal_id)
        details["principal_account_id"] = na(row.principal_account_id)
    details["principal"] = na(row.principal_key)
    details["principal_type"] = na(row.principal_type)
    details["source_ips"] = list(row.source_ips)
    details["user_agents"] = list(row.user_agents)
    if na(row.is_cross_account):
        details["cross_account"] = True
    return details


def finding_account(row: Any) -> str | None:
    return na(row.role_account_id) or na(row.account_id)


def who(row: Any) -> str:
    """Short human name of the caller for titles."""
    arn = na(row.principal_arn)
    if arn:
        return arn.rsplit(":", 1)[-1]
    pid, acct = na(row.principal_id), na(row.principal_account_id)
    if pid and acct:
        return f"{pid} in account {acct}"
    if pid or acct:
        return str(pid or f"account {acct}")
    return na(row.principal_key) or UNKNOWN_PRINCIPAL


def role_name(arn: str | None) -> str:
    if not arn:
        return "an unknown role"
    return arn.rsplit("/", 1)[-1]


def event_finding(detector: str, severity: str, title: str, fp: str, row: Any, details: dict[str, Any],
                  **overrides: Any) -> Finding:
    """A finding about a group of events, from a `summarise` row."""
    fields: dict[str, Any] = dict(
        account_id=finding_account(row),
        role_arn=na(row.role_arn),
        principal_arn=na(row.principal_arn),
        source_ip=na(row.source_ip),
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        count=int(row.count),
        event_ids=list(row.event_ids),
    )
    fields.update(overrides)
    return Finding(detector=detector, severity=severity, title=title, fingerprint=fp, details=details, **fields)

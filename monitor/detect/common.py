"""What every detector needs: one row per call, caller classes, bursts, globs, and group summaries.

All of it works on whole columns (groupby, unique values), never row by row over the event table.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from monitor.events.merge import merge_shared_copies, one_copy_per_call
from monitor.events.normalise import is_root_arn
from monitor.events.schema import coerce
from monitor.findings import MAX_EVENT_IDS, Finding

UNKNOWN_PRINCIPAL = "unknown"
_SSO_ROLE = ":role/(?:aws-reserved/sso.amazonaws.com/.*)?AWSReservedSSO_"
_LIST_CAP = 20  # details lists (source IPs, user agents) stay readable


def prepare(events: pd.DataFrame) -> pd.DataFrame:
    """The frame every detector reads: typed, one row per event ID and per call, in time order."""
    df = coerce(events)
    if df.empty:
        return df
    repeated = df["event_id"].duplicated()
    if repeated.any():  # as drop_duplicates, without copying the table when nothing repeats
        df = df[~repeated]
    df = merge_shared_copies(df)
    # one_row_per_call, then sorted by (event_time, event_id): one take of the whole table
    kept = np.flatnonzero(one_copy_per_call(df))
    order = _chronological(df["event_time"].iloc[kept], df["event_id"].iloc[kept])
    return df.take(kept[order]).reset_index(drop=True)


def _chronological(times: pd.Series, ids: pd.Series) -> np.ndarray:
    """Positions by (time, id), missing times and ids last: `sort_values` on both, cheaper.

    Sorting every event id (random UUIDs) is most of the cost of that sort, yet ids only break
    ties between equal times (whole seconds), so only the tied rows are ordered by id.
    """
    missing = times.isna().to_numpy()
    ns = epoch_ns(times)
    order = np.lexsort((ns, missing))
    ns, missing = ns[order], missing[order]
    same_as_previous = np.append(False, (ns[1:] == ns[:-1]) & (missing[1:] == missing[:-1]))
    tied = same_as_previous | np.append(same_as_previous[1:], False)
    if not tied.any():
        return order
    at = np.flatnonzero(tied)
    run = np.cumsum(~same_as_previous[at])  # one number per run of equal times
    ranks, distinct = pd.factorize(ids.to_numpy(dtype=object, na_value=None)[order[at]], sort=True)
    ranks[ranks < 0] = len(distinct)
    order[at] = order[at][np.lexsort((ranks, run))]
    return order


def timed(df: pd.DataFrame) -> pd.DataFrame:
    """Rows that carry an event time (the time-based detectors cannot place the others)."""
    has_time = df["event_time"].notna()
    return df if has_time.all() else df[has_time]  # usually all: no copy of the whole table


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
    use_role = (df["principal_type"].eq("AssumedRole").fillna(False) & behind.notna()).astype(bool)
    # the regex only for the assumed-role rows: most callers are users and services
    use_role[use_role] = ~behind[use_role].str.contains(_SSO_ROLE, regex=True).astype(bool)
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
    the run that saw it. Keys are never missing and times never NaT (the callers pass timed
    rows and filled keys).
    """
    if keys.empty:
        return pd.Series([], dtype=object, index=keys.index)
    key = group_key(keys).to_numpy(dtype=object)
    codes = pd.factorize(key)[0]
    ns = epoch_ns(times)
    # integer sort by (key, time): the order of the keys themselves does not matter
    order = np.lexsort((ns, codes))
    c, t = codes[order], ns[order]
    new = np.ones(len(c), dtype=bool)
    new[1:] = (c[1:] != c[:-1]) | (t[1:] - t[:-1] > pd.Timedelta(gap).value)
    start = iso_seconds(t[new])[np.cumsum(new) - 1]
    ident = np.empty(len(key), dtype=object)
    ident[order] = key[order] + "#" + start
    return pd.Series(ident, index=keys.index, dtype=object)


def max_in_window(df: pd.DataFrame, group: pd.Series, window: timedelta) -> pd.Series:
    """Per group: the most events inside any window of `window` length (both ends inclusive).

    One sort and one binary search over a composite (group, second) key: for each event, the
    number of events of its group in [t - window, t]. CloudTrail times have whole seconds.
    """
    if df.empty:
        return pd.Series(dtype="int64")
    codes, uniques = pd.factorize(group.to_numpy())
    seconds = epoch_ns(df["event_time"]) // 1_000_000_000
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
    cols = {c: plain(df[c].iloc[first]).tolist() for c in columns}
    names = list(cols)
    return {k: dict(zip(names, vals, strict=True)) for k, vals in zip(keys, zip(*cols.values(), strict=True),
                                                                       strict=True)}


def max_distinct_in_window(df: pd.DataFrame, group: pd.Series, item: pd.Series, window: timedelta) -> pd.Series:
    """Per group: the most distinct `item`s seen inside any window of `window` length.

    Each item is "present" from each of its events to `window` later; the largest number of
    items present at once (a sweep over +1/-1 edges) is the answer. Vectorised, exact; groups
    and items (never missing) are factorized so every sort is an integer sort.
    """
    if df.empty:
        return pd.Series(dtype="int64")
    w = pd.Timedelta(window).value
    g_codes, groups = pd.factorize(group.to_numpy())
    i_codes = pd.factorize(item.astype(str).to_numpy())[0]
    ns = epoch_ns(df["event_time"])
    order = np.lexsort((ns, i_codes, g_codes))
    g, i, t = g_codes[order], i_codes[order], ns[order]
    # a span: one item's events of one group, no gap longer than the window inside
    new = np.ones(len(g), dtype=bool)
    new[1:] = (g[1:] != g[:-1]) | (i[1:] != i[:-1]) | (t[1:] - t[:-1] > w)
    last = np.append(new[1:], True)
    span_group = g[new]
    edge_group = np.concatenate([span_group, span_group])
    edge_time = np.concatenate([t[new], t[last] + w])
    is_end = np.repeat([0, 1], len(span_group))
    # at equal times a start counts before an end: the window is inclusive at both ends
    edges = np.lexsort((is_end, edge_time, edge_group))
    # every group's starts and ends cancel out, so one running sum serves all groups
    present = np.cumsum(1 - 2 * is_end[edges])
    eg = edge_group[edges]
    firsts = np.flatnonzero(np.append(True, eg[1:] != eg[:-1]))
    best = np.maximum.reduceat(present, firsts)
    return pd.Series(best.astype("int64"), index=pd.Index(groups[eg[firsts]], dtype=object))


def lists_by_group(codes: np.ndarray, n_groups: int, values: pd.Series, cap: int) -> list[list[str]]:
    """Per group code 0..n_groups-1: its sorted distinct values, at most `cap`; missing ones left out.

    One factorize and one integer sort over (group, value rank) pairs: no string sorts, no
    per-group pandas calls.
    """
    ranks, texts = pd.factorize(values.astype("string").to_numpy(dtype=object, na_value=None), sort=True)
    keep = (codes >= 0) & (ranks >= 0)
    pairs = np.unique(codes[keep].astype(np.int64) * len(texts) + ranks[keep])  # sorted and distinct
    group, rank = np.divmod(pairs, max(len(texts), 1))
    first = np.searchsorted(group, group, side="left")
    capped = np.arange(len(group)) - first < cap
    group, flat = group[capped], texts[rank[capped]].tolist()
    bounds = np.searchsorted(group, np.arange(n_groups + 1)).tolist()
    return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def epoch_ns(times: pd.Series) -> np.ndarray:
    """Times as int64 nanoseconds since the epoch (NaT: the int64 minimum), whatever unit they came in."""
    return times.dt.as_unit("ns").astype("int64").to_numpy()


def iso_seconds(ns: np.ndarray) -> np.ndarray:
    """Nanoseconds since the epoch -> "YYYY-MM-DDTHH:MM:SSZ" (as `findings.iso` writes them), as objects."""
    text = np.datetime_as_string(ns.astype("datetime64[ns]").astype("datetime64[s]"), unit="s")
    return np.char.add(text, "Z").astype(object)


def iso_texts(times: pd.Series) -> np.ndarray:
    """`findings.iso` of every time at once; None where the time is missing."""
    utc = pd.to_datetime(times, utc=True)
    missing = utc.isna().to_numpy()
    return np.where(missing, None, iso_seconds(epoch_ns(utc)))


def plain(column: pd.Series) -> np.ndarray:
    """Python values, None for missing: the finding loops then never touch pandas scalars."""
    return column.to_numpy(dtype=object, na_value=None)


class Summary(NamedTuple):
    """One group of events, as a finding needs it: plain Python values, None for missing.

    Its lists belong to it alone, so the one finding built from it takes them over uncopied.
    """

    group: Any  # the group key
    first_seen: str | None  # ISO text
    last_seen: str | None
    count: int
    role_arn: str | None  # this and the next ones: the group's first non-missing value
    role_account_id: str | None
    account_id: str | None
    principal_arn: str | None
    principal_key: str | None
    principal_id: str | None
    principal_account_id: str | None
    principal_type: str | None
    source_ip: str | None
    is_cross_account: bool | None  # True when any of its events is; None when none tells
    event_ids: list[str]  # sorted, distinct, capped
    source_ips: list[str]
    user_agents: list[str]
    event_names: list[str]
    error_codes: list[str]


_FIRST_OF = ("role_arn", "role_account_id", "account_id", "principal_arn", "principal_key", "principal_id",
             "principal_account_id", "principal_type", "source_ip")
_LISTS = (("event_id", MAX_EVENT_IDS), ("source_ip", _LIST_CAP), ("user_agent", _LIST_CAP),
          ("event_name", _LIST_CAP), ("error_code", _LIST_CAP))


def summarise(df: pd.DataFrame, group: pd.Series) -> list[Summary]:
    """One Summary per group, in sorted group order (first/last seen, count, capped event ids, ...).

    Every column is aggregated once over factorized group codes; the rows are then zipped
    from plain lists, so the per-finding loops never touch pandas.
    """
    codes, keys = pd.factorize(group.to_numpy(), sort=True)
    present = codes >= 0
    if not present.all():
        df, codes = df[present], codes[present]
    grouped = df.groupby(codes, sort=True)
    columns = [
        keys.tolist(),
        iso_texts(grouped["event_time"].min()).tolist(),
        iso_texts(grouped["event_time"].max()).tolist(),
        grouped.size().tolist(),
        *(plain(grouped[c].first()).tolist() for c in _FIRST_OF),
        plain(grouped["is_cross_account"].max()).tolist(),
        *(lists_by_group(codes, len(keys), df[col], cap) for col, cap in _LISTS),
    ]
    return list(map(Summary._make, zip(*columns, strict=True)))


def base_details(row: Summary) -> dict[str, Any]:
    """Details every event-based finding carries: who (when no ARN), from where, with what."""
    details: dict[str, Any] = {}
    if row.principal_arn is None:
        details["principal_id"] = row.principal_id
        details["principal_account_id"] = row.principal_account_id
    details["principal"] = row.principal_key
    details["principal_type"] = row.principal_type
    details["source_ips"] = row.source_ips
    details["user_agents"] = row.user_agents
    if row.is_cross_account:
        details["cross_account"] = True
    return details


def finding_account(row: Summary) -> str | None:
    return row.role_account_id or row.account_id


def who(row: Summary) -> str:
    """Short human name of the caller for titles."""
    arn = row.principal_arn
    if arn:
        return arn.rsplit(":", 1)[-1]
    pid, acct = row.principal_id, row.principal_account_id
    if pid and acct:
        return f"{pid} in account {acct}"
    if pid or acct:
        return str(pid or f"account {acct}")
    return row.principal_key or UNKNOWN_PRINCIPAL


def role_name(arn: str | None) -> str:
    if not arn:
        return "an unknown role"
    if is_root_arn(arn):  # an AssumeRoot row's role: the target account's root user
        return f"the root user of account {arn.rsplit(':', 2)[-2]}"
    return arn.rsplit("/", 1)[-1]


def event_finding(detector: str, severity: str, title: str, fp: str, row: Summary, details: dict[str, Any],
                  **overrides: Any) -> Finding:
    """A finding about a group of events, from a `summarise` row."""
    fields: dict[str, Any] = dict(
        account_id=finding_account(row),
        role_arn=row.role_arn,
        principal_arn=row.principal_arn,
        source_ip=row.source_ip,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        count=int(row.count),
        event_ids=row.event_ids,
    )
    fields.update(overrides)
    return Finding(detector=detector, severity=severity, title=title, fingerprint=fp, details=details, **fields)

"""Learned baselines as small JSON documents, merged with what the current data shows.

A baseline is a table of "first seen" times keyed by some columns (role + principal, role +
principal + network, ...). Stored form: `{"version": 1, "rows": [{key..., "first_seen": ISO}]}`.
Merging takes the earliest time per key, so replaying data (or reordering it) never changes
the baseline, and a rerun over the same data gives the same findings.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

VERSION = 1


def first_seen(observed: pd.DataFrame, stored: dict[str, Any] | None, keys: list[str]) -> pd.DataFrame:
    """observed: key columns + `event_time`. Returns key columns + `first_seen` (earliest of both)."""
    obs = observed.groupby(keys, sort=False, dropna=False)["event_time"].min().rename("first_seen").reset_index()
    rows = (stored or {}).get("rows") or []
    if rows:
        old = pd.DataFrame(rows)
        if set(keys) <= set(old.columns) and "first_seen" in old.columns:
            old = old[[*keys, "first_seen"]].astype({k: str for k in keys})
            old["first_seen"] = pd.to_datetime(old["first_seen"], utc=True, errors="coerce", format="mixed")
            obs = pd.concat([obs.astype({k: str for k in keys}), old.dropna(subset=["first_seen"])])
    if obs.empty:
        return pd.DataFrame({**{k: pd.Series(dtype=str) for k in keys},
                             "first_seen": pd.Series(dtype="datetime64[ns, UTC]")})
    obs["first_seen"] = pd.to_datetime(obs["first_seen"], utc=True)
    return obs.groupby(keys, sort=True)["first_seen"].min().reset_index()


def to_document(table: pd.DataFrame) -> dict[str, Any]:
    out = table.copy()
    out["first_seen"] = out["first_seen"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"version": VERSION, "rows": out.to_dict("records")}


def first_seen_of(rows: pd.DataFrame, table: pd.DataFrame, keys: list[str]) -> pd.Series:
    """For each row of `rows`, the baseline's first_seen of its key."""
    merged = rows[keys].astype(str).merge(table.astype({k: str for k in keys}), on=keys, how="left")
    return merged["first_seen"].set_axis(rows.index)

"""Join the two copies of one cross-account call.

A cross-account AssumeRole reaches two trails: the caller's account records the full identity,
the role owner's account records only `{"type": "AWSAccount", "principalId", "accountId"}`.
Both share `sharedEventID`. Merging fills the caller's identity into the owner's copy, so
`principal_arn` names the caller whenever either copy does; `one_row_per_call` then keeps one
row per call so nothing downstream counts it twice.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# columns that describe the caller and may be missing from the role owner's copy
_CALLER_COLUMNS = (
    "principal_arn",
    "principal_type",
    "principal_id",
    "principal_role_arn",
    "caller_access_key_id",
    "mfa_authenticated",
    "source_identity",
)


def merge_shared_copies(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty or df["shared_event_id"].isna().all():
        return df
    shared = df["shared_event_id"]
    twin = (shared.notna() & shared.duplicated(keep=False)).to_numpy()
    if not twin.any():
        return df
    out = df.copy(deep=False)  # copy-on-write: only the columns written below are copied
    rows = np.flatnonzero(twin)
    call = pd.factorize(shared.to_numpy()[rows])[0]
    full_identity = (df["principal_type"].ne("AWSAccount") & df["principal_arn"].notna()).fillna(False)
    full_identity = full_identity.to_numpy(dtype=bool)[rows]
    for col in _CALLER_COLUMNS:
        values = df[col].array[rows]
        missing = np.asarray(values.isna())
        # the value from the first copy of the call that knows the full identity, for its twin
        source = _first_per_call(call, full_identity & ~missing)
        if col == "principal_type":
            is_account = (values == "AWSAccount").to_numpy(dtype=bool, na_value=False)
            replace = (missing | is_account) & (source >= 0)
        else:
            replace = missing & (source >= 0)
        if replace.any():
            merged = df[col].array.copy()
            merged[rows[replace]] = values[source[replace]]
            out[col] = merged
    # principal_key follows the merged ARN
    has_arn = out["principal_arn"].notna()
    out.loc[has_arn, "principal_key"] = out.loc[has_arn, "principal_arn"]
    known_cross = out["role_account_id"].notna() & out["principal_account_id"].notna()
    out.loc[known_cross, "is_cross_account"] = (
        out.loc[known_cross, "role_account_id"] != out.loc[known_cross, "principal_account_id"]
    )
    return out


def _first_per_call(call: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Per copy: the position of the first usable copy of the same call, -1 when there is none."""
    at = np.flatnonzero(usable)
    calls, first = np.unique(call[at], return_index=True)
    source = np.full(call.max() + 1, -1)
    source[calls] = at[first]
    return source[call]


def one_row_per_call(df: pd.DataFrame) -> pd.DataFrame:
    """Keep one copy per call: rows without sharedEventID stay; twins collapse to the role owner's copy."""
    if df.empty:
        return df
    keep = one_copy_per_call(df)
    kept = df if keep.all() else df[keep]
    if not kept.index.is_monotonic_increasing:
        kept = kept.sort_index(kind="stable")
    return kept.reset_index(drop=True)


def one_copy_per_call(df: pd.DataFrame) -> np.ndarray:
    """The rows `one_row_per_call` keeps, as a boolean mask (lets a caller filter and reorder in one go)."""
    key = df["shared_event_id"].fillna(df["event_id"])
    twin = key.duplicated(keep=False).to_numpy()
    keep = np.ones(len(df), dtype=bool)
    if twin.any():
        # only the twins need ordering: a call's copies by (owner's copy first, event id)
        twins = df.loc[twin, ["account_id", "role_account_id", "event_id"]]
        owner_first = (twins["account_id"] != twins["role_account_id"]).fillna(True).astype(int)
        order = pd.DataFrame({"key": key[twin], "rank": owner_first, "id": twins["event_id"],
                              "at": np.flatnonzero(twin)})
        order = order.sort_values(["key", "rank", "id"], kind="stable")
        keep[order["at"].to_numpy()[order["key"].duplicated().to_numpy()]] = False
    return keep

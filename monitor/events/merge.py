"""Join the two copies of one cross-account call.

A cross-account AssumeRole reaches two trails: the caller's account records the full identity,
the role owner's account records only `{"type": "AWSAccount", "principalId", "accountId"}`.
Both share `sharedEventID`. Merging fills the caller's identity into the owner's copy, so
`principal_arn` names the caller whenever either copy does; `one_row_per_call` then keeps one
row per call so nothing downstream counts it twice.
"""

from __future__ import annotations

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
    shared = df["shared_event_id"].notna()
    if not df.loc[shared, "shared_event_id"].duplicated(keep=False).any():
        return df
    out = df.copy()
    dup_mask = shared & out["shared_event_id"].duplicated(keep=False)
    groups = out.loc[dup_mask].groupby("shared_event_id", sort=False)
    full_identity = out["principal_type"].ne("AWSAccount") & out["principal_arn"].notna()
    for col in _CALLER_COLUMNS:
        # the value from a copy that knows the full identity, broadcast to its twin
        known = out[col].where(full_identity.reindex(out.index, fill_value=False))
        filler = known.loc[dup_mask].groupby(out.loc[dup_mask, "shared_event_id"]).transform("first")
        target = out.loc[dup_mask, col]
        if col == "principal_type":
            replace = out.loc[dup_mask, "principal_type"].eq("AWSAccount") & filler.notna()
            out.loc[dup_mask, col] = target.where(~replace, filler)
        else:
            out.loc[dup_mask, col] = target.where(target.notna(), filler)
    del groups
    # principal_key follows the merged ARN
    has_arn = out["principal_arn"].notna()
    out.loc[has_arn, "principal_key"] = out.loc[has_arn, "principal_arn"]
    known_cross = out["role_account_id"].notna() & out["principal_account_id"].notna()
    out.loc[known_cross, "is_cross_account"] = (
        out.loc[known_cross, "role_account_id"] != out.loc[known_cross, "principal_account_id"]
    )
    return out


def one_row_per_call(df: pd.DataFrame) -> pd.DataFrame:
    """Keep one copy per call: rows without sharedEventID stay; twins collapse to the role owner's copy."""
    if df.empty:
        return df
    key = df["shared_event_id"].fillna(df["event_id"])
    twin = key.duplicated(keep=False)
    kept = df
    if twin.any():
        # only the twins need ordering: a call's copies by (owner's copy first, event id)
        twins = df[twin]
        owner_first = (twins["account_id"] != twins["role_account_id"]).fillna(True).astype(int)
        order = pd.DataFrame({"key": key[twin], "rank": owner_first, "id": twins["event_id"]})
        order = order.sort_values(["key", "rank", "id"], kind="stable")
        kept = df[~df.index.isin(order.index[order["key"].duplicated()])]
    if not kept.index.is_monotonic_increasing:
        kept = kept.sort_index(kind="stable")
    return kept.reset_index(drop=True)

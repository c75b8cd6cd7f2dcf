"""`watched_role`: assumptions that must always be seen — break-glass roles and the root user.

Every successful assumption of a role matching one of `roles` (ARN globs, case-insensitive:
`BreakGlass`, `breakglass` and `BREAKGLASS` are one name to a responder) is reported, one finding
per (role, principal, UTC day), at `severity`. AWS services are reported too: a service assuming
a break-glass role is as unusual as a person doing it (allowlist the ones you expect). Refused
calls are `failed_assume_role` findings already; `include_failed` reports them here as well, apart
from the successes (`details.failed`), so turning it on never changes a success's fingerprint.

With `root`, any AssumeRole-family call by the account root user is one critical finding per
(account, UTC day), refused or not: AWS refuses roles to the root user, so the attempt itself is
the news — someone holds the root credentials and uses them from code.

With `assume_root`, every successful sts:AssumeRoot (centralized root access: a principal of the
management or delegated-admin account takes a short root session in a member account) is one
finding per (target account, principal, UTC day) at `severity`; refused ones with
`include_failed`, as for roles. Its row's role is the target's root, which no role glob is meant
to match, so it is reported here once, not as a watched role too.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from monitor.config import WatchedRoleConfig
from monitor.detect.common import (
    Summary,
    base_details,
    event_finding,
    group_key,
    lists_by_group,
    principal_of,
    records_by,
    role_name,
    role_of,
    summarise,
    timed,
    who,
)
from monitor.detect.context import DetectionContext
from monitor.findings import Finding, fingerprint

NAME = "watched_role"
ROOT_SEVERITY = "critical"


def detect(events: pd.DataFrame, ctx: DetectionContext, cfg: WatchedRoleConfig) -> list[Finding]:
    df = timed(events)
    if df.empty:
        return []
    root = df["principal_type"].eq("Root").fillna(False).astype(bool)
    findings: list[Finding] = []
    if cfg.root and root.any():
        findings += _root_findings(df[root])
        df = df[~root]  # a root call is the root finding's: one alert, not two
    assume_root = df["event_name"].eq("AssumeRoot").fillna(False).astype(bool)
    if cfg.assume_root and assume_root.any():
        findings += _assume_root_findings(df[assume_root], cfg)
        df = df[~assume_root]
    if cfg.roles and not df.empty:
        findings += _role_findings(df, cfg)
    return findings


def watched_by(roles: pd.Series, patterns: list[str]) -> pd.Series:
    """Per row: the first glob its role matches, case-insensitively; None when none does (or no role)."""
    lowered = [p.lower() for p in patterns]
    which = {}
    for role in roles.unique():  # a few hundred distinct roles, never the whole table
        low = role.lower()
        which[role] = next((p for p, q in zip(patterns, lowered, strict=True) if fnmatch.fnmatchcase(low, q)),
                           None) if role else None
    return roles.map(which)


def _day(df: pd.DataFrame) -> pd.Series:
    return df["event_time"].dt.strftime("%Y-%m-%d")


def _role_findings(df: pd.DataFrame, cfg: WatchedRoleConfig) -> list[Finding]:
    pattern = watched_by(role_of(df), cfg.roles)
    hit = pattern.notna()
    if not cfg.include_failed:
        hit &= df["success"]
    df, pattern = df[hit], pattern[hit]  # one copy, of the (few) watched rows only
    if df.empty:
        return []
    return [
        event_finding(
            NAME,
            cfg.severity,
            _role_title(row, k["day"], failed),
            _fingerprint(k["subject"], k["principal"], k["day"], failed=failed),
            row,
            _details(row, failed, watched_pattern=k["pattern"], day=k["day"]),
        )
        for row, k, failed in _daily(df, role_of(df), pattern=pattern)
    ]


def _assume_root_findings(df: pd.DataFrame, cfg: WatchedRoleConfig) -> list[Finding]:
    if not cfg.include_failed:
        df = df[df["success"]]
    if df.empty:
        return []
    findings = []
    for row, k, failed in _daily(df, df["role_account_id"].fillna("").astype(str)):
        n = int(row.count)
        whose = f"account {k['subject']}" if k["subject"] else "an unknown account"
        findings.append(
            event_finding(
                NAME,
                cfg.severity,
                f"{who(row)} {'was refused' if failed else 'took'} a root session in {whose} (AssumeRoot)"
                f"{f' ({n} times)' if n > 1 else ''} on {k['day']}",
                _fingerprint("assume_root", k["subject"], k["principal"], k["day"], failed=failed),
                row,
                # the task policy (requestParameters.taskPolicyArn) is not in the event table: see event_ids
                _details(row, failed, assume_root=True, target_account=k["subject"] or None, day=k["day"]),
            )
        )
    return findings


def _daily(df: pd.DataFrame, subject: pd.Series, **carried: pd.Series) -> Iterator[tuple[Summary, dict[str, Any], bool]]:
    """(summary, its keys, refused) per (subject, principal, UTC day), with successes and refusals in
    groups of their own; the `carried` columns' first values come along in the keys."""
    keys = pd.DataFrame(
        {"subject": subject, "principal": principal_of(df), "day": _day(df),
         "failed": np.where(df["success"].to_numpy(), "", "failed")},
        index=df.index,
    )
    group = group_key(keys)
    firsts = records_by(keys.assign(**carried), group, [*keys.columns, *carried])
    for row in summarise(df, group):
        k = firsts[row.group]
        yield row, k, bool(k["failed"])


def _details(row: Summary, failed: bool, **facts: Any) -> dict[str, Any]:
    details = base_details(row)
    details.update(facts)
    if failed:
        details.update(failed=True, error_codes=row.error_codes)
    return details


def _fingerprint(*parts: Any, failed: bool) -> str:
    # a success's fingerprint is its group alone, whatever include_failed says
    return fingerprint(NAME, *parts, *(["failed"] if failed else []))


def _role_title(row: Summary, day: str, failed: bool) -> str:
    n = int(row.count)
    times = f" ({n} times)" if n > 1 else ""
    if failed:
        return f"{who(row)} was refused watched role {role_name(row.role_arn)}{times} on {day}"
    return f"{who(row)} assumed watched role {role_name(row.role_arn)}{times} on {day}"


def _root_findings(df: pd.DataFrame) -> list[Finding]:
    account = df["principal_account_id"].fillna(df["account_id"]).fillna("").astype(str)
    keys = pd.DataFrame({"account": account, "day": _day(df)}, index=df.index)
    group = group_key(keys)
    codes, groups = pd.factorize(group.to_numpy(), sort=True)  # as summarise orders its groups
    roles = lists_by_group(codes, len(groups), df["role_arn"], 20)
    refused = (~df["success"]).groupby(codes).sum().tolist()
    firsts = records_by(keys, group, ["account", "day"])
    findings = []
    for row, role_list, n_refused in zip(summarise(df, group), roles, refused, strict=True):
        k = firsts[row.group]
        details = base_details(row)
        details.update(day=k["day"], event_names=row.event_names, roles=role_list, refused=int(n_refused),
                       error_codes=row.error_codes)
        n = int(row.count)
        findings.append(
            event_finding(
                NAME,
                ROOT_SEVERITY,
                f"Root user of account {k['account'] or 'unknown'} called {'/'.join(row.event_names)}"
                f"{f' {n} times' if n > 1 else ''} on {k['day']}{f' ({n_refused} refused)' if n_refused else ''}",
                fingerprint(NAME, "root", k["account"], k["day"]),
                row,
                details,
                account_id=k["account"] or row.account_id,
                role_arn=role_list[0] if len(role_list) == 1 else None,
            )
        )
    return findings

"""The access-review tables: pure functions from (events, posture, findings, period, previous snapshot).

Every renderer (HTML, Markdown, CSV, XLSX, JSON) draws from these frames and nothing else, so
the formats cannot disagree about a number. Nothing here does I/O or reads the clock: `now`
is passed in. The two copies of a cross-account call count once (`one_row_per_call`).
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import pandas as pd

from monitor.events.merge import merge_shared_copies, one_row_per_call
from monitor.events.normalise import is_root_arn
from monitor.events.schema import coerce
from monitor.findings import SEVERITY_RANK, Finding, iso
from monitor.posture.model import Posture, RoleInfo
from monitor.posture.usage import analyzer_last_accessed, analyzer_unused_roles, last_activity, service_usage
from monitor.redact import redact_text
from monitor.report.trust import TrustGrant, TrustSummary, admits_other_account, summarise_trust

SNAPSHOT_NAMESPACE = "report_snapshot"
SNAPSHOT_VERSION = 1
TS = "datetime64[ns, UTC]"
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# section name -> (title, column -> dtype). The order here is the order of every rendered report.
SECTIONS: dict[str, tuple[str, dict[str, str]]] = {
    "summary": ("Summary", {"metric": "string", "value": "int64"}),
    "changes": ("Changes since the previous report",
                {"change": "string", "account_id": "string", "role_arn": "string", "detail": "string"}),
    "top_principals": ("Top principals", {
        "principal": "string", "principal_account_id": "string", "roles": "int64",
        "assumptions": "int64", "failures": "int64"}),
    "findings_by_detector": ("Open findings by detector and severity",
                             {"detector": "string", "severity": "string", "findings": "int64"}),
    "roles": ("Roles", {
        "account_id": "string", "role_name": "string", "role_arn": "string",
        "recommendation": "string", "recommendation_detail": "string", "cross_account": "bool",
        "trusted_principals": "int64", "may_assume": "string", "external_id_required": "boolean",
        "mfa_required": "boolean", "trust_limits": "string", "principals_used": "int64",
        "who_assumed": "string", "assumptions": "int64", "failures": "int64",
        "last_used_cloudtrail": TS, "last_used_iam": TS, "last_used": TS, "days_since_used": "Int64",
        "unused": "bool", "services_granted": "Int64", "services_used": "Int64", "services_unused": "string",
        "analyzer_findings": "int64", "open_findings": "int64", "top_severity": "string",
        "reviewer": "string", "decision": "string", "review_date": "string"}),
    "trust": ("Who may assume each role (trust policy)", {
        "account_id": "string", "role_arn": "string", "principal": "string", "principal_kind": "string",
        "principal_account_id": "string", "cross_account": "bool", "external_id_required": "bool",
        "mfa_required": "bool", "source_ip_limit": "string", "date_limit": "string",
        "other_conditions": "string", "statement": "string", "assumptions": "int64"}),
    "principals": ("Who actually assumed each role", {
        "account_id": "string", "role_arn": "string", "principal": "string", "principal_account_id": "string",
        "assumptions": "int64", "failures": "int64", "first_seen": TS, "last_seen": TS,
        "source_networks": "int64", "networks": "string", "off_hours_share": "float64"}),
    "timeline": ("Account timeline by day",
                 {"account_id": "string", "date": "string", "assumptions": "int64", "failures": "int64"}),
    "daily": ("Role activity by day", {
        "account_id": "string", "role_arn": "string", "date": "string", "assumptions": "int64",
        "failures": "int64"}),
    "services": ("Services granted vs used", {
        "account_id": "string", "role_arn": "string", "service": "string", "last_accessed": TS,
        "used": "bool"}),
    "analyzer": ("Access Analyzer findings", {
        "account_id": "string", "resource_arn": "string", "finding_type": "string", "status": "string",
        "updated_at": TS, "finding_id": "string", "detail": "string"}),
    "findings": ("Open findings of the period", {
        "severity": "string", "detector": "string", "account_id": "string", "role_arn": "string",
        "principal_arn": "string", "source_ip": "string", "title": "string", "count": "int64",
        "first_seen": TS, "last_seen": TS, "fingerprint": "string"}),
}


@dataclass(frozen=True)
class Period:
    since: datetime
    until: datetime


@dataclass
class ReviewOptions:
    unused_days: int = 90
    unused_services_ratio: float = 0.5
    timezone: str = "UTC"
    business_hours: str = "08:00-18:00"
    business_days: list[str] = field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"])
    holidays: list[str] = field(default_factory=list)
    ipv4_prefix: int = 24
    ipv6_prefix: int = 64
    privileged_policy_patterns: list[str] = field(
        default_factory=lambda: ["*AdministratorAccess*", "*PowerUserAccess*", "*IAMFullAccess*"])
    accounts: list[str] | None = None  # None: every account in the data
    top_n: int = 10

    @classmethod
    def from_config(cls, config: Any, accounts: Iterable[str] | None = None) -> ReviewOptions:
        d = config.detectors
        return cls(
            unused_days=d.unused_role.unused_days,
            unused_services_ratio=d.unused_role.unused_services_ratio,
            timezone=d.off_hours.timezone,
            business_hours=d.off_hours.business_hours,
            business_days=list(d.off_hours.business_days),
            holidays=list(d.off_hours.holidays),
            ipv4_prefix=d.unusual_source_ip.ipv4_prefix,
            ipv6_prefix=d.unusual_source_ip.ipv6_prefix,
            privileged_policy_patterns=list(d.trust_policy.privileged_policy_patterns),
            accounts=sorted(set(accounts)) if accounts else None,
        )


@dataclass
class ReviewTables:
    meta: dict[str, Any]
    sections: dict[str, pd.DataFrame]
    snapshot: dict[str, Any]

    def summary_value(self, metric: str) -> int:
        s = self.sections["summary"]
        return int(s.loc[s["metric"] == metric, "value"].iloc[0])


# ----------------------------------------------------------------------------- helpers


def _frame(section: str, rows: list[dict[str, Any]] | dict[str, list[Any]]) -> pd.DataFrame:
    """A section's frame with its documented columns and dtypes, also when empty."""
    schema = SECTIONS[section][1]
    data = rows if isinstance(rows, dict) else {c: [r.get(c) for r in rows] for c in schema}
    cols = {}
    for c, dtype in schema.items():
        values = data.get(c, [])
        if dtype == TS:
            cols[c] = pd.to_datetime(pd.Series(values, dtype="object"), utc=True).astype(TS)
        elif dtype == "bool":
            cols[c] = pd.Series(values, dtype="object").fillna(False).astype("bool")
        else:
            cols[c] = pd.Series(values, dtype="object" if dtype != "float64" else "float64").astype(dtype)
    return pd.DataFrame(cols)


def _utc(value: Any) -> pd.Timestamp | None:
    if value is None:
        return None
    t = pd.Timestamp(value)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _account_of_arn(arn: str | None) -> str | None:
    parts = (arn or "").split(":")
    return parts[4] if len(parts) > 5 and parts[4].isdigit() else None


@lru_cache(maxsize=65536)
def _network(ip: str, v4: int, v6: int) -> str:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    prefix = v4 if addr.version == 4 else v6
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def _off_hours(times: pd.Series, opts: ReviewOptions) -> pd.Series:
    start_s, _, end_s = opts.business_hours.partition("-")

    def minutes(hhmm: str) -> int:
        h, _, m = hhmm.strip().partition(":")
        return int(h) * 60 + int(m or 0)

    start, end = minutes(start_s), minutes(end_s)
    local = times.dt.tz_convert(opts.timezone)
    mins = local.dt.hour * 60 + local.dt.minute
    days = {_DAYS.index(d.lower()[:3]) for d in opts.business_days if d.lower()[:3] in _DAYS}
    business = local.dt.day_of_week.isin(days) & (mins >= start) & (mins < end)
    if opts.holidays:
        business &= ~local.dt.strftime("%Y-%m-%d").isin(set(opts.holidays))
    return ~business


def _canonical_role_arns(arns: list[str], posture: Posture | None) -> dict[str, str]:
    """ARNs from error messages and session ARNs lack the role's path. Role names are unique per
    account, so name the inventory's role, else the trail's own spelling that carries the path."""
    out: dict[str, str] = {}
    by_name: dict[tuple[str, str], list[str]] = defaultdict(list)
    for arn in arns:
        role = posture.role_by_arn(arn) if posture is not None and posture.roles else None
        if role is not None:
            if role.arn != arn:
                out[arn] = role.arn
            continue
        account, name = _account_of_arn(arn), arn.rsplit("/", 1)[-1]
        if account:
            by_name[(account, name)].append(arn)
    for spellings in by_name.values():
        longest = max(spellings, key=lambda a: (len(a), a))
        out.update({a: longest for a in spellings if a != longest})
    return out


def prepare_events(events: pd.DataFrame, period: Period, accounts: list[str] | None,
                   posture: Posture | None = None) -> pd.DataFrame:
    """The period's calls, one row each, with the review's grouping columns added."""
    df = coerce(events)
    since, until = pd.Timestamp(period.since), pd.Timestamp(period.until)
    df = df[(df["event_time"] >= since) & (df["event_time"] < until)].reset_index(drop=True)
    df = one_row_per_call(merge_shared_copies(df))
    if len(df):
        canonical = _canonical_role_arns([str(a) for a in df["role_arn"].dropna().unique()], posture)
        if canonical:
            df["role_arn"] = df["role_arn"].replace(canonical)
    role_account = df["role_account_id"].fillna(df["role_arn"].map(_account_of_arn, na_action="ignore"))
    df["review_account"] = role_account.fillna(df["account_id"])
    if accounts:
        df = df[df["review_account"].isin(accounts)].reset_index(drop=True)
    # a session is reviewed as the role behind it, not as one principal per session name
    principal = df["principal_role_arn"].fillna(df["principal_key"]).fillna(df["principal_arn"])
    fallback = ("account:" + df["principal_account_id"]).fillna("unknown")
    df["principal"] = principal.fillna(fallback)
    df["date"] = df["event_time"].dt.strftime("%Y-%m-%d")
    return df


def _findings_in_scope(findings: Iterable[Any], period: Period, accounts: list[str] | None) -> list[Finding]:
    since, until = iso(period.since) or "", iso(period.until) or ""
    out = []
    for item in findings:
        finding, status = (item.finding, item.status) if hasattr(item, "finding") else (item, "open")
        if status != "open":
            continue
        if accounts and finding.account_id not in accounts:
            continue
        if finding.last_seen and finding.last_seen < since:
            continue
        if finding.first_seen and finding.first_seen >= until:
            continue
        out.append(finding)
    out.sort(key=lambda f: (-SEVERITY_RANK[f.severity], f.detector, f.account_id or "", f.role_arn or "",
                            f.fingerprint))
    return out


# ----------------------------------------------------------------------------- sections


def principals_table(ev: pd.DataFrame, opts: ReviewOptions) -> pd.DataFrame:
    ev = ev[ev["role_arn"].notna()]
    if ev.empty:
        return _frame("principals", [])
    net = ev["source_ip"].map(lambda ip: _network(ip, opts.ipv4_prefix, opts.ipv6_prefix), na_action="ignore")
    work = pd.DataFrame({
        "account_id": ev["review_account"], "role_arn": ev["role_arn"], "principal": ev["principal"],
        "principal_account_id": ev["principal_account_id"], "ok": ev["success"].astype(int),
        "t": ev["event_time"], "net": net, "off": (_off_hours(ev["event_time"], opts) & ev["success"]).astype(int),
    })
    keys = ["account_id", "role_arn", "principal"]
    g = work.groupby(keys, sort=True, dropna=False)
    agg = g.agg(principal_account_id=("principal_account_id", "first"), assumptions=("ok", "sum"),
                calls=("ok", "size"), first_seen=("t", "min"), last_seen=("t", "max"),
                source_networks=("net", "nunique"), off=("off", "sum")).reset_index()
    nets = work.dropna(subset=["net"]).groupby(keys)["net"].agg(lambda s: ", ".join(sorted(set(s))))
    agg = agg.merge(nets.rename("networks").reset_index(), on=keys, how="left")
    agg["failures"] = agg["calls"] - agg["assumptions"]
    share = (agg["off"] / agg["assumptions"].where(agg["assumptions"] > 0)).round(3)
    agg["off_hours_share"] = share.astype("float64")
    agg["networks"] = agg["networks"].fillna("")
    return _frame("principals", {c: agg[c].tolist() for c in SECTIONS["principals"][1]})


def daily_table(ev: pd.DataFrame) -> pd.DataFrame:
    ev = ev[ev["role_arn"].notna()]
    if ev.empty:
        return _frame("daily", [])
    work = pd.DataFrame({"account_id": ev["review_account"], "role_arn": ev["role_arn"], "date": ev["date"],
                         "ok": ev["success"].astype(int)})
    agg = work.groupby(["account_id", "role_arn", "date"], sort=True).agg(
        assumptions=("ok", "sum"), calls=("ok", "size")).reset_index()
    agg["failures"] = agg["calls"] - agg["assumptions"]
    return _frame("daily", {c: agg[c].tolist() for c in SECTIONS["daily"][1]})


def timeline_table(ev: pd.DataFrame, period: Period, accounts: list[str]) -> pd.DataFrame:
    """Every account, every day of the period, zero-filled, so a quiet day shows as quiet."""
    last_day = (pd.Timestamp(period.until) - pd.Timedelta(microseconds=1)).tz_convert("UTC")
    days = [d.strftime("%Y-%m-%d") for d in pd.date_range(
        pd.Timestamp(period.since).tz_convert("UTC").normalize(), last_day.normalize(), freq="D")]
    if not accounts or not days:
        return _frame("timeline", [])
    grid = pd.MultiIndex.from_product([sorted(accounts), days], names=["account_id", "date"])
    work = pd.DataFrame({"account_id": ev["review_account"], "date": ev["date"], "ok": ev["success"].astype(int)})
    agg = work.groupby(["account_id", "date"]).agg(assumptions=("ok", "sum"), calls=("ok", "size"))
    agg = agg.reindex(grid, fill_value=0).reset_index()
    agg["failures"] = agg["calls"] - agg["assumptions"]
    return _frame("timeline", {c: agg[c].tolist() for c in SECTIONS["timeline"][1]})


def _grant_matches(grant: TrustGrant, usage: dict[str, Any]) -> int:
    """Successful assumptions in the period by callers this grant admits."""
    if grant.kind == "any":
        return int(usage["total"])
    if grant.kind == "aws_account":
        return int(usage["by_account"].get(grant.principal_account_id, 0))
    if grant.kind == "service":
        return int(usage["by_principal"].get(grant.principal, 0))
    if grant.kind == "federated":
        return int(sum(n for p, n in usage["by_provider"].items() if grant.principal in p))
    return int(usage["by_principal"].get(grant.principal, 0))


def _usage_by_role(ev: pd.DataFrame) -> dict[str, dict[str, Any]]:
    ok = ev[ev["success"] & ev["role_arn"].notna()]
    usage: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"total": 0, "by_account": {}, "by_principal": {}, "by_provider": {}})
    for role, n in ok.groupby("role_arn").size().items():
        usage[role]["total"] = int(n)
    for (role, acct), n in ok.groupby(["role_arn", "principal_account_id"]).size().items():
        usage[role]["by_account"][acct] = int(n)
    # a grant names the caller by its ARN, by the role behind a session, or by its service
    for col in ("principal", "principal_arn", "principal_service"):
        for (role, p), n in ok.groupby(["role_arn", col]).size().items():
            usage[role]["by_principal"][p] = max(usage[role]["by_principal"].get(p, 0), int(n))
    for (role, p), n in ok.groupby(["role_arn", "identity_provider"]).size().items():
        usage[role]["by_provider"][p] = int(n)
    return usage


def _describe_grant(g: TrustGrant) -> str:
    conds = [c for c, on in (("ExternalId", g.external_id_required), ("MFA", g.mfa_required)) if on]
    if g.source_ip:
        conds.append(f"IP {g.source_ip}")
    if g.date_window:
        conds.append(g.date_window)
    if g.other_conditions:
        conds.append(g.other_conditions)
    return g.principal + (f" [{'; '.join(conds)}]" if conds else "")


def _expired(date_window: str, now: datetime) -> str | None:
    for part in date_window.split(";"):
        part = part.strip()
        if part.startswith("until "):
            for value in part.removeprefix("until ").split(", "):
                try:
                    end = pd.Timestamp(value)
                except ValueError:
                    continue
                end = end.tz_localize("UTC") if end.tzinfo is None else end
                if end <= pd.Timestamp(now):
                    return value
    return None


@dataclass
class _RoleFacts:
    info: RoleInfo | None
    arn: str
    account_id: str
    trust: TrustSummary
    grants_used: list[int]


def _recommend(facts: _RoleFacts, *, unused: bool, last_used: Any, services_unused: list[str],
               services_granted: int | None, opts: ReviewOptions, org_accounts: set[str],
               principals_used: list[str], now: datetime) -> tuple[str, str]:
    if unused:
        when = "never" if last_used is None or pd.isna(last_used) else iso(last_used)
        return "remove", f"no successful assumption in {opts.unused_days} days (last used: {when})"
    actions: list[str] = []
    external_cross = [g for g in facts.trust.grants if g.principal_account_id
                      and g.principal_account_id != facts.account_id and g.principal_account_id not in org_accounts]
    for g in facts.trust.grants:
        if g.kind == "any" and not (g.external_id_required or g.source_ip or g.other_conditions):
            actions.append('restrict Principal "*" to named principals')
    for g in external_cross:
        if not g.external_id_required and g.kind in ("aws_account", "aws_arn"):
            actions.append(f"add an sts:ExternalId condition for {g.principal}")
    for g, used in zip(facts.trust.grants, facts.grants_used, strict=True):
        if g.kind == "aws_account":
            callers = [p for p in principals_used if _account_of_arn(p) == g.principal_account_id]
            named = f" ({', '.join(callers[:5])})" if callers else ""
            actions.append(f"replace account-wide trust {g.principal} with the principals that use it{named}")
        elif g.kind == "aws_arn" and used == 0:
            actions.append(f"remove trusted principal {g.principal} (no assumption in the period)")
        ended = _expired(g.date_window, now)
        if ended:
            actions.append(f"remove expired trust to {g.principal} (ended {ended})")
    info = facts.info
    if info is not None:
        privileged = any(fnmatch.fnmatch(p, pat) for p in info.attached_policies
                         for pat in opts.privileged_policy_patterns)
        human = [g for g in facts.trust.grants if g.kind in ("aws_account", "aws_arn", "any")]
        if privileged and any(not g.mfa_required for g in human):
            actions.append("add an aws:MultiFactorAuthPresent condition (privileged role)")
    if services_granted and services_unused and len(services_unused) / services_granted >= opts.unused_services_ratio:
        actions.append(f"remove access to unused services: {', '.join(services_unused)}")
    actions = list(dict.fromkeys(actions))
    return ("tighten", "; ".join(actions)) if actions else ("keep", "")


_SEP = "}\n"  # no secret pattern in monitor.redact can match across it, and no secret contains it


def redacted_values(values: list[str]) -> dict[str, str]:
    """value -> masked value, for the values that carry a secret. One `redact_text` pass over the
    values joined (not one per value): a 10,000-role review has ~100,000 distinct strings."""
    joinable = [v for v in values if _SEP not in v]
    out = {v: r for v in values if _SEP in v and (r := redact_text(v)) != v}
    if joinable:
        joined = _SEP.join(joinable)
        masked = redact_text(joined)
        if masked != joined:
            parts = masked.split(_SEP)
            if len(parts) != len(joinable):  # cannot happen with today's patterns; stay correct anyway
                parts = [redact_text(v) for v in joinable]
            out.update({v: p for v, p in zip(joinable, parts, strict=True) if v != p})
    return out


def redact_sections(sections: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Mask secrets in every text cell. One pass over the distinct strings of all sections (a role
    ARN appears in five of them), then only the cells that changed are replaced."""
    text_columns = [(df, c) for df in sections.values() for c in df.columns if df[c].dtype == "string" and len(df)]
    distinct: set[str] = set()
    for df, c in text_columns:
        distinct.update(str(u) for u in df[c].dropna().unique())
    mapping = redacted_values(sorted(distinct))
    if mapping:
        for df, c in text_columns:
            if df[c].isin(mapping.keys()).any():
                df[c] = df[c].map(lambda v: mapping.get(v, v) if isinstance(v, str) else v).astype("string")
    return sections


# ----------------------------------------------------------------------------- the whole review


def build_review(events: pd.DataFrame, posture: Posture, findings: Iterable[Any], period: Period,
                 previous: dict[str, Any] | None, opts: ReviewOptions, *, now: datetime,
                 source: str = "state") -> ReviewTables:
    accounts = opts.accounts
    ev = prepare_events(events, period, accounts, posture)
    in_scope = (lambda a: a in accounts) if accounts else (lambda a: True)
    org_accounts = set(posture.organization_accounts)
    notes: list[str] = []
    if not posture.roles:
        notes.append("no IAM inventory: trust policies, RoleLastUsed and services are unknown; "
                     "roles are those seen in CloudTrail")

    # every role: the inventory's, plus any the trail names that the inventory lacks
    roles: dict[str, RoleInfo | None] = {a: r for a, r in posture.roles.items() if in_scope(r.account_id)}
    for arn in ev["role_arn"].dropna().unique():
        if not is_root_arn(arn):  # an AssumeRoot's target root user: its sessions are activity, not a role to review
            roles.setdefault(str(arn), None)
    facts: dict[str, _RoleFacts] = {}
    usage = _usage_by_role(ev)
    for arn, info in roles.items():
        account = info.account_id if info else (_account_of_arn(arn) or "")
        trust = summarise_trust(info.trust_policy) if info else TrustSummary()
        used = [_grant_matches(g, usage[arn]) for g in trust.grants] if arn in usage else [0] * len(trust.grants)
        facts[arn] = _RoleFacts(info, arn, account, trust, used)

    principals = principals_table(ev, opts)
    daily = daily_table(ev)
    account_ids = sorted({f.account_id for f in facts.values() if f.account_id}
                         | set(ev["review_account"].dropna().unique()))
    timeline = timeline_table(ev, period, account_ids)
    scoped_findings = _findings_in_scope(findings, period, accounts)

    # per-role aggregates
    calls = ev[ev["role_arn"].notna()]
    ok_counts = calls[calls["success"]].groupby("role_arn").size().to_dict()
    fail_counts = calls[~calls["success"]].groupby("role_arn").size().to_dict()
    last_ct = calls[calls["success"]].groupby("role_arn")["event_time"].max().to_dict()
    cross_in_trail = set(calls.loc[calls["is_cross_account"].fillna(False).astype(bool), "role_arn"])
    who: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for r in principals.itertuples(index=False):
        if r.assumptions > 0:
            who[r.role_arn].append((r.principal, int(r.assumptions)))
    open_by_role: dict[str, list[Finding]] = defaultdict(list)
    for f in scoped_findings:
        if f.role_arn:
            open_by_role[f.role_arn].append(f)
    analyzer_rows = []
    active_analyzer: dict[str, int] = defaultdict(int)
    for af in posture.analyzer_findings:
        if not in_scope(af.account_id):
            continue
        detail = {k: v for k, v in (af.details or {}).items() if k.lower() != "condition"}
        cond = (af.details or {}).get("condition")
        if isinstance(cond, dict):
            detail["condition_keys"] = sorted(cond)
        analyzer_rows.append({"account_id": af.account_id, "resource_arn": af.resource_arn,
                              "finding_type": af.finding_type, "status": af.status, "updated_at": af.updated_at,
                              "finding_id": af.id, "detail": _compact(detail)})
        if af.status == "ACTIVE" and af.resource_arn:
            active_analyzer[af.resource_arn] += 1
    analyzer_rows.sort(key=lambda r: (r["account_id"], r["resource_arn"] or "", r["finding_type"], r["finding_id"]))

    services_rows: list[dict[str, Any]] = []
    role_rows = []
    unused_by_analyzer = analyzer_unused_roles(posture)
    horizon = pd.Timestamp(now) - pd.Timedelta(days=opts.unused_days)
    for arn, fa in facts.items():
        info = fa.info
        lt = last_ct.get(arn)
        li = _utc(last_activity(info)) if info else None
        analyzer_unused = unused_by_analyzer.get(arn)
        la = _utc(analyzer_last_accessed(analyzer_unused)) if analyzer_unused else None
        candidates = [t for t in (lt, li, la) if t is not None]
        last = max(candidates) if candidates else None
        young = bool(info and info.create_date and pd.Timestamp(info.create_date) > horizon)
        service_linked = bool(info and info.is_service_linked)
        unused = (not service_linked and not young and (last is None or last < horizon)
                  and ok_counts.get(arn, 0) == 0 and info is not None)
        granted = used_n = None
        unused_services: list[str] = []
        usage_of_services = service_usage(info, now, opts.unused_days) if info is not None else None
        if info is not None and usage_of_services is not None:
            granted, used_n = len(usage_of_services.granted), len(usage_of_services.used)
            unused_services = list(usage_of_services.unused)
            services_rows.extend({"account_id": fa.account_id, "role_arn": arn, "service": svc,
                                  "last_accessed": _utc((info.services_last_accessed or {}).get(svc)),
                                  "used": svc in usage_of_services.used} for svc in usage_of_services.granted)
        role_principals = [p for p, _ in sorted(who.get(arn, []), key=lambda x: (-x[1], x[0]))]
        if info is None and fa.account_id in posture.accounts:
            verb, detail = "keep", "not in the IAM inventory: a missing role or an inventory gap; check the attempts"
        else:
            verb, detail = _recommend(fa, unused=unused, last_used=last, services_unused=unused_services,
                                      services_granted=granted, opts=opts, org_accounts=org_accounts,
                                      principals_used=role_principals, now=now)
        cross_grants = [g for g in fa.trust.grants if g.kind == "any" or (
            g.principal_account_id and g.principal_account_id != fa.account_id)]
        human = [g for g in fa.trust.grants if g.kind in ("aws_account", "aws_arn", "any")]
        limits = sorted({x for g in fa.trust.grants for x in (
            f"IP {g.source_ip}" if g.source_ip else "", g.date_window) if x})
        if fa.trust.deny_statements:
            limits.append(f"{fa.trust.deny_statements} Deny statement(s)")
        limits.extend(fa.trust.notes)
        opens = open_by_role.get(arn, [])
        top = max(opens, key=lambda f: SEVERITY_RANK[f.severity]).severity if opens else ""
        role_rows.append({
            "account_id": fa.account_id, "role_name": info.name if info else arn.rsplit("/", 1)[-1],
            "role_arn": arn,
            "cross_account": admits_other_account(fa.trust, fa.account_id) or arn in cross_in_trail,
            "trusted_principals": len(fa.trust.grants),
            "may_assume": "; ".join(_describe_grant(g) for g in fa.trust.grants),
            "external_id_required": all(g.external_id_required for g in cross_grants) if cross_grants else None,
            "mfa_required": all(g.mfa_required for g in human) if human else None,
            "trust_limits": "; ".join(limits),
            "principals_used": len(who.get(arn, [])),
            "who_assumed": ", ".join(f"{p} ({n})" for p, n in sorted(who.get(arn, []), key=lambda x: (-x[1], x[0]))[:5]),
            "assumptions": ok_counts.get(arn, 0), "failures": fail_counts.get(arn, 0),
            "last_used_cloudtrail": lt, "last_used_iam": li, "last_used": last,
            "days_since_used": None if last is None else int((pd.Timestamp(now) - last) // pd.Timedelta(days=1)),
            "unused": unused, "services_granted": granted, "services_used": used_n,
            "services_unused": ", ".join(unused_services),
            "analyzer_findings": active_analyzer.get(arn, 0), "open_findings": len(opens), "top_severity": top,
            "recommendation": verb, "recommendation_detail": detail,
            "reviewer": "", "decision": "", "review_date": "",
        })
    # cross-account roles first: they are what an access review is for
    role_rows.sort(key=lambda r: (not r["cross_account"], r["account_id"], r["role_arn"]))
    trust_rows = [{
        "account_id": fa.account_id, "role_arn": arn, "principal": g.principal, "principal_kind": g.kind,
        "principal_account_id": g.principal_account_id,
        "cross_account": g.kind == "any" or bool(g.principal_account_id and g.principal_account_id != fa.account_id),
        "external_id_required": g.external_id_required, "mfa_required": g.mfa_required,
        "source_ip_limit": g.source_ip, "date_limit": g.date_window, "other_conditions": g.other_conditions,
        "statement": g.statement, "assumptions": n,
    } for arn, fa in sorted(facts.items(), key=lambda kv: (kv[1].account_id, kv[0]))
        for g, n in zip(fa.trust.grants, fa.grants_used, strict=True)]

    roles_df = _frame("roles", role_rows)
    findings_df = _frame("findings", [{**f.to_dict()} for f in scoped_findings])
    by_det = (findings_df.groupby(["detector", "severity"]).size().reset_index(name="findings")
              if len(findings_df) else pd.DataFrame(columns=["detector", "severity", "findings"]))
    if len(by_det):
        by_det["rank"] = by_det["severity"].map(SEVERITY_RANK)
        by_det = by_det.sort_values(["detector", "rank"], ascending=[True, False])
    by_det_df = _frame("findings_by_detector", {c: by_det[c].tolist() for c in ("detector", "severity", "findings")})

    snapshot = make_snapshot(roles_df, trust_rows, period, now, accounts)
    changes_df = changes_table(previous, snapshot)
    top_df = top_principals_table(principals, opts.top_n)
    summary_df = summary_table(roles_df, ev, scoped_findings, principals, changes_df, account_ids)
    sections = {
        "summary": summary_df, "changes": changes_df, "top_principals": top_df,
        "findings_by_detector": by_det_df, "roles": roles_df, "trust": _frame("trust", trust_rows),
        "principals": principals, "timeline": timeline, "daily": daily,
        "services": _frame("services", services_rows), "analyzer": _frame("analyzer", analyzer_rows),
        "findings": findings_df,
    }
    sections = redact_sections(sections)
    meta = {
        "title": "rolewatch access review",
        "generated_at": iso(now), "since": iso(period.since), "until": iso(period.until),
        "accounts": account_ids, "account_filter": accounts or [], "source": source,
        "previous_report": (previous or {}).get("generated_at"), "notes": notes,
    }
    return ReviewTables(meta=meta, sections=sections, snapshot=snapshot)


def _compact(detail: dict[str, Any]) -> str:
    import json

    from monitor.redact import redact

    return json.dumps(redact(detail), sort_keys=True, default=str, separators=(",", ":"))[:300] if detail else ""


def top_principals_table(principals: pd.DataFrame, top_n: int) -> pd.DataFrame:
    if principals.empty:
        return _frame("top_principals", [])
    g = principals.groupby("principal", sort=True).agg(
        principal_account_id=("principal_account_id", "first"), roles=("role_arn", "nunique"),
        assumptions=("assumptions", "sum"), failures=("failures", "sum")).reset_index()
    g = g.sort_values(["assumptions", "failures", "principal"], ascending=[False, False, True]).head(top_n)
    return _frame("top_principals", {c: g[c].tolist() for c in SECTIONS["top_principals"][1]})


def make_snapshot(roles: pd.DataFrame, trust_rows: list[dict[str, Any]], period: Period, now: datetime,
                  accounts: list[str] | None) -> dict[str, Any]:
    trusted: dict[str, list[str]] = defaultdict(list)
    for r in trust_rows:
        trusted[r["role_arn"]].append(r["principal"])
    return {
        "version": SNAPSHOT_VERSION, "generated_at": iso(now), "since": iso(period.since),
        "until": iso(period.until), "accounts": accounts or [],
        "roles": {arn: {"account_id": acct, "trusted": sorted(set(trusted.get(arn, []))), "unused": bool(unused)}
                  for arn, acct, unused in zip(roles["role_arn"], roles["account_id"], roles["unused"], strict=True)},
    }


def snapshot_key(accounts: list[str] | None) -> str:
    """One previous report per scope: a report of two accounts compares with the last one of those two."""
    return "all" if not accounts else "accounts:" + ",".join(sorted(accounts))


def changes_table(previous: dict[str, Any] | None, current: dict[str, Any]) -> pd.DataFrame:
    if not previous or not isinstance(previous.get("roles"), dict):
        return _frame("changes", [])
    before, now_roles = previous["roles"], current["roles"]
    rows = []
    for arn, r in sorted(now_roles.items()):
        old = before.get(arn)
        if old is None:
            rows.append({"change": "new_role", "account_id": r["account_id"], "role_arn": arn,
                         "detail": "trusts " + (", ".join(r["trusted"]) or "(unknown)")})
            continue
        for p in sorted(set(r["trusted"]) - set(old.get("trusted", []))):
            rows.append({"change": "new_trusted_principal", "account_id": r["account_id"], "role_arn": arn,
                         "detail": p})
        if r["unused"] and not old.get("unused"):
            rows.append({"change": "newly_unused_role", "account_id": r["account_id"], "role_arn": arn,
                         "detail": ""})
    for arn, old in sorted(before.items()):
        if arn not in now_roles:
            rows.append({"change": "removed_role", "account_id": old.get("account_id"), "role_arn": arn,
                         "detail": ""})
    order = {"new_role": 0, "new_trusted_principal": 1, "newly_unused_role": 2, "removed_role": 3}
    rows.sort(key=lambda r: (order[r["change"]], r["account_id"] or "", r["role_arn"], r["detail"]))
    return _frame("changes", rows)


def summary_table(roles: pd.DataFrame, ev: pd.DataFrame, findings: list[Finding], principals: pd.DataFrame,
                  changes: pd.DataFrame, accounts: list[str]) -> pd.DataFrame:
    cross = roles["cross_account"]
    change_counts = changes["change"].value_counts().to_dict() if len(changes) else {}
    metrics = [
        ("accounts", len(accounts)),
        ("roles", len(roles)),
        ("cross_account_roles", int(cross.sum())),
        ("unused_roles", int(roles["unused"].sum())),
        ("cross_account_roles_without_externalid_condition",
         int((cross & roles["external_id_required"].eq(False).fillna(False)).sum())),
        ("successful_assumptions", int(ev["success"].sum())),
        ("failed_attempts", int((~ev["success"]).sum())),
        ("distinct_principals", int(principals["principal"].nunique())),
        ("open_findings", len(findings)),
        ("high_or_critical_findings", sum(1 for f in findings if SEVERITY_RANK[f.severity] >= SEVERITY_RANK["high"])),
        ("roles_to_keep", int(roles["recommendation"].eq("keep").sum())),
        ("roles_to_tighten", int(roles["recommendation"].eq("tighten").sum())),
        ("roles_to_remove", int(roles["recommendation"].eq("remove").sum())),
        ("new_roles", int(change_counts.get("new_role", 0))),
        ("new_trusted_principals", int(change_counts.get("new_trusted_principal", 0))),
        ("newly_unused_roles", int(change_counts.get("newly_unused_role", 0))),
        ("removed_roles", int(change_counts.get("removed_role", 0))),
    ]
    return _frame("summary", [{"metric": m, "value": v} for m, v in metrics])

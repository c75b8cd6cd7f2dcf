"""Access-review report at organisation scale: 200 accounts, 10,000 roles, 30 days.

    python bench/report_scale.py [--accounts 200] [--roles 10000] [--days 30] [--calls-per-role-day 1.0]
                                 [--formats html,md,csv,xlsx,json] [--out DIR]

Generates (in memory, seeded) an organisation's IAM posture (trust policies with and without
ExternalId, MFA, IP and date conditions, last-used dates, service last-accessed data, Access
Analyzer findings), the period's AssumeRole table (successes, failures, cross-account calls
recorded in both accounts' trails) and open findings; then times building the review tables
and rendering each format, and prints wall time, peak RSS and output size per stage.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.events.schema import coerce  # noqa: E402
from monitor.findings import Finding  # noqa: E402
from monitor.posture.model import AnalyzerFinding, Posture, RoleInfo  # noqa: E402
from monitor.report.render import EXTENSIONS, write_report  # noqa: E402
from monitor.report.tables import Period, ReviewOptions, build_review  # noqa: E402

END = datetime(2026, 11, 1, tzinfo=UTC)
SERVICES = ["s3", "ec2", "iam", "kms", "lambda", "dynamodb", "logs", "sqs", "sns", "cloudwatch", "sts", "rds"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def account_ids(n: int) -> list[str]:
    return [f"{100000000000 + i * 7919:012d}" for i in range(n)]


def make_posture(rng: np.random.Generator, accounts: list[str], roles: int) -> Posture:
    posture = Posture(accounts=list(accounts), organization_accounts=list(accounts[: len(accounts) * 3 // 4]))
    vendors = [f"{900000000000 + i:012d}" for i in range(20)]
    per_account = max(1, roles // len(accounts))
    for a_i, acct in enumerate(accounts):
        for r in range(per_account):
            name = f"role-{a_i:03d}-{r:03d}"
            kind = r % 5
            if kind == 0:  # vendor role, half with ExternalId
                principal = {"AWS": f"arn:aws:iam::{vendors[(a_i + r) % len(vendors)]}:root"}
                cond = {"StringEquals": {"sts:ExternalId": f"ext-{a_i}-{r}"}} if r % 2 else None
            elif kind == 1:  # sister account's CI role
                principal = {"AWS": f"arn:aws:iam::{accounts[(a_i + 1) % len(accounts)]}:role/ci"}
                cond = {"IpAddress": {"aws:SourceIp": ["203.0.113.0/24"]}}
            elif kind == 2:  # humans in the same account, MFA
                principal = {"AWS": [f"arn:aws:iam::{acct}:user/u{r}", f"arn:aws:iam::{acct}:user/v{r}"]}
                cond = {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
            elif kind == 3:
                principal = {"Service": "lambda.amazonaws.com"}
                cond = None
            else:
                principal = {"AWS": f"arn:aws:iam::{acct}:root"}
                cond = {"DateLessThan": {"aws:CurrentTime": "2026-10-15T00:00:00Z"}}
            stmt = {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}
            if cond:
                stmt["Condition"] = cond
            used = {s: (END - timedelta(days=int(rng.integers(0, 200)))) if rng.random() < 0.4 else None
                    for s in SERVICES[: 3 + r % 8]}
            arn = f"arn:aws:iam::{acct}:role/{name}"
            posture.roles[arn] = RoleInfo(
                arn=arn, name=name, account_id=acct, create_date=END - timedelta(days=400),
                last_used=END - timedelta(days=int(rng.integers(0, 300))) if rng.random() < 0.8 else None,
                trust_policy={"Version": "2012-10-17", "Statement": [stmt]},
                attached_policies=["arn:aws:iam::aws:policy/AdministratorAccess"] if r % 17 == 0 else [],
                services_last_accessed=used)
            if r % 10 == 0:
                posture.analyzer_findings.append(AnalyzerFinding(
                    f"af-{a_i}-{r}", acct, "us-east-1", arn, "UnusedIAMRole" if r % 20 else "ExternalAccess",
                    "ACTIVE", details={"unusedIamRoleDetails": {"lastAccessed": "2026-01-01T00:00:00Z"}}))
    return posture


def make_events(rng: np.random.Generator, posture: Posture, days: int, rate: float) -> pd.DataFrame:
    arns = np.array(list(posture.roles))
    owner = np.array([r.account_id for r in posture.roles.values()])
    n = int(len(arns) * days * rate)
    # a few busy roles, a long quiet tail, a third never called (Zipf-like)
    weights = 1.0 / np.arange(1, len(arns) + 1) ** 0.8
    weights[rng.permutation(len(arns))[: len(arns) // 3]] = 0
    idx = rng.choice(len(arns), size=n, p=weights / weights.sum())
    start = pd.Timestamp(END - timedelta(days=days))
    times = start + pd.to_timedelta(rng.integers(0, days * 86400, size=n), unit="s")
    per_account = max(1, len(arns) // len(set(owner)))  # roles are grouped by account: shift a whole account
    callers_acct = np.where(rng.random(n) < 0.4, owner[(idx + per_account) % len(owner)], owner[idx])
    principal = np.char.add(np.char.add("arn:aws:iam::", callers_acct.astype(str)),
                            np.char.add(":user/p", (idx % 7).astype(str)))
    ok = rng.random(n) > 0.15
    ips = np.char.add("198.51.", np.char.add((idx % 250).astype(str), np.char.add(".", (idx % 200 + 1).astype(str))))
    df = pd.DataFrame({
        "event_id": [f"e{i}" for i in range(n)], "shared_event_id": None, "event_time": times,
        "event_name": "AssumeRole", "account_id": owner[idx], "aws_region": "us-east-1", "role_arn": arns[idx],
        "role_account_id": owner[idx], "principal_arn": principal, "principal_type": "IAMUser",
        "principal_account_id": callers_acct, "principal_key": principal, "source_ip": ips,
        "error_code": np.where(ok, None, "AccessDenied"), "success": ok,
        "is_cross_account": callers_acct != owner[idx],
    })
    # the caller's copy of each cross-account call: the report must count it once
    cross = df[df["is_cross_account"]].copy()
    df.loc[cross.index, "shared_event_id"] = "s" + cross["event_id"]
    cross["shared_event_id"] = "s" + cross["event_id"]
    cross["event_id"] = "c" + cross["event_id"]
    cross["account_id"] = cross["principal_account_id"]
    return coerce(pd.concat([df, cross], ignore_index=True))


def make_findings(posture: Posture, count: int) -> list[Finding]:
    arns = list(posture.roles)
    sev = ["low", "medium", "high", "critical"]
    det = ["failed_assume_role", "off_hours", "unusual_source_ip", "trust_policy", "unused_role"]
    return [Finding(det[i % 5], sev[i % 4], f"finding {i}", f"fp{i:08d}", account_id=arns[i % len(arns)].split(":")[4],
                    role_arn=arns[i % len(arns)], first_seen=END - timedelta(days=2), last_seen=END - timedelta(days=1))
            for i in range(count)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--accounts", type=int, default=200)
    ap.add_argument("--roles", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--calls-per-role-day", type=float, default=1.0)
    ap.add_argument("--findings", type=int, default=2_000)
    ap.add_argument("--formats", default="html,md,csv,xlsx,json")
    ap.add_argument("--out", help="keep the rendered files here (default: a temporary folder)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    posture = make_posture(rng, account_ids(args.accounts), args.roles)
    events = make_events(rng, posture, args.days, args.calls_per_role_day)
    findings = make_findings(posture, args.findings)
    gen = time.perf_counter() - t0
    print(f"input: {args.accounts} accounts, {len(posture.roles):,} roles, {len(events):,} event rows "
          f"({int(events['shared_event_id'].notna().sum()):,} are the two copies of cross-account calls), "
          f"{len(findings):,} findings, {len(posture.analyzer_findings):,} analyzer findings; generated in {gen:.1f} s, "
          f"RSS peak {peak_rss_mb():.0f} MB")
    period = Period(END - timedelta(days=args.days), END)
    t0 = time.perf_counter()
    tables = build_review(events, posture, findings, period, None, ReviewOptions(), now=END)
    build = time.perf_counter() - t0
    rows = {k: len(v) for k, v in tables.sections.items()}
    print(f"{'tables':>8}: {build:6.2f} s   peak RSS {peak_rss_mb():6.0f} MB   "
          f"rows: roles {rows['roles']:,}, trust {rows['trust']:,}, principals {rows['principals']:,}, "
          f"daily {rows['daily']:,}, services {rows['services']:,}")
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="rolewatch-bench-"))
    total = build
    for fmt in args.formats.split(","):
        t0 = time.perf_counter()
        path = write_report(tables, fmt, out / f"report{EXTENSIONS[fmt]}")
        took = time.perf_counter() - t0
        total += took
        size = sum(p.stat().st_size for p in ([path] if path.is_file() else path.iterdir()))
        print(f"{fmt:>8}: {took:6.2f} s   peak RSS {peak_rss_mb():6.0f} MB   {size / 2**20:7.1f} MB  {path}")
    print(f"{'total':>8}: {total:6.2f} s (tables + every format), process peak RSS {peak_rss_mb():.0f} MB; "
          f"summary: {tables.summary_value('roles'):,} roles, {tables.summary_value('cross_account_roles'):,} "
          f"cross-account, {tables.summary_value('unused_roles'):,} unused, "
          f"{tables.summary_value('successful_assumptions'):,} assumptions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The posture inventory of a whole Organization against a local AWS (moto server over HTTP).

    python bench/org_inventory.py --accounts 200 --roles 50

Starts `moto.server` in its own process (without AWS managed policies, which moto would load
into every account), creates an Organization of `--accounts` accounts (the management account
included) with `--roles` roles each (every tenth trusting a third party, some tagged, with an
inline policy), then times `collect_posture`: ListAccounts, the audit role assumed in every
account, ListRoles + GetRole + ListAttachedRolePolicies + ListRolePolicies per role, accounts in
parallel (`organization.max_workers`). Service last accessed and Access Analyzer are off: moto
has neither API. API calls are counted with botocore event hooks on every client rolewatch
makes (`before-call`: one per operation; `before-send`: one per HTTP request, retries included).
Prints wall time, calls by operation, calls per second, roles and accounts inventoried.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import boto3  # noqa: E402

from monitor.aws import add_client_hook, remove_client_hook  # noqa: E402
from monitor.config import AwsConfig, Config, OrganizationConfig, SecretRef  # noqa: E402
from monitor.demo.local_aws import moto_process  # noqa: E402
from monitor.posture.store import collect_posture  # noqa: E402
from monitor.state.sqlite import SqliteState  # noqa: E402

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def _trust(principal: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}]})


def provision(url: str, accounts: int, roles: int, workers: int) -> list[str]:
    orgs = boto3.client("organizations", endpoint_url=url)
    orgs.create_organization(FeatureSet="ALL")
    with ThreadPoolExecutor(workers) as pool:
        ids = list(pool.map(lambda i: orgs.create_account(Email=f"a{i}@example.com", AccountName=f"acct-{i:03d}")
                            ["CreateAccountStatus"]["AccountId"], range(accounts - 1)))
    ids.append(boto3.client("sts", endpoint_url=url).get_caller_identity()["Account"])
    sts = boto3.client("sts", endpoint_url=url)

    def fill(account: str) -> None:
        c = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/bench-setup", RoleSessionName="setup")["Credentials"]
        iam = boto3.client("iam", endpoint_url=url, aws_access_key_id=c["AccessKeyId"],
                           aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"])
        for r in range(roles):
            third_party = r % 10 == 0
            principal = {"AWS": "arn:aws:iam::999999999999:root"} if third_party else {"Service": "ec2.amazonaws.com"}
            iam.create_role(RoleName=f"role-{r:03d}", Path="/bench/", AssumeRolePolicyDocument=_trust(principal),
                            Tags=[{"Key": "team", "Value": f"t{r % 7}"}] if r % 3 == 0 else [])
            if r % 5 == 0:
                iam.put_role_policy(RoleName=f"role-{r:03d}", PolicyName="inline", PolicyDocument=json.dumps(
                    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"}]}))

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fill, ids))
    return ids


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=200)
    ap.add_argument("--roles", type=int, default=50)
    ap.add_argument("--max-workers", type=int, default=8, help="organization.max_workers")
    args = ap.parse_args()

    moto = contextlib.ExitStack()
    url = moto.enter_context(moto_process(MOTO_IAM_LOAD_MANAGED_POLICIES="false"))
    try:
        t0 = time.perf_counter()
        ids = provision(url, args.accounts, args.roles, workers=16)
        print(f"provisioned {len(ids)} accounts x {args.roles} roles in {time.perf_counter() - t0:.1f}s (not timed below)")

        calls: Counter[str] = Counter()
        requests = Counter[str]()
        lock = threading.Lock()

        def on_call(model: Any, **_: Any) -> None:
            with lock:
                calls[f"{model.service_model.service_name}:{model.name}"] += 1

        def on_send(**_: Any) -> None:
            with lock:
                requests["http"] += 1

        config = Config(aws=AwsConfig(endpoint_url=url, max_attempts=3),
                        organization=OrganizationConfig(enabled=True, external_id=SecretRef(value="bench-external-id"),
                                                        max_workers=args.max_workers, account_timeout_seconds=600))
        config.posture.last_accessed = False
        config.posture.access_analyzer = False
        add_client_hook("before-call", on_call)
        add_client_hook("before-send", on_send)
        with tempfile.TemporaryDirectory() as tmp:
            state = SqliteState(Path(tmp) / "state.db")
            start = time.perf_counter()
            posture = collect_posture(config, state, datetime.now(UTC))
            wall = time.perf_counter() - start
            state.close()
        remove_client_hook("before-call", on_call)
        remove_client_hook("before-send", on_send)
    finally:
        moto.close()

    total = sum(calls.values())
    print(f"inventory: {len(posture.accounts)} accounts, {len(posture.roles)} roles, "
          f"{len(posture.errors)} accounts failed, max_workers={args.max_workers}")
    print(f"wall time: {wall:.1f}s  ({len(posture.roles) / wall:.0f} roles/s)")
    print(f"API calls: {total} ({total / wall:.0f}/s), HTTP requests: {requests['http']}")
    for op, n in sorted(calls.items(), key=lambda kv: -kv[1]):
        print(f"  {op:45s} {n:7d}")
    expected_roles = args.accounts * args.roles
    found = sum(1 for r in posture.roles.values() if r.path == "/bench/")
    if found != expected_roles or posture.errors:
        print(f"MISMATCH: {found} bench roles of {expected_roles}; errors: {dict(list(posture.errors.items())[:3])}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

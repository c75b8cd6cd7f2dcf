"""Role inventory, Organizations and audit-role sessions against moto over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3

from monitor.aws import add_client_hook, remove_client_hook
from monitor.collectors.organizations import (
    AuditSessions,
    effective_duration,
    for_each_account,
    list_accounts,
    run_per_account,
    session_name,
)
from monitor.collectors.roles import collect_roles
from monitor.config import AwsConfig, Config, OrganizationConfig, SecretRef
from monitor.redact import redact_text
from tests.posture.conftest import provision_account, trust

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
EXTERNAL_ID = "audit-ext-id-123"


def org_config(endpoint: str, **org: object) -> Config:
    return Config(aws=AwsConfig(endpoint_url=endpoint, max_attempts=2),
                  organization=OrganizationConfig(enabled=True, external_id=SecretRef(value=EXTERNAL_ID), **org))


def test_role_inventory_paginated_with_details(org_moto: str, org_aws: AwsConfig) -> None:
    sess = provision_account(org_moto, "222222222222", roles=10)
    calls: list[str] = []

    def count(model, **_: object) -> None:  # noqa: ANN001
        calls.append(model.name)

    add_client_hook("before-call", count)
    try:
        notices: list[str] = []
        roles = {r.name: r for r in collect_roles(sess, org_aws, notices=notices, page_size=5)}
    finally:
        remove_client_hook("before-call", count)
    assert len(roles) == 12 and notices == []
    assert calls.count("ListRoles") == 3  # 12 roles in pages of 5: Marker pagination followed
    vendor = roles["vendor"]
    assert vendor.arn == "arn:aws:iam::222222222222:role/vendor" and vendor.account_id == "222222222222"
    assert vendor.max_session_duration == 43200
    assert vendor.tags == {"owner": "secops"}
    assert vendor.attached_policies == ["arn:aws:iam::222222222222:policy/ReadOnlyAccessCopy"]
    assert vendor.inline_policies == ["extra"]
    assert vendor.trust_policy["Statement"][0]["Principal"] == {"AWS": "arn:aws:iam::999999999999:root"}
    assert vendor.create_date is not None and vendor.create_date.tzinfo is not None
    assert roles["app-7"].path == "/apps/"
    # the default account saw none of it: accounts are separate in moto
    assert collect_roles(boto3.session.Session(region_name="us-east-1"), org_aws) == []


def test_accounts_from_organizations_active_only_with_include_exclude(org_moto: str) -> None:
    moto = org_moto
    orgs = boto3.client("organizations", endpoint_url=moto, region_name="us-east-1")
    orgs.create_organization(FeatureSet="ALL")
    ids = {}
    for name in ("prod-a", "prod-b", "sandbox", "closed"):
        ids[name] = orgs.create_account(Email=f"{name}@example.com", AccountName=name)["CreateAccountStatus"]["AccountId"]
    orgs.close_account(AccountId=ids["closed"])
    every = {a.account_id for a in list_accounts(org_config(moto))}
    assert ids["closed"] not in every and {ids["prod-a"], ids["sandbox"], "123456789012"} <= every
    picked = list_accounts(org_config(moto, include=["prod-*"], exclude=[ids["prod-b"]]))
    assert [(a.account_id, a.name) for a in picked] == [(ids["prod-a"], "prod-a")]
    # an explicit list wins over ListAccounts
    assert [a.account_id for a in list_accounts(org_config(moto, accounts=["444444444444"]))] == ["444444444444"]


def test_audit_session_name_duration_external_id(sts_gate) -> None:  # noqa: ANN001
    cfg = org_config(sts_gate.url)
    sessions = AuditSessions(cfg, now=NOW)
    sess = sessions.session("333333333333")
    who = sess.client("sts", endpoint_url=sts_gate.url).get_caller_identity()
    assert who["Account"] == "333333333333"
    assert who["Arn"].endswith("assumed-role/rolewatch-audit/rolewatch-333333333333-2026-06-01")
    [req] = sts_gate.assume_requests
    assert req["ExternalId"] == EXTERNAL_ID and req["DurationSeconds"] == "900"
    assert session_name("1", datetime(2026, 6, 1, 23, 30, tzinfo=UTC) + timedelta(hours=1)) == "rolewatch-1-2026-06-02"
    assert effective_duration(OrganizationConfig(session_duration_seconds=3600)) == 3600
    assert EXTERNAL_ID not in redact_text(f"ExternalId {EXTERNAL_ID}")  # resolve_secret registered it


def test_credentials_refresh_before_expiry(sts_gate) -> None:  # noqa: ANN001
    assumed: list[str] = []
    real_now = datetime.now(UTC)
    fake = {"now": real_now}
    sessions = AuditSessions(org_config(sts_gate.url), now=NOW, clock=lambda: fake["now"], on_assume=assumed.append)
    creds = sessions.credentials("333333333333")
    first = creds.get_frozen_credentials().access_key
    fake["now"] = real_now + timedelta(minutes=9)  # 6 minutes left of 15: still fine
    assert creds.get_frozen_credentials().access_key == first and len(assumed) == 1
    fake["now"] = real_now + timedelta(minutes=14)  # inside the refresh window
    assert creds.get_frozen_credentials().access_key != first
    assert assumed == ["333333333333", "333333333333"]


def test_denied_and_hung_accounts_reported_rest_finish(sts_gate) -> None:  # noqa: ANN001
    for account in ("111111111111", "222222222222"):
        provision_account(sts_gate.url, account, roles=1)
    sts_gate.denied.add("666666666666")
    sts_gate.held.add("777777777777")
    cfg = org_config(sts_gate.url, accounts=["111111111111", "222222222222", "666666666666", "777777777777"],
                     max_workers=4, account_timeout_seconds=60)
    ticks = {"t": 0.0}
    finished: list[str] = []

    def clock() -> float:
        # time stands still until only the hung account is left; then each look is a minute later
        if sts_gate.held_arrived.is_set() and sts_gate.denials_served and len(finished) == 2:
            ticks["t"] += 61
        return ticks["t"]

    def work(account: str, session: boto3.session.Session) -> int:
        count = len(collect_roles(session, cfg.aws))
        finished.append(account)
        return count

    _, results = for_each_account(cfg, work, now=NOW, clock=clock, poll_seconds=0.05)
    assert results.results == {"111111111111": 3, "222222222222": 3}
    assert set(results.errors) == {"666666666666", "777777777777"}
    assert "AccessDenied" in results.errors["666666666666"]
    assert "TimeoutError" in results.errors["777777777777"]
    # where each stopped: both in AssumeRole (the hung one was held there when its time ran out)
    assert {a: (f.step, f.error_code) for a, f in results.failures.items()} == {
        "666666666666": ("assume_audit_role", "AccessDenied"), "777777777777": ("assume_audit_role", "TimeoutError")}
    assert all(EXTERNAL_ID not in e for e in results.errors.values())


def test_run_per_account_reports_exceptions() -> None:
    def work(account: str) -> str:
        if account == "bad":
            raise RuntimeError("boom")
        return account.upper()

    out = run_per_account(["a", "bad", "c"], work, max_workers=2, timeout_seconds=60, poll_seconds=0.01)
    assert out.results == {"a": "A", "c": "C"} and out.errors == {"bad": "RuntimeError: boom"}


def test_single_account_mode_uses_own_credentials(org_moto: str) -> None:
    moto = org_moto
    cfg = Config(aws=AwsConfig(endpoint_url=moto))
    boto3.client("iam", endpoint_url=moto, region_name="us-east-1").create_role(
        RoleName="local", AssumeRolePolicyDocument=trust({"Service": "ec2.amazonaws.com"}))
    accounts, results = for_each_account(cfg, lambda a, s: [r.name for r in collect_roles(s, cfg.aws)], now=NOW)
    assert [a.account_id for a in accounts] == ["123456789012"] and results.results == {"123456789012": ["local"]}


"""collect_posture end to end against moto (IAM, STS, Organizations over HTTP), state in SQLite."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3

from monitor.config import Config, SecretRef
from monitor.detect.trust_policy import trust_policy_findings
from monitor.posture.model import Posture
from monitor.posture.store import collect_posture, load_posture
from tests.posture.conftest import provision_account

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def config_for(endpoint: str) -> Config:
    cfg = Config()
    cfg.aws.endpoint_url = endpoint
    cfg.aws.max_attempts = 2
    cfg.organization.enabled = True
    cfg.organization.external_id = SecretRef(value="audit-ext-id-123")
    cfg.posture.access_analyzer = False  # moto has no Access Analyzer: see test_access_analyzer.py
    cfg.posture.last_accessed = False  # nor service-last-accessed: see test_last_accessed.py
    return cfg


def test_collect_store_load_and_keep_stale_account(sts_gate, state) -> None:  # noqa: ANN001
    orgs = boto3.client("organizations", endpoint_url=sts_gate.url, region_name="us-east-1")
    orgs.create_organization(FeatureSet="ALL")
    members = [orgs.create_account(Email=f"m{i}@example.com", AccountName=f"m{i}")["CreateAccountStatus"]["AccountId"]
               for i in range(2)]
    for account in members:
        provision_account(sts_gate.url, account, roles=2)
    cfg = config_for(sts_gate.url)
    cfg.organization.exclude = ["123456789012"]  # the management account itself

    assert load_posture(state) == Posture()
    first = collect_posture(cfg, state, NOW, poll_seconds=0.05)
    assert sorted(first.accounts) == sorted(members) and first.errors == {}
    assert sorted(first.organization_accounts) == sorted(members)
    assert len(first.roles) == 2 * 5  # moto also creates OrganizationAccountAccessRole
    assert load_posture(state).roles == first.roles  # persisted in state documents

    # the posture feeds the trust_policy detector: the vendor role trusts a non-Org account's root
    checks = {(f.account_id, f.details["check"]) for f in trust_policy_findings(first, cfg.detectors.trust_policy, NOW)}
    assert {(members[0], "untrusted_account"), (members[0], "cross_account_without_external_id"),
            (members[0], "max_session_duration")} <= checks

    # next day one account refuses the audit role: its inventory is kept, marked stale
    sts_gate.denied.add(members[1])
    second = collect_posture(cfg, state, datetime(2026, 6, 2, tzinfo=UTC), poll_seconds=0.05)
    assert "AccessDenied" in second.errors[members[1]]
    assert sorted(second.accounts) == sorted(members)
    assert {r.arn for r in second.roles.values() if r.account_id == members[1]} == \
        {r.arn for r in first.roles.values() if r.account_id == members[1]}
    assert any(members[1] in n and "kept" in n for n in second.notices)
    assert load_posture(state).errors == second.errors


def test_posture_disabled_returns_last(state) -> None:  # noqa: ANN001
    cfg = Config()
    cfg.posture.enabled = False
    assert collect_posture(cfg, state, NOW) == Posture()


def test_missing_last_accessed_and_analyzer_apis_keep_the_role_inventory(moto, state) -> None:  # noqa: ANN001
    # moto implements neither GenerateServiceLastAccessedDetails nor Access Analyzer: exactly the
    # situation of an account whose audit role lacks those permissions
    iam = boto3.client("iam", endpoint_url=moto, region_name="us-east-1")
    iam.create_role(RoleName="KeepMe", AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[]}')
    cfg = Config()
    cfg.aws.endpoint_url = moto
    cfg.aws.max_attempts = 1
    assert cfg.posture.last_accessed and cfg.posture.access_analyzer
    posture = collect_posture(cfg, state, NOW, sleep=lambda _s: None, poll_seconds=0.05)
    assert any(arn.endswith(":role/KeepMe") for arn in posture.roles)
    assert posture.errors == {}
    assert any("service last accessed" in n for n in posture.notices), posture.notices

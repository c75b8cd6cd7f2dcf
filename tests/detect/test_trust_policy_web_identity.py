from __future__ import annotations

from typing import Any

import pytest

from monitor.config import TrustPolicyConfig
from monitor.demo import scenario
from monitor.detect.trust_policy import DETECTOR, trust_policy_findings
from monitor.findings import fingerprint
from monitor.posture.model import Posture
from tests.detect.test_trust_policy import ME, NOW, checks, make_role

CHECK = "web_identity_subject_unrestricted"
GITHUB = "token.actions.githubusercontent.com"
EKS = "oidc.eks.eu-west-1.amazonaws.com/id/5C0FFEE0B1E5D4B2A9E3C1F7D8A6B4E2"
CIRCLECI = "oidc.circleci.com/org/8f6b2c1e-3d4a-4b5c-9e7f-0a1b2c3d4e5f"
BITBUCKET = "api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc"
POOL = "eu-west-1:7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
AUD = {"StringEquals": {f"{GITHUB}:aud": "sts.amazonaws.com"}}


def oidc(provider: str) -> str:
    return f"arn:aws:iam::{ME}:oidc-provider/{provider}"


def web(provider: str, condition: dict[str, Any] | None = None, *, effect: str = "Allow",
        action: str = "sts:AssumeRoleWithWebIdentity", sid: str | None = None) -> dict[str, Any]:
    federated = provider if provider == "cognito-identity.amazonaws.com" else oidc(provider)
    st: dict[str, Any] = {"Effect": effect, "Principal": {"Federated": federated}, "Action": action}
    if condition:
        st["Condition"] = condition
    if sid:
        st["Sid"] = sid
    return st


def gh_sub(operator: str, *patterns: str) -> dict[str, Any]:
    return {**AUD, operator: {f"{GITHUB}:sub": list(patterns)}}


CASES = [
    # GitHub Actions: one issuer for every repository on github.com
    ("GitHub with no condition", [web(GITHUB)], "high"),
    ("GitHub with only the audience", [web(GITHUB, AUD)], "high"),
    ("GitHub pinned to one org with StringLike", [web(GITHUB, gh_sub("StringLike", "repo:my-org/*"))], None),
    ("GitHub pinned to a branch", [web(GITHUB, gh_sub("StringEquals", "repo:my-org/app:ref:refs/heads/main"))],
     None),
    ("GitHub pinned to an environment", [web(GITHUB, gh_sub("StringLike", "repo:my-org/app:environment:prod"))],
     None),
    ("GitHub repo:* is any repository", [web(GITHUB, gh_sub("StringLike", "repo:*"))], "high"),
    ("GitHub bare * is any repository", [web(GITHUB, gh_sub("StringLike", "*"))], "high"),
    ("GitHub org-name prefix is anyone's org", [web(GITHUB, gh_sub("StringLike", "repo:my-org*"))], "high"),
    ("GitHub one open value opens the clause",
     [web(GITHUB, gh_sub("StringLike", "repo:my-org/app:*", "repo:*/app:*"))], "high"),
    ("GitHub sub under IfExists restricts nothing", [web(GITHUB, gh_sub("StringLikeIfExists", "repo:my-org/*"))],
     "high"),
    ("GitHub negated sub restricts nothing", [web(GITHUB, gh_sub("StringNotLike", "repo:evil/*"))], "high"),
    ("GitHub ForAnyValue:StringLike pins", [web(GITHUB, gh_sub("ForAnyValue:StringLike", "repo:my-org/*"))], None),
    ("GitHub ForAllValues passes without the key", [web(GITHUB, gh_sub("ForAllValues:StringLike", "repo:my-org/*"))],
     "high"),
    ("GitHub clauses are ANDed: one pinning clause is enough",
     [web(GITHUB, {"StringLike": {f"{GITHUB}:sub": "repo:*"},
                   "StringEquals": {f"{GITHUB}:sub": "repo:my-org/app:ref:refs/heads/main"}})], None),
    ("GitHub * under StringEquals is a literal", [web(GITHUB, gh_sub("StringEquals", "repo:my-org/*"))], None),
    ("GitHub condition keys compare case-insensitively",
     [web(GITHUB, {"StringLike": {"Token.Actions.GitHubUserContent.com:SUB": "repo:my-org/*"}})], None),
    ("GitHub custom template led by the owner id",
     [web(GITHUB, gh_sub("StringEquals", "repository_owner_id:81234567:environment:prod"))], None),
    ("GitHub custom template with only the environment can be minted by anyone",
     [web(GITHUB, gh_sub("StringEquals", "environment:prod"))], "high"),
    ("GitHub job_workflow_ref alone: any caller of a public reusable workflow",
     [web(GITHUB, gh_sub("StringLike", "job_workflow_ref:my-org/workflows/.github/workflows/deploy.yml@*"))],
     "high"),
    ("Deny statements are not trust", [web(GITHUB, effect="Deny")], None),
    ("a pinned Allow beside an open Deny", [web(GITHUB, gh_sub("StringLike", "repo:my-org/*")),
                                            web(GITHUB, effect="Deny")], None),
    ("a Federated principal under sts:AssumeRole only is not web identity", [web(GITHUB, action="sts:AssumeRole")],
     None),
    ("sts:* covers web identity", [web(GITHUB, AUD, action="sts:*")], "high"),
    # other shared issuers
    ("GitLab.com audience only", [web("gitlab.com", {"StringEquals": {"gitlab.com:aud": "https://gitlab.com"}})],
     "high"),
    ("GitLab.com pinned to a group",
     [web("gitlab.com", {"StringLike": {"gitlab.com:sub": "project_path:my-group/*:ref_type:branch:ref:main"}})],
     None),
    ("Terraform Cloud any organization",
     [web("app.terraform.io", {"StringLike": {"app.terraform.io:sub": "organization:*:project:*"}})], "high"),
    ("Terraform Cloud pinned to an organization",
     [web("app.terraform.io", {"StringLike": {"app.terraform.io:sub": "organization:my-org:project:*:workspace:*"}})],
     None),
    ("Buildkite without a subject", [web("agent.buildkite.com")], "high"),
    ("Cognito without the identity pool", [web("cognito-identity.amazonaws.com", {
        "ForAnyValue:StringLike": {"cognito-identity.amazonaws.com:amr": "authenticated"}})], "high"),
    ("Cognito pinned to one identity pool", [web("cognito-identity.amazonaws.com", {
        "StringEquals": {"cognito-identity.amazonaws.com:aud": POOL},
        "ForAnyValue:StringLike": {"cognito-identity.amazonaws.com:amr": "authenticated"}})], None),
    ("Cognito any pool of a region", [web("cognito-identity.amazonaws.com", {
        "StringLike": {"cognito-identity.amazonaws.com:aud": "eu-west-1:*"}})], "high"),
    # issuers whose URL names the tenant: open within it
    ("EKS audience only: every service account of the cluster",
     [web(EKS, {"StringEquals": {f"{EKS}:aud": "sts.amazonaws.com"}})], "medium"),
    ("EKS pinned to a service account", [web(EKS, {"StringEquals": {f"{EKS}:sub": "system:serviceaccount:ci:deploy"}})],
     None),
    ("EKS pinned to a namespace", [web(EKS, {"StringLike": {f"{EKS}:sub": "system:serviceaccount:ci:*"}})], None),
    ("EKS any namespace", [web(EKS, {"StringLike": {f"{EKS}:sub": "system:serviceaccount:*"}})], "medium"),
    ("CircleCI without a project", [web(CIRCLECI)], "medium"),
    ("CircleCI pinned to a project", [web(CIRCLECI, {"StringLike": {
        f"{CIRCLECI}:sub": "org/8f6b2c1e-3d4a-4b5c-9e7f-0a1b2c3d4e5f/project/0d1e2f3a-4b5c-6d7e-8f9a-b0c1d2e3f4a5/*"}})],
     None),
    ("Bitbucket audience only", [web(BITBUCKET, {"StringEquals": {f"{BITBUCKET}:aud": "ari:cloud:bitbucket::x"}})],
     "medium"),
    ("Bitbucket pinned to a repository",
     [web(BITBUCKET, {"StringLike": {f"{BITBUCKET}:sub": "{d4c3b2a1-0f9e-4d8c-b7a6-5f4e3d2c1b0a}:*"}})], None),
    ("GitHub enterprise issuer audience only", [web(f"{GITHUB}/acme-corp", {
        "StringEquals": {f"{GITHUB}/acme-corp:aud": "sts.amazonaws.com"}})], "medium"),
    # what rolewatch cannot judge
    ("self-hosted GitLab issuer is not known", [web("gitlab.example.com")], None),
]


@pytest.mark.parametrize(("statements", "expected"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_web_identity_subject(statements: list[dict[str, Any]], expected: str | None) -> None:
    found = checks(make_role(statements)).get(CHECK)
    assert (found.severity if found else None) == expected


def test_details_across_statements_and_issuers() -> None:
    role = make_role([
        web(GITHUB, gh_sub("StringLike", "repo:my-org/*"), sid="PinnedCI"),
        web(EKS, {"StringLike": {f"{EKS}:sub": "system:serviceaccount:*"}}, sid="Cluster"),
        web(GITHUB, AUD),
    ], name="deploy")
    found = [f for f in trust_policy_findings(Posture(roles={role.arn: role}, accounts=[ME]), TrustPolicyConfig(), NOW)
             if f.details["check"] == CHECK]
    assert len(found) == 1
    f = found[0]
    assert f.severity == "high" and f.title == "Role deploy can be assumed by any GitHub repository's workflows"
    assert f.fingerprint == fingerprint(DETECTOR, role.arn, CHECK) and f.role_arn == role.arn
    assert f.details["statements"] == ["Cluster", "Statement[2]"]
    assert f.details["principals"] == sorted([oidc(EKS), oidc(GITHUB)])
    assert f.details["providers"] == sorted([EKS, GITHUB])
    assert f.details["expected_keys"] == sorted([f"{EKS}:sub", f"{GITHUB}:sub"])
    assert f.details["condition_keys"] == [f"StringEquals {GITHUB}:aud", f"StringLike {EKS}:sub"]
    assert f.details["unrestricted_patterns"] == ["system:serviceaccount:*"]


def test_tenant_scoped_issuer_alone_names_its_tenant() -> None:
    f = checks(make_role([web(CIRCLECI)], name="ci"))[CHECK]
    assert f.title == "Role ci can be assumed by any project of its CircleCI organization"
    assert f.details["expected_keys"] == [f"{CIRCLECI}:sub"] and f.details["condition_keys"] == []


def test_web_identity_leaves_the_other_checks_alone() -> None:
    # an open GitHub trust beside a third-party principal: the AWS checks see only the AWS principal
    role = make_role([web(GITHUB, AUD), {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999999999999:role/x"},
                                         "Action": "sts:AssumeRole"}])
    found = checks(role)
    assert set(found) == {CHECK, "cross_account_without_external_id"}
    assert found["cross_account_without_external_id"].details["principals"] == ["arn:aws:iam::999999999999:role/x"]
    assert found[CHECK].details["principals"] == [oidc(GITHUB)]


def test_demo_scenario_github_role_is_pinned() -> None:
    # the demo's GitHub Actions role has the documented safe shape (repo:acme/*, audience pinned)
    docs = {arn: doc for arn, (_, doc, _) in scenario.trust_policies(ME, "x").items()}
    github = [arn for arn, doc in docs.items() if GITHUB in str(doc["Statement"][0]["Principal"])]
    assert len(github) == 1
    roles = [make_role(doc["Statement"], name=arn.rsplit("/", 1)[1]) for arn, doc in docs.items()]
    posture = Posture(roles={r.arn: r for r in roles}, accounts=[ME])
    assert [f for f in trust_policy_findings(posture, TrustPolicyConfig(), NOW) if f.details["check"] == CHECK] == []

"""The demo's two-account scenario, provisioned over HTTP against the moto server."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import replace
from datetime import UTC, datetime

import boto3

from monitor.config import TrustPolicyConfig
from monitor.demo import scenario, synth
from monitor.detect.trust_policy import trust_policy_findings
from monitor.posture.model import Posture, RoleInfo


def test_provisions_the_classic_cross_account_scenario(aws_config) -> None:  # noqa: ANN001
    made = scenario.provision(aws_config, seed=7)
    iam = scenario.account_client("iam", aws_config, scenario.OWNER)
    role = iam.get_role(RoleName=synth.DEV_ROLE_NAME)["Role"]
    assert role["Arn"] == "arn:aws:iam::111122223333:role/cross-account/CrossAccountDeveloperRole"
    assert role["Path"] == "/cross-account/"
    doc = role["AssumeRolePolicyDocument"]
    if isinstance(doc, str):
        doc = json.loads(urllib.parse.unquote(doc))
    (statement,) = doc["Statement"]
    assert statement["Principal"] == {"AWS": "arn:aws:iam::444455556666:user/DevUser"}
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": synth.external_id(7)}}
    attached = {p["PolicyName"] for p in iam.list_attached_role_policies(RoleName=synth.DEV_ROLE_NAME)[
        "AttachedPolicies"]}
    assert attached == {"ReadOnlyAccess", "S3DevAccess"}
    names = {r["RoleName"] for r in iam.list_roles()["Roles"]}
    assert {"AdminRole", "DeployRole", "GitHubActionsRole", synth.UNUSED_ROLE, synth.SSO_ROLE_NAME,
            synth.BREAK_GLASS_ROLE} <= names
    assert made.unused_role_arn.endswith(f":role/{synth.UNUSED_ROLE}")
    # the generator's roles and the provisioned ones are the same set, so the trail names real roles
    generated = set(synth.build_population(synth.make_spec(1, synth.DEMO_ACCOUNTS, end="2026-01-01")).roles[
        scenario.OWNER])
    assert generated == set(made.roles[scenario.OWNER])
    # the break-glass role: one named person, with MFA, and nothing for trust_policy to report about it
    glass = iam.get_role(RoleName=synth.BREAK_GLASS_ROLE)["Role"]
    glass_doc = glass["AssumeRolePolicyDocument"]
    if isinstance(glass_doc, str):
        glass_doc = json.loads(urllib.parse.unquote(glass_doc))
    (statement,) = glass_doc["Statement"]
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{scenario.OWNER}:user/{synth.BREAK_GLASS_USER}"}
    assert statement["Condition"] == {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
    assert iam.get_user(UserName=synth.BREAK_GLASS_USER)["User"]["UserName"] == synth.BREAK_GLASS_USER
    attached = [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=synth.BREAK_GLASS_ROLE)[
        "AttachedPolicies"]]
    assert attached == [scenario.ADMINISTRATOR_ACCESS]
    info = RoleInfo(arn=glass["Arn"], name=glass["RoleName"], account_id=scenario.OWNER,
                    max_session_duration=glass["MaxSessionDuration"], trust_policy=glass_doc,
                    attached_policies=attached)
    now = datetime.now(UTC)
    assert trust_policy_findings(Posture(roles={info.arn: info}, accounts=[scenario.OWNER]),
                                 TrustPolicyConfig(), now) == []
    # (the same role without the MFA condition is what the check exists for)
    no_mfa = {**glass_doc, "Statement": [{k: v for k, v in statement.items() if k != "Condition"}]}
    bare = Posture(roles={info.arn: replace(info, trust_policy=no_mfa)}, accounts=[scenario.OWNER])
    assert [f.details["check"] for f in trust_policy_findings(bare, TrustPolicyConfig(), now)] == [
        "privileged_without_mfa"]
    # DevUser lives in the other account, and only there
    dev = scenario.account_client("iam", aws_config, scenario.DEV_ACCOUNT)
    assert dev.get_user(UserName="DevUser")["User"]["Arn"] == "arn:aws:iam::444455556666:user/DevUser"
    owner = scenario.account_client("iam", aws_config, scenario.OWNER)
    assert "DevUser" not in {u["UserName"] for u in owner.list_users()["Users"]}


def test_trail_bucket_log_group_and_audit_key_are_in_the_owner_account(aws_config) -> None:  # noqa: ANN001
    made = scenario.provision(aws_config, seed=7)
    logs = scenario.account_client("logs", aws_config, scenario.OWNER)
    groups = [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]]
    assert groups == ["aws-cloudtrail-logs"]
    # signing with the audit key lands in 111122223333 without the account header
    sess = boto3.session.Session(region_name="us-east-1", **made.audit_credentials)
    s3 = sess.client("s3", endpoint_url=aws_config.endpoint_url)
    assert made.trail_bucket in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    sts = sess.client("sts", endpoint_url=aws_config.endpoint_url)
    assert sts.get_caller_identity()["Account"] == scenario.OWNER

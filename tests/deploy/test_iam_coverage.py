"""The CloudFormation roles grant every AWS action rolewatch calls, and nothing it does not."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file
from cfnlint.decode import decode

from tests.conftest import REPO
from tests.deploy.boto_calls import Call, scan

CFN = REPO / "deploy" / "cloudformation"
MONITOR, MEMBER = CFN / "monitor-role.yaml", CFN / "member-audit-role.yaml"
# the demo provisions its own scenario in a local moto: not calls the service makes in an account
SCANNED, EXCLUDED = ("monitor", "alerts"), ("monitor/demo",)

# granted without a direct call, because AWS performs it with the caller's credentials
IMPLICIT_MONITOR = {
    "kms:Decrypt": "SSE-KMS trail objects, Secrets Manager secrets and SecureString parameters",
    "kms:GenerateDataKey": "SSE-KMS report uploads ([report] s3_kms_key_id)",
    "glue:GetDatabase": "Athena reads the table definition as the caller",
    "glue:GetTable": "Athena reads the table definition as the caller",
    "s3:GetBucketLocation": "Athena reads the trail and writes results as the caller",
    "s3:ListBucket": "Athena reads the trail and writes results as the caller",
    "s3:GetObject": "Athena reads the trail and its results as the caller",
    "s3:PutObject": "Athena writes query results as the caller",
    "s3:AbortMultipartUpload": "Athena cleans up failed result uploads as the caller",
}
IMPLICIT_MEMBER = {
    "iam:GetAccountAuthorizationDetails": "operators take the --iam-snapshot for scan/report with this role",
}
# what runs inside member accounts through the audit role
MEMBER_PREFIXES = ("iam:", "access-analyzer:")
MEMBER_ACTIONS = {"cloudtrail:LookupEvents"}


def granted(path: Path) -> set[str]:
    template, errors = decode(path)
    assert not errors, errors
    actions: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("Effect") == "Allow" and "Action" in node:
                value = node["Action"]
                actions.update([value] if isinstance(value, str) else value)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for resource in template["Resources"].values():
        walk(resource.get("Properties", {}).get("Policies", []))
    return actions


@pytest.fixture(scope="module")
def calls() -> list[Call]:
    found = scan(REPO, SCANNED, EXCLUDED)
    assert not found.ambiguous, "name the client after its service or module: " + "; ".join(found.ambiguous)
    return found.calls


def where(calls: list[Call], action: str) -> str:
    return ", ".join(sorted({f"{c.file}:{c.line}" for c in calls if c.action == action}))


@pytest.mark.parametrize("template", [MONITOR, MEMBER], ids=lambda p: p.name)
def test_templates_pass_cfn_lint(template: Path) -> None:
    matches = lint_file(template)
    assert not matches, "\n".join(str(m) for m in matches)


def test_every_call_is_granted_to_the_monitor_role(calls: list[Call]) -> None:
    assert calls, "the scanner found no boto3 calls at all"
    missing = {c.action for c in calls} - granted(MONITOR)
    assert not missing, "add to deploy/cloudformation/monitor-role.yaml: " + "; ".join(
        f"{a} (called at {where(calls, a)})" for a in sorted(missing))


def test_monitor_role_grants_nothing_unused(calls: list[Call]) -> None:
    unused = granted(MONITOR) - {c.action for c in calls} - set(IMPLICIT_MONITOR)
    assert not unused, f"monitor-role.yaml grants actions no code calls: {sorted(unused)}"


def test_member_role_grants_exactly_the_member_account_reads(calls: list[Call]) -> None:
    member_calls = {c.action for c in calls if c.action.startswith(MEMBER_PREFIXES) or c.action in MEMBER_ACTIONS}
    have = granted(MEMBER)
    assert member_calls - have == set(), f"add to member-audit-role.yaml: {sorted(member_calls - have)}"
    assert have - member_calls - set(IMPLICIT_MEMBER) == set()
    assert all(a.split(":")[0] in ("iam", "access-analyzer", "cloudtrail") for a in have)
    assert not any(a.startswith("iam:") and not a.split(":")[1].startswith(("Get", "List", "Generate")) for a in have)


def test_member_role_trust_requires_the_external_id() -> None:
    template, _ = decode(MEMBER)
    statements = template["Resources"]["AuditRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statements
    for st in statements:
        assert st["Action"] == "sts:AssumeRole"
        assert st["Condition"]["StringEquals"]["sts:ExternalId"] == {"Ref": "ExternalId"}
        assert "*" not in str(st["Principal"])
    assert template["Parameters"]["ExternalId"]["NoEcho"] is True


def readme_source_policies() -> dict[str, set[str]]:
    """Source type -> the actions its policy in README "IAM permissions" allows."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## IAM permissions\n", 1)[1].split("\n## ", 1)[0]
    policies: dict[str, set[str]] = {}
    for source, block in re.findall(r"^`(\w+)` source[^\n]*(?:\n[^`\n][^\n]*)*\n\n```json\n(.*?)```", section, re.S | re.M):
        actions: set[str] = set()
        for st in json.loads(block)["Statement"]:
            if st["Effect"] == "Allow":
                actions.update([st["Action"]] if isinstance(st["Action"], str) else st["Action"])
        policies[source] = actions
    return policies


def test_readme_policy_of_each_source_grants_what_its_collector_calls(calls: list[Call]) -> None:
    # the README's per-source policies are what people paste: an action missing there is an
    # AccessDenied on the first cycle
    policies = readme_source_policies()
    assert set(policies) == {"s3", "cloudwatch_logs", "lookup_events"}
    for source, allowed in policies.items():
        module = f"monitor/collectors/{source}.py"
        needed = {c.action for c in calls if c.file == module}
        assert needed, f"no AWS calls found in {module}"
        assert needed <= allowed, f"README IAM permissions, `{source}` source: add {sorted(needed - allowed)}"
    assert not [c for c in calls if c.file == "monitor/collectors/local.py"]  # "no AWS permissions"


def test_the_scanner_sees_the_shapes_collectors_use(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "collectors").mkdir(parents=True)
    (pkg / "pipeline.py").write_text(
        "from monitor.aws import client\n"
        "def run(cfg):\n"
        "    s3 = client('s3', cfg.aws)\n"
        "    for page in s3.get_paginator('list_objects_v2').paginate(Bucket='b'):\n"
        "        s3.head_object(Bucket='b', Key='k')\n"
        "    logs = client('logs', cfg.aws)\n"
        "    cloudtrail_client = client('cloudtrail', cfg.aws)\n"
        "    df.query('x > 1')\n"  # not a client
    )
    (pkg / "collectors" / "cloudtrail_lake.py").write_text(
        "def go(client):\n    return client.start_query(QueryStatement='q')\n")
    (pkg / "collectors" / "mystery.py").write_text(
        "def go(client):\n    return client.start_query(QueryStatement='q')\n")
    (pkg / "state.py").write_text(
        "import boto3\n"
        "class S:\n"
        "    def __init__(self):\n"
        "        self._t = boto3.client('dynamodb')\n"
        "    def get(self):\n"
        "        self._t.get_waiter('table_exists').wait(TableName='t')\n"
        "        return self._t.get_item(TableName='t', Key={})\n"
        "def secrets(session, kind):\n"
        "    if kind:\n"
        "        c = _client(session, 'secretsmanager')\n"
        "        c.get_secret_value(SecretId='s')\n"
        "    else:\n"
        "        c = _client(session, 'ssm')\n"
        "        c.get_parameter(Name='p')\n"
    )
    found = scan(tmp_path, ["pkg"])
    assert {c.action for c in found.calls} == {
        "s3:ListBucket", "s3:GetObject", "cloudtrail:StartQuery", "dynamodb:DescribeTable", "dynamodb:GetItem",
        "secretsmanager:GetSecretValue", "ssm:GetParameter",
    }
    assert found.ambiguous == ["pkg/collectors/mystery.py: client.start_query could be any of ['cloudtrail', 'logs']"]

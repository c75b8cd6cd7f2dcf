"""The classic two-account cross-account scenario, provisioned through boto3 (against moto in the demo).

Account 111122223333 owns `/cross-account/CrossAccountDeveloperRole`, trusted by
`arn:aws:iam::444455556666:user/DevUser` under an `sts:ExternalId` condition, with the AWS
managed ReadOnlyAccess policy plus a custom S3DevAccess policy; around it the roles the trail
generator's population uses (people, SSO, CI via GitHub OIDC, Lambda and EC2 service roles),
a `BreakGlassRole` (AdministratorAccess, trusted to one named user with MFA) and one role nobody
ever assumes. It also holds the organisation's CloudTrail: the trail
bucket (both accounts deliver there) and the CloudWatch Logs group `aws-cloudtrail-logs`.

moto keeps one backend per account; the `x-moto-account-id` header picks it per request.
A `rolewatch` audit user in 111122223333 gets an access key, so a process that signs with it
lands in that account without the header (moto maps known access keys to their account) —
the way rolewatch would run with audit credentials in a real security account.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from monitor.aws import client as aws_client
from monitor.aws import session as aws_session
from monitor.config import AwsConfig
from monitor.demo import synth

OWNER, DEV_ACCOUNT = synth.DEMO_ACCOUNTS
TRAIL_BUCKET = "acme-org-cloudtrail-logs"
LOG_GROUP = "aws-cloudtrail-logs"
TRAIL_NAME = "acme-org-trail"
AUDIT_USER = "rolewatch"
DEV_ROLE_ARN = synth.role_arn(OWNER, synth.DEV_ROLE_NAME, synth.DEV_ROLE_PATH)
DEV_USER_ARN = f"arn:aws:iam::{DEV_ACCOUNT}:user/{synth.DEV_USER}"
BREAK_GLASS_USER_ARN = f"arn:aws:iam::{OWNER}:user/{synth.BREAK_GLASS_USER}"
ADMINISTRATOR_ACCESS = "arn:aws:iam::aws:policy/AdministratorAccess"
READ_ONLY_ACCESS = "arn:aws:iam::aws:policy/ReadOnlyAccess"

S3_DEV_ACCESS = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "ListDevBuckets", "Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
         "Resource": "arn:aws:s3:::acme-dev-*"},
        {"Sid": "ReadWriteDevObjects", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject",
                                                                     "s3:DeleteObject"],
         "Resource": "arn:aws:s3:::acme-dev-*/*"},
    ],
}


@dataclass
class DemoScenario:
    owner_account: str
    dev_account: str
    region: str
    trail_bucket: str
    log_group: str
    dev_role_arn: str
    unused_role_arn: str
    roles: dict[str, list[str]]  # account -> role ARNs created
    audit_credentials: dict[str, str] = field(repr=False, default_factory=dict)  # never print


def account_client(service: str, aws: AwsConfig, account: str, sess: Any = None) -> Any:
    """A boto3 client whose every request goes to `account`'s moto backend.

    Pass one `sess` to several calls: a session caches the service models, which are most of
    the cost of making a client.
    """
    c = aws_client(service, aws, sess=sess)

    def _pin_account(request: Any, **_: Any) -> None:
        request.headers["x-moto-account-id"] = account

    c.meta.events.register("before-sign.*.*", _pin_account)
    return c


def _statement(principal: dict[str, Any], action: str, condition: dict[str, Any] | None = None) -> dict[str, Any]:
    st: dict[str, Any] = {"Effect": "Allow", "Principal": principal, "Action": action}
    if condition:
        st["Condition"] = condition
    return st


def trust_policies(account: str, external_id: str) -> dict[str, tuple[str, dict[str, Any], str]]:
    """Role ARN -> (path, trust policy, description) for one account of the scenario."""
    root = {"AWS": f"arn:aws:iam::{account}:root"}
    oidc = f"arn:aws:iam::{account}:oidc-provider/token.actions.githubusercontent.com"
    saml = f"arn:aws:iam::{account}:saml-provider/AWSSSO_demo_DO_NOT_DELETE"
    mfa = {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
    roles: dict[str, tuple[str, dict[str, Any], str]] = {
        "AdminRole": ("/", _statement(root, "sts:AssumeRole", mfa), "day-to-day administration (MFA)"),
        "ReadOnlyAuditRole": ("/", _statement(root, "sts:AssumeRole"), "read-only audits"),
        "DeployRole": ("/", _statement({"AWS": synth.role_arn(account, "GitHubActionsRole")}, "sts:AssumeRole"),
                       "deployments, chained from CI"),
        "GitHubActionsRole": ("/", _statement({"Federated": oidc}, "sts:AssumeRoleWithWebIdentity", {
            "StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"},
            "StringLike": {"token.actions.githubusercontent.com:sub": "repo:acme/*:ref:refs/heads/main"}}),
            "GitHub Actions OIDC"),
        synth.SSO_ROLE_NAME: (synth.SSO_ROLE_PATH, _statement({"Federated": saml}, "sts:AssumeRoleWithSAML", {
            "StringEquals": {"SAML:aud": "https://signin.aws.amazon.com/saml"}}), "IAM Identity Center"),
        "payments-lambda-role": ("/service-role/", _statement({"Service": "lambda.amazonaws.com"},
                                                              "sts:AssumeRole"), "Lambda execution"),
        "app-ec2-instance-role": ("/", _statement({"Service": "ec2.amazonaws.com"}, "sts:AssumeRole"),
                                  "EC2 instance profile"),
        synth.UNUSED_ROLE: ("/", _statement({"AWS": f"arn:aws:iam::{DEV_ACCOUNT}:root"}, "sts:AssumeRole"),
                            "old backup job; nobody uses it any more"),
    }
    if account == OWNER:
        roles[synth.DEV_ROLE_NAME] = (synth.DEV_ROLE_PATH, _statement(
            {"AWS": DEV_USER_ARN}, "sts:AssumeRole", {"StringEquals": {"sts:ExternalId": external_id}}),
            "developers from 444455556666")
        # one named person, with MFA: no whole-account trust for the role that can do anything
        roles[synth.BREAK_GLASS_ROLE] = ("/", _statement({"AWS": BREAK_GLASS_USER_ARN}, "sts:AssumeRole", mfa),
                                         "break-glass: emergency administration (MFA)")
    out = {}
    for name, (path, statement, description) in roles.items():
        doc = {"Version": "2012-10-17", "Statement": [statement]}
        out[synth.role_arn(account, name, path)] = (path, doc, description)
    return out


def provision(aws: AwsConfig, *, seed: int = 7) -> DemoScenario:
    """Create both accounts' IAM, the trail bucket, the log group and the trail; return what was made."""
    ext_id = synth.external_id(seed)
    sess = aws_session(aws)
    roles: dict[str, list[str]] = {}
    # before the roles: IAM refuses a trust policy naming a user that does not exist
    account_client("iam", aws, OWNER, sess).create_user(UserName=synth.BREAK_GLASS_USER)
    for account in (OWNER, DEV_ACCOUNT):
        iam = account_client("iam", aws, account, sess)
        roles[account] = []
        for arn, (path, doc, description) in trust_policies(account, ext_id).items():
            name = arn.rsplit("/", 1)[1]
            iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=json.dumps(doc),
                            Description=description, MaxSessionDuration=43200 if name == "ReadOnlyAuditRole" else 3600,
                            Tags=[{"Key": "owner", "Value": "platform-team"}])
            roles[account].append(arn)
    owner_iam = account_client("iam", aws, OWNER, sess)
    dev_role = synth.DEV_ROLE_NAME
    owner_iam.attach_role_policy(RoleName=dev_role, PolicyArn=READ_ONLY_ACCESS)
    policy = owner_iam.create_policy(PolicyName="S3DevAccess", PolicyDocument=json.dumps(S3_DEV_ACCESS),
                                     Description="read/write on the dev buckets")
    owner_iam.attach_role_policy(RoleName=dev_role, PolicyArn=policy["Policy"]["Arn"])
    owner_iam.attach_role_policy(RoleName="ReadOnlyAuditRole", PolicyArn=READ_ONLY_ACCESS)
    owner_iam.attach_role_policy(RoleName=synth.BREAK_GLASS_ROLE, PolicyArn=ADMINISTRATOR_ACCESS)

    dev_iam = account_client("iam", aws, DEV_ACCOUNT, sess)
    dev_iam.create_user(UserName=synth.DEV_USER)
    dev_iam.put_user_policy(UserName=synth.DEV_USER, PolicyName="AssumeCrossAccountDeveloperRole",
                            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                                {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": DEV_ROLE_ARN}]}))

    # the audit identity rolewatch runs as, in the security (owner) account
    owner_iam.create_user(UserName=AUDIT_USER)
    owner_iam.attach_user_policy(UserName=AUDIT_USER, PolicyArn=READ_ONLY_ACCESS)
    key = owner_iam.create_access_key(UserName=AUDIT_USER)["AccessKey"]

    s3 = account_client("s3", aws, OWNER, sess)
    if aws.region == "us-east-1":
        s3.create_bucket(Bucket=TRAIL_BUCKET)
    else:
        s3.create_bucket(Bucket=TRAIL_BUCKET, CreateBucketConfiguration={"LocationConstraint": aws.region})
    s3.put_bucket_policy(Bucket=TRAIL_BUCKET, Policy=json.dumps(_trail_bucket_policy()))
    logs = account_client("logs", aws, OWNER, sess)
    logs.create_log_group(logGroupName=LOG_GROUP)
    logs.put_retention_policy(logGroupName=LOG_GROUP, retentionInDays=14)
    log_group_arn = f"arn:aws:logs:{aws.region}:{OWNER}:log-group:{LOG_GROUP}:*"
    cloudtrail = account_client("cloudtrail", aws, OWNER, sess)
    cloudtrail.create_trail(Name=TRAIL_NAME, S3BucketName=TRAIL_BUCKET, IsMultiRegionTrail=True,
                            CloudWatchLogsLogGroupArn=log_group_arn,
                            CloudWatchLogsRoleArn=f"arn:aws:iam::{OWNER}:role/CloudTrailToCloudWatchLogs")
    cloudtrail.start_logging(Name=TRAIL_NAME)
    return DemoScenario(owner_account=OWNER, dev_account=DEV_ACCOUNT, region=aws.region, trail_bucket=TRAIL_BUCKET,
                        log_group=LOG_GROUP, dev_role_arn=DEV_ROLE_ARN,
                        unused_role_arn=synth.role_arn(OWNER, synth.UNUSED_ROLE), roles=roles,
                        audit_credentials={"aws_access_key_id": key["AccessKeyId"],
                                           "aws_secret_access_key": key["SecretAccessKey"]})


def _trail_bucket_policy() -> dict[str, Any]:
    accounts = [f"arn:aws:s3:::{TRAIL_BUCKET}/AWSLogs/{a}/*" for a in (OWNER, DEV_ACCOUNT)]
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "AWSCloudTrailAclCheck", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
         "Action": "s3:GetBucketAcl", "Resource": f"arn:aws:s3:::{TRAIL_BUCKET}"},
        {"Sid": "AWSCloudTrailWrite", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
         "Action": "s3:PutObject", "Resource": accounts,
         "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control"}}},
    ]}

"""likely_cause on realistic failed records: each case says which evaluation rule decides it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from monitor.events.normalise import normalise
from monitor.policy.likely_cause import (
    DATE_WINDOW,
    EXTERNAL_ID,
    MFA,
    NOT_TRUSTED,
    ROLE_MISSING,
    SOURCE_IP,
    UNDETERMINED,
    likely_cause,
    likely_cause_in,
)
from monitor.posture.model import Posture, RoleInfo

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ROLE_ACCOUNT = "111111111111"
ROLE_ARN = f"arn:aws:iam::{ROLE_ACCOUNT}:role/Deploy"
USER = "arn:aws:iam::222222222222:user/alice"


def failed_record(caller_arn: str = USER, *, ip: str = "203.0.113.9", mfa: str | None = "false",
                  identity_type: str = "IAMUser", request: dict | None = None) -> dict[str, Any]:
    """The shape of a real failed AssumeRole: no requestParameters, the role only in errorMessage."""
    ident: dict[str, Any] = {"type": identity_type, "arn": caller_arn, "accountId": caller_arn.split(":")[4],
                             "principalId": "AIDAEXAMPLE"}
    if mfa is not None:
        ident["sessionContext"] = {"attributes": {"mfaAuthenticated": mfa, "creationDate": "2026-06-01T11:00:00Z"}}
    rec = {
        "eventVersion": "1.08", "eventID": "e1", "eventTime": "2026-06-01T11:30:00Z", "eventName": "AssumeRole",
        "eventSource": "sts.amazonaws.com", "awsRegion": "us-east-1", "sourceIPAddress": ip,
        "userIdentity": ident, "errorCode": "AccessDenied",
        "errorMessage": f"User: {caller_arn} is not authorized to perform: sts:AssumeRole on resource: {ROLE_ARN}",
        "requestParameters": request, "recipientAccountId": caller_arn.split(":")[4],
    }
    return normalise(rec)


def role(*statements: dict[str, Any]) -> RoleInfo:
    return RoleInfo(arn=ROLE_ARN, name="Deploy", account_id=ROLE_ACCOUNT,
                    trust_policy={"Version": "2012-10-17", "Statement": list(statements)})


def allow(principal: Any, condition: dict | None = None, action: str = "sts:AssumeRole") -> dict[str, Any]:
    st: dict[str, Any] = {"Effect": "Allow", "Principal": principal, "Action": action}
    if condition:
        st["Condition"] = condition
    return st


ALICE = {"AWS": USER}
CASES = [
    ("no statement's principal matches the caller -> not trusted",
     failed_record(), role(allow({"AWS": "arn:aws:iam::333333333333:root"})), NOT_TRUSTED),
    ("account root principal delegates to the caller's account; only ExternalId can fail",
     failed_record(), role(allow({"AWS": "222222222222"}, {"StringEquals": {"sts:ExternalId": "s3cr3t"}})), EXTERNAL_ID),
    ("trusted principal, only condition ExternalId, request not recorded -> ExternalId",
     failed_record(), role(allow(ALICE, {"StringEquals": {"sts:ExternalId": "s3cr3t"}})), EXTERNAL_ID),
    ("recorded request without externalId: key absent -> StringEquals false",
     failed_record(request={"roleArn": ROLE_ARN, "roleSessionName": "s"}),
     role(allow(ALICE, {"StringEquals": {"sts:ExternalId": "s3cr3t"}})), EXTERNAL_ID),
    ("Bool MultiFactorAuthPresent with a session that had no MFA (and no serial sent) -> MFA",
     failed_record(request={"roleArn": ROLE_ARN, "roleSessionName": "s"}),
     role(allow(ALICE, {"Bool": {"aws:MultiFactorAuthPresent": "true"}})), MFA),
    ("MFA condition, request unrecorded: it is the only thing that can have failed -> MFA",
     failed_record(), role(allow(ALICE, {"Bool": {"aws:MultiFactorAuthPresent": "true"}})), MFA),
    ("MFA present but NumericLessThan MultiFactorAuthAge unknowable -> MFA (too old)",
     failed_record(mfa="true"), role(allow(ALICE, {"Bool": {"aws:MultiFactorAuthPresent": "true"},
                                                   "NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}})), MFA),
    ("DateLessThan aws:CurrentTime in the past at event time -> date window",
     failed_record(), role(allow(ALICE, {"DateLessThan": {"aws:CurrentTime": "2026-05-01T00:00:00Z"}})), DATE_WINDOW),
    ("DateGreaterThan aws:CurrentTime in the future at event time -> date window",
     failed_record(), role(allow(ALICE, {"DateGreaterThan": {"aws:CurrentTime": "2026-07-01T00:00:00Z"}})), DATE_WINDOW),
    ("IpAddress aws:SourceIp excludes the caller's address -> source IP",
     failed_record(ip="198.51.100.1"), role(allow(ALICE, {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}})), SOURCE_IP),
    ("NotIpAddress lists the caller's network -> source IP",
     failed_record(), role(allow(ALICE, {"NotIpAddress": {"aws:SourceIp": ["203.0.113.0/24"]}})), SOURCE_IP),
    ("IP allowed but ExternalId unknown: the known-true clause is not the cause",
     failed_record(), role(allow(ALICE, {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"},
                                         "StringEquals": {"sts:ExternalId": "x"}})), EXTERNAL_ID),
    ("definite failure wins within a statement: window expired while ExternalId unknown",
     failed_record(), role(allow(ALICE, {"DateLessThan": {"aws:CurrentTime": "2026-01-01T00:00:00Z"},
                                         "StringEquals": {"sts:ExternalId": "x"}})), DATE_WINDOW),
    ("two candidate statements failing for different reasons -> undetermined",
     failed_record(), role(allow(ALICE, {"StringEquals": {"sts:ExternalId": "x"}}),
                           allow(ALICE, {"Bool": {"aws:MultiFactorAuthPresent": "true"}})), UNDETERMINED),
    ("a statement with no conditions admits the caller: denial came from elsewhere -> undetermined",
     failed_record(), role(allow(ALICE)), UNDETERMINED),
    ("ArnLike aws:PrincipalArn excluding the caller -> not trusted",
     failed_record(), role(allow({"AWS": "222222222222"},
                                 {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::222222222222:role/ci-*"}})), NOT_TRUSTED),
    ("an unmodelled key (aws:PrincipalOrgID unknown + tag) mixed in -> undetermined",
     failed_record(), role(allow(ALICE, {"StringEquals": {"aws:RequestTag/project": "x"}})), UNDETERMINED),
    ("explicit Deny for the caller overrides any Allow -> not trusted",
     failed_record(), role(allow(ALICE), {"Effect": "Deny", "Principal": ALICE, "Action": "sts:AssumeRole"}),
     NOT_TRUSTED),
    ("statement only for AssumeRoleWithSAML does not apply to AssumeRole -> not trusted",
     failed_record(), role(allow(ALICE, action="sts:AssumeRoleWithSAML")), NOT_TRUSTED),
    ("role principal matches the caller's assumed-role session (path-insensitive)",
     failed_record("arn:aws:sts::222222222222:assumed-role/ci/run-1", identity_type="AssumedRole"),
     role(allow({"AWS": "arn:aws:iam::222222222222:role/build/ci"}, {"StringEquals": {"sts:ExternalId": "x"}})),
     EXTERNAL_ID),
    ("a different role in the same account is not the caller -> not trusted",
     failed_record("arn:aws:sts::222222222222:assumed-role/other/run-1", identity_type="AssumedRole"),
     role(allow({"AWS": "arn:aws:iam::222222222222:role/ci"})), NOT_TRUSTED),
    ("service principal trust does not admit an IAM user -> not trusted",
     failed_record(), role(allow({"Service": "ec2.amazonaws.com"})), NOT_TRUSTED),
    ("deleted principal shown as unique id never matches a live caller -> not trusted",
     failed_record(), role(allow({"AWS": "AIDAOLDDELETEDUSER"})), NOT_TRUSTED),
    ("IfExists ExternalId with no recorded request: could still pass -> undetermined is not claimed",
     failed_record(request={"roleArn": ROLE_ARN, "roleSessionName": "s"}),
     role(allow(ALICE, {"StringEqualsIfExists": {"sts:ExternalId": "x"}})), UNDETERMINED),
]


@pytest.mark.parametrize(("row", "the_role", "expected"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_likely_cause(row: dict, the_role: RoleInfo, expected: str) -> None:
    assert likely_cause(row, the_role, NOW) == expected


def test_role_missing_and_non_access_denied() -> None:
    row = failed_record()
    assert likely_cause(row, None, NOW) == ROLE_MISSING
    throttled = dict(row, error_code="Throttling")
    assert likely_cause(throttled, None, NOW) == UNDETERMINED


def test_accepts_a_dataframe_row_with_missing_values() -> None:
    from monitor.events.schema import frame_from_rows

    row = frame_from_rows([failed_record()]).iloc[0]
    assert isinstance(row, pd.Series)
    assert likely_cause(row, role(allow(ALICE, {"StringEquals": {"sts:ExternalId": "x"}})), NOW) == EXTERNAL_ID


def test_role_owner_copy_knows_only_the_account() -> None:
    # the role owner's copy of a cross-account call: AWSAccount identity, no ARN
    row = failed_record()
    row.update(principal_arn=None, principal_type="AWSAccount", principal_account_id="222222222222")
    # a specific-user principal in the right account might or might not be the caller
    assert likely_cause(row, role(allow(ALICE)), NOW) == UNDETERMINED
    # a principal in another account certainly is not
    assert likely_cause(row, role(allow({"AWS": "arn:aws:iam::444444444444:user/bob"})), NOW) == NOT_TRUSTED


def test_likely_cause_in_posture_distinguishes_unknown_accounts() -> None:
    row = failed_record()
    posture = Posture(roles={}, accounts=[ROLE_ACCOUNT])
    assert likely_cause_in(row, posture, NOW) == ROLE_MISSING
    assert likely_cause_in(row, Posture(roles={}, accounts=["999999999999"]), NOW) is None
    r = role(allow({"AWS": "arn:aws:iam::333333333333:root"}))
    r.arn = f"arn:aws:iam::{ROLE_ACCOUNT}:role/team/Deploy"  # path in the inventory, none in the error message
    assert likely_cause_in(row, Posture(roles={r.arn: r}, accounts=[ROLE_ACCOUNT]), NOW) == NOT_TRUSTED

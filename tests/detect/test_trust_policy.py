from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.config import TrustPolicyConfig
from monitor.detect.trust_policy import trust_policy_findings
from monitor.posture.model import Posture, RoleInfo
from monitor.posture.snapshot import load_snapshot

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ME = "111111111111"
ORG_PEER = "222222222222"
VENDOR = "999999999999"
SNAPSHOT = Path(__file__).parents[1] / "posture" / "fixtures" / "authorization_details_111111111111.json"


def make_role(statements: list[dict[str, Any]], *, attached: list[str] | None = None, max_session: int = 3600,
              name: str = "R", path: str = "/") -> RoleInfo:
    return RoleInfo(arn=f"arn:aws:iam::{ME}:role{path}{name}", name=name, account_id=ME, path=path,
                    max_session_duration=max_session, attached_policies=attached or [],
                    trust_policy={"Version": "2012-10-17", "Statement": statements})


def allow(principal: Any, condition: dict | None = None) -> dict[str, Any]:
    st: dict[str, Any] = {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}
    if condition:
        st["Condition"] = condition
    return st


def checks(role: RoleInfo, cfg: TrustPolicyConfig | None = None, org: list[str] | None = None) -> dict[str, Any]:
    posture = Posture(roles={role.arn: role}, accounts=[ME], organization_accounts=org or [])
    return {f.details["check"]: f for f in trust_policy_findings(posture, cfg or TrustPolicyConfig(), NOW)}


CFG_ORG = TrustPolicyConfig(organization_accounts=[ME, ORG_PEER], trusted_accounts=["888888888888"])

CASES = [
    ("third-party role ARN without ExternalId", [allow({"AWS": f"arn:aws:iam::{VENDOR}:role/scanner"})], None,
     {"cross_account_without_external_id"}),
    ("third-party with ExternalId is fine", [allow({"AWS": f"arn:aws:iam::{VENDOR}:role/scanner"},
                                                   {"StringEquals": {"sts:ExternalId": "x"}})], None, set()),
    ("ExternalId only under IfExists protects nothing",
     [allow({"AWS": f"arn:aws:iam::{VENDOR}:role/scanner"}, {"StringEqualsIfExists": {"sts:ExternalId": "x"}})], None,
     {"cross_account_without_external_id"}),
    ("account in the Organization needs no ExternalId", [allow({"AWS": f"arn:aws:iam::{ORG_PEER}:role/ci"})], CFG_ORG,
     set()),
    ("account outside Organization and trusted_accounts",
     [allow({"AWS": f"arn:aws:iam::{VENDOR}:role/x"}, {"StringEquals": {"sts:ExternalId": "x"}})], CFG_ORG,
     {"untrusted_account"}),
    ("trusted_accounts entry is not untrusted (still needs ExternalId)",
     [allow({"AWS": "arn:aws:iam::888888888888:role/x"})], CFG_ORG, {"cross_account_without_external_id"}),
    ("aws:PrincipalOrgID bounds cross-account trust",
     [allow({"AWS": f"arn:aws:iam::{VENDOR}:root"}, {"StringEquals": {"aws:PrincipalOrgID": "o-abc"}})], CFG_ORG,
     set()),
    ("Principal * without condition is critical", [allow("*")], None, {"wildcard_principal"}),
    ("AWS * with only an ExternalId is still open", [allow({"AWS": "*"}, {"StringEquals": {"sts:ExternalId": "x"}})],
     None, {"wildcard_principal"}),
    ("AWS * restricted by aws:PrincipalOrgID", [allow({"AWS": "*"}, {"StringEquals": {"aws:PrincipalOrgID": "o-1"}})],
     None, set()),
    ("AWS * with a negated condition does not restrict",
     [allow({"AWS": "*"}, {"StringNotEquals": {"aws:PrincipalAccount": VENDOR}})], None, {"wildcard_principal"}),
    ("same-account root trust", [allow({"AWS": f"arn:aws:iam::{ME}:root"})], None, {"account_root_trust"}),
    ("bare account id is whole-account trust", [allow({"AWS": ME})], None, {"account_root_trust"}),
    ("root trust narrowed by aws:PrincipalArn", [allow({"AWS": ME}, {"ArnLike": {"aws:PrincipalArn": "arn:*"}})], None,
     set()),
    ("specific same-account principal is fine", [allow({"AWS": f"arn:aws:iam::{ME}:role/ci"})], None, set()),
    ("service principal is fine", [allow({"Service": "lambda.amazonaws.com"})], None, set()),
    ("Allow with NotPrincipal trusts everyone else",
     [{"Effect": "Allow", "NotPrincipal": {"AWS": f"arn:aws:iam::{ME}:user/x"}, "Action": "sts:AssumeRole"}], None,
     {"wildcard_principal"}),
    ("Deny statements are not trust", [{"Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole"}], None, set()),
]


@pytest.mark.parametrize(("statements", "cfg", "expected"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_checks(statements: list[dict], cfg: TrustPolicyConfig | None, expected: set[str]) -> None:
    assert set(checks(make_role(statements), cfg)) == expected


def test_wildcard_severity_and_details() -> None:
    f = checks(make_role([allow("*")]))["wildcard_principal"]
    assert f.severity == "critical" and f.details["principals"] == ["*"] and f.details["statements"] == ["Statement[0]"]
    f = checks(make_role([allow({"AWS": "*"}, {"Bool": {"aws:SecureTransport": "true"}})]))["wildcard_principal"]
    assert f.severity == "high"


def test_privileged_role_without_mfa() -> None:
    admin = "arn:aws:iam::aws:policy/AdministratorAccess"
    role = make_role([allow({"AWS": f"arn:aws:iam::{ME}:user/alice"})], attached=[admin])
    f = checks(role)["privileged_without_mfa"]
    assert f.severity == "high" and f.details["privileged_policies"] == [admin]
    with_mfa = make_role([allow({"AWS": f"arn:aws:iam::{ME}:user/alice"},
                                {"Bool": {"aws:MultiFactorAuthPresent": "true"}})], attached=[admin])
    assert "privileged_without_mfa" not in checks(with_mfa)
    # BoolIfExists passes when the key is absent (long-term keys): no protection
    if_exists = make_role([allow({"AWS": f"arn:aws:iam::{ME}:user/alice"},
                                 {"BoolIfExists": {"aws:MultiFactorAuthPresent": "true"}})], attached=[admin])
    assert "privileged_without_mfa" in checks(if_exists)
    # not privileged, or only a service may assume it: nothing to say
    assert "privileged_without_mfa" not in checks(make_role([allow({"AWS": f"arn:aws:iam::{ME}:user/a"})],
                                                            attached=["arn:aws:iam::aws:policy/ReadOnlyAccess"]))
    assert not checks(make_role([allow({"Service": "ec2.amazonaws.com"})], attached=[admin]))


@pytest.mark.parametrize(("end", "warn_days", "expected"), [
    pytest.param(NOW - timedelta(seconds=1), 14, ("expired", "low"), id="ended a second ago"),
    pytest.param(NOW, 14, ("expired", "low"), id="ends exactly now: DateLessThan is already false"),
    pytest.param(NOW + timedelta(days=14), 14, ("expiring", "medium"), id="ends exactly at the warning horizon"),
    pytest.param(NOW + timedelta(days=14, seconds=1), 14, None, id="just beyond the warning horizon"),
    pytest.param(NOW + timedelta(days=1), 0, None, id="warning disabled"),
])
def test_date_window(end: datetime, warn_days: int, expected: tuple[str, str] | None) -> None:
    role = make_role([allow({"AWS": f"arn:aws:iam::{ME}:user/a"},
                            {"DateLessThan": {"aws:CurrentTime": end.strftime("%Y-%m-%dT%H:%M:%SZ")}})])
    found = checks(role, TrustPolicyConfig(expiry_warning_days=warn_days)).get("date_window")
    if expected is None:
        assert found is None
    else:
        assert (found.details["state"], found.severity) == expected


def test_max_session_duration_ceiling() -> None:
    cfg = TrustPolicyConfig(max_session_duration_seconds=3600)
    assert "max_session_duration" not in checks(make_role([allow({"Service": "x.amazonaws.com"})]), cfg)
    f = checks(make_role([allow({"Service": "x.amazonaws.com"})], max_session=43200), cfg)["max_session_duration"]
    assert f.details["max_session_duration"] == 43200 and f.details["ceiling"] == 3600


def test_one_finding_per_role_and_check_with_stable_fingerprints() -> None:
    role = make_role([allow({"AWS": f"arn:aws:iam::{VENDOR}:role/a"}), allow({"AWS": f"arn:aws:iam::{VENDOR}:role/b"})])
    posture = Posture(roles={role.arn: role}, accounts=[ME])
    first = trust_policy_findings(posture, TrustPolicyConfig(), NOW)
    later = trust_policy_findings(posture, TrustPolicyConfig(), NOW + timedelta(days=1))
    assert [f.details["check"] for f in first] == ["cross_account_without_external_id"]
    assert first[0].details["principals"] == [f"arn:aws:iam::{VENDOR}:role/a", f"arn:aws:iam::{VENDOR}:role/b"]
    assert [f.fingerprint for f in first] == [f.fingerprint for f in later]


def test_snapshot_end_to_end_and_disabled() -> None:
    posture = load_snapshot(SNAPSHOT)
    notices: list[str] = []
    found = {(f.details["role_name"], f.details["check"])
             for f in trust_policy_findings(posture, TrustPolicyConfig(), NOW, notices)}
    assert found == {
        ("VendorAudit", "cross_account_without_external_id"),
        ("VendorAudit", "account_root_trust"),
        ("Admin", "privileged_without_mfa"),
        ("Contractor", "date_window"),
    }
    assert trust_policy_findings(posture, TrustPolicyConfig(enabled=False), NOW) == []


def test_unreadable_trust_policy_is_a_notice() -> None:
    role = make_role([])
    role.trust_policy = {"Statement": [{"Effect": "Perhaps"}]}
    notices: list[str] = []
    assert trust_policy_findings(Posture(roles={role.arn: role}, accounts=[ME]), TrustPolicyConfig(), NOW,
                                 notices) == []
    assert role.arn in notices[0]

"""The trust summariser: requirements are what a request cannot get around."""

from __future__ import annotations

import pytest

from monitor.redact import redact_text
from monitor.report.trust import admits_other_account, summarise_trust


def _one(condition: dict | None = None, principal: object = None, **extra: object) -> dict:
    st = {"Effect": "Allow", "Principal": principal or {"AWS": "arn:aws:iam::444455556666:root"},
          "Action": "sts:AssumeRole", **extra}
    if condition:
        st["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [st]}


@pytest.mark.parametrize(("condition", "ext", "mfa"), [
    ({"StringEquals": {"sts:ExternalId": "abcd-1234"}}, True, False),
    # IfExists admits a request that carries no ExternalId at all: not a requirement
    ({"StringEqualsIfExists": {"sts:ExternalId": "abcd-1234"}}, False, False),
    ({"StringNotEquals": {"sts:ExternalId": "abcd-1234"}}, False, False),
    ({"Bool": {"aws:MultiFactorAuthPresent": "true"}}, False, True),
    ({"Bool": {"aws:MultiFactorAuthPresent": True}}, False, True),
    ({"BoolIfExists": {"aws:MultiFactorAuthPresent": "true"}}, False, False),
    ({"Null": {"aws:MultiFactorAuthPresent": "false"}}, False, True),
    ({"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}}, False, True),
    (None, False, False),
])
def test_requirements(condition: dict | None, ext: bool, mfa: bool) -> None:
    [g] = summarise_trust(_one(condition)).grants
    assert (g.external_id_required, g.mfa_required) == (ext, mfa)


def test_limits_and_other_keys_never_show_values() -> None:
    s = summarise_trust(_one({
        "StringEquals": {"sts:ExternalId": "zz-secret-ext", "aws:PrincipalOrgID": "o-abc"},
        "NotIpAddress": {"aws:SourceIp": ["198.51.100.0/24", "192.0.2.0/24"]},
        "DateGreaterThan": {"aws:CurrentTime": "2026-01-01T00:00:00Z"},
        "DateLessThan": {"aws:CurrentTime": "2026-12-31T00:00:00Z"},
    }))
    [g] = s.grants
    assert g.source_ip == "not in 192.0.2.0/24, 198.51.100.0/24"
    assert g.date_window == "from 2026-01-01T00:00:00Z; until 2026-12-31T00:00:00Z"
    assert g.other_conditions == "StringEquals:aws:PrincipalOrgID"
    assert "zz-secret-ext" not in repr(s)
    # the ExternalId is now a known secret: masked wherever else it turns up
    assert redact_text("role session zz-secret-ext") == "role session ***"


def test_principal_kinds_and_cross_account() -> None:
    s = summarise_trust(_one(principal={"AWS": ["111122223333", "arn:aws:iam::111122223333:user/a", "*"],
                                        "Service": "ec2.amazonaws.com",
                                        "Federated": "arn:aws:iam::111122223333:saml-provider/Okta"}))
    assert [(g.principal, g.kind, g.principal_account_id) for g in s.grants] == [
        ("111122223333", "aws_account", "111122223333"),
        ("arn:aws:iam::111122223333:user/a", "aws_arn", "111122223333"),
        ("*", "any", None),
        ("ec2.amazonaws.com", "service", None),
        ("arn:aws:iam::111122223333:saml-provider/Okta", "federated", None),
    ]
    assert admits_other_account(s, "111122223333")  # the wildcard does
    same = summarise_trust(_one(principal={"AWS": "arn:aws:iam::111122223333:user/a"}))
    assert not admits_other_account(same, "111122223333")


def test_deny_notprincipal_and_unreadable() -> None:
    doc = _one()
    doc["Statement"].append({"Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole"})
    doc["Statement"].append({"Effect": "Allow", "NotPrincipal": {"AWS": "arn:aws:iam::1:user/x"},
                             "Action": "sts:*"})
    doc["Statement"].append({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject"})
    s = summarise_trust(doc)
    assert s.deny_statements == 1
    assert [g.kind for g in s.grants] == ["aws_account", "any"]
    assert s.notes == ["statement 2: NotPrincipal (admits everyone not listed)"]
    assert summarise_trust("{not json").notes[0].startswith("trust policy unreadable")
    assert summarise_trust({}).grants == []


def test_an_external_id_that_is_an_account_id_leaves_that_account_readable() -> None:
    # some vendors use the customer's (or their own) account ID as the ExternalId: masking it
    # would turn every ARN and account column of that account into `***` in reports and alerts
    from monitor.posture.model import Posture, RoleInfo
    from monitor.report.tables import Period, ReviewOptions, build_review
    from tests.report import org

    vendor = "777766665555"
    role = org.role_arn("GuessableExtIdRole")
    trust = _one({"StringEquals": {"sts:ExternalId": vendor}}, principal={"AWS": f"arn:aws:iam::{vendor}:root"})
    posture = Posture(roles={role: RoleInfo(role, "GuessableExtIdRole", org.PROD, trust_policy=trust)},
                      accounts=[org.PROD])
    review = build_review(org.events().iloc[0:0], posture, [], Period(org.SINCE, org.UNTIL), None,
                          ReviewOptions(), now=org.NOW)
    [row] = review.sections["trust"].to_dict("records")
    assert (row["principal"], row["external_id_required"]) == (f"arn:aws:iam::{vendor}:root", True)
    assert redact_text(f"arn:aws:sts::{vendor}:assumed-role/x/s") == f"arn:aws:sts::{vendor}:assumed-role/x/s"


def test_a_short_external_id_is_masked_under_its_key_but_leaves_role_names_readable() -> None:
    # `prod` as an ExternalId: masking it wherever it turns up would make `role/prod-deploy`
    # read `role/***-deploy` in every report and alert
    from monitor.posture.model import Posture, RoleInfo
    from monitor.redact import redact
    from monitor.report.tables import Period, ReviewOptions, build_review
    from tests.report import org

    role = org.role_arn("prod-deploy")
    trust = _one({"StringEquals": {"sts:ExternalId": "prod"}})
    posture = Posture(roles={role: RoleInfo(role, "prod-deploy", org.PROD, trust_policy=trust)},
                      accounts=[org.PROD])
    review = build_review(org.events().iloc[0:0], posture, [], Period(org.SINCE, org.UNTIL), None,
                          ReviewOptions(), now=org.NOW)
    [row] = review.sections["trust"].to_dict("records")
    assert row["external_id_required"] is True and role in row.values(), row
    assert redact_text(f"AssumeRole of {role} failed") == f"AssumeRole of {role} failed"

    # under its key the value is masked, in text and in structured documents alike
    assert redact_text('"requestParameters": {"externalId": "prod"}') == '"requestParameters": {"externalId": "***"}'
    assert redact_text("ExternalId=prod,") == "ExternalId=***"
    assert "'prod'" not in redact_text(f"policy {trust}")
    assert "prod\"" not in redact_text('{"sts:ExternalId": ["staging-x", "prod"]}')
    assert redact(trust)["Statement"][0]["Condition"] == {"StringEquals": {"sts:ExternalId": "***"}}

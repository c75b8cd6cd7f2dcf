from __future__ import annotations

import json
import urllib.parse

import pytest

from monitor.policy.model import PolicyError, PrincipalRef, parse_policy


def test_statement_as_object_and_scalar_values() -> None:
    doc = {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Principal": {"AWS": "111111111111"},
                                                  "Action": "sts:AssumeRole"}}
    policy = parse_policy(doc)
    assert len(policy.statements) == 1
    st = policy.statements[0]
    assert st.principals == [PrincipalRef("AWS", "111111111111")]
    assert st.actions == ["sts:AssumeRole"]
    assert st.principals[0].is_account_root and st.principals[0].account_id == "111111111111"


def test_principal_kinds_lists_and_conditions() -> None:
    doc = {"Statement": [{
        "Effect": "Allow",
        "Principal": {"AWS": ["arn:aws:iam::222222222222:root", "arn:aws:iam::222222222222:role/ci"],
                      "Service": "lambda.amazonaws.com",
                      "Federated": "arn:aws:iam::111111111111:saml-provider/okta"},
        "Action": ["sts:AssumeRole", "sts:TagSession"],
        "Condition": {"Bool": {"aws:MultiFactorAuthPresent": True}, "StringEquals": {"sts:ExternalId": "x"}},
    }]}
    st = parse_policy(doc).statements[0]
    kinds = sorted((p.kind, p.is_account_root) for p in st.principals)
    assert kinds == [("AWS", False), ("AWS", True), ("Federated", False), ("Service", False)]
    assert st.conditions["Bool"] == {"aws:MultiFactorAuthPresent": ["true"]}  # JSON true -> "true"
    assert st.condition_keys() == {"aws:multifactorauthpresent", "sts:externalid"}
    assert st.action_matches("STS:assumerole") and not st.action_matches("sts:AssumeRoleWithSAML")


def test_wildcards_and_not_principal_not_action() -> None:
    policy = parse_policy({"Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "sts:Assume*"},
        {"Effect": "Deny", "NotPrincipal": {"AWS": "arn:aws:iam::1:user/a"}, "NotAction": "sts:TagSession"},
    ]})
    allow, deny = policy.statements
    assert allow.principals[0].is_wildcard and allow.action_matches("sts:AssumeRoleWithWebIdentity")
    assert deny.principals is None and deny.not_principals == [PrincipalRef("AWS", "arn:aws:iam::1:user/a")]
    assert deny.action_matches("sts:AssumeRole") and not deny.action_matches("sts:TagSession")
    assert policy.allow_statements == [allow] and policy.deny_statements == [deny]
    assert PrincipalRef("AWS", "*").is_wildcard


def test_url_encoded_and_json_string_documents() -> None:
    doc = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    assert parse_policy(json.dumps(doc)).statements[0].principals[0].value == "ec2.amazonaws.com"
    assert parse_policy(urllib.parse.quote(json.dumps(doc))).statements[0].principals[0].kind == "Service"


@pytest.mark.parametrize(("doc", "message"), [
    ({"Version": "2012-10-17"}, "no Statement"),
    ({"Statement": [{"Effect": "Maybe"}]}, "Statement[0].Effect"),
    ({"Statement": [{"Effect": "Allow", "Principal": {"Robot": "x"}}]}, "unknown principal type 'Robot'"),
    ({"Statement": [{"Effect": "Allow", "Principal": "*", "NotPrincipal": "*"}]}, "both Principal and NotPrincipal"),
    ("{not json", "not JSON"),
    ({"Statement": [{"Effect": "Allow", "Condition": ["x"]}]}, "Condition must be an object"),
])
def test_bad_documents_name_the_problem(doc: object, message: str) -> None:
    with pytest.raises(PolicyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_policy(doc)

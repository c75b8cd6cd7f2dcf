"""Table-driven tests of the condition evaluator.

Each case names the rule it checks, from the IAM User Guide pages "IAM JSON policy elements:
Condition operators" (OPS), "Creating a condition with multiple context keys or values" (MULTI)
and "Single-valued vs. multivalued context keys" (SETS). The rule is in the test id.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.policy.conditions import (
    PRESENT,
    UNKNOWN,
    Clause,
    evaluate_clause,
    evaluate_conditions,
    parse_operator,
)

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

# (rule id, operator, key, policy values, request context, expected)
CASES = [
    # --- string operators (OPS "String condition operators")
    ("OPS-string: StringEquals exact match", "StringEquals", "sts:ExternalId", ["abc"], {"sts:ExternalId": "abc"}, True),
    ("OPS-string: StringEquals is case-sensitive", "StringEquals", "sts:ExternalId", ["ABC"], {"sts:ExternalId": "abc"}, False),
    ("OPS-string: StringEqualsIgnoreCase ignores case", "StringEqualsIgnoreCase", "aws:PrincipalTag/team", ["Ops"],
     {"aws:PrincipalTag/team": "OPS"}, True),
    ("OPS-string: StringNotEquals true when value differs", "StringNotEquals", "aws:PrincipalAccount", ["111111111111"],
     {"aws:PrincipalAccount": "222222222222"}, True),
    ("OPS-string: StringNotEquals false when value equal", "StringNotEquals", "aws:PrincipalAccount", ["111111111111"],
     {"aws:PrincipalAccount": "111111111111"}, False),
    ("OPS-string: StringNotEqualsIgnoreCase negates case-insensitive equality", "StringNotEqualsIgnoreCase",
     "aws:PrincipalTag/team", ["ops"], {"aws:PrincipalTag/team": "OPS"}, False),
    ("OPS-string: StringLike * matches any run of characters", "StringLike", "sts:RoleSessionName", ["ci-*"],
     {"sts:RoleSessionName": "ci-build-42"}, True),
    ("OPS-string: StringLike ? matches exactly one character", "StringLike", "sts:RoleSessionName", ["ci-?"],
     {"sts:RoleSessionName": "ci-42"}, False),
    ("OPS-string: StringLike is case-sensitive", "StringLike", "sts:RoleSessionName", ["CI-*"],
     {"sts:RoleSessionName": "ci-1"}, False),
    ("OPS-string: StringNotLike true when no pattern matches", "StringNotLike", "sts:RoleSessionName", ["adm-*"],
     {"sts:RoleSessionName": "ci-1"}, True),
    # --- missing keys (OPS "Important: key not present")
    ("OPS-missing: absent key makes a positive operator false", "StringEquals", "sts:ExternalId", ["abc"], {}, False),
    ("OPS-missing: absent key makes a negated string operator true", "StringNotEquals", "sts:ExternalId", ["abc"],
     {}, True),
    ("OPS-missing: absent key makes ArnNotLike true", "ArnNotLike", "aws:PrincipalArn", ["arn:aws:iam::*:role/x"],
     {}, True),
    ("OPS-missing: absent key makes NotIpAddress true", "NotIpAddress", "aws:SourceIp", ["10.0.0.0/8"], {}, True),
    ("OPS-missing: absent key makes Bool false", "Bool", "aws:MultiFactorAuthPresent", ["true"], {}, False),
    # --- IfExists (OPS "...IfExists condition operators")
    ("OPS-IfExists: absent key evaluates true", "StringEqualsIfExists", "sts:ExternalId", ["abc"], {}, True),
    ("OPS-IfExists: present key is evaluated normally", "StringEqualsIfExists", "sts:ExternalId", ["abc"],
     {"sts:ExternalId": "xyz"}, False),
    ("OPS-IfExists: BoolIfExists true for absent MFA key", "BoolIfExists", "aws:MultiFactorAuthPresent", ["true"],
     {}, True),
    ("OPS-IfExists: NumericLessThanIfExists present and too large", "NumericLessThanIfExists",
     "aws:MultiFactorAuthAge", ["3600"], {"aws:MultiFactorAuthAge": "7200"}, False),
    # --- Null (OPS "Condition operator to check existence of condition keys")
    ("OPS-Null: true means the key must be absent (absent)", "Null", "sts:ExternalId", ["true"], {}, True),
    ("OPS-Null: true means the key must be absent (present)", "Null", "sts:ExternalId", ["true"],
     {"sts:ExternalId": "abc"}, False),
    ("OPS-Null: false means the key must be present", "Null", "sts:ExternalId", ["false"], {"sts:ExternalId": PRESENT},
     True),
    # --- Bool (OPS "Boolean condition operators")
    ("OPS-bool: Bool true matches boolean true", "Bool", "aws:MultiFactorAuthPresent", ["true"],
     {"aws:MultiFactorAuthPresent": True}, True),
    ("OPS-bool: Bool compares the string form case-insensitively", "Bool", "aws:MultiFactorAuthPresent", ["True"],
     {"aws:MultiFactorAuthPresent": "true"}, True),
    ("OPS-bool: Bool false does not match true", "Bool", "aws:SecureTransport", ["false"],
     {"aws:SecureTransport": True}, False),
    # --- numeric (OPS "Numeric condition operators")
    ("OPS-numeric: NumericLessThan strictly less", "NumericLessThan", "aws:MultiFactorAuthAge", ["3600"],
     {"aws:MultiFactorAuthAge": "3599"}, True),
    ("OPS-numeric: NumericLessThan false at equality", "NumericLessThan", "aws:MultiFactorAuthAge", ["3600"],
     {"aws:MultiFactorAuthAge": "3600"}, False),
    ("OPS-numeric: NumericLessThanEquals true at equality", "NumericLessThanEquals", "aws:MultiFactorAuthAge",
     ["3600"], {"aws:MultiFactorAuthAge": 3600}, True),
    ("OPS-numeric: NumericGreaterThanEquals", "NumericGreaterThanEquals", "s3:max-keys", ["10"], {"s3:max-keys": "10"},
     True),
    ("OPS-numeric: NumericNotEquals", "NumericNotEquals", "s3:max-keys", ["10"], {"s3:max-keys": "11"}, True),
    # --- dates (OPS "Date condition operators")
    ("OPS-date: DateLessThan before the end of the window", "DateLessThan", "aws:CurrentTime", ["2026-07-01T00:00:00Z"],
     {"aws:CurrentTime": T0}, True),
    ("OPS-date: DateLessThan after the end of the window", "DateLessThan", "aws:CurrentTime", ["2026-05-01T00:00:00Z"],
     {"aws:CurrentTime": T0}, False),
    ("OPS-date: DateGreaterThan after the start", "DateGreaterThan", "aws:CurrentTime", ["2026-01-01"],
     {"aws:CurrentTime": T0}, True),
    ("OPS-date: DateGreaterThan accepts epoch seconds", "DateGreaterThan", "aws:EpochTime", ["1780000000"],
     {"aws:EpochTime": str(int(T0.timestamp()))}, True),
    ("OPS-date: DateLessThanEquals inclusive at the instant", "DateLessThanEquals", "aws:CurrentTime",
     ["2026-06-01T12:00:00Z"], {"aws:CurrentTime": T0}, True),
    ("OPS-date: DateEquals compares instants across offsets", "DateEquals", "aws:CurrentTime",
     ["2026-06-01T14:00:00+02:00"], {"aws:CurrentTime": T0}, True),
    # --- IP addresses (OPS "IP address condition operators")
    ("OPS-ip: IpAddress inside the CIDR", "IpAddress", "aws:SourceIp", ["203.0.113.0/24"],
     {"aws:SourceIp": "203.0.113.7"}, True),
    ("OPS-ip: IpAddress outside the CIDR", "IpAddress", "aws:SourceIp", ["203.0.113.0/24"],
     {"aws:SourceIp": "198.51.100.7"}, False),
    ("OPS-ip: IpAddress single address without prefix", "IpAddress", "aws:SourceIp", ["198.51.100.7"],
     {"aws:SourceIp": "198.51.100.7"}, True),
    ("OPS-ip: IpAddress IPv6 range", "IpAddress", "aws:SourceIp", ["2001:db8::/32"],
     {"aws:SourceIp": "2001:db8:1::5"}, True),
    ("OPS-ip: NotIpAddress true outside every range", "NotIpAddress", "aws:SourceIp", ["10.0.0.0/8", "192.168.0.0/16"],
     {"aws:SourceIp": "203.0.113.7"}, True),
    # --- ARNs (OPS "Amazon Resource Name (ARN) condition operators")
    ("OPS-arn: ArnLike wildcard within the resource part", "ArnLike", "aws:PrincipalArn",
     ["arn:aws:iam::111111111111:role/ci-*"], {"aws:PrincipalArn": "arn:aws:iam::111111111111:role/ci-runner"}, True),
    ("OPS-arn: ArnLike compares each colon part separately (account differs)", "ArnLike", "aws:PrincipalArn",
     ["arn:aws:iam::111111111111:role/*"], {"aws:PrincipalArn": "arn:aws:iam::222222222222:role/x"}, False),
    ("OPS-arn: ArnEquals behaves as ArnLike, wildcard in the account part", "ArnEquals", "aws:PrincipalArn",
     ["arn:aws:iam::*:role/audit"], {"aws:PrincipalArn": "arn:aws:iam::222222222222:role/audit"}, True),
    ("OPS-arn: ArnNotEquals negates", "ArnNotEquals", "aws:PrincipalArn", ["arn:aws:iam::111111111111:role/a"],
     {"aws:PrincipalArn": "arn:aws:iam::111111111111:role/a"}, False),
    ("OPS-arn: a value that is not an ARN never matches ArnLike", "ArnLike", "aws:PrincipalArn", ["arn:aws:iam::*:*"],
     {"aws:PrincipalArn": "not-an-arn"}, False),
    # --- multiple values (MULTI: values OR; negated operators NOR)
    ("MULTI: several values for one key are ORed", "StringEquals", "aws:PrincipalAccount", ["1", "2", "3"],
     {"aws:PrincipalAccount": "2"}, True),
    ("MULTI: a negated operator with several values must match none", "StringNotEquals", "aws:PrincipalAccount",
     ["1", "2"], {"aws:PrincipalAccount": "2"}, False),
    # --- set operators (SETS)
    ("SETS: ForAllValues true when every request value matches", "ForAllValues:StringLike", "aws:TagKeys",
     ["Created*"], {"aws:TagKeys": ["CreatedBy", "CreatedAt"]}, True),
    ("SETS: ForAllValues false when one request value matches nothing", "ForAllValues:StringEquals", "aws:TagKeys",
     ["env", "team"], {"aws:TagKeys": ["env", "owner"]}, False),
    ("SETS: ForAllValues true when the key is absent (vacuous)", "ForAllValues:StringEquals", "aws:TagKeys", ["env"],
     {}, True),
    ("SETS: ForAllValues true when the request set is empty", "ForAllValues:StringEquals", "aws:TagKeys", ["env"],
     {"aws:TagKeys": []}, True),
    ("SETS: ForAnyValue true when one request value matches", "ForAnyValue:StringEquals", "aws:PrincipalOrgPaths",
     ["o-1/r-1/ou-a/"], {"aws:PrincipalOrgPaths": ["o-1/r-1/ou-b/", "o-1/r-1/ou-a/"]}, True),
    ("SETS: ForAnyValue false when the key is absent", "ForAnyValue:StringEquals", "aws:TagKeys", ["env"], {}, False),
    ("SETS: ForAnyValue with a negated operator needs one non-matching value", "ForAnyValue:StringNotEquals",
     "aws:TagKeys", ["env"], {"aws:TagKeys": ["env", "team"]}, True),
    ("SETS: ForAllValues with a negated operator fails if any value matches", "ForAllValues:StringNotEquals",
     "aws:TagKeys", ["env"], {"aws:TagKeys": ["env", "team"]}, False),
    # --- condition keys are case-insensitive (OPS "Condition element": key names are not case-sensitive)
    ("OPS-keys: key names compare case-insensitively", "StringEquals", "STS:EXTERNALID", ["abc"],
     {"sts:externalid": "abc"}, True),
    # --- policy variables (OPS "Policy variables" in string and ARN operators)
    ("OPS-variables: ${aws:username} is substituted from the request", "StringLike", "s3:prefix",
     ["home/${aws:username}/*"], {"s3:prefix": "home/alice/docs", "aws:username": "alice"}, True),
    # --- three-valued: what a failed record does not tell (our extension, never a guess)
    ("TRI: unknown key gives unknown", "StringEquals", "sts:ExternalId", ["abc"], {"sts:ExternalId": UNKNOWN}, None),
    ("TRI: present-but-unrecorded value gives unknown", "StringEquals", "sts:ExternalId", ["abc"],
     {"sts:ExternalId": PRESENT}, None),
    ("TRI: unknown presence makes Null unknown", "Null", "sts:ExternalId", ["true"], {"sts:ExternalId": UNKNOWN}, None),
    ("TRI: unsupported operator gives unknown", "StringMatchesRegex", "sts:ExternalId", ["a"], {"sts:ExternalId": "a"},
     None),
]


@pytest.mark.parametrize(("operator", "key", "values", "context", "expected"),
                         [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_clause(operator: str, key: str, values: list[str], context: dict, expected: bool | None) -> None:
    assert evaluate_clause(Clause(operator, key, tuple(values)), context) is expected


def test_case_table_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


BLOCK = {
    "StringEquals": {"sts:ExternalId": ["abc"], "aws:PrincipalAccount": ["111111111111"]},
    "Bool": {"aws:MultiFactorAuthPresent": ["true"]},
}


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        pytest.param({"sts:ExternalId": "abc", "aws:PrincipalAccount": "111111111111",
                      "aws:MultiFactorAuthPresent": True}, True, id="MULTI: all keys and operators hold (AND)"),
        pytest.param({"sts:ExternalId": "abc", "aws:PrincipalAccount": "222222222222",
                      "aws:MultiFactorAuthPresent": True}, False, id="MULTI: one key under an operator fails -> false"),
        pytest.param({"sts:ExternalId": "abc", "aws:PrincipalAccount": "111111111111",
                      "aws:MultiFactorAuthPresent": False}, False, id="MULTI: one operator fails -> false"),
        pytest.param({"sts:ExternalId": UNKNOWN, "aws:PrincipalAccount": "222222222222",
                      "aws:MultiFactorAuthPresent": True}, False, id="TRI: a definite failure wins over unknown"),
        pytest.param({"sts:ExternalId": UNKNOWN, "aws:PrincipalAccount": "111111111111",
                      "aws:MultiFactorAuthPresent": True}, None, id="TRI: otherwise unknown stays unknown"),
    ],
)
def test_block(context: dict, expected: bool | None) -> None:
    assert evaluate_conditions(BLOCK, context) is expected


def test_empty_block_holds() -> None:
    # a statement without Condition applies unconditionally (OPS "Condition element" is optional)
    assert evaluate_conditions({}, {}) is True


@pytest.mark.parametrize("text", ["ForEach:StringEquals", "NullIfExists", "StringSortaEquals"])
def test_operator_parse_rejects_unknown(text: str) -> None:
    with pytest.raises(ValueError):
        parse_operator(text)


def test_operator_parse_composes_prefix_and_suffix() -> None:
    op = parse_operator("ForAnyValue:StringNotLikeIfExists")
    assert (op.base, op.if_exists, op.set_op, op.negated) == ("StringNotLike", True, "ForAnyValue", True)

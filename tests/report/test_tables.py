"""Golden tests of the review tables on the fixed synthetic org (frames compared exactly)."""

from __future__ import annotations

import pandas as pd
import pytest

from monitor.report.tables import SECTIONS, TS, Period, ReviewOptions, build_review, changes_table
from tests.report import org
from tests.report.org import (
    ADMIN_ROLE,
    ALICE,
    BOB,
    DEV,
    DEV_ROLE,
    DEV_USER,
    GHOST_ROLE,
    LAMBDA_ROLE,
    LEGACY_ROLE,
    PARTNER_ROLE,
    PROD,
    SUPPORT_ROLE,
    VENDOR,
    VENDOR_ROLE,
    VENDOR_SCANNER,
)

MALLORY = f"arn:aws:iam::{VENDOR}:user/mallory"


def frame(section: str, rows: list[tuple], columns: list[str] | None = None) -> pd.DataFrame:
    schema = SECTIONS[section][1]
    cols = columns or list(schema)
    data = {c: [r[i] for r in rows] for i, c in enumerate(cols)}
    out = {}
    for c in cols:
        dtype = schema[c]
        s = pd.Series(data[c], dtype="object")
        out[c] = pd.to_datetime(s, utc=True, format="ISO8601").astype(TS) if dtype == TS else s.astype(dtype)
    return pd.DataFrame(out)


def ts(text: str | None) -> pd.Timestamp | None:
    return pd.Timestamp(text) if text else None


def test_every_section_has_its_documented_columns_and_dtypes(review) -> None:
    assert list(review.sections) == list(SECTIONS)
    for name, (_, schema) in SECTIONS.items():
        df = review.sections[name]
        assert list(df.columns) == list(schema), name
        assert {c: str(t) for c, t in df.dtypes.items()} == schema, name


def test_summary(review) -> None:
    expected = frame("summary", [
        ("accounts", 1), ("roles", 8), ("cross_account_roles", 5), ("unused_roles", 1),
        ("cross_account_roles_without_externalid_condition", 2),
        # 4 DevUser + 2 vendor + 1 alice + 4 lambda - the owner's copy of the shared call, minus 2 out of period
        ("successful_assumptions", 10), ("failed_attempts", 3), ("distinct_principals", 5),
        ("open_findings", 4), ("high_or_critical_findings", 2),
        ("roles_to_keep", 3), ("roles_to_tighten", 4), ("roles_to_remove", 1),
        ("new_roles", 2), ("new_trusted_principals", 1), ("newly_unused_roles", 1), ("removed_roles", 1),
    ])
    pd.testing.assert_frame_equal(review.sections["summary"], expected)


def test_changes_since_previous_report(review) -> None:
    expected = frame("changes", [
        ("new_role", PROD, GHOST_ROLE, "trusts (unknown)"),
        ("new_role", PROD, PARTNER_ROLE, f"trusts arn:aws:iam::{DEV}:role/Deployer"),
        ("new_trusted_principal", PROD, ADMIN_ROLE, BOB),
        ("newly_unused_role", PROD, LEGACY_ROLE, ""),
        ("removed_role", PROD, f"arn:aws:iam::{PROD}:role/RetiredRole", ""),
    ])
    pd.testing.assert_frame_equal(review.sections["changes"], expected)


def test_first_report_has_no_changes() -> None:
    current = {"roles": {"arn:r": {"account_id": PROD, "trusted": ["x"], "unused": True}}}
    assert changes_table(None, current).empty
    assert list(changes_table(None, current).columns) == list(SECTIONS["changes"][1])


def test_principals_count_each_cross_account_call_once(review) -> None:
    expected = frame("principals", [
        (PROD, ADMIN_ROLE, ALICE, PROD, 1, 0, "2026-11-03T10:00Z", "2026-11-03T10:00Z", 1, "10.1.2.0/24", 0.0),
        (PROD, GHOST_ROLE, MALLORY, VENDOR, 0, 1, "2026-11-08T04:00Z", "2026-11-08T04:00Z", 1, "198.51.100.0/24",
         None),
        (PROD, LAMBDA_ROLE, "lambda.amazonaws.com", PROD, 4, 0, "2026-11-02T01:00Z", "2026-11-08T13:00Z", 0, "",
         0.75),
        # sessions of the vendor's scanner role are one principal; two addresses in one /24 are one network
        (PROD, VENDOR_ROLE, VENDOR_SCANNER, VENDOR, 2, 0, "2026-11-05T02:00Z", "2026-11-06T02:00Z", 1,
         "192.0.2.0/24", 1.0),
        # three successes (the owner's copy of the shared call not counted), one at 03:00 on a Saturday
        (PROD, DEV_ROLE, DEV_USER, DEV, 3, 2, "2026-11-02T09:00Z", "2026-11-07T03:00Z", 2,
         "198.51.100.0/24, 203.0.113.0/24", 0.333),
    ])
    pd.testing.assert_frame_equal(review.sections["principals"], expected)


def test_account_timeline_is_zero_filled(review) -> None:
    expected = frame("timeline", [
        (PROD, "2026-11-02", 3, 0), (PROD, "2026-11-03", 2, 0), (PROD, "2026-11-04", 0, 2),
        (PROD, "2026-11-05", 1, 0), (PROD, "2026-11-06", 1, 0), (PROD, "2026-11-07", 1, 0),
        (PROD, "2026-11-08", 2, 1),
    ])
    pd.testing.assert_frame_equal(review.sections["timeline"], expected)


def test_daily_per_role(review) -> None:
    daily = review.sections["daily"]
    dev = daily[daily["role_arn"] == DEV_ROLE][["date", "assumptions", "failures"]].reset_index(drop=True)
    expected = pd.DataFrame({"date": ["2026-11-02", "2026-11-03", "2026-11-04", "2026-11-07"],
                             "assumptions": [1, 1, 0, 1], "failures": [0, 0, 2, 0]})
    expected["date"] = expected["date"].astype("string")
    pd.testing.assert_frame_equal(dev, expected)
    assert int(daily["assumptions"].sum()) == review.summary_value("successful_assumptions")


def test_roles_recommendations_and_order(review) -> None:
    cols = ["role_name", "cross_account", "external_id_required", "mfa_required", "assumptions", "failures",
            "unused", "recommendation", "recommendation_detail"]
    expected = frame("roles", [
        ("GhostRole", True, None, None, 0, 1, False, "keep",
         "not in the IAM inventory: a missing role or an inventory gap; check the attempts"),
        ("LegacyRole", True, False, False, 0, 0, True, "remove",
         "no successful assumption in 90 days (last used: 2026-05-01T00:00:00Z)"),
        ("PartnerDeployRole", True, True, False, 0, 0, False, "tighten",
         f"remove trusted principal arn:aws:iam::{DEV}:role/Deployer (no assumption in the period); "
         f"remove expired trust to arn:aws:iam::{DEV}:role/Deployer (ended 2026-11-05T00:00:00Z)"),
        ("VendorAuditRole", True, False, False, 2, 0, False, "tighten",
         f"add an sts:ExternalId condition for arn:aws:iam::{VENDOR}:root; replace account-wide trust "
         f"arn:aws:iam::{VENDOR}:root with the principals that use it ({VENDOR_SCANNER})"),
        ("CrossAccountDeveloperRole", True, True, False, 3, 2, False, "tighten",
         "remove access to unused services: dynamodb, ec2, iam"),
        ("AdminRole", False, None, True, 1, 0, False, "tighten",
         f"remove trusted principal {BOB} (no assumption in the period)"),
        ("LambdaExecRole", False, None, None, 4, 0, False, "keep", ""),
        ("AWSServiceRoleForSupport", False, None, None, 0, 0, False, "keep", ""),
    ], columns=cols)
    pd.testing.assert_frame_equal(review.sections["roles"][cols], expected)


def test_roles_last_used_services_and_findings(review) -> None:
    cols = ["role_arn", "last_used_cloudtrail", "last_used_iam", "last_used", "days_since_used",
            "services_granted", "services_used", "services_unused", "analyzer_findings", "open_findings",
            "top_severity", "who_assumed", "reviewer", "decision", "review_date"]
    expected = frame("roles", [
        (GHOST_ROLE, None, None, None, None, None, None, "", 0, 1, "high", "", "", "", ""),
        (LEGACY_ROLE, None, "2026-05-01", "2026-05-01", 192, None, None, "", 1, 0, "", "", "", "", ""),
        (PARTNER_ROLE, None, None, None, None, None, None, "", 0, 0, "", "", "", "", ""),
        (VENDOR_ROLE, "2026-11-06T02:00Z", None, "2026-11-06T02:00Z", 2, None, None, "", 0, 1, "high",
         f"{VENDOR_SCANNER} (2)", "", "", ""),
        # CloudTrail (Saturday 03:00) is later than IAM's RoleLastUsed; dynamodb's last use is too old to count
        (DEV_ROLE, "2026-11-07T03:00Z", "2026-11-06T10:00Z", "2026-11-07T03:00Z", 1, 4, 1, "dynamodb, ec2, iam",
         1, 2, "medium", f"{DEV_USER} (3)", "", "", ""),
        (ADMIN_ROLE, "2026-11-03T10:00Z", None, "2026-11-03T10:00Z", 5, None, None, "", 0, 0, "",
         f"{ALICE} (1)", "", "", ""),
        # IAM's side is the later of RoleLastUsed and the services' last access (logs at 23:00)
        (LAMBDA_ROLE, "2026-11-08T13:00Z", "2026-11-08T23:00Z", "2026-11-08T23:00Z", 0, 1, 1, "", 0, 0, "",
         "lambda.amazonaws.com (4)", "", "", ""),
        (SUPPORT_ROLE, None, None, None, None, None, None, "", 0, 0, "", "", "", "", ""),
    ], columns=cols)
    pd.testing.assert_frame_equal(review.sections["roles"][cols], expected)


def test_trust_table_who_may_vs_who_did(review) -> None:
    cols = ["role_arn", "principal", "principal_kind", "cross_account", "external_id_required", "mfa_required",
            "source_ip_limit", "date_limit", "assumptions"]
    expected = frame("trust", [
        (ADMIN_ROLE, ALICE, "aws_arn", False, False, True, "", "", 1),
        (ADMIN_ROLE, BOB, "aws_arn", False, False, True, "", "", 0),
        (LAMBDA_ROLE, "lambda.amazonaws.com", "service", False, False, False, "", "", 4),
        (LEGACY_ROLE, DEV, "aws_account", True, False, False, "", "", 0),
        (PARTNER_ROLE, f"arn:aws:iam::{DEV}:role/Deployer", "aws_arn", True, True, False, "in 203.0.113.0/24",
         "until 2026-11-05T00:00:00Z", 0),
        (VENDOR_ROLE, f"arn:aws:iam::{VENDOR}:root", "aws_account", True, False, False, "", "", 2),
        (SUPPORT_ROLE, "support.amazonaws.com", "service", False, False, False, "", "", 0),
        (DEV_ROLE, DEV_USER, "aws_arn", True, True, False, "", "", 3),
    ], columns=cols)
    pd.testing.assert_frame_equal(review.sections["trust"][cols], expected)


def test_open_findings_of_the_period(review) -> None:
    expected = frame("findings", [
        ("high", "failed_assume_role", PROD, GHOST_ROLE, MALLORY, None, "enumeration by mallory", 1,
         "2026-11-08T04:00Z", "2026-11-08T04:00Z", "fp-enum"),
        ("high", "trust_policy", PROD, VENDOR_ROLE, None, None,
         "VendorAuditRole trusts 999988887777 without ExternalId", 1, None, None, "fp-trust"),
        ("medium", "off_hours", PROD, DEV_ROLE, DEV_USER, "198.51.100.7",
         "DevUser assumed CrossAccountDeveloperRole at 03:00", 1, "2026-11-07T03:00Z", "2026-11-07T03:00Z", "fp-off"),
        ("low", "failed_assume_role", PROD, DEV_ROLE, DEV_USER, "203.0.113.10", "2 failed AssumeRole by DevUser", 2,
         "2026-11-04T11:00Z", "2026-11-04T11:01Z", "fp-failed"),
    ])
    pd.testing.assert_frame_equal(review.sections["findings"], expected)
    by_det = frame("findings_by_detector", [
        ("failed_assume_role", "high", 1), ("failed_assume_role", "low", 1), ("off_hours", "medium", 1),
        ("trust_policy", "high", 1)])
    pd.testing.assert_frame_equal(review.sections["findings_by_detector"], by_det)


def test_services_and_analyzer(review) -> None:
    services = frame("services", [
        (PROD, DEV_ROLE, "dynamodb", "2026-01-01", False), (PROD, DEV_ROLE, "ec2", None, False),
        (PROD, DEV_ROLE, "iam", None, False), (PROD, DEV_ROLE, "s3", "2026-11-05T09:00Z", True),
        (PROD, LAMBDA_ROLE, "logs", "2026-11-08T23:00Z", True)])
    pd.testing.assert_frame_equal(review.sections["services"], services)
    analyzer = review.sections["analyzer"]
    assert analyzer["finding_id"].tolist() == ["af-2", "af-3", "af-1"]
    # the ExternalAccess finding's condition is reduced to its keys: the ExternalId value is a secret
    assert analyzer["detail"].iloc[2] == (
        '{"condition_keys":["sts:ExternalId"],"principal":{"AWS":"arn:aws:iam::444455556666:user/DevUser"}}')


def test_top_principals(review) -> None:
    expected = frame("top_principals", [
        ("lambda.amazonaws.com", PROD, 1, 4, 0), (DEV_USER, DEV, 1, 3, 2), (VENDOR_SCANNER, VENDOR, 1, 2, 0),
        (ALICE, PROD, 1, 1, 0), (MALLORY, VENDOR, 1, 0, 1)])
    pd.testing.assert_frame_equal(review.sections["top_principals"], expected)


def test_account_filter_and_empty_inputs() -> None:
    from monitor.events.schema import empty_frame
    from monitor.posture.model import Posture

    other = build_review(org.events(), org.posture(), org.findings(), Period(org.SINCE, org.UNTIL), None,
                         ReviewOptions(accounts=[DEV]), now=org.NOW)
    assert other.summary_value("roles") == 0
    assert other.sections["findings"].empty
    empty = build_review(empty_frame(), Posture(), [], Period(org.SINCE, org.UNTIL), None, ReviewOptions(),
                         now=org.NOW)
    assert empty.summary_value("roles") == 0
    assert empty.meta["notes"] and "no IAM inventory" in empty.meta["notes"][0]
    for name, (_, schema) in SECTIONS.items():
        assert {c: str(t) for c, t in empty.sections[name].dtypes.items()} == schema, name


@pytest.mark.parametrize(("hours", "tz", "share"), [
    ("08:00-18:00", "UTC", 0.333),
    # in Tokyo the 09:00 and 14:00 UTC calls fall at 18:00 and 23:00: off hours, and 03:00 UTC Saturday is noon Sat
    ("08:00-18:00", "Asia/Tokyo", 1.0),
])
def test_off_hours_share_follows_the_configured_zone(hours: str, tz: str, share: float) -> None:
    r = build_review(org.events(), org.posture(), [], Period(org.SINCE, org.UNTIL), None,
                     ReviewOptions(business_hours=hours, timezone=tz), now=org.NOW)
    p = r.sections["principals"]
    assert p.loc[p["principal"] == DEV_USER, "off_hours_share"].item() == share


def test_an_assume_root_target_is_activity_not_a_role_to_review() -> None:
    # an AssumeRoot row names the target account's root as its role_arn: the root user is no IAM role,
    # so it must not be reviewed as one (kept, counted, "new_role" this week and "removed_role" the next)
    from monitor.events.normalise import normalise
    from monitor.events.schema import frame_from_rows
    from tests import assume_root

    root = f"arn:aws:iam::{PROD}:root"
    session = normalise(assume_root.assume_root_record("root-1", time="2026-11-03T10:00:00Z", target=PROD))
    assert session["role_arn"] == root
    events = pd.concat([org.events(), frame_from_rows([session])], ignore_index=True)
    with_root = build_review(events, org.posture(), org.findings(), Period(org.SINCE, org.UNTIL),
                             org.previous_snapshot(), ReviewOptions(), now=org.NOW)
    plain = build_review(org.events(), org.posture(), org.findings(), Period(org.SINCE, org.UNTIL),
                         org.previous_snapshot(), ReviewOptions(), now=org.NOW)
    assert root not in set(with_root.sections["roles"]["role_arn"])
    assert root not in set(with_root.sections["changes"]["role_arn"])
    for metric in ("roles", "cross_account_roles", "roles_to_keep", "new_roles"):
        assert with_root.summary_value(metric) == plain.summary_value(metric), metric
    assert root not in with_root.snapshot["roles"]
    # the session itself is still in the review's activity: who took it, when
    principals = with_root.sections["principals"]
    assert principals.loc[principals["role_arn"] == root, "assumptions"].tolist() == [1]
    assert with_root.summary_value("successful_assumptions") == plain.summary_value("successful_assumptions") + 1

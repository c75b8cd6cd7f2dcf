"""A fixed synthetic organisation for the review-table golden tests.

Accounts: 111122223333 (owns the roles), 444455556666 (a sister account in the Organization),
999988887777 (a vendor outside it). Period: 2026-11-02 (Mon) .. 2026-11-09 (Mon), UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd

from monitor.events.schema import frame_from_rows
from monitor.findings import Finding
from monitor.posture.model import AnalyzerFinding, Posture, RoleInfo
from monitor.state.base import StoredFinding

PROD, DEV, VENDOR = "111122223333", "444455556666", "999988887777"
SINCE = datetime(2026, 11, 2, tzinfo=UTC)
UNTIL = datetime(2026, 11, 9, tzinfo=UTC)
NOW = UNTIL
EXTERNAL_ID = "ext-Secr3t-value-42"  # must never appear in any rendered report


def role_arn(name: str, account: str = PROD, path: str = "/") -> str:
    return f"arn:aws:iam::{account}:role{path}{name}"


DEV_ROLE = role_arn("CrossAccountDeveloperRole", path="/cross-account/")
VENDOR_ROLE = role_arn("VendorAuditRole")
ADMIN_ROLE = role_arn("AdminRole")
LEGACY_ROLE = role_arn("LegacyRole")
LAMBDA_ROLE = role_arn("LambdaExecRole")
SUPPORT_ROLE = role_arn("AWSServiceRoleForSupport", path="/aws-service-role/support.amazonaws.com/")
PARTNER_ROLE = role_arn("PartnerDeployRole")
GHOST_ROLE = role_arn("GhostRole")
DEV_USER = f"arn:aws:iam::{DEV}:user/DevUser"
ALICE = f"arn:aws:iam::{PROD}:user/alice"
BOB = f"arn:aws:iam::{PROD}:user/bob"
VENDOR_SCANNER = f"arn:aws:iam::{VENDOR}:role/VendorScanner"


def _stmt(principal: Any, condition: dict[str, Any] | None = None, action: str = "sts:AssumeRole") -> dict[str, Any]:
    s: dict[str, Any] = {"Effect": "Allow", "Principal": principal, "Action": action}
    if condition:
        s["Condition"] = condition
    return s


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _t(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def posture() -> Posture:
    roles = [
        RoleInfo(DEV_ROLE, "CrossAccountDeveloperRole", PROD, path="/cross-account/",
                 create_date=datetime(2025, 1, 1, tzinfo=UTC), last_used=_t(6, 10),
                 trust_policy=_policy(_stmt({"AWS": DEV_USER}, {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}})),
                 attached_policies=["arn:aws:iam::aws:policy/ReadOnlyAccess", f"arn:aws:iam::{PROD}:policy/S3DevAccess"],
                 services_last_accessed={"s3": _t(5, 9), "ec2": None, "iam": None,
                                         "dynamodb": datetime(2026, 1, 1, tzinfo=UTC)}),
        RoleInfo(VENDOR_ROLE, "VendorAuditRole", PROD, create_date=datetime(2025, 6, 1, tzinfo=UTC),
                 trust_policy=_policy(_stmt({"AWS": f"arn:aws:iam::{VENDOR}:root"})),
                 attached_policies=["arn:aws:iam::aws:policy/SecurityAudit"]),
        RoleInfo(ADMIN_ROLE, "AdminRole", PROD, create_date=datetime(2024, 3, 1, tzinfo=UTC),
                 trust_policy=_policy(_stmt({"AWS": [ALICE, BOB]},
                                            {"Bool": {"aws:MultiFactorAuthPresent": "true"}})),
                 attached_policies=["arn:aws:iam::aws:policy/AdministratorAccess"]),
        RoleInfo(LEGACY_ROLE, "LegacyRole", PROD, create_date=datetime(2023, 1, 1, tzinfo=UTC),
                 last_used=datetime(2026, 5, 1, tzinfo=UTC),
                 trust_policy=_policy(_stmt({"AWS": DEV}))),
        RoleInfo(LAMBDA_ROLE, "LambdaExecRole", PROD, create_date=datetime(2024, 1, 1, tzinfo=UTC),
                 trust_policy=json_policy_string(), services_last_accessed={"logs": _t(8, 23)}),
        RoleInfo(SUPPORT_ROLE, "AWSServiceRoleForSupport", PROD, path="/aws-service-role/support.amazonaws.com/",
                 create_date=datetime(2020, 1, 1, tzinfo=UTC),
                 trust_policy=_policy(_stmt({"Service": "support.amazonaws.com"}))),
        RoleInfo(PARTNER_ROLE, "PartnerDeployRole", PROD, create_date=datetime(2026, 10, 20, tzinfo=UTC),
                 trust_policy=_policy(_stmt({"AWS": f"arn:aws:iam::{DEV}:role/Deployer"}, {
                     "StringEquals": {"sts:ExternalId": "another-ext-id-77"},
                     "IpAddress": {"aws:SourceIp": ["203.0.113.0/24"]},
                     "DateLessThan": {"aws:CurrentTime": "2026-11-05T00:00:00Z"}}))),
    ]
    return Posture(
        roles={r.arn: r for r in roles},
        analyzer_findings=[
            AnalyzerFinding("af-1", PROD, "us-east-1", DEV_ROLE, "ExternalAccess", "ACTIVE",
                            details={"principal": {"AWS": DEV_USER}, "condition": {"sts:ExternalId": EXTERNAL_ID}}),
            AnalyzerFinding("af-2", PROD, "us-east-1", LEGACY_ROLE, "UnusedIAMRole", "ACTIVE",
                            updated_at=_t(7, 1), details={"lastAccessed": "2026-05-01T00:00:00Z"}),
            AnalyzerFinding("af-3", PROD, "us-east-1", VENDOR_ROLE, "ExternalAccess", "ARCHIVED"),
        ],
        accounts=[PROD],
        organization_accounts=[PROD, DEV],
    )


def json_policy_string() -> str:
    # the IAM API returns trust policies URL-encoded; the summariser must read that form too
    return "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%22lambda.amazonaws.com%22%7D%2C%22Action%22%3A%22sts%3AAssumeRole%22%7D%5D%7D"


_n = 0


def _ev(t: datetime, role: str, *, principal_arn: str | None, principal_account: str, ok: bool = True,
        ip: str | None = "203.0.113.10", recipient: str = PROD, shared: str | None = None,
        principal_type: str = "IAMUser", principal_role: str | None = None, service: str | None = None,
        error: str | None = None) -> dict[str, Any]:
    global _n
    _n += 1
    role_account = role.split(":")[4]
    key = principal_arn or service or f"{principal_account}:AIDAEXAMPLE"
    return {
        "event_id": f"ev-{_n:04d}", "shared_event_id": shared, "event_time": t, "event_name": "AssumeRole",
        "account_id": recipient, "aws_region": "us-east-1", "role_arn": role, "role_account_id": role_account,
        "role_session_name": "s", "principal_arn": principal_arn, "principal_type": principal_type,
        "principal_account_id": principal_account, "principal_role_arn": principal_role,
        "principal_service": service, "principal_key": key, "source_ip": ip, "source_ip_raw": ip,
        "error_code": None if ok else (error or "AccessDenied"), "success": ok,
        "is_cross_account": principal_account != role_account,
    }


def events() -> pd.DataFrame:
    global _n
    _n = 0
    rows = [
        # DevUser, business hours, two addresses in one /24 and one elsewhere on a Saturday night
        _ev(_t(2, 9), DEV_ROLE, principal_arn=DEV_USER, principal_account=DEV, shared="sh-1"),
        # ... and the role owner's copy of that same call (counts once)
        _ev(_t(2, 9), DEV_ROLE, principal_arn=None, principal_account=DEV, shared="sh-1",
            principal_type="AWSAccount", recipient=PROD),
        _ev(_t(3, 14), DEV_ROLE, principal_arn=DEV_USER, principal_account=DEV, ip="203.0.113.20"),
        _ev(_t(7, 3), DEV_ROLE, principal_arn=DEV_USER, principal_account=DEV, ip="198.51.100.7"),
        _ev(_t(4, 11), DEV_ROLE, principal_arn=DEV_USER, principal_account=DEV, ok=False),
        # a failed call names the role as its error message does: without the path
        _ev(_t(4, 11, 1), role_arn("CrossAccountDeveloperRole"), principal_arn=DEV_USER, principal_account=DEV,
            ok=False),
        # the vendor's scanner session (assumed-role caller: reviewed as the role behind it)
        _ev(_t(5, 2), VENDOR_ROLE, principal_arn=f"arn:aws:sts::{VENDOR}:assumed-role/VendorScanner/run-1",
            principal_account=VENDOR, principal_type="AssumedRole", principal_role=VENDOR_SCANNER, ip="192.0.2.5"),
        _ev(_t(6, 2), VENDOR_ROLE, principal_arn=f"arn:aws:sts::{VENDOR}:assumed-role/VendorScanner/run-2",
            principal_account=VENDOR, principal_type="AssumedRole", principal_role=VENDOR_SCANNER, ip="192.0.2.9"),
        # alice uses AdminRole; bob never does
        _ev(_t(3, 10), ADMIN_ROLE, principal_arn=ALICE, principal_account=PROD, ip="10.1.2.3"),
        # Lambda, round the clock
        *[_ev(_t(d, h), LAMBDA_ROLE, principal_arn=None, principal_account=PROD, ip=None,
              principal_type="AWSService", service="lambda.amazonaws.com") for d in (2, 8) for h in (1, 13)],
        # someone probing a role that does not exist
        _ev(_t(8, 4), GHOST_ROLE, principal_arn=f"arn:aws:iam::{VENDOR}:user/mallory", principal_account=VENDOR,
            ok=False, ip="198.51.100.99"),
        # outside the period: ignored
        _ev(datetime(2026, 10, 30, 12, tzinfo=UTC), DEV_ROLE, principal_arn=DEV_USER, principal_account=DEV),
        _ev(_t(9, 0), DEV_ROLE, principal_arn=DEV_USER, principal_account=DEV),
    ]
    return frame_from_rows(rows)


def findings() -> list[StoredFinding]:
    def sf(f: Finding, status: str = "open") -> StoredFinding:
        return StoredFinding(f, status, "2026-11-08T00:00:00Z", "2026-11-08T00:00:00Z")

    return [
        sf(Finding("failed_assume_role", "low", "2 failed AssumeRole by DevUser", "fp-failed", account_id=PROD,
                   role_arn=DEV_ROLE, principal_arn=DEV_USER, source_ip="203.0.113.10", first_seen=_t(4, 11),
                   last_seen=_t(4, 11, 1), count=2, details={"likely_cause": f"ExternalId mismatch ({EXTERNAL_ID})"})),
        sf(Finding("off_hours", "medium", "DevUser assumed CrossAccountDeveloperRole at 03:00", "fp-off",
                   account_id=PROD, role_arn=DEV_ROLE, principal_arn=DEV_USER, source_ip="198.51.100.7",
                   first_seen=_t(7, 3), last_seen=_t(7, 3))),
        sf(Finding("trust_policy", "high", "VendorAuditRole trusts 999988887777 without ExternalId", "fp-trust",
                   account_id=PROD, role_arn=VENDOR_ROLE)),
        sf(Finding("failed_assume_role", "high", "enumeration by mallory", "fp-enum", account_id=PROD,
                   role_arn=GHOST_ROLE, principal_arn=f"arn:aws:iam::{VENDOR}:user/mallory", first_seen=_t(8, 4),
                   last_seen=_t(8, 4))),
        # not open, or not in the period: left out
        sf(Finding("off_hours", "medium", "suppressed", "fp-supp", account_id=PROD, role_arn=LAMBDA_ROLE,
                   first_seen=_t(2, 1), last_seen=_t(2, 1)), status="suppressed"),
        sf(Finding("unusual_source_ip", "medium", "old", "fp-old", account_id=PROD, role_arn=DEV_ROLE,
                   first_seen=datetime(2026, 10, 1, tzinfo=UTC), last_seen=datetime(2026, 10, 2, tzinfo=UTC))),
    ]


def previous_snapshot() -> dict[str, Any]:
    return {
        "version": 1, "generated_at": "2026-11-02T00:00:00Z", "since": "2026-10-26T00:00:00Z",
        "until": "2026-11-02T00:00:00Z", "accounts": [],
        "roles": {
            DEV_ROLE: {"account_id": PROD, "trusted": [DEV_USER], "unused": False},
            VENDOR_ROLE: {"account_id": PROD, "trusted": [f"arn:aws:iam::{VENDOR}:root"], "unused": False},
            ADMIN_ROLE: {"account_id": PROD, "trusted": [ALICE], "unused": False},
            LEGACY_ROLE: {"account_id": PROD, "trusted": [DEV], "unused": False},
            LAMBDA_ROLE: {"account_id": PROD, "trusted": ["lambda.amazonaws.com"], "unused": False},
            SUPPORT_ROLE: {"account_id": PROD, "trusted": ["support.amazonaws.com"], "unused": False},
            role_arn("RetiredRole"): {"account_id": PROD, "trusted": [ALICE], "unused": True},
        },
    }

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.posture.model import posture_from_dict, posture_to_dict
from monitor.posture.snapshot import SnapshotError, load_snapshot, load_snapshots

FIXTURES = Path(__file__).parent / "fixtures"
SNAPSHOT = FIXTURES / "authorization_details_111111111111.json"


def test_snapshot_roles_and_bad_entry_reported() -> None:
    notices: list[str] = []
    posture = load_snapshot(SNAPSHOT, notices=notices)
    assert posture.accounts == ["111111111111"]
    assert len(posture.roles) == 4
    vendor = posture.roles["arn:aws:iam::111111111111:role/VendorAudit"]
    assert vendor.last_used == datetime(2026, 5, 30, 8, 15, tzinfo=UTC)
    assert vendor.tags == {"owner": "secops"}
    assert vendor.attached_policies == ["arn:aws:iam::aws:policy/SecurityAudit"]
    admin = posture.role_by_arn("arn:aws:iam::111111111111:role/Admin")  # path-insensitive lookup
    assert admin is not None and admin.path == "/ops/" and admin.inline_policies == ["extra"]
    assert admin.last_used is None
    contractor = posture.roles["arn:aws:iam::111111111111:role/Contractor"]
    assert contractor.trust_policy["Statement"][0]["Condition"]["DateLessThan"]  # URL-encoded form decoded
    assert any(r.is_service_linked for r in posture.roles.values())
    assert len(notices) == 1 and "RoleDetailList[4] (Broken)" in notices[0] and str(SNAPSHOT) in notices[0]


def test_posture_json_round_trip() -> None:
    posture = load_snapshot(SNAPSHOT)
    posture.roles["arn:aws:iam::111111111111:role/VendorAudit"].services_last_accessed = {
        "s3": datetime(2026, 5, 1, tzinfo=UTC), "ec2": None}
    again = posture_from_dict(json.loads(json.dumps(posture_to_dict(posture))))
    assert again.roles == posture.roles and again.accounts == posture.accounts


@pytest.mark.parametrize(("content", "message"), [
    ("{", "not valid JSON"),
    ('{"UserDetailList": []}', "no RoleDetailList"),
])
def test_unusable_files_name_the_file(tmp_path: Path, content: str, message: str) -> None:
    bad = tmp_path / "acct.json"
    bad.write_text(content)
    with pytest.raises(SnapshotError, match=message) as err:
        load_snapshots([SNAPSHOT, bad])
    assert str(bad) in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="cannot read"):
        load_snapshot(tmp_path / "nope.json")

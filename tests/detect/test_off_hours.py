from __future__ import annotations

from tests.detect.helpers import only, record, run, service, session, user

ALICE = user("alice")
BERLIN = {"detectors": {"off_hours": {"timezone": "Europe/Berlin"}}}


def _at(*times: str, who=ALICE, config=BERLIN, role="Deploy"):
    return only(run([record(x, who, role) for x in times], config=config), "off_hours")


def test_1759_inside_1800_outside_in_winter_time():
    # Friday 2030-03-29 is still CET (UTC+1): 17:59 local = 16:59Z, 18:00 local = 17:00Z
    assert _at("2030-03-29T16:59:00Z") == []
    [f] = _at("2030-03-29T17:00:00Z")
    assert f.details["local_day"] == "2030-03-29" and f.details["local_times"] == ["Fri 18:00:00 CET"]
    assert f.severity == "low"
    bob = user("bob", account="444455556666")
    [g] = _at("2030-03-29T17:00:00Z", who=bob)
    assert g.severity == "medium" and g.details["cross_account"] is True


def test_1759_inside_1800_outside_after_dst_change():
    # DST starts 2030-03-31; Monday 2030-04-01 is CEST (UTC+2): 17:59 local = 15:59Z
    assert _at("2030-04-01T15:59:00Z") == []
    [f] = _at("2030-04-01T16:00:00Z")
    assert "CEST" in f.details["local_times"][0]


def test_0800_is_inside_0759_outside():
    assert _at("2030-04-01T06:00:00Z") == []
    assert len(_at("2030-04-01T05:59:59Z")) == 1


def test_weekend_and_holiday_are_off():
    assert len(_at("2030-03-30T10:00:00Z")) == 1  # Saturday
    cfg = {"detectors": {"off_hours": {"timezone": "Europe/Berlin", "holidays": ["2030-04-01"]}}}
    assert len(_at("2030-04-01T10:00:00Z", config=cfg)) == 1


def test_one_finding_per_role_principal_local_day():
    found = _at("2030-03-30T01:00:00Z", "2030-03-30T02:00:00Z", "2030-03-30T23:30:00Z")  # 23:30Z = 00:30 local Sun
    assert sorted(f.count for f in found) == [1, 2]
    assert sorted(f.details["local_day"] for f in found) == ["2030-03-30", "2030-03-31"]


def test_aws_services_and_exempt_principals_are_never_flagged():
    assert _at("2030-03-30T03:00:00Z", who=service()) == []
    cfg = {"detectors": {"off_hours": {"exempt_principals": ["arn:aws:iam::*:user/alice"]}}}
    assert _at("2030-03-30T03:00:00Z", config=cfg) == []
    ci = session("ci-runner", "job-123", "ASIACI")
    cfg = {"detectors": {"off_hours": {"exempt_principals": ["arn:aws:iam::*:role/ci-*"]}}}
    assert _at("2030-03-30T03:00:00Z", who=ci, config=cfg) == []


def test_role_override_uses_its_own_zone_and_days():
    cfg = {"detectors": {"off_hours": {"overrides": [
        {"role_arn": "arn:aws:iam::*:role/Ops*", "timezone": "America/New_York",
         "business_days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}]}}}
    # Saturday 14:00Z = 10:00 in New York: inside the override, outside the UTC default for other roles
    assert _at("2030-03-30T14:00:00Z", config=cfg, role="OpsAdmin") == []
    assert len(_at("2030-03-30T14:00:00Z", config=cfg, role="Deploy")) == 1

from __future__ import annotations

from datetime import timedelta

from monitor.posture.model import Posture, RoleInfo
from tests.detect.helpers import ACCOUNT, OTHER, only, record, role_arn, run, t, user

ALICE = user("alice")


def _fails(n: int, start: str = "2030-01-01T10:00:00Z", step_s: int = 60, role: str = "Deploy", who=ALICE, **kw):
    return [record(t(start) + timedelta(seconds=i * step_s), who, role, error="AccessDenied", **kw) for i in range(n)]


def test_exactly_burst_threshold_in_window_is_high():
    # 5 failures, the last exactly 10 minutes after the first: inside the (inclusive) window
    res = run(_fails(5, step_s=150))
    [f] = only(res, "failed_assume_role")
    assert f.severity == "high" and f.count == 5
    assert f.details["max_in_window"] == 5
    assert f.role_arn == role_arn("Deploy")
    assert f.principal_arn == ALICE["arn"]


def test_one_below_threshold_is_low_and_still_one_finding():
    res = run(_fails(4))
    [f] = only(res, "failed_assume_role")
    assert f.severity == "low" and f.count == 4 and len(f.event_ids) == 4


def test_five_spread_wider_than_window_stay_low():
    # gaps of 151 s: one burst (gaps < window) but no 10-minute window holds 5
    res = run(_fails(5, step_s=151))
    [f] = only(res, "failed_assume_role")
    assert f.severity == "low" and f.details["max_in_window"] == 4


def test_silence_longer_than_window_splits_bursts():
    res = run(_fails(2) + _fails(2, start="2030-01-01T11:00:00Z"))
    found = only(res, "failed_assume_role")
    assert len(found) == 2 and len({f.fingerprint for f in found}) == 2


def test_enumeration_at_exactly_three_roles_is_one_high_finding():
    recs = [*_fails(1, role="A"), *_fails(1, start="2030-01-01T10:05:00Z", role="B"),
            *_fails(1, start="2030-01-01T10:10:00Z", role="C")]
    [f] = only(run(recs), "failed_assume_role")
    assert f.severity == "high" and f.details["enumeration"] is True
    assert f.details["distinct_roles"] == 3 and len(f.details["roles"]) == 3
    assert "enumeration" in f.title.lower()


def test_two_roles_are_not_enumeration():
    recs = [*_fails(1, role="A"), *_fails(1, start="2030-01-01T10:05:00Z", role="B")]
    found = only(run(recs), "failed_assume_role")
    assert len(found) == 2 and all(f.severity == "low" and "enumeration" not in f.details for f in found)


def test_three_roles_outside_one_window_are_not_enumeration():
    recs = [*_fails(1, role="A"), *_fails(1, start="2030-01-01T10:06:00Z", role="B"),
            *_fails(1, start="2030-01-01T10:12:00Z", role="C")]
    found = only(run(recs), "failed_assume_role")
    assert len(found) == 3 and not any(f.details.get("enumeration") for f in found)


def test_enumeration_by_one_ip_across_principals():
    recs = [*_fails(1, role="A", who=user("a")), *_fails(1, role="B", who=user("b")),
            *_fails(1, role="C", who=user("c"))]
    [f] = only(run(recs), "failed_assume_role")
    assert f.details["grouped_by"] == "source_ip" and f.principal_arn is None
    assert len(f.details["principals"]) == 3


def test_successes_are_not_failures():
    assert only(run([record("2030-01-01T10:00:00Z", ALICE, "Deploy")]), "failed_assume_role") == []


def test_likely_cause_from_trust_policy():
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{OTHER}:root"}, "Action": "sts:AssumeRole"}]}
    posture = Posture(roles={role_arn("Deploy"): RoleInfo(arn=role_arn("Deploy"), name="Deploy", account_id=ACCOUNT,
                                                          trust_policy=trust)}, accounts=[ACCOUNT])
    res = run(_fails(1) + _fails(1, role="Ghost", start="2030-01-01T12:00:00Z"), posture=posture)
    causes = {f.role_arn: f.details.get("likely_cause") for f in only(res, "failed_assume_role")}
    assert causes == {role_arn("Deploy"): "principal not trusted", role_arn("Ghost"): "role does not exist"}


def test_no_likely_cause_without_inventory():
    [f] = only(run(_fails(1)), "failed_assume_role")
    assert "likely_cause" not in f.details

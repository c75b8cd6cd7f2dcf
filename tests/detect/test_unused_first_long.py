from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from monitor.posture.model import Posture, RoleInfo
from monitor.posture.snapshot import load_snapshot
from monitor.posture.store import load_posture, save_posture
from monitor.state.sqlite import SqliteState
from tests.detect.helpers import ACCOUNT, OTHER, daily, only, record, run, service, t, user

NOW = t("2030-06-01T00:00:00Z")
TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{OTHER}:root"}, "Action": "sts:AssumeRole"}]}


def _role(name: str, age_days: float, last_used_days: float | None = None, path: str = "/") -> RoleInfo:
    return RoleInfo(arn=f"arn:aws:iam::{ACCOUNT}:role{path}{name}", name=name, account_id=ACCOUNT, path=path,
                    create_date=NOW - timedelta(days=age_days), trust_policy=TRUST,
                    last_used=None if last_used_days is None else NOW - timedelta(days=last_used_days))


def _posture(*roles: RoleInfo) -> Posture:
    return Posture(roles={r.arn: r for r in roles}, accounts=[ACCOUNT])


def test_unused_role_boundaries():
    posture = _posture(
        _role("Old", 400),  # never used
        _role("Young", 89),  # one day younger than unused_days
        _role("ExactlyOld", 90),
        _role("StaleIam", 400, last_used_days=120),
        _role("FreshIam", 400, last_used_days=89),
        _role("UsedInTrail", 400),
        _role("AWSServiceRoleForX", 400, path="/aws-service-role/x.amazonaws.com/"),
    )
    trail = [record(NOW - timedelta(days=10), user("bob", OTHER), "UsedInTrail")]
    res = run(trail, now=NOW, posture=posture)
    found = {f.role_arn.rsplit("/", 1)[-1]: f for f in only(res, "unused_role")}
    assert set(found) == {"Old", "ExactlyOld", "StaleIam"}
    assert found["Old"].details["last_used"] == "never"
    assert found["StaleIam"].details["last_used"] == "2030-02-01T00:00:00Z"
    assert found["StaleIam"].details["last_used_source"] == "iam_role_last_used"
    assert found["Old"].details["trusted_principals"] == [f"arn:aws:iam::{OTHER}:root"]
    assert all(f.severity == "low" for f in found.values())


def test_unused_role_names_the_iam_data_a_last_use_came_from(tmp_path: Path) -> None:
    # a real inventory: the get-account-authorization-details snapshot, with service last accessed
    # attached as the posture job attaches it, kept in and read back from a real SQLite state
    posture = load_snapshot(Path(__file__).parents[1] / "posture" / "fixtures" /
                            "authorization_details_111111111111.json")
    vendor, admin = (posture.role_by_arn(f"arn:aws:iam::111111111111:role/{n}") for n in ("VendorAudit", "Admin"))
    assert vendor is not None and admin is not None
    vendor.services_last_accessed = {"s3": t("2026-04-01T00:00:00Z")}  # older than its RoleLastUsed
    admin.services_last_accessed = {"ec2": t("2026-07-01T09:30:00Z"), "s3": None}  # no RoleLastUsed
    state = SqliteState(tmp_path / "state.db")
    save_posture(state, posture)
    stored = load_posture(state)
    state.close()
    found = {f.role_arn.rsplit("/", 1)[-1]: f.details for f in only(run([], now="2026-12-01T00:00:00Z",
                                                                         posture=stored), "unused_role")}
    assert set(found) == {"VendorAudit", "Admin", "Contractor"}
    assert (found["VendorAudit"]["last_used"], found["VendorAudit"]["last_used_source"]) == (
        "2026-05-30T08:15:00Z", "iam_role_last_used")
    assert (found["Admin"]["last_used"], found["Admin"]["last_used_source"]) == (
        "2026-07-01T09:30:00Z", "iam_service_last_accessed")
    assert (found["Contractor"]["last_used"], found["Contractor"]["last_used_source"]) == ("never", None)


def test_unused_role_uses_the_baseline_of_earlier_runs():
    posture = _posture(_role("Deploy", 400))
    first = run([record(NOW - timedelta(days=30), user("bob"), "Deploy")], now=NOW, posture=posture)
    assert only(first, "unused_role") == []
    second = run([], now=NOW, posture=posture, baselines=first.baselines)
    assert only(second, "unused_role") == []


def test_unused_role_skipped_without_inventory():
    res = run([record("2030-01-01T10:00:00Z", user("a"), "R")])
    assert only(res, "unused_role") == []
    assert any("unused_role skipped" in n for n in res.notices)


def test_first_time_principal_after_learning():
    base = daily("2030-01-01T00:00:00Z", 15, user("alice"), "Deploy")
    newcomer = record("2030-01-20T10:00:00Z", user("mallory", OTHER), "Deploy")
    [f] = only(run([*base, newcomer]), "first_time_principal")
    assert f.principal_arn == user("mallory", OTHER)["arn"] and f.severity == "high"
    assert f.details["known_principals"] == [user("alice")["arn"]]


def test_first_time_principal_silent_during_learning_and_for_services():
    base = daily("2030-01-01T00:00:00Z", 15, user("alice"), "Deploy")
    early = record("2030-01-10T10:00:00Z", user("bob"), "Deploy")
    svc = record("2030-01-20T10:00:00Z", service(), "Deploy")
    assert only(run([*base, early, svc]), "first_time_principal") == []


def test_assumed_role_sessions_with_random_names_are_one_principal():
    from tests.detect.helpers import session

    base = [record(t("2030-01-01T10:00:00Z") + timedelta(days=d), session("ci", f"job-{d}", f"ASIAJOB{d}"), "Deploy")
            for d in range(20)]
    assert only(run(base), "first_time_principal") == []


def test_long_session_threshold():
    recs = [record("2030-01-01T10:00:00Z", user("a"), "R", duration=3600),
            record("2030-01-01T10:05:00Z", user("a"), "R", duration=3601),
            record("2030-01-01T10:06:00Z", user("a"), "R", duration=43200)]
    [f] = only(run(recs), "long_session")
    assert f.count == 2 and f.details["max_duration_seconds"] == 43200 and f.severity == "low"

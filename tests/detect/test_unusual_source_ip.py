from __future__ import annotations

from monitor.detect.engine import run_detectors  # noqa: F401  (engine import must stay pure)
from tests.detect.helpers import OTHER, daily, only, record, run, service, user

ALICE = user("alice")
LEARN = daily("2030-01-01T00:00:00Z", 14, ALICE, "Deploy", ip="198.51.100.7")


def test_new_network_after_learning_is_medium():
    res = run([*LEARN, record("2030-01-16T10:00:00Z", ALICE, "Deploy", ip="192.0.2.55")])
    [f] = only(res, "unusual_source_ip")
    assert f.severity == "medium" and f.source_ip == "192.0.2.55"
    assert f.details["network"] == "192.0.2.0/24"
    assert f.details["known_networks"] == ["198.51.100.0/24"]


def test_same_slash24_is_not_unusual():
    res = run([*LEARN, record("2030-01-16T10:00:00Z", ALICE, "Deploy", ip="198.51.100.200")])
    assert only(res, "unusual_source_ip") == []


def test_still_in_learning_period_is_silent():
    # pair first seen 2030-01-01 10:00; a new network at 2030-01-15 09:59 is inside its 14 days
    res = run([*LEARN, record("2030-01-15T09:59:00Z", ALICE, "Deploy", ip="192.0.2.55")])
    assert only(res, "unusual_source_ip") == []


def test_ipv6_compared_by_slash64():
    base = daily("2030-01-01T00:00:00Z", 14, ALICE, "Deploy", ip="2001:db8:1:2::10")
    same64 = record("2030-01-16T10:00:00Z", ALICE, "Deploy", ip="2001:db8:1:2:ffff::1")
    other64 = record("2030-01-16T11:00:00Z", ALICE, "Deploy", ip="2001:db8:1:3::1")
    [f] = only(run([*base, same64, other64]), "unusual_source_ip")
    assert f.details["network"] == "2001:db8:1:3::/64" and f.count == 1


def test_cross_account_principal_is_high():
    bob = user("bob", account=OTHER)
    base = daily("2030-01-01T00:00:00Z", 14, bob, "Deploy", ip="198.51.100.7")
    [f] = only(run([*base, record("2030-01-20T10:00:00Z", bob, "Deploy", ip="192.0.2.1")]), "unusual_source_ip")
    assert f.severity == "high" and f.details["cross_account"] is True


def test_aws_service_callers_are_never_unusual():
    base = daily("2030-01-01T00:00:00Z", 20, service(), "Fn")
    assert only(run(base), "unusual_source_ip") == []


def test_allowed_cidrs_suppress():
    cfg = {"detectors": {"unusual_source_ip": {"allowed_cidrs": ["192.0.2.0/24"]}}}
    res = run([*LEARN, record("2030-01-16T10:00:00Z", ALICE, "Deploy", ip="192.0.2.55")], config=cfg)
    assert only(res, "unusual_source_ip") == []


def test_baseline_carries_across_runs():
    first = run(LEARN)
    assert only(first, "unusual_source_ip") == []
    later = [record("2030-01-20T10:00:00Z", ALICE, "Deploy", ip="198.51.100.9"),
             record("2030-01-20T11:00:00Z", ALICE, "Deploy", ip="192.0.2.55")]
    second = run(later, baselines=first.baselines)
    [f] = only(second, "unusual_source_ip")
    assert f.source_ip == "192.0.2.55"
    # without the stored baseline the same data is all "learning"
    assert only(run(later), "unusual_source_ip") == []
    # rerunning with the baseline the second run returned gives the same fingerprint
    again = run(later, baselines=second.baselines)
    assert [g.fingerprint for g in only(again, "unusual_source_ip")] == [f.fingerprint]


def test_only_the_first_day_from_a_new_network_is_reported():
    late = [record("2030-01-16T10:00:00Z", ALICE, "Deploy", ip="192.0.2.55"),
            record("2030-01-18T10:00:00Z", ALICE, "Deploy", ip="192.0.2.56")]
    [f] = only(run([*LEARN, *late]), "unusual_source_ip")
    assert f.count == 1

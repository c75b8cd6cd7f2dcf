"""Fingerprints name incidents, not runs: reordering or repeating records changes nothing."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.detect.helpers import OTHER, daily, record, run, service, t, user

_BASE = [
    *daily("2030-01-01T00:00:00Z", 15, user("alice"), "Deploy", ip="198.51.100.7"),
    *[record(t("2030-01-18T02:00:00Z") + timedelta(minutes=i), user("eve", OTHER), r, error="AccessDenied")
      for i, r in enumerate(["A", "B", "C", "A", "A"])],
    *[record(t("2030-01-19T10:00:00Z") + timedelta(minutes=i), user("bob"), "Deploy", error="AccessDenied")
      for i in range(6)],
    record("2030-01-19T23:00:00Z", user("alice"), "Deploy", ip="192.0.2.4", duration=7200),
    record("2030-01-20T10:00:00Z", user("mallory", OTHER), "Deploy", ip="192.0.2.5"),
    record("2030-01-20T03:00:00Z", service(), "Deploy"),
]
CFG = {"allowlist": [{"principal_arn": "*:user/bob", "owner": "o", "reason": "r", "expires": "2029-01-01"}]}


def _fingerprints(records):
    res = run(records, now="2030-02-01T00:00:00Z", config=CFG)
    return sorted((f.detector, f.fingerprint, f.count, tuple(f.event_ids)) for f in res.findings + res.suppressed)


EXPECTED = _fingerprints(_BASE)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order=st.permutations(range(len(_BASE))), dupes=st.lists(st.integers(0, len(_BASE) - 1), max_size=8))
def test_fingerprints_stable_under_reordering_and_duplication(order, dupes):
    records = [_BASE[i] for i in order] + [_BASE[i] for i in dupes]
    assert _fingerprints(records) == EXPECTED


def test_the_planted_incidents_are_there():
    detectors = {d for d, *_ in EXPECTED}
    assert {"failed_assume_role", "unusual_source_ip", "first_time_principal", "long_session", "off_hours",
            "allowlist_expired"} <= detectors

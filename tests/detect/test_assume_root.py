"""AssumeRoot rows in the detectors: always seen by watched_role, per (target root, principal)
elsewhere, never an unused role, and a refusal that no trust policy explains."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from monitor.findings import fingerprint
from monitor.posture.model import Posture, RoleInfo
from tests import assume_root as sample
from tests.detect.helpers import only, run, t

OTHER_MEMBER = "333333333333"
NOW = "2024-12-01T00:00:00Z"


def root_session(event_id: str, when: str, *, target: str = sample.MEMBER, caller: str | None = None,
                 ip: str = "192.0.2.1") -> dict[str, Any]:
    rec = sample.assume_root_record(event_id, time=when, target=target)
    rec["sourceIPAddress"] = ip
    if caller:  # another management-account role session
        rec["userIdentity"]["arn"] = f"arn:aws:sts::{sample.MANAGEMENT}:assumed-role/{caller}/s"
        rec["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] = f"arn:aws:iam::{sample.MANAGEMENT}:role/{caller}"
    return rec


def test_every_successful_assume_root_is_a_watched_role_finding() -> None:
    recs = [root_session("r1", "2024-10-25T20:52:11Z"), root_session("r2", "2024-10-25T21:30:00Z"),
            root_session("r3", "2024-10-25T22:00:00Z", target=OTHER_MEMBER),
            sample.refused_assume_root_record("d1")]
    found = sorted(only(run(recs, now=NOW), "watched_role"), key=lambda f: f.details["target_account"])
    assert [(f.role_arn, f.count, f.severity) for f in found] == [
        (sample.ROOT_ARN, 2, "high"), (f"arn:aws:iam::{OTHER_MEMBER}:root", 1, "high")]
    f = found[0]
    assert f.details["assume_root"] is True and f.details["target_account"] == sample.MEMBER
    assert f.details["day"] == "2024-10-25" and "failed" not in f.details
    assert f.account_id == sample.MEMBER and f.event_ids == ["r1", "r2"]
    assert f.fingerprint == fingerprint("watched_role", "assume_root", sample.MEMBER, sample.CALLER_ROLE, "2024-10-25")
    assert f.title == "assumed-role/JohnDoe/JohnRole1 took a root session in account 222222222222 (AssumeRoot) (2 times) on 2024-10-25"


def test_refused_assume_root_only_with_include_failed_and_apart_from_successes() -> None:
    recs = [root_session("r1", "2024-10-25T20:52:11Z"), sample.refused_assume_root_record("d1")]
    cfg = {"detectors": {"watched_role": {"include_failed": True}}}
    found = {f.details.get("failed", False): f for f in only(run(recs, now=NOW, config=cfg), "watched_role")}
    assert found[True].event_ids == ["d1"] and found[True].details["error_codes"] == ["AccessDenied"]
    assert found[False].fingerprint == fingerprint("watched_role", "assume_root", sample.MEMBER, sample.CALLER_ROLE, "2024-10-25")


def test_assume_root_off_leaves_it_to_the_role_globs() -> None:
    recs = [root_session("r1", "2024-10-25T20:52:11Z")]
    assert only(run(recs, now=NOW, config={"detectors": {"watched_role": {"assume_root": False}}}),
                "watched_role") == []
    [f] = only(run(recs, now=NOW, config={"detectors": {"watched_role": {
        "assume_root": False, "roles": ["arn:*:iam::*:root"]}}}), "watched_role")
    assert f.details["watched_pattern"] == "arn:*:iam::*:root" and "assume_root" not in f.details


def test_first_time_principal_and_unusual_source_ip_work_per_target_root_and_principal() -> None:
    start = t("2024-09-01T10:00:00Z")
    usual = [root_session(f"u{d}", (start + timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ"), ip="192.0.2.1")
             for d in range(20)]
    later = "2024-10-25T10:00:00Z"
    recs = [*usual,
            root_session("new-caller", later, caller="Intruder"),  # a new principal on a known target root
            root_session("new-net", "2024-10-25T10:05:00Z", ip="198.51.100.7"),  # the usual caller, new network
            root_session("new-target", "2024-10-25T10:10:00Z", target=OTHER_MEMBER)]  # a target's first use: learnt
    res = run(recs, now=NOW)
    [first] = only(res, "first_time_principal")
    assert first.role_arn == sample.ROOT_ARN and first.event_ids == ["new-caller"]
    assert first.title == "assumed-role/Intruder/s assumed the root user of account 222222222222 for the first time"
    unusual = [f for f in only(res, "unusual_source_ip") if f.role_arn == sample.ROOT_ARN]
    assert [f.event_ids for f in unusual] == [["new-net"]]


def test_the_root_pseudo_role_is_never_an_unused_role() -> None:
    old = t("2023-01-01T00:00:00Z")
    role = RoleInfo(arn=f"arn:aws:iam::{sample.MEMBER}:role/Old", name="Old", account_id=sample.MEMBER, path="/",
                    create_date=old, trust_policy={"Version": "2012-10-17", "Statement": []})
    res = run([root_session("r1", "2024-10-25T20:52:11Z")], now=NOW,
              posture=Posture(roles={role.arn: role}, accounts=[sample.MEMBER, sample.MANAGEMENT]))
    assert [f.role_arn for f in only(res, "unused_role")] == [role.arn]


def test_a_refused_assume_root_is_a_failed_attempt_no_trust_policy_explains() -> None:
    res = run([sample.refused_assume_root_record("d1")], now=NOW, posture=Posture(roles={}, accounts=[sample.MEMBER, sample.MANAGEMENT]))
    [f] = only(res, "failed_assume_role")
    assert f.role_arn == sample.ROOT_ARN and f.principal_arn == sample.assume_root_record()["userIdentity"]["arn"]
    assert f.details["likely_cause"] == "undetermined"  # not "role does not exist": no role is involved
    assert f.title.startswith("1 failed AssumeRoot call by ")
    assert f.title.endswith("on the root user of account 222222222222")

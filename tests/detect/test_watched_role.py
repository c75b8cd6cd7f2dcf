"""`watched_role`: break-glass roles and the root user, on Panther's real test events and on built trails."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import ConfigError, parse_config
from monitor.findings import fingerprint
from tests.conftest import load_jsonl
from tests.detect.helpers import ACCOUNT, OTHER, record, role_arn, run, service, session, user

NAME = "watched_role"
BOB = user("bob")
ROOT = {"type": "Root", "principalId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:root", "accountId": ACCOUNT,
        "accessKeyId": "AKIAROOTKEY"}
# Panther's blocklist rule ships with this one role in ASSUME_ROLE_BLOCKLIST
PANTHER_BLOCKLIST = {"detectors": {NAME: {"roles": ["arn:aws:iam::123456789012:role/FullAdminRole"]}}}
PANTHER_RULES = {"AWS.CloudTrail.IAMAssumeRoleBlacklistIgnored", "AWS.CloudTrail.IAMAssumeRoleBlocklistIgnored"}


def watched(result) -> list:  # noqa: ANN001
    return [f for f in result.findings if f.detector == NAME]


def root_call(when: str, **kw) -> dict:  # noqa: ANN003
    rec = record(when, ROOT, "AdminRole", error="AccessDenied", **kw)
    rec["errorMessage"] = "Roles may not be assumed by root accounts."  # AWS refuses roles to root
    return rec


def _panther_cases(shared_data: Path) -> list[tuple[dict, dict]]:
    events = load_jsonl(shared_data / "panther_analysis.events.jsonl")
    labels = [lab for lab in load_jsonl(shared_data / "panther_analysis.labels.jsonl") if lab["rule_id"] in PANTHER_RULES]
    # every fixture is eventID "1111": each is run alone, under an id of its own
    return [(dict(events[lab["line"]], eventID=f"panther-{lab['line']}"), lab) for lab in labels]


def test_panthers_blocklist_rule_tests_give_its_expected_results(shared_data: Path) -> None:
    cases = _panther_cases(shared_data)
    assert {lab["expected_result"] for _, lab in cases} == {True, False}  # both outcomes are exercised
    for event, lab in cases:
        found = watched(run([event], config=PANTHER_BLOCKLIST))
        assert bool(found) is lab["expected_result"], lab["test_name"]
        if found:
            [f] = found
            assert f.role_arn == "arn:aws:iam::123456789012:role/FullAdminRole" and f.severity == "high"
            assert f.principal_arn == "arn:aws:iam::123456789012:user/example-user"
            assert f.event_ids == [event["eventID"]] and f.source_ip == "111.111.111.111"
            assert f.details["chain"] == "example-user (IAM user) → FullAdminRole"


def test_panthers_refused_blocklisted_call_is_tagged_with_include_failed(shared_data: Path) -> None:
    event = next(e for e, lab in _panther_cases(shared_data) if lab["test_name"] == "Error Assuming IAM Blocked Role")
    assert not watched(run([event], config=PANTHER_BLOCKLIST))
    cfg = {"detectors": {NAME: dict(PANTHER_BLOCKLIST["detectors"][NAME], include_failed=True)}}
    [f] = watched(run([event], config=cfg))
    assert f.details["failed"] is True and f.details["error_codes"] == ["ExpiredToken"]
    assert "refused" in f.title


def test_default_config_reports_organization_account_access_role_per_principal_and_day() -> None:
    trail = [
        record("2030-01-02T09:00:00Z", BOB, "OrganizationAccountAccessRole", ip="198.51.100.7"),
        record("2030-01-02T22:00:00Z", BOB, "OrganizationAccountAccessRole"),
        record("2030-01-03T01:00:00Z", BOB, "OrganizationAccountAccessRole"),  # next UTC day
        record("2030-01-02T10:00:00Z", user("carol"), "OrganizationAccountAccessRole"),
        record("2030-01-02T10:00:00Z", BOB, "ReadOnly"),  # not watched
    ]
    found = {(f.principal_arn.rsplit("/", 1)[-1], f.first_seen[:10]): f for f in watched(run(trail))}
    assert set(found) == {("bob", "2030-01-02"), ("bob", "2030-01-03"), ("carol", "2030-01-02")}
    f = found[("bob", "2030-01-02")]
    role = role_arn("OrganizationAccountAccessRole")
    assert f.severity == "high" and f.role_arn == role and f.account_id == ACCOUNT
    assert f.count == 2 and len(f.event_ids) == 2
    assert (f.first_seen, f.last_seen) == ("2030-01-02T09:00:00Z", "2030-01-02T22:00:00Z")
    assert f.details["source_ips"] == ["198.51.100.7", "203.0.113.10"]
    assert f.details["watched_pattern"] == "arn:*:iam::*:role/OrganizationAccountAccessRole"
    assert f.details["chain"] == "bob (IAM user) → OrganizationAccountAccessRole"
    assert f.fingerprint == fingerprint(NAME, role, BOB["arn"], "2030-01-02")


def test_fingerprint_does_not_depend_on_the_rest_of_the_trail() -> None:
    use = record("2030-01-02T09:00:00Z", BOB, "BreakGlassAdmin")
    alone = watched(run([use]))
    busy = watched(run([use, record("2030-01-02T11:00:00Z", BOB, "BreakGlassAdmin"),
                        record("2030-01-02T12:00:00Z", user("eve"), "Deploy")]))
    assert [f.fingerprint for f in alone] == [f.fingerprint for f in busy]
    assert busy[0].count == 2


@pytest.mark.parametrize(("name", "is_watched"), [
    ("BreakGlassAdmin", True), ("prod-breakglass", True), ("BREAK-GLASS-admin", True), ("Break_Glass", True),
    ("organizationaccountaccessrole", True), ("GlassBreaker", False), ("OrganizationAccountAccessRole2", False),
])
def test_default_globs_match_role_names_case_insensitively(name: str, is_watched: bool) -> None:
    found = watched(run([record("2030-01-02T09:00:00Z", BOB, name)]))
    assert bool(found) is is_watched


def test_a_role_path_and_another_partition_match_too() -> None:
    gov = f"arn:aws-us-gov:iam::{ACCOUNT}:role/emergency/BreakGlass"
    [f] = watched(run([record("2030-01-02T09:00:00Z", BOB, gov)]))
    assert f.role_arn == gov


def test_refused_calls_are_left_to_failed_assume_role_unless_include_failed() -> None:
    trail = [record("2030-01-02T09:00:00Z", BOB, "BreakGlassAdmin"),
             record("2030-01-02T09:05:00Z", BOB, "BreakGlassAdmin", error="AccessDenied")]
    default = run(trail)
    [ok] = watched(default)
    assert ok.count == 1 and "failed" not in ok.details
    assert any(f.detector == "failed_assume_role" for f in default.findings)
    tagged = {bool(f.details.get("failed")): f for f in watched(run(trail, config={"detectors": {NAME: {
        "include_failed": True}}}))}
    assert set(tagged) == {False, True}
    assert tagged[False].fingerprint == ok.fingerprint  # turning it on re-alerts nothing
    assert tagged[True].fingerprint != ok.fingerprint and tagged[True].details["error_codes"] == ["AccessDenied"]


def test_services_and_role_sessions_assuming_a_watched_role_are_reported() -> None:
    trail = [record("2030-01-02T09:00:00Z", service("controltower.amazonaws.com"), "BreakGlassAdmin"),
             record("2030-01-02T09:00:00Z", session("ci-runner", "job-1", "ASIACI1"), "BreakGlassAdmin"),
             record("2030-01-02T09:30:00Z", session("ci-runner", "job-2", "ASIACI2"), "BreakGlassAdmin")]
    found = {f.details["principal_type"]: f for f in watched(run(trail))}
    assert set(found) == {"AWSService", "AssumedRole"}
    assert found["AWSService"].details["principal"] == "controltower.amazonaws.com"
    # random session names: the role behind the sessions is the principal, one finding for both jobs
    sessions = found["AssumedRole"]
    assert sessions.count == 2
    assert sessions.fingerprint == fingerprint(NAME, role_arn("BreakGlassAdmin"), role_arn("ci-runner"), "2030-01-02")


def test_allowlist_suppresses_a_watched_role_finding() -> None:
    trail = [record("2030-01-02T09:00:00Z", BOB, "OrganizationAccountAccessRole"),
             record("2030-01-02T09:00:00Z", service("controltower.amazonaws.com"), "BreakGlassAdmin")]
    res = run(trail, now="2030-01-05T00:00:00Z", config={"allowlist": [
        {"role_arn": "*:role/OrganizationAccountAccessRole", "detectors": [NAME], "owner": "o", "reason": "r",
         "expires": "2030-12-31"},
        {"principal_arn": "controltower.amazonaws.com", "owner": "o", "reason": "r", "expires": "2030-12-31"}]})
    assert watched(res) == []
    suppressed = sorted(f.details["principal_type"] for f in res.suppressed if f.detector == NAME)
    assert suppressed == ["AWSService", "IAMUser"]


def test_root_calls_are_one_critical_finding_per_account_and_day() -> None:
    trail = [root_call("2030-01-02T09:00:00Z"), root_call("2030-01-02T09:01:00Z"),
             root_call("2030-01-04T09:00:00Z"),
             record("2030-01-02T09:00:00Z", user("x", OTHER), "Deploy")]
    found = {f.first_seen[:10]: f for f in watched(run(trail))}
    assert set(found) == {"2030-01-02", "2030-01-04"}
    f = found["2030-01-02"]
    assert f.severity == "critical" and f.count == 2 and f.account_id == ACCOUNT
    assert f.principal_arn == ROOT["arn"] and f.details["refused"] == 2
    assert f.details["chain"].startswith(f"root of {ACCOUNT}")
    assert f.fingerprint == fingerprint(NAME, "root", ACCOUNT, "2030-01-02")
    assert "Root user" in f.title and "(2 refused)" in f.title


def test_root_on_a_watched_role_is_one_finding_and_root_false_turns_it_off() -> None:
    rec = record("2030-01-02T09:00:00Z", ROOT, "BreakGlassAdmin", error="AccessDenied")
    both = {"detectors": {NAME: {"include_failed": True}}}
    [f] = watched(run([rec], config=both))
    assert f.severity == "critical" and f.role_arn == role_arn("BreakGlassAdmin")
    [g] = watched(run([rec], config={"detectors": {NAME: {"include_failed": True, "root": False}}}))
    assert g.severity == "high" and g.details["failed"] is True  # then it is one refused watched-role call
    assert watched(run([root_call("2030-01-02T09:00:00Z")], config={"detectors": {NAME: {"root": False}}})) == []


def test_disabled_or_no_roles() -> None:
    trail = [record("2030-01-02T09:00:00Z", BOB, "BreakGlassAdmin"), root_call("2030-01-02T10:00:00Z")]
    assert watched(run(trail, config={"detectors": {NAME: {"enabled": False}}})) == []
    [f] = watched(run(trail, config={"detectors": {NAME: {"roles": []}}}))
    assert f.principal_arn == ROOT["arn"]
    [h] = [f for f in watched(run(trail, config={"detectors": {NAME: {"severity": "medium"}}}))
           if f.principal_arn == BOB["arn"]]
    assert h.severity == "medium"


def test_severity_must_be_a_known_level() -> None:
    with pytest.raises(ConfigError):
        parse_config({"detectors": {NAME: {"severity": "urgent"}}})

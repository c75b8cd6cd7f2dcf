from __future__ import annotations

from tests.detect.helpers import ACCOUNT, OTHER, daily, only, record, run, user

ALICE = user("alice")
NIGHT = record("2030-03-30T03:00:00Z", ALICE, "Deploy", ip="192.0.2.9", agent="Terraform/1.7")


def _entry(**kw):
    return {"owner": "sec-team", "reason": "nightly maintenance", "expires": "2030-12-31", **kw}


def test_matching_entry_suppresses_and_says_why():
    res = run([NIGHT], config={"allowlist": [_entry(cidr="192.0.2.0/24", detectors=["off_hours"])]},
              now="2030-04-01T00:00:00Z")
    assert only(res, "off_hours") == []
    [s] = res.suppressed
    assert s.detector == "off_hours" and s.details["suppressed_by"]["owner"] == "sec-team"


def test_all_matchers_must_match():
    cfg = {"allowlist": [_entry(cidr="192.0.2.0/24", user_agent="aws-cli/*")]}
    res = run([NIGHT], config=cfg, now="2030-04-01T00:00:00Z")
    assert len(only(res, "off_hours")) == 1 and res.suppressed == []
    for matcher in ({"principal_arn": "arn:aws:iam::*:user/ali*"}, {"role_arn": "*:role/Deploy"},
                    {"account": ACCOUNT}, {"user_agent": "Terraform/*"}):
        res = run([NIGHT], config={"allowlist": [_entry(**matcher)]}, now="2030-04-01T00:00:00Z")
        assert only(res, "off_hours") == [] and len(res.suppressed) == 1, matcher


def test_detector_list_limits_an_entry():
    res = run([NIGHT], config={"allowlist": [_entry(cidr="192.0.2.0/24", detectors=["unusual_source_ip"])]},
              now="2030-04-01T00:00:00Z")
    assert len(only(res, "off_hours")) == 1


def test_expired_entry_stops_suppressing_and_is_reported():
    cfg = {"allowlist": [_entry(cidr="192.0.2.0/24", expires="2030-03-31")]}
    # valid through 2030-03-31 (UTC)
    assert only(run([NIGHT], config=cfg, now="2030-03-31T23:59:59Z"), "off_hours") == []
    res = run([NIGHT], config=cfg, now="2030-04-01T00:00:00Z")
    [off] = only(res, "off_hours")
    [exp] = only(res, "allowlist_expired")
    assert exp.details["owner"] == "sec-team" and exp.details["entry"] == {"cidr": "192.0.2.0/24"}
    assert exp.details["now_unsuppressed"] == [off.fingerprint]
    again = run([], config=cfg, now="2030-05-01T00:00:00Z")
    assert [f.fingerprint for f in only(again, "allowlist_expired")] == [exp.fingerprint]


def test_chain_follows_access_keys_back_to_the_person():
    from tests.detect.helpers import session

    saml = {"type": "SAMLUser", "principalId": "idp:alice", "userName": "alice",
            "identityProvider": f"arn:aws:iam::{ACCOUNT}:saml-provider/Okta"}
    recs = [
        record("2030-03-30T02:00:00Z", saml, "ci-runner", event_name="AssumeRoleWithSAML", issued_key="ASIAONE"),
        record("2030-03-30T02:01:00Z", session("ci-runner", "alice", "ASIAONE"), "DeployRole", issued_key="ASIATWO"),
    ]
    res = run(recs, now="2030-04-01T00:00:00Z")
    [f] = [f for f in only(res, "off_hours") if f.role_arn.endswith("/DeployRole")]
    assert f.details["chain"] == "alice via SAML → ci-runner → DeployRole"
    assert [h["type"] for h in f.details["chain_hops"]] == ["SAMLUser", "AssumedRole", "Role"]


def test_sso_session_and_source_identity_name_the_person():
    from tests.detect.helpers import session

    sso = session("AWSReservedSSO_Admin_0123456789abcdef", "alice@example.com", "ASIASSO")
    res = run([record("2030-03-30T02:00:00Z", sso, "DeployRole", source_identity="alice")], now="2030-04-01T00:00:00Z")
    [f] = only(res, "off_hours")
    assert f.details["chain"] == "alice (sourceIdentity): alice@example.com via SSO → DeployRole"


def test_third_party_known_only_by_account_and_principal_id():
    third = {"type": "AWSAccount", "principalId": "AIDAPARTNER", "accountId": OTHER}
    base = daily("2030-01-01T00:00:00Z", 15, ALICE, "Deploy")
    res = run([*base, record("2030-01-20T03:00:00Z", third, "Deploy")])
    [f] = only(res, "first_time_principal")
    assert f.principal_arn is None
    assert f.details["principal_id"] == "AIDAPARTNER" and f.details["principal_account_id"] == OTHER
    assert f.details["principal"] == f"{OTHER}:AIDAPARTNER"


def test_cross_account_copies_count_once():
    caller = record("2030-03-30T03:00:00Z", user("bob", OTHER), "Deploy", shared_event_id="shared-1",
                    event_id="copy-caller", account=OTHER)
    owner = dict(caller, eventID="copy-owner", recipientAccountId=ACCOUNT,
                 userIdentity={"type": "AWSAccount", "principalId": "AIDABOB", "accountId": OTHER})
    [f] = only(run([caller, owner], now="2030-04-01T00:00:00Z"), "off_hours")
    assert f.count == 1 and f.principal_arn == user("bob", OTHER)["arn"]

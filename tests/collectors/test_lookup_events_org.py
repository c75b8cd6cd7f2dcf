"""LookupEvents across an Organization's member accounts, through the audit role.

The Organization, its accounts and the audit-role sessions are real: a moto server over HTTP,
with the STS gate of the posture tests refusing AssumeRole into an account without the audit
role (`tests/posture/conftest.py`). LookupEvents itself goes through the botocore Stubber, as in
test_lookup_events.py, because moto does not implement it: each stubbed client is handed out
only after the session it was made for proves (GetCallerIdentity) that it acts in that account.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber

from monitor.collectors import lookup_events
from monitor.collectors.lookup_events import EVENT_NAMES, LookupEventsCollector
from monitor.collectors.ratelimit import TokenBucket
from monitor.config import AwsConfig, ConfigError
from monitor.health import load_streaks
from monitor.pipeline import run_cycle
from tests.collectors.conftest import make_config, record
from tests.collectors.test_lookup_events import page, params
from tests.collectors.test_ratelimit import FakeClock
from tests.posture import conftest as org_fixtures
from tests.posture.conftest import provision_account

# the posture tests' multi-account moto server and STS gate, shared rather than copied
org_moto_server, org_moto, sts_gate = org_fixtures.org_moto_server, org_fixtures.org_moto, org_fixtures.sts_gate

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
EXTERNAL_ID = "audit-ext-id-123"  # what provision_account's audit role requires
REGIONS = ("us-east-1", "eu-west-1")


def org_members(endpoint: str, n: int) -> list[str]:
    orgs = boto3.client("organizations", endpoint_url=endpoint, region_name="us-east-1")
    orgs.create_organization(FeatureSet="ALL")
    return sorted(orgs.create_account(Email=f"m{i}@example.com", AccountName=f"m{i}")["CreateAccountStatus"]["AccountId"]
                  for i in range(n))


def org_config(tmp_path, endpoint: str, **source):  # noqa: ANN001, ANN201
    return make_config(
        tmp_path, [{"type": "lookup_events", "accounts": "organization", "regions": list(REGIONS), **source}],
        aws=AwsConfig(region="us-east-1", endpoint_url=endpoint, max_attempts=2),
        organization={"enabled": True, "external_id": {"value": EXTERNAL_ID},
                      "exclude": ["123456789012"]},  # the management account has no audit role
    )


@pytest.fixture
def member_stubs(monkeypatch):
    """(account, region) -> Stubber, and account -> the account its session acted in."""
    stubs: dict[tuple[str, str], tuple] = {}
    acted_in: dict[str, str] = {}

    def member_client(self, session, account: str, region: str):  # noqa: ANN001, ANN202
        sts = session.client("sts", endpoint_url=self.config.aws.endpoint_url, region_name="us-east-1")
        acted_in[account] = sts.get_caller_identity()["Account"]
        return stubs[(account, region)][0]

    monkeypatch.setattr(LookupEventsCollector, "member_client", member_client)
    return stubs, acted_in


def stub_for(stubs: dict, account: str, region: str) -> Stubber:
    if (account, region) not in stubs:
        c = boto3.client("cloudtrail", region_name=region, aws_access_key_id="x", aws_secret_access_key="x")
        stubs[(account, region)] = (c, Stubber(c))
    return stubs[(account, region)][1]


def test_members_read_through_the_audit_role_an_unreachable_one_is_named(
        tmp_path, sts_gate, member_stubs, state, monkeypatch, caplog) -> None:
    stubs, acted_in = member_stubs
    reachable, hidden = org_members(sts_gate.url, 2)
    provision_account(sts_gate.upstream, reachable, roles=0)
    sts_gate.deny_missing_roles = True  # no rolewatch-audit in `hidden`: STS says AccessDenied
    clock = FakeClock()
    monkeypatch.setattr(LookupEventsCollector, "buckets", {
        f"{reachable}/{r}": TokenBucket(2, clock=clock, sleep=clock.sleep) for r in REGIONS})
    expected = set()
    for region in REGIONS:
        stub = stub_for(stubs, reachable, region)
        for name in EVENT_NAMES:
            recs = [record(f"{reachable}-{region}-{name}-{i}", name=name, time="2026-06-01T11:00:00Z",
                           recipientAccountId=reachable) for i in range(2)]
            stub.add_response("lookup_events", page(recs, "tok"), params(name))
            stub.add_response("lookup_events", page([]), params(name, "tok"))
            expected |= {r["eventID"] for r in recs}
        stub.activate()
    cfg = org_config(tmp_path, sts_gate.url)

    with caplog.at_level(logging.INFO):
        res = run_cycle(cfg, state, now=NOW)

    for region in REGIONS:
        stubs[(reachable, region)][1].assert_no_pending_responses()  # every page of every name and region
    assert acted_in == {reachable: reachable}  # read with the member's own session, never ours
    assert set(state.load_events()["event_id"]) == expected and res.events_new == len(expected) == len(REGIONS) * len(EVENT_NAMES) * 2
    for region in REGIONS:
        assert state.get_checkpoint("lookup_events", f"{reachable}/{region}") == "2026-06-01T12:00:00Z"
        assert state.get_checkpoint("lookup_events", f"{hidden}/{region}") is None
    rows = sorted((c.account, c.region or "", c.status, c.records) for c in res.coverage)
    per_region = 2 * len(EVENT_NAMES)
    assert rows == [(reachable, "eu-west-1", "ok", per_region), (reachable, "us-east-1", "ok", per_region),
                    (hidden, "", "failed", 0)]
    [failed] = [c for c in res.coverage if c.account == hidden]
    assert failed.message.startswith("assume_audit_role: ") and "AccessDenied" in failed.message
    assert any(hidden in e for e in res.errors)
    # monitor_health's account_unreachable streak: this source, the audit role, AccessDenied
    [streak] = load_streaks(state)
    assert (streak.account_id, streak.via, streak.step, streak.error_code) == (
        hidden, "lookup_events", "assume_audit_role", "AccessDenied")
    # the ExternalId was sent on every AssumeRole, and is nowhere in what rolewatch wrote
    assert sts_gate.assume_requests and all(r.get("ExternalId") == EXTERNAL_ID for r in sts_gate.assume_requests)
    assert caplog.records and EXTERNAL_ID not in caplog.text
    assert all(EXTERNAL_ID not in (c.message or "") for c in res.coverage)
    assert all(EXTERNAL_ID not in e for e in res.errors) and EXTERNAL_ID not in str(streak)
    assert len(clock.sleeps) > 0  # paced per account/region by the bucket


def test_rerun_reads_from_each_units_checkpoint_and_stores_nothing_twice(
        tmp_path, sts_gate, member_stubs, state, monkeypatch) -> None:
    stubs, _ = member_stubs
    [member] = org_members(sts_gate.url, 1)
    provision_account(sts_gate.upstream, member, roles=0)
    clock = FakeClock()
    monkeypatch.setattr(LookupEventsCollector, "buckets", {
        f"{member}/{r}": TokenBucket(2, clock=clock, sleep=clock.sleep) for r in REGIONS})
    recs = {name: [record(f"{member}-{name}-{i}", name=name, time="2026-06-01T11:55:00Z") for i in range(3)]
            for name in EVENT_NAMES}
    cfg = org_config(tmp_path, sts_gate.url)
    later = NOW + timedelta(minutes=5)
    for i, now in enumerate((NOW, later)):
        for region in REGIONS:
            stubs.pop((member, region), None)  # a fresh client per cycle, as the collector makes one
            stub = stub_for(stubs, member, region)
            for name in EVENT_NAMES:
                # the second cycle starts at the unit's checkpoint minus the 20-minute overlap
                start = NOW - timedelta(hours=24) if i == 0 else NOW - timedelta(minutes=20)
                stub.add_response("lookup_events", page(recs[name] if region == "us-east-1" else []), {
                    "LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": name}],
                    "StartTime": start, "EndTime": now})
            stub.activate()
        res = run_cycle(cfg, state, now=now)
        for region in REGIONS:
            stubs[(member, region)][1].assert_no_pending_responses()
        assert res.errors == []
        assert res.events_new == (3 * len(EVENT_NAMES) if i == 0 else 0)
        [east] = [c for c in res.coverage if c.region == "us-east-1"]
        n = 3 * len(EVENT_NAMES)
        assert (east.account, east.delivered, east.records) == (member, n, n if i == 0 else 0)
    assert len(state.load_events()) == 3 * len(EVENT_NAMES)
    assert state.get_checkpoint("lookup_events", f"{member}/us-east-1") == "2026-06-01T12:05:00Z"


def test_default_reads_only_its_own_account_as_before(tmp_path, state, monkeypatch) -> None:
    def no_org(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("the default source must not touch the Organization or the audit role")

    monkeypatch.setattr(lookup_events, "AuditSessions", no_org)
    monkeypatch.setattr(lookup_events, "list_accounts", no_org)
    c = boto3.client("cloudtrail", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(c)
    for name in EVENT_NAMES:
        stub.add_response("lookup_events", page([record(f"own-{name}", name=name, time="2026-06-01T11:00:00Z")]),
                          params(name))
    stub.activate()
    monkeypatch.setattr(LookupEventsCollector, "client", lambda self, region: c)
    clock = FakeClock()
    monkeypatch.setattr(LookupEventsCollector, "buckets", {"us-east-1": TokenBucket(2, clock=clock, sleep=clock.sleep)})
    cfg = make_config(tmp_path, [{"type": "lookup_events"}])
    assert cfg.sources[0].accounts is None
    res = run_cycle(cfg, state, now=NOW)
    stub.assert_no_pending_responses()
    assert [(c.account, c.region, c.status, c.records) for c in res.coverage] == [(None, "us-east-1", "ok", len(EVENT_NAMES))]
    assert state.get_checkpoint("lookup_events", "us-east-1") == "2026-06-01T12:00:00Z"
    assert set(state.load_events()["event_id"]) == {f"own-{n}" for n in EVENT_NAMES}


def test_accounts_option_is_validated(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"sources\[0\]\.accounts: reading other accounts needs \[organization\]"):
        make_config(tmp_path, [{"type": "lookup_events", "accounts": "organization"}])
    with pytest.raises(ConfigError, match=r"sources\[0\]\.accounts"):
        make_config(tmp_path, [{"type": "lookup_events", "accounts": ["12345"]}],
                    organization={"enabled": True})
    cfg = make_config(tmp_path, [{"type": "lookup_events", "accounts": ["111122223333"]}],
                      organization={"enabled": True})
    assert cfg.sources[0].accounts == ["111122223333"]

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.config import MonitorHealthConfig
from monitor.detect.monitor_health import (
    POSTURE,
    WHOLE_CYCLE,
    AccountObservation,
    SourceObservation,
    account_unreachable_fingerprint,
    detect_monitor_health,
    failed_streak_fingerprint,
    fold_streaks,
    silence_fingerprint,
)
from monitor.health import source_account_round
from monitor.state.base import Coverage

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CFG = MonitorHealthConfig(failed_cycles=3, max_silence_minutes=60)


def cycles(source: str, pattern: list[tuple[str, int]], every_minutes: int = 5) -> list[SourceObservation]:
    """Observations ending at NOW, oldest first: (status, delivered) per cycle."""
    n = len(pattern)
    return [
        SourceObservation(source, NOW - timedelta(minutes=every_minutes * (n - 1 - i)), status, delivered,
                          "AccessDenied on s3:ListBucket" if status == "failed" else None)
        for i, (status, delivered) in enumerate(pattern)
    ]


def test_three_failures_in_a_row_is_a_finding_two_is_not() -> None:
    two = cycles("s3:trail/", [("ok", 4), ("failed", 0), ("failed", 0)])
    assert detect_monitor_health(two, NOW, CFG) == []
    three = cycles("s3:trail/", [("ok", 4), ("failed", 0), ("failed", 0), ("failed", 0)])
    [f] = detect_monitor_health(three, NOW, CFG)
    assert f.detector == "monitor_health" and f.severity == "high"
    assert f.fingerprint == failed_streak_fingerprint("s3:trail/")
    assert f.details["consecutive_failures"] == 3
    assert f.details["last_error"] == "AccessDenied on s3:ListBucket"
    assert f.first_seen == "2026-03-02T11:50:00Z" and f.last_seen == "2026-03-02T12:00:00Z"


def test_a_success_breaks_the_streak() -> None:
    obs = cycles("s3:trail/", [("failed", 0), ("failed", 0), ("failed", 0), ("ok", 1)])
    assert detect_monitor_health(obs, NOW, CFG) == []


def test_failed_cycles_counts_cycles_not_the_units_of_one_cycle() -> None:
    one_cycle = [SourceObservation("s3:org/", NOW, "failed", 0, "AccessDenied", account, "us-east-1")
                 for account in ("111111111111", "222222222222", "333333333333")]
    assert detect_monitor_health(one_cycle, NOW, CFG) == []
    # three cycles in which one unit failed and another was read: the source as a whole works
    mixed = unit_cycles({("111111111111", "us-east-1"): [("failed", 0)] * 3,
                         ("222222222222", "us-east-1"): [("ok", 1)] * 3})
    assert [f for f in detect_monitor_health(mixed, NOW, CFG) if f.details["check"] == "failed_cycles"] == []
    # three cycles in which every unit failed
    dead = unit_cycles({("111111111111", "us-east-1"): [("ok", 1)] + [("failed", 0)] * 3,
                        ("222222222222", "us-east-1"): [("ok", 1)] + [("failed", 0)] * 3})
    [f] = [f for f in detect_monitor_health(dead, NOW, CFG) if f.details["check"] == "failed_cycles"]
    assert f.count == 3 and f.first_seen == "2026-03-02T11:50:00Z"


def test_streak_fingerprint_is_stable_as_the_streak_grows() -> None:
    a = detect_monitor_health(cycles("x", [("failed", 0)] * 3), NOW, CFG)
    b = detect_monitor_health(cycles("x", [("failed", 0)] * 5), NOW, CFG)
    assert a[0].fingerprint == b[0].fingerprint and b[0].count == 5


def test_silence_for_longer_than_max_is_a_stopped_trail() -> None:
    # records two hours ago, then 13 successful polls with nothing
    obs = cycles("cloudwatch_logs:trail", [("ok", 10)] + [("ok", 0)] * 24)
    [f] = detect_monitor_health(obs, NOW, CFG)
    assert f.fingerprint == silence_fingerprint("cloudwatch_logs:trail")
    assert f.details["silent_minutes"] == 120
    assert f.details["last_records_at"] == "2026-03-02T10:00:00Z"
    assert "stopped" in f.title


def test_records_inside_the_window_mean_no_silence() -> None:
    obs = cycles("t", [("ok", 0)] * 20 + [("ok", 2)] + [("ok", 0)] * 3)
    assert detect_monitor_health(obs, NOW, CFG) == []


def test_not_watched_long_enough_is_not_silence() -> None:
    obs = cycles("t", [("ok", 0)] * 6)  # 25 minutes of history, window is 60
    assert detect_monitor_health(obs, NOW, CFG) == []


def test_sources_are_judged_separately_and_disabled_means_nothing() -> None:
    obs = cycles("a", [("failed", 0)] * 3) + cycles("b", [("ok", 1)] * 3)
    assert [f.details["source"] for f in detect_monitor_health(obs, NOW, CFG)] == ["a"]
    assert detect_monitor_health(obs, NOW, MonitorHealthConfig(enabled=False)) == []


def test_whole_cycle_failures_have_their_own_title() -> None:
    [f] = detect_monitor_health(cycles(WHOLE_CYCLE, [("failed", 0)] * 3), NOW, CFG)
    assert f.title == "rolewatch collection cycle failed 3 times in a row"
    # and the cycle as a whole is never "silent": silence belongs to sources
    assert detect_monitor_health(cycles(WHOLE_CYCLE, [("ok", 0)] * 25), NOW, CFG) == []


# --------------------------------------------------------------------------- accounts out of sight

def seen(account: str, at: datetime, ok: bool, code: str | None = "AccessDenied", via: str = POSTURE) -> AccountObservation:
    return (AccountObservation(account, via, at, ok=True) if ok else
            AccountObservation(account, via, at, ok=False, step="assume_audit_role", error_code=code,
                               message=f"ClientError: An error occurred ({code}) when calling the AssumeRole operation"))


def test_streaks_start_grow_end_and_drop_accounts_out_of_scope() -> None:
    day = timedelta(days=1)
    first = fold_streaks([], [seen("111111111111", NOW, ok=True), seen("222222222222", NOW, ok=False)])
    assert [(s.account_id, s.rounds, s.since) for s in first] == [("222222222222", 1, NOW)]
    second = fold_streaks(first, [seen("111111111111", NOW + day, ok=False), seen("222222222222", NOW + day, ok=False)])
    assert [(s.account_id, s.rounds, s.since, s.last) for s in second] == [
        ("111111111111", 1, NOW + day, NOW + day), ("222222222222", 2, NOW, NOW + day)]
    # 111.. reachable again, 222.. no longer in the round's scope: both streaks end
    assert fold_streaks(second, [seen("111111111111", NOW + 2 * day, ok=True)]) == []


def test_unreachable_account_is_medium_then_high_after_failed_cycles_with_one_fingerprint() -> None:
    streaks: list = []
    severities, fingerprints = [], set()
    for i, code in enumerate(["AccessDenied", "Throttling", "AccessDenied"]):
        streaks = fold_streaks(streaks, [seen("222222222222", NOW + timedelta(days=i), ok=False, code=code)])
        [f] = detect_monitor_health([], NOW + timedelta(days=i), CFG, streaks)
        severities.append(f.severity)
        fingerprints.add(f.fingerprint)
    assert severities == ["medium", "medium", "high"]  # CFG.failed_cycles == 3
    assert fingerprints == {account_unreachable_fingerprint("222222222222", POSTURE)}
    assert f.account_id == "222222222222" and f.count == 3 and f.first_seen == "2026-03-02T12:00:00Z"
    assert f.details["error_code"] == "AccessDenied" and f.details["consecutive_failures"] == 3
    assert detect_monitor_health([], NOW, MonitorHealthConfig(enabled=False), streaks) == []


def test_one_finding_per_account_and_channel() -> None:
    streaks = fold_streaks([], [seen("222222222222", NOW, ok=False)]) + fold_streaks(
        [], [seen("222222222222", NOW, ok=False, via="s3:trail/")])
    found = detect_monitor_health([], NOW, CFG, streaks)
    assert sorted(f.details["source"] for f in found) == [POSTURE, "s3:trail/"]
    assert len({f.fingerprint for f in found}) == 2
    assert "through s3:trail/" in next(f.title for f in found if f.details["source"] == "s3:trail/")


def test_a_cycles_coverage_says_which_accounts_a_source_could_not_read() -> None:
    denied = "cannot list s3://trail/AWSLogs/222222222222/CloudTrail/eu-west-1/: An error occurred (AccessDenied) " \
             "when calling the ListObjectsV2 operation: Access Denied"
    rows = [Coverage("r", "s3:trail/", None, None, "ok", account="111111111111", region="us-east-1"),
            Coverage("r", "s3:trail/", None, None, "partial", account="111111111111", region="eu-west-1"),
            Coverage("r", "s3:trail/", None, None, "ok", account="222222222222", region="us-east-1"),
            Coverage("r", "s3:trail/", None, None, "failed", account="222222222222", region="eu-west-1",
                     message=denied)]
    ok, bad = source_account_round(rows, NOW)
    assert (ok.account_id, ok.ok) == ("111111111111", True)  # objects to retry are not a blind spot
    assert (bad.account_id, bad.ok, bad.step, bad.error_code, bad.regions) == (
        "222222222222", False, "read_source", "AccessDenied", ("eu-west-1",))
    # a source that failed before listing its accounts says nothing about them
    assert source_account_round([Coverage("r", "s3:trail/", None, None, "failed", message="NoSuchBucket")], NOW) is None


def unit_cycles(units: dict[tuple[str, str], list[tuple[str, int]]], source: str = "s3:org/") -> list[SourceObservation]:
    """Per account/region cycles ending at NOW, five minutes apart: (status, delivered) per cycle."""
    return [SourceObservation(source, o.at, o.status, o.delivered, o.message, account, region)
            for (account, region), pattern in units.items() for o in cycles(source, pattern)]


def test_one_silent_unit_among_delivering_ones_is_its_own_finding_after_the_window() -> None:
    busy = [("ok", 1)] * 20
    stopped_at_minute_10 = [("ok", 1)] * 3 + [("ok", 0)] * 17  # last delivery 85 minutes before NOW
    obs = unit_cycles({("111111111111", "us-east-1"): busy, ("222222222222", "eu-west-1"): stopped_at_minute_10,
                       ("222222222222", "us-east-1"): busy})
    [f] = detect_monitor_health(obs, NOW, CFG)
    assert f.fingerprint == silence_fingerprint("s3:org/", "222222222222", "eu-west-1")
    assert f.fingerprint != silence_fingerprint("s3:org/", "222222222222", "us-east-1") != silence_fingerprint("s3:org/")
    assert (f.account_id, f.details["region"], f.details["silent_minutes"]) == ("222222222222", "eu-west-1", 85)
    assert f.details["last_records_at"] == "2026-03-02T10:35:00Z" and f.first_seen == f.details["last_records_at"]
    # 55 minutes after its last delivery it is not silence yet
    assert detect_monitor_health(obs, NOW - timedelta(minutes=30), CFG) == []


def test_a_unit_that_never_delivered_is_not_silent() -> None:
    obs = unit_cycles({("111111111111", "us-east-1"): [("ok", 1)] * 30, ("111111111111", "ap-south-1"): [("ok", 0)] * 30})
    assert detect_monitor_health(obs, NOW, CFG) == []


def test_a_unit_it_cannot_read_is_not_called_silent() -> None:
    obs = unit_cycles({("111111111111", "us-east-1"): [("ok", 1)] * 20,
                       ("222222222222", "us-east-1"): [("ok", 1)] * 3 + [("failed", 0)] * 17})
    assert detect_monitor_health(obs, NOW, CFG) == []


def test_a_whole_silent_source_is_one_finding_not_one_per_unit_but_open_units_stay() -> None:
    quiet = [("ok", 1)] * 3 + [("ok", 0)] * 17
    obs = unit_cycles({(f"11111111111{i}", r): quiet for i in range(3) for r in ("us-east-1", "eu-west-1")})
    [f] = detect_monitor_health(obs, NOW, CFG)
    assert f.fingerprint == silence_fingerprint("s3:org/") and f.account_id is None
    known = {("s3:org/", "111111111110", "us-east-1"): NOW - timedelta(hours=3)}
    found = detect_monitor_health(obs, NOW, CFG, silent_units=known)
    assert [(x.account_id, x.details.get("region")) for x in found] == [(None, None), ("111111111110", "us-east-1")]


def test_an_open_unit_silence_outlives_the_history_until_the_unit_delivers_or_leaves() -> None:
    unit = ("s3:org/", "222222222222", "eu-west-1")
    known = {unit: NOW - timedelta(hours=5)}
    others = {("111111111111", "us-east-1"): [("ok", 1)] * 12}
    quiet = unit_cycles({**others, ("222222222222", "eu-west-1"): [("ok", 0)] * 12})
    assert detect_monitor_health(quiet, NOW, CFG) == []  # the history alone no longer shows a delivery
    [f] = detect_monitor_health(quiet, NOW, CFG, silent_units=known)
    assert f.details["last_records_at"] == "2026-03-02T07:00:00Z" and f.details["silent_minutes"] == 300
    unreadable = unit_cycles({**others, ("222222222222", "eu-west-1"): [("failed", 0)] * 12})
    assert len(detect_monitor_health(unreadable, NOW, CFG, silent_units=known)) == 1  # not cleared by failing
    back = unit_cycles({**others, ("222222222222", "eu-west-1"): [("ok", 0)] * 11 + [("ok", 1)]})
    assert detect_monitor_health(back, NOW, CFG, silent_units=known) == []
    gone = unit_cycles(others)  # the source listed its units and this one was not among them
    assert detect_monitor_health(gone, NOW, CFG, silent_units=known) == []


def test_a_remembered_delivery_older_than_the_history_makes_a_polled_quiet_unit_silent() -> None:
    unit = ("s3:org/", "222222222222", "eu-west-1")
    memory = {unit: NOW - timedelta(hours=4), ("s3:org/", "111111111111", "us-east-1"): NOW}
    others = {("111111111111", "us-east-1"): [("ok", 1)] * 12}
    quiet = unit_cycles({**others, ("222222222222", "eu-west-1"): [("ok", 0)] * 12})
    assert detect_monitor_health(quiet, NOW, CFG) == []  # the history alone: it never delivered
    [f] = detect_monitor_health(quiet, NOW, CFG, last_deliveries=memory)
    assert f.fingerprint == silence_fingerprint(*unit)
    assert f.details["last_records_at"] == "2026-03-02T08:00:00Z" and f.details["silent_minutes"] == 240
    recent = {unit: NOW - timedelta(minutes=30)}
    assert detect_monitor_health(quiet, NOW, CFG, last_deliveries=recent) == []  # not quiet for long enough
    unreadable = unit_cycles({**others, ("222222222222", "eu-west-1"): [("failed", 0)] * 12})
    assert detect_monitor_health(unreadable, NOW, CFG, last_deliveries=memory) == []  # unreachable's business
    gone = unit_cycles(others)  # remembered, but the source no longer lists it
    assert detect_monitor_health(gone, NOW, CFG, last_deliveries=memory) == []


def test_units_of_a_source_that_filters_at_aws_are_not_judged_one_by_one(state) -> None:  # noqa: ANN001
    """lookup_events over member accounts reports units, but a quiet one means "no AssumeRole calls"."""
    from monitor.config import parse_config
    from monitor.health import check_health

    config = parse_config({
        "organization": {"enabled": True, "external_id": {"value": "xid-demo-1"}},
        "sources": [{"type": "lookup_events", "accounts": ["111111111111", "222222222222"]},
                    {"type": "s3", "bucket": "trail"}],
        "detectors": {"monitor_health": {"max_silence_minutes": 60, "failed_cycles": 3}},
    })
    start = NOW - timedelta(minutes=150)
    for i in range(31):  # a cycle every 5 minutes; 222.../us-east-1 stops delivering 80 minutes before NOW
        at = start + timedelta(minutes=5 * i)
        run = state.start_run("collect", at)
        for source in ("lookup_events", "s3:trail/"):
            for account in ("111111111111", "222222222222"):
                quiet = account == "222222222222" and i >= 15
                state.record_coverage(Coverage(run, source, None, None, "ok", account=account, region="us-east-1",
                                               delivered=0 if quiet else 2))
        state.finish_run(run, at, "ok", {})
    found = [f for f, _, _ in check_health(state, config, NOW) if f.details["check"] == "silence"]
    # the S3 unit is a stopped trail; the same account quiet in event history is not
    assert [(f.details["source"], f.account_id) for f in found] == [("s3:trail/", "222222222222")]

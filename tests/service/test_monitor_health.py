from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.config import MonitorHealthConfig
from monitor.detect.monitor_health import (
    WHOLE_CYCLE,
    SourceObservation,
    detect_monitor_health,
    failed_streak_fingerprint,
    silence_fingerprint,
)

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CFG = MonitorHealthConfig(failed_cycles=3, max_silence_minutes=60)


def cycles(source: str, pattern: list[tuple[str, int]], every_minutes: int = 5) -> list[SourceObservation]:
    """Observations ending at NOW, oldest first: (status, records) per cycle."""
    n = len(pattern)
    return [
        SourceObservation(source, NOW - timedelta(minutes=every_minutes * (n - 1 - i)), status, records,
                          "AccessDenied on s3:ListBucket" if status == "failed" else None)
        for i, (status, records) in enumerate(pattern)
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

"""The token bucket on a fake clock: pacing without waiting."""

from __future__ import annotations

import pytest

from monitor.collectors.ratelimit import TokenBucket, paced, shared_bucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_burst_then_steady_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5, clock=clock, sleep=clock.sleep)
    for _ in range(5):  # a full bucket: the first five go at once
        assert bucket.acquire() == 0
    assert clock.now == 1000.0
    for _ in range(10):
        bucket.acquire()
    assert clock.now == pytest.approx(1002.0)  # ten more at 5/s take two seconds
    assert all(s == pytest.approx(0.2) for s in clock.sleeps)


def test_never_more_than_rate_in_any_window() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(21):
        bucket.acquire()
        times.append(clock.now)
    # in every 1-second window at most capacity + rate * 1 s requests start
    for t in times:
        assert sum(1 for u in times if t <= u < t + 1.0) <= 2 + 2
    assert times[-1] - times[0] == pytest.approx((21 - 2) / 2)


def test_idle_time_refills_but_not_beyond_capacity() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        bucket.acquire()
    clock.now += 60  # a long pause earns at most one burst
    for _ in range(5):
        assert bucket.acquire() == 0
    assert bucket.acquire() == pytest.approx(0.2)


def test_paced_takes_one_token_per_request() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1, clock=clock, sleep=clock.sleep)
    requested = []

    def pages():
        for i in range(4):
            requested.append(clock.now)  # a lazy page iterator makes its request here
            yield i

    assert list(paced(pages(), bucket)) == [0, 1, 2, 3]
    assert requested == [1000.0, 1001.0, 1002.0, 1003.0]


def test_rejects_a_zero_rate_and_shares_buckets_per_key() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0)
    a = shared_bucket(("test", "acct", "r1"), 5)
    assert shared_bucket(("test", "acct", "r1"), 5) is a
    assert shared_bucket(("test", "acct", "r2"), 5) is not a
    assert shared_bucket(("test", "acct", "r1"), 2) is a and a.rate == 2  # the stricter source wins

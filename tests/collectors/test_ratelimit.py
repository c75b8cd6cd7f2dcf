"""The token bucket on a fake clock: pacing without waiting."""

from __future__ import annotations

import os
import sys
import threading

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


class ThreadClock(FakeClock):
    """A fake clock that remembers what each thread last read: the bucket reads it under its lock
    just before granting, so that is the exact time of the thread's grant."""

    def __init__(self) -> None:
        super().__init__()
        self.read: dict[int, float] = {}

    def __call__(self) -> float:
        self.read[threading.get_ident()] = now = self.now
        os.sched_yield()  # let another thread in between the bucket's read and its update
        return now


def test_threads_sharing_a_bucket_get_no_more_than_rate_times_time_plus_burst() -> None:
    clock = ThreadClock()
    bucket = TokenBucket(5, clock=clock, sleep=clock.sleep)
    grants: list[float] = []
    threads_, per_thread = 4, 100

    def take() -> None:
        for _ in range(per_thread):
            bucket.acquire()
            grants.append(clock.read[threading.get_ident()])

    threads = [threading.Thread(target=take) for _ in range(threads_)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: a race in the bucket shows up
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    grants.sort()
    assert len(grants) == threads_ * per_thread
    for n, t in enumerate(grants, start=1):  # by time t at most rate * t + burst tokens granted
        assert n <= 5 * (t - 1000.0) + 5 + 1e-6
    assert clock.now - 1000.0 == pytest.approx((threads_ * per_thread - 5) / 5)  # and no slower


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

"""Client-side request pacing: a token bucket per API, account (credentials) and region.

AWS publishes per-account, per-region request quotas for the log-reading APIs (FilterLogEvents
5/s, LookupEvents 2/s). Adaptive retries recover from throttling after the fact; pacing keeps a
long backfill from being throttled in the first place and leaves headroom for other tools.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


class TokenBucket:
    """`rate` acquisitions per second on average, in bursts of at most `capacity`.

    `clock` and `sleep` are injectable so tests run on a fake clock and never wait.
    """

    def __init__(self, rate: float, capacity: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(1.0, rate)
        self.clock = clock
        self.sleep = sleep
        self._tokens = self.capacity
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self, tokens: float = 1.0) -> float:
        """Take tokens, sleeping until they are there; returns the seconds slept."""
        slept = 0.0
        with self._lock:  # waiters queue behind the lock: the rate holds across threads
            while True:
                now = self.clock()
                self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= tokens - 1e-9:  # float slack: a sleep may land a hair short
                    self._tokens = max(0.0, self._tokens - tokens)
                    return slept
                delay = (tokens - self._tokens) / self.rate
                self.sleep(delay)
                slept += delay


_buckets: dict[Hashable, TokenBucket] = {}
_buckets_lock = threading.Lock()


def shared_bucket(key: Hashable, rate: float) -> TokenBucket:
    """One bucket per key (API, credentials, region) for the whole process, whichever source asks."""
    with _buckets_lock:
        bucket = _buckets.get(key)
        if bucket is None:
            bucket = _buckets[key] = TokenBucket(rate)
        elif rate < bucket.rate:  # two sources on one account/region: the stricter limit holds for both
            bucket.rate = rate
        return bucket


def paced(pages: Iterable[T], bucket: TokenBucket) -> Iterator[T]:
    """Iterate a lazy botocore page iterator, taking one token before each request it makes."""
    it = iter(pages)
    while True:
        bucket.acquire()
        try:
            page = next(it)
        except StopIteration:
            return
        yield page

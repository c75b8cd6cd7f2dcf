"""Throttling that outlives botocore's own retries: back off and try again, with an injected sleep.

botocore's adaptive retry mode already retries throttled calls a few times; a collector that
runs many jobs against a per-account API rate (IAM, Access Analyzer) can still see a
ThrottlingException surface. These helpers retry such a call with capped exponential backoff.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from botocore.exceptions import ClientError

T = TypeVar("T")
THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded", "TooManyRequestsException",
    "LimitExceededException", "RequestThrottled", "SlowDown",
})


def error_code(exc: BaseException) -> str | None:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code")
    return None


def is_throttling(exc: BaseException) -> bool:
    return error_code(exc) in THROTTLING_CODES


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """attempt 0 -> base, doubling, never above cap."""
    return min(cap, base * (2 ** attempt))


def retry_throttled(call: Callable[[], T], *, sleep: Callable[[float], Any], attempts: int = 5,
                    base: float = 1.0, cap: float = 30.0) -> T:
    for attempt in range(attempts):
        try:
            return call()
        except ClientError as exc:
            if not is_throttling(exc) or attempt == attempts - 1:
                raise
            sleep(backoff_delay(attempt, base, cap))
    raise AssertionError("unreachable")  # pragma: no cover

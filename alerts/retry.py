"""Retry policy for every HTTP notifier, built on slack-sdk's retry handlers.

slack-sdk retries only connection errors by default. We add: 429 with Retry-After (its
`RateLimitErrorRetryHandler`), 500/503 (its `ServerErrorRetryHandler`) and 502/504, which no
built-in handler covers. Each handler's wait goes through an injectable `sleep` (overriding the
public `prepare_for_next_attempt` hook), so tests run without real waiting.

A connection dropped after the request went out is ambiguous: the server may have acted on it.
For writes (chat.postMessage, webhooks) that is not retried here; the outbox keeps the message and
the next attempt first checks whether it arrived (`Notifier.find_delivery`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from http.client import RemoteDisconnected
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from slack_sdk.http_retry import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler, RetryHandler
from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

Sleep = Callable[[float], None]

MAX_RETRIES = 3
MAX_RETRY_AFTER_SECONDS = 60.0  # longer waits are left to the next cycle instead of blocking this one
# Slack Web API methods that only read: safe to repeat after an ambiguous connection drop
READ_METHODS = frozenset({"conversations.history", "conversations.replies", "conversations.list", "auth.test"})


def retry_after_seconds(response: HttpResponse) -> float | None:
    for key, values in response.headers.items():
        if key.lower() == "retry-after":
            raw = values[0] if isinstance(values, list) else values
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                return None
    return None


class RateLimitRetry(RateLimitErrorRetryHandler):
    """429: wait what Retry-After says (through `sleep`), unless that is longer than `max_wait`."""

    def __init__(self, max_retry_count: int = MAX_RETRIES, *, sleep: Sleep = time.sleep,
                 max_wait: float = MAX_RETRY_AFTER_SECONDS) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.sleep = sleep
        self.max_wait = max_wait

    def _can_retry(self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None,
                   error: Exception | None = None) -> bool:
        if response is None or response.status_code != 429:
            return False
        wait = retry_after_seconds(response)
        return wait is None or wait <= self.max_wait

    def prepare_for_next_attempt(self, *, state: RetryState, request: HttpRequest,
                                 response: HttpResponse | None = None, error: Exception | None = None) -> None:
        wait = retry_after_seconds(response) if response is not None else None
        state.next_attempt_requested = True
        self.sleep(1.0 if wait is None else wait)
        state.increment_current_attempt()


class _BackoffSleep(RetryHandler):
    """Exponential backoff from the handler's interval calculator, slept through `sleep`."""

    sleep: Sleep

    def prepare_for_next_attempt(self, *, state: RetryState, request: HttpRequest,
                                 response: HttpResponse | None = None, error: Exception | None = None) -> None:
        state.next_attempt_requested = True
        self.sleep(self.interval_calculator.calculate_sleep_duration(state.current_attempt))
        state.increment_current_attempt()


class ServerErrorRetry(_BackoffSleep, ServerErrorRetryHandler):
    """500 and 503 (slack-sdk's built-in set)."""

    def __init__(self, max_retry_count: int = MAX_RETRIES, *, sleep: Sleep = time.sleep) -> None:
        ServerErrorRetryHandler.__init__(self, max_retry_count=max_retry_count)
        self.sleep = sleep


class GatewayErrorRetry(_BackoffSleep):
    """502 and 504: what load balancers and proxies in front of an API answer when it is down."""

    def __init__(self, max_retry_count: int = MAX_RETRIES, *, sleep: Sleep = time.sleep) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.sleep = sleep

    def _can_retry(self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None,
                   error: Exception | None = None) -> bool:
        return response is not None and response.status_code in (502, 504)


class ConnectionRetry(_BackoffSleep, ConnectionErrorRetryHandler):
    """Connection errors: always when the request never left (refused, DNS); after a drop only for reads."""

    def __init__(self, max_retry_count: int = MAX_RETRIES, *, sleep: Sleep = time.sleep) -> None:
        ConnectionErrorRetryHandler.__init__(self, max_retry_count=max_retry_count)
        self.sleep = sleep

    def _can_retry(self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None,
                   error: Exception | None = None) -> bool:
        if error is None or response is not None or isinstance(error, HTTPError):
            return False
        if isinstance(error, URLError):
            return True  # urllib raises URLError only when sending failed
        if isinstance(error, RemoteDisconnected | ConnectionResetError):
            method = request.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
            return method in READ_METHODS
        return False


def retry_handlers(*, sleep: Sleep = time.sleep, max_retries: int = MAX_RETRIES) -> list[RetryHandler]:
    return [
        ConnectionRetry(max_retries, sleep=sleep),
        RateLimitRetry(max_retries, sleep=sleep),
        ServerErrorRetry(max_retries, sleep=sleep),
        GatewayErrorRetry(max_retries, sleep=sleep),
    ]


def post(url: str, body: bytes, headers: dict[str, str], *, handlers: Sequence[RetryHandler],
         timeout: float = 10.0) -> tuple[int, str]:
    """POST with the same retry handlers slack-sdk uses; returns (status, body) of the last answer."""
    state = RetryState()
    while True:
        state.next_attempt_requested = False
        request = Request(url, data=body, headers=headers, method="POST")
        retry_request = HttpRequest.from_urllib_http_request(request)
        try:
            with urlopen(request, timeout=timeout) as resp:  # noqa: S310 - URL comes from config
                return int(resp.status), resp.read().decode("utf-8", "replace")
        except HTTPError as exc:
            text = exc.read().decode("utf-8", "replace")
            answer = HttpResponse(status_code=exc.code, headers={k: [v] for k, v in exc.headers.items()},
                                  data=text.encode())
            if not _try_again(handlers, state, retry_request, answer, exc):
                return exc.code, text
        except Exception as exc:
            if not _try_again(handlers, state, retry_request, None, exc):
                raise


def _try_again(handlers: Sequence[RetryHandler], state: RetryState, request: HttpRequest,
               response: HttpResponse | None, error: Exception) -> bool:
    for handler in handlers:
        if handler.can_retry(state=state, request=request, response=response, error=error):
            handler.prepare_for_next_attempt(state=state, request=request, response=response, error=error)
            return True
    return False


def describe(error: BaseException) -> str:
    """A short reason for the outbox and the log (secrets masked by the caller)."""
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}"[:500]



"""The retry handlers on their own: what is retried, how long it waits, and what never is."""

from __future__ import annotations

from http.client import RemoteDisconnected
from urllib.error import URLError

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from alerts.retry import ConnectionRetry, GatewayErrorRetry, RateLimitRetry, post, retry_handlers
from monitor.demo.local_aws import free_port
from tests.alerts.conftest import Receiver, Sleeps
from tests.slack_standin import SlackStandin


def request(method: str) -> HttpRequest:
    return HttpRequest(method="POST", url=f"https://slack.com/api/{method}", headers={})


def answer(status: int, **headers: str) -> HttpResponse:
    return HttpResponse(status_code=status, headers=headers)


def test_gateway_handler_covers_what_the_builtin_does_not() -> None:
    handler = GatewayErrorRetry(sleep=Sleeps())
    state = RetryState()
    assert handler.can_retry(state=state, request=request("chat.postMessage"), response=answer(502))
    assert handler.can_retry(state=state, request=request("chat.postMessage"), response=answer(504))
    assert not handler.can_retry(state=state, request=request("chat.postMessage"), response=answer(500))
    assert not handler.can_retry(state=state, request=request("chat.postMessage"), response=answer(404))


def test_rate_limit_sleeps_retry_after_and_refuses_long_waits() -> None:
    sleeps = Sleeps()
    handler = RateLimitRetry(sleep=sleeps, max_wait=60)
    state = RetryState()
    resp = answer(429, **{"Retry-After": "3"})
    assert handler.can_retry(state=state, request=request("chat.postMessage"), response=resp)
    handler.prepare_for_next_attempt(state=state, request=request("chat.postMessage"), response=resp)
    assert sleeps == [3.0] and state.current_attempt == 1 and state.next_attempt_requested
    assert not handler.can_retry(state=RetryState(), request=request("x"), response=answer(429, **{"retry-after": "61"}))


def test_connection_drops_are_retried_only_where_repeating_is_harmless() -> None:
    handler = ConnectionRetry(sleep=Sleeps())
    dropped = RemoteDisconnected("Remote end closed connection without response")
    state = RetryState()
    assert handler.can_retry(state=state, request=request("conversations.history"), error=dropped)
    assert not handler.can_retry(state=state, request=request("chat.postMessage"), error=dropped)
    refused = URLError(ConnectionRefusedError(111, "Connection refused"))
    assert handler.can_retry(state=state, request=request("chat.postMessage"), error=refused)


def test_refused_connection_is_retried_then_raised() -> None:
    sleeps = Sleeps()
    url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    with pytest.raises(URLError):
        post(url, b"{}", {}, handlers=retry_handlers(sleep=sleeps))
    assert len(sleeps) == 3


def test_post_returns_the_final_status(receiver: Receiver) -> None:
    sleeps = Sleeps()
    receiver.statuses = [503, 429, 200]
    status, _ = post(receiver.url, b"{}", {"Content-Type": "application/json"}, handlers=retry_handlers(sleep=sleeps))
    assert status == 200 and len(receiver.requests) == 3


def test_web_client_reads_are_retried_after_a_drop(slack: SlackStandin) -> None:
    sleeps = Sleeps()
    web = WebClient(token=slack.token, base_url=slack.api_url, retry_handlers=retry_handlers(sleep=sleeps))
    web.chat_postMessage(channel="#security-alerts", text="hello")
    slack.drop_next(method="conversations.history")
    history = web.conversations_history(channel="C0SECALERTS")
    assert [m["text"] for m in history["messages"]] == ["hello"]
    assert len(slack.calls("conversations.history")) == 2 and len(sleeps) == 1
    with pytest.raises(SlackApiError) as exc:
        WebClient(token="xoxb-0-wrong", base_url=slack.api_url).auth_test()
    assert exc.value.response["error"] == "invalid_auth"

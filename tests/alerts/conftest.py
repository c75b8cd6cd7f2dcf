"""Fixtures for the notifier tests: the Slack stand-in, findings, configs and a recording sleep."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from monitor.config import Config, parse_config
from monitor.findings import Finding
from tests.slack_standin import SlackStandin, bot_standin

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlackStandin]:
    with bot_standin(monkeypatch, NOW) as standin:
        yield standin


class Sleeps(list[float]):
    """A sleep that records the requested waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def make_finding(**overrides: Any) -> Finding:
    base: dict[str, Any] = {
        "detector": "failed_assume_role",
        "severity": "high",
        "title": "Burst of failed AssumeRole calls",
        "fingerprint": "f" * 32,
        "account_id": "111122223333",
        "role_arn": "arn:aws:iam::111122223333:role/OrganizationAccountAccessRole",
        "principal_arn": "arn:aws:iam::444455556666:user/mallory",
        "source_ip": "203.0.113.7",
        "first_seen": "2026-03-02T07:58:00Z",
        "last_seen": "2026-03-02T08:04:00Z",
        "count": 12,
        "event_ids": ["9d6e2c4a-0000-4000-8000-000000000001"],
        "details": {"likely_cause": "a script retrying with a wrong ExternalId", "region": "eu-central-1"},
    }
    base.update(overrides)
    return Finding(**base)


@pytest.fixture
def finding() -> Callable[..., Finding]:
    return make_finding


def slack_config(standin: SlackStandin, **notifier: Any) -> Config:
    entry = {"type": "slack", "channel": "#security-alerts", "api_url": standin.api_url,
             "timezone": "Europe/Berlin", **notifier}
    return parse_config({"notifiers": [entry]})


class Receiver:
    """A generic HTTPS-less webhook endpoint on 127.0.0.1: records raw requests, answers scripted statuses."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []  # answered in order, then 204
        self.echo_path = False  # error statuses repeat the request path, like Express's "Cannot POST /..."
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append((dict(self.headers.items()), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 204
                page = f"Cannot POST {self.path}".encode() if receiver.echo_path and status >= 400 else b""
                self.send_response(status)
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/rolewatch"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()

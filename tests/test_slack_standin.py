"""The Slack stand-in itself (tests/slack_standin.py), driven by the real slack-sdk: the file upload
flow the reports use, history with metadata, and the fault switches."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from tests.slack_standin import SlackStandin


@pytest.fixture
def standin() -> Iterator[SlackStandin]:
    with SlackStandin() as s:
        yield s


def client(s: SlackStandin) -> WebClient:
    return WebClient(token=s.token, base_url=s.api_url, retry_handlers=[])


def test_files_upload_v2_flow(standin: SlackStandin) -> None:
    resp = client(standin).files_upload_v2(channel="C0REPORTS01", filename="review.html", title="Access review",
                                           content="<h1>review</h1>", initial_comment="Monthly access review")
    assert resp["file"]["title"] == "Access review"
    (upload,) = standin.uploads.values()
    assert upload["data"] == b"<h1>review</h1>" and upload["filename"] == "review.html"
    (shared,) = standin.channel_messages("C0REPORTS01")
    assert shared.text == "Monthly access review" and shared.files[0]["name"] == "review.html"
    assert [r.method for r in standin.requests] == [
        "files.getUploadURLExternal", "upload", "files.completeUploadExternal"]


def test_history_returns_metadata_only_when_asked(standin: SlackStandin) -> None:
    web = client(standin)
    web.chat_postMessage(channel="#security-alerts", text="x",
                         metadata={"event_type": "rolewatch_finding", "event_payload": {"fingerprint": "fp"}})
    plain = web.conversations_history(channel="C0SECALERTS")["messages"][0]
    rich = web.conversations_history(channel="C0SECALERTS", include_all_metadata=True)["messages"][0]
    assert "metadata" not in plain
    assert rich["metadata"]["event_payload"] == {"fingerprint": "fp"}


def test_rejects_what_slack_rejects(standin: SlackStandin) -> None:
    web = client(standin)
    with pytest.raises(SlackApiError, match="invalid_blocks"):
        web.chat_postMessage(channel="#security-alerts", text="x",
                             blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "y" * 3001}}])
    with pytest.raises(SlackApiError, match="channel_not_found"):
        web.chat_postMessage(channel="#nowhere", text="x")
    with pytest.raises(SlackApiError, match="invalid_auth"):
        WebClient(token="xoxb-nope", base_url=standin.api_url).chat_postMessage(channel="#security-alerts", text="x")
    assert standin.messages == []


def test_fault_switches(standin: SlackStandin) -> None:
    web = client(standin)
    standin.fail_next(429, retry_after=1)
    with pytest.raises(SlackApiError) as exc:
        web.auth_test()
    assert exc.value.response.status_code == 429 and exc.value.response.headers["Retry-After"] == "1"
    standin.drop_next()
    with pytest.raises(ConnectionError):
        web.auth_test()
    assert web.auth_test()["ok"] is True

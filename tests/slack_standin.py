"""A local Slack: a real HTTP server (stdlib, a thread on 127.0.0.1) that speaks the parts of the
Web API rolewatch uses and Slack's incoming-webhook endpoint.

Web API (POST {api_url}<method>, bearer token checked, JSON or form bodies):
chat.postMessage, conversations.history, conversations.replies, conversations.list,
files.getUploadURLExternal, files.completeUploadExternal, auth.test, plus the upload URL the
former hands out. Webhooks: POST {webhook_url}.

It validates what real Slack rejects (more than 50 blocks, a section text over 3,000 characters,
unknown channels, a bad token), records every request, and can be told to misbehave:

    slack = SlackStandin(); slack.start()
    slack.fail_next(429, retry_after=0)           # the next request answers 429
    slack.fail_next(502, times=2, method="chat.postMessage")
    slack.drop_next(after_processing=True)        # act on the request, then close without answering
    slack.down = True                             # every request: connection closed
    WebClient(token=slack.token, base_url=slack.api_url)
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

TOKEN = "xoxb-1111-2222-standintoken"
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000


@dataclass
class Recorded:
    method: str  # API method ("chat.postMessage"), "webhook" or "upload"
    headers: dict[str, str]
    body: Any  # parsed JSON / form dict, or raw bytes for uploads
    status: int | None = None  # what was answered; None when the connection was dropped
    raw: bytes = b""


@dataclass
class Fault:
    status: int | None  # None: drop the connection
    retry_after: float | None = None
    method: str | None = None  # only requests to this method; None: any
    after_processing: bool = False  # drop only after acting on the request (the response is lost)
    times: int = 1


@dataclass
class Posted:
    channel: str
    ts: str
    text: str | None
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None = None
    metadata: dict[str, Any] | None = None
    reply_broadcast: bool = False
    files: list[dict[str, Any]] = field(default_factory=list)

    def as_api(self, with_metadata: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "message", "ts": self.ts, "text": self.text or ""}
        if self.blocks:
            out["blocks"] = self.blocks
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if self.files:
            out["files"] = self.files
        if with_metadata and self.metadata:
            out["metadata"] = self.metadata
        return out


def _truthy(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


class SlackStandin:
    def __init__(self, token: str = TOKEN, channels: dict[str, str] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.token = token
        self.clock = clock  # message ts = this clock's seconds; tests with an injected "now" pass theirs
        # name -> ID; unknown names are channel_not_found like real Slack
        self.channels = dict(channels or {"security-alerts": "C0SECALERTS", "rolewatch-digest": "C0DIGEST01",
                                          "reports": "C0REPORTS01"})
        self.requests: list[Recorded] = []
        self.messages: list[Posted] = []
        self.webhook_posts: list[dict[str, Any]] = []
        self.uploads: dict[str, dict[str, Any]] = {}  # file id -> {filename, length, data, title}
        self.faults: deque[Fault] = deque()
        self.down = False
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SlackStandin:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                standin._handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="slack-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SlackStandin:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def base(self) -> str:
        assert self._server is not None, "start() the stand-in first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return self.base + "/api/"

    @property
    def webhook_url(self) -> str:
        return self.base + "/services/T0STANDIN/B0STANDIN/standinwebhooksecret"

    # ------------------------------------------------------------------ test controls

    def fail_next(self, status: int, *, times: int = 1, retry_after: float | None = None,
                  method: str | None = None) -> None:
        self.faults.append(Fault(status, retry_after, method, times=times))

    def drop_next(self, *, times: int = 1, method: str | None = None, after_processing: bool = False) -> None:
        self.faults.append(Fault(None, None, method, after_processing, times))

    def calls(self, method: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method]

    def channel_messages(self, channel_id: str, *, top_level: bool = False) -> list[Posted]:
        return [m for m in self.messages if m.channel == channel_id and not (top_level and m.thread_ts)]

    # ------------------------------------------------------------------ request handling

    def _fault_for(self, method: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.method in (None, method):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        raw = req.rfile.read(length) if length else b""
        path = urlparse(req.path).path
        if path.startswith("/api/"):
            method = path.removeprefix("/api/")
        elif path.startswith("/services/"):
            method = "webhook"
        elif path.startswith("/upload/"):
            method = "upload"
        else:
            method = path
        record = Recorded(method, dict(req.headers.items()), self._parse(req, raw, method), raw=raw)
        with self._lock:
            self.requests.append(record)
        fault = self._fault_for(method)
        if self.down or (fault and fault.status is None and not fault.after_processing):
            self._drop(req)
            return
        if fault and fault.status is not None:
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            body = {"ok": False, "error": "ratelimited"} if fault.status == 429 else None
            self._reply(req, record, fault.status, body if body else f"upstream error {fault.status}", headers)
            return
        status, answer = self._dispatch(method, record, path)
        if fault and fault.after_processing:
            self._drop(req)
            return
        self._reply(req, record, status, answer)

    @staticmethod
    def _parse(req: BaseHTTPRequestHandler, raw: bytes, method: str) -> Any:
        if method == "upload":
            return raw
        ctype = req.headers.get("Content-Type", "")
        if "json" in ctype or (method == "webhook" and raw.startswith(b"{")):
            try:
                return json.loads(raw or b"{}")
            except ValueError:
                return {"_invalid_json": raw.decode("utf-8", "replace")}
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        query = {k: v[0] for k, v in parse_qs(urlparse(req.path).query).items()}
        return {**query, **form}

    @staticmethod
    def _drop(req: BaseHTTPRequestHandler) -> None:
        req.close_connection = True
        with contextlib.suppress(OSError):
            req.connection.shutdown(socket.SHUT_RDWR)

    @staticmethod
    def _reply(req: BaseHTTPRequestHandler, record: Recorded, status: int, answer: Any,
               headers: dict[str, str] | None = None) -> None:
        record.status = status
        if isinstance(answer, dict | list):
            data, ctype = json.dumps(answer).encode(), "application/json; charset=utf-8"
        else:
            data, ctype = str(answer).encode(), "text/plain; charset=utf-8"
        req.send_response(status)
        req.send_header("Content-Type", ctype)
        req.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            req.send_header(k, v)
        req.end_headers()
        req.wfile.write(data)

    def _dispatch(self, method: str, record: Recorded, path: str) -> tuple[int, Any]:
        if method == "webhook":
            return self._webhook(record)
        if method == "upload":
            file_id = path.rsplit("/", 1)[-1]
            if file_id not in self.uploads:
                return 404, "unknown upload"
            self.uploads[file_id]["data"] = record.body
            return 200, f"OK - {len(record.body)}"
        auth = record.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else record.body.get("token")
        if token != self.token:
            return 200, {"ok": False, "error": "invalid_auth" if token else "not_authed"}
        handler = getattr(self, "_api_" + method.replace(".", "_"), None)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}
        with self._lock:
            return 200, handler(record.body)

    # ------------------------------------------------------------------ API methods

    def _channel_id(self, channel: str | None) -> str | None:
        if not channel:
            return None
        if channel in self.channels.values():
            return channel
        return self.channels.get(channel.lstrip("#"))

    @staticmethod
    def _blocks_error(blocks: Any) -> str | None:
        if blocks is None:
            return None
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        if len(blocks) > MAX_BLOCKS:
            return "invalid_blocks"
        for block in blocks:
            text = (block.get("text") or {}).get("text", "")
            if block.get("type") == "section" and len(text) > MAX_SECTION_TEXT:
                return "invalid_blocks"
            if block.get("type") == "section" and len(block.get("fields") or []) > 10:
                return "invalid_blocks"
            if block.get("type") == "header" and len(text) > 150:
                return "invalid_blocks"
        return None

    def _next_ts(self) -> str:
        return f"{int(self.clock())}.{next(self._ts):06d}"

    def _api_auth_test(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "team": "standin", "user": "rolewatch", "bot_id": "B0STANDIN"}

    def _api_chat_postMessage(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        channel = self._channel_id(body.get("channel"))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        if not body.get("text") and not body.get("blocks"):
            return {"ok": False, "error": "no_text"}
        error = self._blocks_error(body.get("blocks"))
        if error:
            return {"ok": False, "error": error}
        thread_ts = body.get("thread_ts")
        if thread_ts and not any(m.ts == thread_ts and m.channel == channel for m in self.messages):
            return {"ok": False, "error": "thread_not_found"}
        metadata = body.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        blocks = body.get("blocks")
        posted = Posted(channel, self._next_ts(), body.get("text"),
                        json.loads(blocks) if isinstance(blocks, str) else blocks,
                        thread_ts, metadata, _truthy(body.get("reply_broadcast")))
        self.messages.append(posted)
        return {"ok": True, "channel": channel, "ts": posted.ts, "message": posted.as_api(True)}

    def _page(self, items: list[dict[str, Any]], body: dict[str, Any], key: str) -> dict[str, Any]:
        limit = int(body.get("limit") or 100)
        start = int(body.get("cursor") or 0)
        page = items[start : start + limit]
        cursor = str(start + limit) if start + limit < len(items) else ""
        return {"ok": True, key: page, "has_more": bool(cursor), "response_metadata": {"next_cursor": cursor}}

    def _api_conversations_history(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_id(body.get("channel"))
        if channel is None or channel != body.get("channel"):
            return {"ok": False, "error": "channel_not_found"}  # history wants an ID, not a name
        oldest = float(body.get("oldest") or 0)
        with_meta = _truthy(body.get("include_all_metadata"))
        found = [m.as_api(with_meta) for m in reversed(self.messages)
                 if m.channel == channel and (not m.thread_ts or m.reply_broadcast) and float(m.ts) > oldest]
        return self._page(found, body, "messages")

    def _api_conversations_replies(self, body: dict[str, Any]) -> dict[str, Any]:
        channel, ts = body.get("channel"), body.get("ts")
        thread = [m for m in self.messages if m.channel == channel and (m.ts == ts or m.thread_ts == ts)]
        if not thread:
            return {"ok": False, "error": "thread_not_found"}
        with_meta = _truthy(body.get("include_all_metadata"))
        return self._page([m.as_api(with_meta) for m in thread], body, "messages")

    def _api_conversations_list(self, body: dict[str, Any]) -> dict[str, Any]:
        channels = [{"id": cid, "name": name, "is_archived": False} for name, cid in self.channels.items()]
        return self._page(channels, body, "channels")

    def _api_files_getUploadURLExternal(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        if not body.get("filename") or not body.get("length"):
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{len(self.uploads) + 1:08d}"
        self.uploads[file_id] = {"filename": body["filename"], "length": int(body["length"]), "data": None}
        return {"ok": True, "file_id": file_id, "upload_url": f"{self.base}/upload/{file_id}"}

    def _api_files_completeUploadExternal(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        files = body.get("files")
        files = json.loads(files) if isinstance(files, str) else files
        shared = []
        for f in files or []:
            upload = self.uploads.get(f.get("id"))
            if upload is None or upload["data"] is None:
                return {"ok": False, "error": "file_not_found"}
            if len(upload["data"]) != upload["length"]:
                return {"ok": False, "error": "file_upload_size_mismatch"}
            upload["title"] = f.get("title")
            shared.append({"id": f["id"], "name": upload["filename"], "title": f.get("title") or upload["filename"]})
        channel = body.get("channel_id")
        if channel:
            if self._channel_id(channel) != channel:
                return {"ok": False, "error": "channel_not_found"}
            self.messages.append(Posted(channel, self._next_ts(), body.get("initial_comment"), None,
                                        body.get("thread_ts"), files=shared))
        return {"ok": True, "files": shared}

    def _webhook(self, record: Recorded) -> tuple[int, Any]:
        body = record.body
        if not isinstance(body, dict) or "_invalid_json" in body:
            return 400, "invalid_payload"
        if not body.get("text") and not body.get("blocks"):
            return 400, "no_text"
        if self._blocks_error(body.get("blocks")):
            return 400, "invalid_blocks"
        with self._lock:
            self.webhook_posts.append(body)
        return 200, "ok"


@contextlib.contextmanager
def bot_standin(env: Any, now: Any) -> Iterator[SlackStandin]:
    """A running stand-in whose clock reads `now`, its bot token in SLACK_BOT_TOKEN (via monkeypatch `env`)."""
    standin = SlackStandin(clock=now.timestamp).start()
    env.setenv("SLACK_BOT_TOKEN", standin.token)
    try:
        yield standin
    finally:
        standin.stop()

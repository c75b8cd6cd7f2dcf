"""Headless Chromium for the report tests: a CLI run (screenshot, PDF, DOM) and a small DevTools session.

Local runs without a browser skip with the reason; under CI (`CI=true`) a missing browser fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
         "--disable-extensions", "--mute-audio", "--hide-scrollbars"]


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    reason = "headless Chromium not found (Debian: apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must have it (.ci/run installs it)")
    pytest.skip(reason)


def run_cli(browser: str, profile: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    cmd = [browser, *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


@dataclass
class PageLoad:
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)


class DevTools:
    """Chromium with --remote-debugging-port=0, one page, driven over the DevTools protocol."""

    def __init__(self, browser: str, profile: Path) -> None:
        self.proc = subprocess.Popen(
            [browser, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "--remote-allow-origins=*", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self._id = 0
        self.events: list[dict[str, Any]] = []
        port = self._port(profile)
        deadline = time.monotonic() + 30
        while True:
            # straight to the local browser, whatever proxy the environment names
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            targets = json.loads(opener.open(f"http://127.0.0.1:{port}/json/list", timeout=5).read())
            pages = [t for t in targets if t.get("type") == "page"]
            if pages or time.monotonic() > deadline:
                break
            time.sleep(0.1)  # polling the browser's own start-up, not waiting on the code under test
        import websocket

        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)

    def _port(self, profile: Path) -> int:
        # Chromium writes the chosen port to DevToolsActivePort in the profile once it listens
        marker = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if marker.exists():
                text = marker.read_text().split()
                if text:
                    return int(text[0])
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited: {self.proc.stderr.read() if self.proc.stderr else ''}")
            time.sleep(0.05)
        raise RuntimeError("chromium did not open its DevTools port")

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        my_id = self._id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_for(self, method: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        if any(e["method"] == method for e in self.events):
            return
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == method:
                    return
        raise TimeoutError(method)

    def evaluate(self, expression: str) -> Any:
        res = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def load(self, url: str) -> PageLoad:
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        self.send("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        self.evaluate("1")  # flush: events raised during load arrive before this answer
        out = PageLoad()
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Network.requestWillBeSent":
                out.requests.append(p["request"]["url"])
            elif e["method"] == "Runtime.exceptionThrown":
                out.console_errors.append(json.dumps(p.get("exceptionDetails", {}))[:500])
            elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
                out.console_errors.append(" ".join(str(a.get("value")) for a in p.get("args", [])))
            elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") in ("error", "warning"):
                out.console_errors.append(p["entry"].get("text", ""))
        return out

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def remote_requests(urls: list[str]) -> list[str]:
    return [u for u in urls if not re.match(r"^(file|data|about|blob):", u)]

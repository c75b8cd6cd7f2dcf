"""Console notifier: the plain-text alert on stdout (for `rolewatch once` in a terminal or a job log)."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from alerts.base import Message, Notifier
from alerts.render import plain_text


class ConsoleNotifier(Notifier):
    type = "console"

    def __init__(self, name: str, *, default_region: str, stream: TextIO | None = None) -> None:
        super().__init__(name)
        self.default_region = default_region
        self.stream = stream

    def send(self, message: Message) -> dict[str, Any]:
        out = self.stream or sys.stdout
        out.write(plain_text(message, default_region=self.default_region, limit=20_000) + "\n\n")
        out.flush()
        return {}

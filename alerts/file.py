"""File notifier: JSON Lines, appended, one finding per line in the findings contract
(`Finding.to_dict()`, secrets redacted) — what SIEM shippers (Filebeat, Fluent Bit, the CloudWatch
agent) tail. A digest writes one line per finding it carries.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from alerts.base import DeliveryError, Message, Notifier
from monitor.redact import redact


def finding_lines(message: Message) -> list[str]:
    return [json.dumps(redact(f.to_dict()), separators=(",", ":"), default=str) for f in message.findings]


class FileNotifier(Notifier):
    type = "file"
    # the file itself says whether the lines were written before a crash
    can_verify = True

    def __init__(self, name: str, path: Path) -> None:
        super().__init__(name)
        self.path = path

    def send(self, message: Message) -> dict[str, Any]:
        lines = finding_lines(message)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # one write of whole lines with O_APPEND: a concurrent reader never sees half a record
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write("".join(line + "\n" for line in lines))
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise DeliveryError(f"notifier {self.name}: cannot append to {self.path}: {exc.strerror}",
                                transient=True) from None
        return {"path": str(self.path), "lines": len(lines)}

    def find_delivery(self, message: Message) -> dict[str, Any] | None:
        wanted = set(finding_lines(message))
        try:
            with open(self.path, encoding="utf-8") as fh:
                for line in fh:
                    wanted.discard(line.rstrip("\n"))
                    if not wanted:
                        return {"path": str(self.path), "recovered": True}
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise DeliveryError(f"notifier {self.name}: cannot read {self.path}: {exc.strerror}") from None
        return None

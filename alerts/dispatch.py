"""Route findings to the configured notifiers through the outbox.

(Placeholder until the alerts work lands: sends nothing.)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from monitor.findings import Finding


def notify(findings: list[tuple[Finding, bool, Finding | None]], state: Any, config: Any, now: datetime) -> dict[str, int]:
    """findings: (finding, is_new, previous stored version). Returns counts by outcome."""
    return {"sent": 0, "failed": 0, "queued": 0}

"""What detectors may know besides the events: posture, baselines, and the clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitor.posture.model import Posture


@dataclass
class DetectionContext:
    now: datetime  # the clock: "now" for learning periods and unused_role; never datetime.now() in detect/
    posture: Posture = field(default_factory=Posture)
    # learned baselines carried across runs (state documents); detectors read and return updates
    baselines: dict[str, Any] = field(default_factory=dict)
    # earliest time the data (or state) covers: learning periods start here when no state exists
    data_start: datetime | None = None

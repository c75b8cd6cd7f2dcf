"""Which notifiers a finding goes to: severity band, then detector include / exclude lists."""

from __future__ import annotations

from typing import Any

from monitor.config import SEVERITY_ORDER
from monitor.findings import Finding


def routes(cfg: Any, finding: Finding) -> bool:
    rank = SEVERITY_ORDER[finding.severity]
    if rank < SEVERITY_ORDER[cfg.min_severity]:
        return False
    if cfg.max_severity is not None and rank > SEVERITY_ORDER[cfg.max_severity]:
        return False
    if cfg.detectors is not None and finding.detector not in cfg.detectors:
        return False
    return finding.detector not in cfg.exclude_detectors

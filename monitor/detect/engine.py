"""Runs the enabled detectors over the event table and applies allowlists.

Pure: a DataFrame, a context and the config in; findings out. No I/O here.
(Placeholder until the detection engine lands: returns no findings.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from monitor.config import Config
from monitor.detect.context import DetectionContext
from monitor.detect.posture_detectors import run_posture_detectors
from monitor.findings import Finding


@dataclass
class DetectionResult:
    findings: list[Finding] = field(default_factory=list)  # to store and alert
    suppressed: list[Finding] = field(default_factory=list)  # matched an allowlist entry: stored, not alerted
    baselines: dict[str, Any] = field(default_factory=dict)  # updated baselines to persist
    notices: list[str] = field(default_factory=list)  # e.g. "unused_role skipped: no IAM inventory"


def run_detectors(events: pd.DataFrame, ctx: DetectionContext, config: Config) -> DetectionResult:
    result = DetectionResult()
    # --- IAM posture detectors (trust_policy, least_privilege): owned by the posture area
    result.findings.extend(run_posture_detectors(ctx, config, result.notices))
    # --- end posture detectors
    return result

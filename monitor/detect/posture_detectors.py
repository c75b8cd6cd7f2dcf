"""The detectors that read IAM posture rather than events: trust_policy and least_privilege.

The engine calls `run_posture_detectors` once per run; without an inventory they are skipped
with one notice naming those switched on.
"""

from __future__ import annotations

from monitor.config import Config
from monitor.detect.context import DetectionContext
from monitor.detect.least_privilege import least_privilege_findings
from monitor.detect.trust_policy import trust_policy_findings
from monitor.findings import Finding


def run_posture_detectors(ctx: DetectionContext, config: Config, notices: list[str]) -> list[Finding]:
    if not ctx.posture.known:
        # least_privilege is switched with unused_role
        skipped = [name for name, on in (("trust_policy", config.detectors.trust_policy.enabled),
                                         ("least_privilege", config.detectors.unused_role.enabled)) if on]
        if skipped:
            notices.append(f"{' and '.join(skipped)} skipped: no IAM inventory (collect posture or give"
                           " --iam-snapshot)")
        return []
    findings = trust_policy_findings(ctx.posture, config.detectors.trust_policy, ctx.now, notices)
    findings += least_privilege_findings(ctx.posture, config.detectors.unused_role, ctx.now)
    return findings

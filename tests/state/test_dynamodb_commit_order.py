"""A DynamoDB commit is a sequence of batch writes: what a crash between two of them may leave (moto over HTTP)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from alerts.dispatch import queue
from monitor.aws import client
from monitor.config import AwsConfig, parse_config
from monitor.findings import Finding, fingerprint
from monitor.state.dynamodb import DynamoState, ensure_table

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


class Killed(Exception):
    """The process dying between two batch writes of one commit."""


def test_a_crash_mid_commit_never_leaves_a_stored_finding_without_its_alert(moto_server: str) -> None:
    ddb = client("dynamodb", AwsConfig(region="us-east-1", endpoint_url=moto_server, max_attempts=3))
    table = f"rolewatch-{uuid.uuid4().hex[:8]}"
    ensure_table(ddb, table)
    cfg = parse_config({"notifiers": [{"type": "console", "min_severity": "info"}]})
    findings = [Finding("failed_assume_role", "high", f"burst {n}", fingerprint("failed_assume_role", str(n)))
                for n in range(30)]  # more than one 25-item batch write of findings
    writes: list[list[str]] = []

    def kill_at_the_second_write_of_findings(params: dict[str, Any], **_: Any) -> None:
        pks = [r["PutRequest"]["Item"]["pk"]["S"] for r in params["RequestItems"][table] if "PutRequest" in r]
        if any(pk.startswith("finding#") for pk in pks) and any(
                pk.startswith("finding#") for done in writes for pk in done):
            raise Killed("killed mid-commit")
        writes.append(pks)

    ddb.meta.events.register("before-parameter-build.dynamodb.BatchWriteItem", kill_at_the_second_write_of_findings)
    st = DynamoState(ddb, table)
    with pytest.raises(Killed), st.transaction():
        for f in findings:
            st.upsert_finding(f, "open", NOW)
        queue([(f, True, None) for f in findings], st, cfg, NOW)
    ddb.meta.events.unregister("before-parameter-build.dynamodb.BatchWriteItem", kill_at_the_second_write_of_findings)

    restarted = DynamoState(ddb, table)
    stored = {s.finding.fingerprint for s in restarted.findings()}
    assert stored, "the crash came before any finding was written: nothing to check"
    assert stored <= {i.fingerprint for i in restarted.outbox_items(["pending"])}

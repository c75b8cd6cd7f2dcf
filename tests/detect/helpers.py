"""Build CloudTrail AssumeRole records the way CloudTrail writes them, and run them through the engine."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from monitor.config import Config, parse_config
from monitor.detect.context import DetectionContext
from monitor.detect.engine import DetectionResult, run_detectors
from monitor.events.normalise import normalise
from monitor.events.schema import frame_from_rows
from monitor.posture.model import Posture

ACCOUNT = "111122223333"
OTHER = "444455556666"
_ids = itertools.count(1)


def t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def user(name: str, account: str = ACCOUNT) -> dict[str, Any]:
    return {"type": "IAMUser", "principalId": f"AIDA{name.upper()}", "arn": f"arn:aws:iam::{account}:user/{name}",
            "accountId": account, "accessKeyId": f"AKIA{name.upper()}", "userName": name}


def service(name: str = "lambda.amazonaws.com") -> dict[str, Any]:
    return {"type": "AWSService", "invokedBy": name}


def session(role: str, name: str, key: str, account: str = ACCOUNT) -> dict[str, Any]:
    return {
        "type": "AssumedRole",
        "principalId": f"AROA{role.upper()}:{name}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{name}",
        "accountId": account,
        "accessKeyId": key,
        "sessionContext": {"sessionIssuer": {"type": "Role", "arn": f"arn:aws:iam::{account}:role/{role}",
                                             "accountId": account, "userName": role},
                           "attributes": {"mfaAuthenticated": "false"}},
    }


def role_arn(name: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:iam::{account}:role/{name}"


def record(when: str | datetime, who: dict[str, Any], role: str, *, ip: str = "203.0.113.10",
           error: str | None = None, duration: int | None = None, issued_key: str | None = None,
           event_id: str | None = None, agent: str = "aws-cli/2.15", account: str | None = None,
           event_name: str = "AssumeRole", source_identity: str | None = None,
           shared_event_id: str | None = None) -> dict[str, Any]:
    when_dt = when if isinstance(when, datetime) else t(when)
    target = role if role.startswith("arn:") else role_arn(role)
    rec: dict[str, Any] = {
        "eventVersion": "1.08",
        "userIdentity": who,
        "eventTime": when_dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "sts.amazonaws.com",
        "eventName": event_name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": who.get("invokedBy", ip) if who.get("type") == "AWSService" else ip,
        "userAgent": agent,
        "eventID": event_id or f"evt-{next(_ids):08d}",
        "recipientAccountId": account or target.split(":")[4],
    }
    if shared_event_id:
        rec["sharedEventID"] = shared_event_id
    if error:
        rec["errorCode"] = error
        rec["errorMessage"] = (f"User: {who.get('arn')} is not authorized to perform: sts:AssumeRole "
                               f"on resource: {target}")
        return rec
    params: dict[str, Any] = {"roleArn": target, "roleSessionName": "s"}
    if duration is not None:
        params["durationSeconds"] = duration
    if source_identity:
        params["sourceIdentity"] = source_identity
    rec["requestParameters"] = params
    rec["responseElements"] = {
        "credentials": {"accessKeyId": issued_key or f"ASIA{next(_ids):012d}", "expiration": "Jan 1, 2030, 1:00:00 AM"},
        "assumedRoleUser": {"arn": f"arn:aws:sts::{target.split(':')[4]}:assumed-role/{target.rsplit('/', 1)[-1]}/s"},
    }
    return rec


def frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    return frame_from_rows([normalise(r) for r in records])


def run(records: list[dict[str, Any]], *, now: str | datetime = "2030-01-01T00:00:00Z", config: Config | dict | None = None,
        posture: Posture | None = None, baselines: dict | None = None) -> DetectionResult:
    cfg = config if isinstance(config, Config) else parse_config(config or {})
    ctx = DetectionContext(now=now if isinstance(now, datetime) else t(now), posture=posture or Posture(),
                           baselines=baselines or {})
    return run_detectors(frame(records), ctx, cfg)


def only(result: DetectionResult, detector: str) -> list:
    return [f for f in result.findings if f.detector == detector]


def daily(start: str, days: int, who: dict[str, Any], role: str, *, hour: int = 10, **kw: Any) -> list[dict[str, Any]]:
    """One call a day at `hour` UTC for `days` days (a quiet, regular baseline)."""
    base = t(start).replace(hour=hour, minute=0, second=0)
    return [record(base + timedelta(days=d), who, role, **kw) for d in range(days)]

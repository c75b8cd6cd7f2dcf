"""The Finding record: the public findings contract (README "Findings JSON").

One JSON object per finding, written as JSON Lines by `scan` and by the `file` notifier:
detector, severity, title, account_id, role_arn, principal_arn, source_ip, first_seen,
last_seen, count, event_ids (<= 100), fingerprint, details.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import UTC
from typing import Any

SEVERITIES = ("info", "low", "medium", "high", "critical")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
MAX_EVENT_IDS = 100

DETECTORS = (
    "failed_assume_role",
    "unusual_source_ip",
    "off_hours",
    "unused_role",
    "first_time_principal",
    "long_session",
    "watched_role",
    "trust_policy",
    "least_privilege",
    "allowlist_expired",
    "monitor_health",
)

FINDING_FIELDS = (
    "detector",
    "severity",
    "title",
    "account_id",
    "role_arn",
    "principal_arn",
    "source_ip",
    "first_seen",
    "last_seen",
    "count",
    "event_ids",
    "fingerprint",
    "details",
)


def iso(ts: Any) -> str | None:
    """Any datetime-like -> ISO 8601 UTC with a Z, second precision."""
    if ts is None:
        return None
    if isinstance(ts, str):
        return ts
    try:
        import pandas as pd

        if pd.isna(ts):
            return None
        ts = pd.Timestamp(ts).to_pydatetime()
    except ImportError:  # pragma: no cover
        pass
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fingerprint(detector: str, *parts: Any) -> str:
    """Stable id of an incident: the detector plus what identifies the incident, never run-dependent data."""
    text = "\x1f".join([detector, *("" if p is None else str(p) for p in parts)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class _NestedDataclass(Exception):
    """`asdict` writes a nested dataclass as an object; plain json.dumps would write its str()."""


def _str_unless_dataclass(value: Any) -> str:
    if is_dataclass(value):
        raise _NestedDataclass
    return str(value)


_ENCODER = json.JSONEncoder(default=_str_unless_dataclass, separators=(",", ":"))


@dataclass
class Finding:
    detector: str
    severity: str
    title: str
    fingerprint: str
    account_id: str | None = None
    role_arn: str | None = None
    principal_arn: str | None = None
    source_ip: str | None = None
    first_seen: str | None = None
    last_seen: str | None = None
    count: int = 1
    event_ids: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITY_RANK:
            raise ValueError(f"unknown severity {self.severity!r}")
        self.first_seen = iso(self.first_seen)
        self.last_seen = iso(self.last_seen)
        self.event_ids = sorted(set(self.event_ids))[:MAX_EVENT_IDS]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: d[k] for k in FINDING_FIELDS}

    def to_json(self) -> str:
        """`json.dumps(to_dict(), default=str)`, compact, without `to_dict`'s deep copy where it changes nothing.

        `asdict` copies every nested value and is most of the cost when scan writes 10k+ findings;
        the copy only shows in the output for a dataclass nested in `details`, which then takes
        the `to_dict` path.
        """
        try:
            return _ENCODER.encode({k: getattr(self, k) for k in FINDING_FIELDS})
        except _NestedDataclass:
            return json.dumps(self.to_dict(), sort_keys=False, default=str, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        return cls(**{k: d.get(k) for k in FINDING_FIELDS if k in d})

    @property
    def rank(self) -> int:
        return SEVERITY_RANK[self.severity]

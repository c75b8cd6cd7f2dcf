"""Offline inputs for `report --trail/--iam-snapshot`: trail files and authorization-details snapshots.

Interim readers, kept deliberately small: the local collector (`monitor.collectors.files`) and
the snapshot parser (`monitor.posture.snapshot`) are the real ones and are used when present.
"""

from __future__ import annotations

import gzip
import json
import logging
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pandas as pd

from monitor.events.normalise import RecordError, is_assume_role_record, normalise
from monitor.events.schema import frame_from_rows
from monitor.posture.model import Posture, RoleInfo

log = logging.getLogger(__name__)
_SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz")


def _files(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for p in sorted(path.rglob("*")):
        if p.is_file() and p.name.endswith(_SUFFIXES):
            yield p


def _records(path: Path) -> Iterator[tuple[dict[str, Any], str]]:
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    text = raw.decode("utf-8")
    stripped = text.lstrip()
    if stripped.startswith("{") and '"Records"' in stripped[:200]:
        for i, rec in enumerate(json.loads(text).get("Records") or []):
            yield rec, f"Records[{i}]"
        return
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield json.loads(line), f"line {n}"


def read_trail(paths: list[str]) -> tuple[pd.DataFrame, int]:
    """AssumeRole-family rows from local trail files; returns (events, records skipped)."""
    rows: list[dict[str, Any]] = []
    skipped = 0
    for root in paths:
        base = Path(root)
        if not base.exists():
            print(f"rolewatch report: {root}: no such file or directory", file=sys.stderr)
            skipped += 1
            continue
        for f in _files(base):
            try:
                for rec, pos in _records(f):
                    if not isinstance(rec, dict) or not is_assume_role_record(rec):
                        continue
                    try:
                        rows.append(normalise(rec))
                    except RecordError as exc:
                        skipped += 1
                        log.warning("%s: %s: skipped: %s", f, pos, exc)
            except (OSError, EOFError, ValueError, UnicodeDecodeError) as exc:
                skipped += 1
                log.warning("%s: skipped: %s", f, exc)
    return frame_from_rows(rows), skipped


def _ts(value: Any) -> datetime | None:
    if not value:
        return None
    t = pd.Timestamp(value)
    return (t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")).to_pydatetime()


def read_iam_snapshots(files: list[str]) -> Posture:
    """Roles from `aws iam get-account-authorization-details` JSON (one file per account)."""
    try:
        from monitor.posture import snapshot  # type: ignore[attr-defined]

        return snapshot.load_snapshots(files)  # type: ignore[no-any-return]
    except (ImportError, AttributeError):
        pass
    posture = Posture()
    for name in files:
        try:
            doc = json.loads(Path(name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{name}: cannot read IAM snapshot: {exc}") from None
        for i, r in enumerate(doc.get("RoleDetailList") or []):
            try:
                arn = r["Arn"]
                account = arn.split(":")[4]
                policy = r.get("AssumeRolePolicyDocument") or {}
                if isinstance(policy, str):
                    policy = json.loads(unquote(policy))
                last = r.get("RoleLastUsed") or {}
                posture.roles[arn] = RoleInfo(
                    arn=arn, name=r.get("RoleName") or arn.rsplit("/", 1)[-1], account_id=account,
                    path=r.get("Path") or "/", role_id=r.get("RoleId"), create_date=_ts(r.get("CreateDate")),
                    last_used=_ts(last.get("LastUsedDate")), last_used_region=last.get("Region"),
                    max_session_duration=int(r.get("MaxSessionDuration") or 3600), trust_policy=policy,
                    attached_policies=[p.get("PolicyArn", "") for p in r.get("AttachedManagedPolicies") or []],
                    inline_policies=[p.get("PolicyName", "") for p in r.get("RolePolicyList") or []],
                    tags={t["Key"]: t.get("Value", "") for t in r.get("Tags") or []},
                )
                if account not in posture.accounts:
                    posture.accounts.append(account)
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                print(f"rolewatch report: {name}: RoleDetailList[{i}]: skipped: {exc}", file=sys.stderr)
    return posture

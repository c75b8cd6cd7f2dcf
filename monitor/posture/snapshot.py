"""Offline IAM posture: the JSON `aws iam get-account-authorization-details` prints.

One file per account (the CLI merges its pages into one document). Only `RoleDetailList`
matters here; a role entry that cannot be read is reported (file, index, role name) and
skipped, the rest of the file still counts. The snapshot has no MaxSessionDuration, so roles
read from it keep the IAM default of 3600 seconds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from monitor.policy.model import PolicyError, iam_arn_parts, load_document
from monitor.posture.model import Posture, RoleInfo, merge_postures, parse_time


class SnapshotError(ValueError):
    """A snapshot file that cannot be used at all (message names the file)."""


def _tags(raw: Any) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in raw or [] if isinstance(t, dict) and "Key" in t}


def role_from_detail(detail: dict[str, Any]) -> RoleInfo:
    """One RoleDetailList entry -> RoleInfo. Raises KeyError/ValueError/PolicyError on bad input."""
    arn = detail["Arn"]
    parts = iam_arn_parts(arn)
    if parts is None or parts[0] != "iam" or not parts[2].startswith("role/"):
        raise ValueError(f"Arn {arn!r} is not an IAM role ARN")
    last_used = detail.get("RoleLastUsed") or {}
    trust = detail.get("AssumeRolePolicyDocument")
    return RoleInfo(
        arn=arn,
        name=detail.get("RoleName") or parts[2].rsplit("/", 1)[-1],
        account_id=parts[1],
        path=detail.get("Path") or "/",
        role_id=detail.get("RoleId"),
        create_date=parse_time(detail.get("CreateDate")),
        last_used=parse_time(last_used.get("LastUsedDate")),
        last_used_region=last_used.get("Region"),
        max_session_duration=int(detail.get("MaxSessionDuration") or 3600),
        trust_policy=load_document(trust) if trust is not None else {},
        attached_policies=[p["PolicyArn"] for p in detail.get("AttachedManagedPolicies") or []],
        inline_policies=[p["PolicyName"] for p in detail.get("RolePolicyList") or []],
        tags=_tags(detail.get("Tags")),
    )


def parse_snapshot(doc: Any, *, origin: str = "<snapshot>", notices: list[str] | None = None) -> Posture:
    if not isinstance(doc, dict) or not isinstance(doc.get("RoleDetailList"), list):
        raise SnapshotError(
            f"{origin}: not the output of `aws iam get-account-authorization-details` (no RoleDetailList)"
        )
    roles: dict[str, RoleInfo] = {}
    for i, detail in enumerate(doc["RoleDetailList"]):
        try:
            role = role_from_detail(detail)
        except (KeyError, TypeError, ValueError, PolicyError) as exc:
            name = detail.get("RoleName") if isinstance(detail, dict) else None
            what = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            if notices is not None:
                notices.append(f"{origin}: RoleDetailList[{i}] ({name or 'unnamed'}): skipped: {what}")
            continue
        roles[role.arn] = role
    accounts = sorted({r.account_id for r in roles.values()})
    return Posture(roles=roles, accounts=accounts)


def load_snapshot(path: str | os.PathLike[str], *, notices: list[str] | None = None) -> Posture:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SnapshotError(f"{p}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SnapshotError(f"{p}: not UTF-8 text") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"{p}: not valid JSON: {exc.msg} at line {exc.lineno}") from None
    return parse_snapshot(doc, origin=str(p), notices=notices)


def load_snapshots(paths: list[str] | list[Path], *, notices: list[str] | None = None) -> Posture:
    """Several accounts' snapshots as one Posture."""
    return merge_postures([load_snapshot(p, notices=notices) for p in paths])

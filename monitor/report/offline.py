"""Offline inputs for `report --trail/--iam-snapshot`: the same readers `rolewatch scan` uses."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from monitor.posture.model import Posture

log = logging.getLogger(__name__)


def read_trail(paths: list[str], config: Any) -> tuple[pd.DataFrame, list[str]]:
    """AssumeRole-family rows from trail files, folders or s3:// prefixes; (events, skipped "where: why")."""
    from pathlib import Path

    from monitor.scan import ScanError, read_events

    missing = [p for p in paths if not p.startswith("s3://") and not Path(p).exists()]
    if missing:
        raise ValueError(f"{missing[0]}: no such file or directory")
    try:
        events, _files, _records, skipped = read_events(paths, config)
    except ScanError as exc:
        raise ValueError(str(exc)) from None
    for s in skipped:
        log.warning("skipped: %s", s)
    return events, skipped


def read_iam_snapshots(files: list[str], notices: list[str]) -> Posture:
    """Roles from `aws iam get-account-authorization-details` JSON (one file per account)."""
    from monitor.posture.snapshot import SnapshotError, load_snapshots

    try:
        return load_snapshots(files, notices=notices)
    except SnapshotError as exc:
        raise ValueError(str(exc)) from None

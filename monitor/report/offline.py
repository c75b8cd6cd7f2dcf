"""Offline inputs for `report --trail/--iam-snapshot`: trail files and authorization-details snapshots.

The trail reader is an interim one, kept deliberately small, until the local collector
(`monitor.collectors.files`) lands; snapshots are read by `monitor.posture.snapshot`.
"""

from __future__ import annotations

import gzip
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from monitor.events.normalise import RecordError, is_assume_role_record, normalise
from monitor.events.schema import frame_from_rows
from monitor.posture.model import Posture

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


def read_iam_snapshots(files: list[str], notices: list[str]) -> Posture:
    """Roles from `aws iam get-account-authorization-details` JSON (one file per account)."""
    from monitor.posture.snapshot import SnapshotError, load_snapshots

    try:
        return load_snapshots(files, notices=notices)
    except SnapshotError as exc:
        raise ValueError(str(exc)) from None

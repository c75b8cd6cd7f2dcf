"""`rolewatch scan`: run the detectors over CloudTrail files or an S3 prefix, offline, without state.

Findings go out as JSON Lines (or a table), a short summary to stderr. `--until` is the clock;
baselines are learned from the scanned data itself. Exit codes: 0 ok, 1 the scan failed, 2 usage
or configuration, 3 a finding at or above `--fail-on`.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pandas as pd

from monitor.collectors.base import BadInput
from monitor.collectors.files import Item, is_trail_file, read_file, read_stream
from monitor.collectors.local import trail_files
from monitor.config import Config, ConfigError
from monitor.detect.context import DetectionContext
from monitor.detect.engine import DetectionResult, run_detectors
from monitor.events.normalise import RecordError, normalise, parse_event_time
from monitor.events.schema import frame_from_rows
from monitor.findings import SEVERITY_RANK, Finding
from monitor.posture.model import Posture
from monitor.redact import redact_text

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_FINDINGS = 0, 1, 2, 3


class ScanError(RuntimeError):
    """The scan itself failed (unreadable source): exit 1."""


@dataclass
class ScanResult:
    result: DetectionResult
    files: int = 0
    records: int = 0  # AssumeRole-family records read
    events: int = 0  # rows after the time window
    skipped: list[str] = field(default_factory=list)  # "file:position: why"


# --------------------------------------------------------------------------- reading
# The trail readers are the collectors' own (`monitor.collectors.files`): any layout the local
# collector reads, and the same objects the S3 collector reads.


def _s3_items(uri: str, config: Config, counter: list[int]) -> Iterator[Item]:
    from botocore.exceptions import BotoCoreError, ClientError

    from monitor.aws import client

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    s3 = client("s3", config.aws)
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if is_trail_file(key):
                    counter[0] += 1
                    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                    yield from read_stream(io.BytesIO(body), key, f"s3://{bucket}/{key}")
    except (BotoCoreError, ClientError) as exc:
        raise ScanError(f"{uri}: {exc}") from None


def _items(paths: list[str], config: Config, progress: Any, counter: list[int]) -> Iterator[Item]:
    """Records of every path; counter[0] counts the files read."""
    for p in paths:
        if p.startswith("s3://"):
            yield from _s3_items(p, config, counter)
            continue
        for f in trail_files(Path(p)):
            counter[0] += 1
            if progress:
                progress(counter[0], str(f))
            yield from read_file(f)


def read_events(paths: list[str], config: Config, progress: Any = None) -> tuple[pd.DataFrame, int, int, list[str]]:
    """(event table, files read, AssumeRole records, skipped "origin [position]: why")."""
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    counter = [0]
    records = 0
    for item in _items(paths, config, progress, counter):
        if isinstance(item, BadInput):
            skipped.append(str(item))
            continue
        records += 1
        try:
            rows.append(normalise(item.record))
        except RecordError as exc:
            skipped.append(f"{item.origin} [{item.position}]: {exc}")
    return frame_from_rows(rows), counter[0], records, skipped


# --------------------------------------------------------------------------- scanning


def scan(paths: list[str], config: Config, *, now: datetime, since: datetime | None = None,
         until: datetime | None = None, posture: Posture | None = None, progress: Any = None) -> ScanResult:
    events, files, records, skipped = read_events(paths, config, progress)
    if since is not None:
        events = events[events["event_time"].isna() | (events["event_time"] >= since)]
    if until is not None:
        events = events[events["event_time"].isna() | (events["event_time"] <= until)]
    start = events["event_time"].min() if not events.empty else None
    ctx = DetectionContext(
        now=now,
        posture=posture or Posture(),
        baselines={},
        data_start=since or (None if start is None or pd.isna(start) else start.to_pydatetime()),
    )
    result = run_detectors(events, ctx, config)
    return ScanResult(result=result, files=files, records=records, events=len(events), skipped=skipped)


def _parse_time(value: str | None, flag: str) -> datetime | None:
    if value is None:
        return None
    text = value if ("T" in value or " " in value) else value + "T00:00:00Z"
    parsed = parse_event_time(text)
    if parsed is None:
        raise ConfigError(f"{flag}: not an ISO 8601 date or time: {value!r}")
    return parsed


def _table(findings: list[Finding]) -> str:
    cols = ("severity", "detector", "last_seen", "count", "role_arn", "principal_arn", "title")
    rows = [[str(getattr(f, c) if getattr(f, c) is not None else "-") for c in cols] for f in findings]
    widths = [min(60, max([len(c), *(len(r[i]) for r in rows)])) for i, c in enumerate(cols)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True))]
    for r in rows:
        lines.append("  ".join(v[:w].ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines) + "\n"


def _progress_bar(stream: IO[str]) -> Any:
    if not stream.isatty():
        return None

    def show(n: int, origin: str) -> None:
        stream.write(f"\r\x1b[Kreading file {n}: {origin[-60:]}")
        stream.flush()

    return show


def _summary(out: ScanResult) -> str:
    res = out.result
    by_sev: dict[str, int] = {}
    for f in res.findings:
        by_sev[f.severity] = by_sev.get(f.severity, 0) + 1
    sev = ", ".join(f"{n} {s}" for s, n in sorted(by_sev.items(), key=lambda kv: -SEVERITY_RANK[kv[0]]))
    lines = [
        f"rolewatch scan: {out.files} file(s), {out.records} AssumeRole record(s), {out.events} in window; "
        f"{len(res.findings)} finding(s){' (' + sev + ')' if sev else ''}, {len(res.suppressed)} suppressed"
    ]
    lines += [f"notice: {n}" for n in res.notices]
    lines += [f"skipped {s}" for s in out.skipped[:20]]
    if len(out.skipped) > 20:
        lines.append(f"... and {len(out.skipped) - 20} more skipped record(s)")
    return redact_text("\n".join(lines))


def cmd_scan(args: argparse.Namespace) -> int:
    from monitor.commands import config_from_args
    from monitor.posture.snapshot import SnapshotError, load_snapshots

    config = config_from_args(args)
    since = _parse_time(args.since, "--since")
    until = _parse_time(args.until, "--until")
    now = until or datetime.now(UTC)
    for p in args.paths:
        if not p.startswith("s3://") and not Path(p).exists():
            raise ConfigError(f"{p}: no such file or directory")
    snapshot_notices: list[str] = []
    try:
        posture = load_snapshots(args.iam_snapshot, notices=snapshot_notices) if args.iam_snapshot else None
    except SnapshotError as exc:
        raise ConfigError(str(exc)) from None
    try:
        out = scan(args.paths, config, now=now, since=since, until=until, posture=posture,
                   progress=_progress_bar(sys.stderr))
    except ScanError as exc:
        print(f"\nrolewatch scan: failed: {redact_text(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    if sys.stderr.isatty():
        sys.stderr.write("\r\x1b[K")
    out.result.notices[:0] = snapshot_notices
    findings = out.result.findings
    text = _table(findings) if args.format == "table" else "".join(f.to_json() + "\n" for f in findings)
    if args.output:
        target = Path(args.output)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    print(_summary(out), file=sys.stderr)
    if args.fail_on and any(f.rank >= SEVERITY_RANK[args.fail_on] for f in findings):
        return EXIT_FINDINGS
    return EXIT_OK

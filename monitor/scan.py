"""`rolewatch scan`: run the detectors over CloudTrail files or an S3 prefix, offline, without state.

Findings go out as JSON Lines (or a table), a short summary to stderr. `--until` is the clock;
baselines are learned from the scanned data itself. Exit codes: 0 ok, 1 the scan failed, 2 usage
or configuration, 3 a finding at or above `--fail-on`.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pandas as pd

from monitor.collectors.files import is_trail_file
from monitor.collectors.local import trail_files
from monitor.collectors.trail_rows import document_rows, file_rows
from monitor.config import Config, ConfigError
from monitor.detect.context import DetectionContext
from monitor.detect.engine import DetectionResult, run_detectors
from monitor.events.columnar import EncodedColumns, encode, to_frame
from monitor.events.normalise import parse_event_time
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
#
# monitor.collectors.trail_rows does the byte-level work: ISA-L inflate of whole files, and in
# delivery files only the records marked `"eventName":"AssumeRo` are parsed, straight into
# row tuples. Local files are read by one worker process per core, in contiguous runs of files
# so the results merge back in file order; each worker ships its rows as dictionary-encoded
# columns (monitor.events.columnar), and the event table is built once from those.

# fewer files than this are read in-process: starting workers would cost more than it saves
PARALLEL_MIN_FILES = 64
RUNS_PER_WORKER = 4
ENCODE_EVERY_FILES = 256


@dataclass
class _Read:
    """What reading some files gave: their rows (encoded columns), counts, and the skipped input."""

    columns: list[EncodedColumns] = field(default_factory=list)
    files: int = 0
    records: int = 0
    skipped: list[str] = field(default_factory=list)


def _read_local(paths: list[str]) -> _Read:
    """Read and normalise a run of local files (in a worker process, or in-process)."""
    read = _Read(files=len(paths))
    rows: list[tuple[Any, ...]] = []
    for i, path in enumerate(paths, 1):
        read.records += file_rows(path, rows, read.skipped)
        if i % ENCODE_EVERY_FILES == 0 or i == len(paths):
            # row tuples of fresh strings are the bulkiest form of a row: encode them early
            read.columns.append(encode(rows))
            rows = []
    return read


def _read_local_tree(files: list[str], workers: int, progress: Any) -> Iterator[_Read]:
    if workers <= 1 or len(files) < PARALLEL_MIN_FILES:
        for i, f in enumerate(files, 1):
            if progress:
                progress(i, f)
            yield _read_local([f])
        return
    runs = workers * RUNS_PER_WORKER
    step = -(-len(files) // runs)
    chunks = [files[i : i + step] for i in range(0, len(files), step)]
    done = 0
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for read in pool.map(_read_local, chunks):  # map keeps the order of the chunks
            done += read.files
            if progress:
                progress(done, f"{done} of {len(files)} files")
            yield read


def _read_s3(uri: str, config: Config) -> Iterator[_Read]:
    from botocore.exceptions import BotoCoreError, ClientError

    from monitor.aws import client

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    s3 = client("s3", config.aws)
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            rows: list[tuple[Any, ...]] = []
            read = _Read()
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if not is_trail_file(key):
                    continue
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                read.files += 1
                read.records += document_rows(body, key, f"s3://{bucket}/{key}", rows, read.skipped)
            read.columns.append(encode(rows))
            yield read
    except (BotoCoreError, ClientError) as exc:
        raise ScanError(f"{uri}: {exc}") from None


def read_events(paths: list[str], config: Config, progress: Any = None,
                workers: int | None = None) -> tuple[pd.DataFrame, int, int, list[str]]:
    """(event table, files read, AssumeRole records, skipped "origin [position]: why")."""
    workers = workers or os.cpu_count() or 1
    parts: list[EncodedColumns] = []
    files = records = 0
    skipped: list[str] = []
    for p in paths:
        reads = _read_s3(p, config) if p.startswith("s3://") else _read_local_tree(
            [str(f) for f in trail_files(Path(p))], workers, progress)
        for read in reads:
            files += read.files
            records += read.records
            skipped.extend(read.skipped)
            parts.extend(read.columns)
    return to_frame(parts), files, records, skipped


# --------------------------------------------------------------------------- scanning


def scan(paths: list[str], config: Config, *, now: datetime, since: datetime | None = None,
         until: datetime | None = None, posture: Posture | None = None, progress: Any = None,
         workers: int | None = None) -> ScanResult:
    events, files, records, skipped = read_events(paths, config, progress, workers)
    # the table lives until detection ends: keep the collector from re-walking it on every full pass
    gc.freeze()
    try:
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
    finally:
        gc.unfreeze()
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


def _write_findings(findings: list[Finding], fmt: str, out: IO[str]) -> None:
    """One line per finding as it is encoded: the whole output is never held in memory at once."""
    if fmt == "table":
        out.write(_table(findings))
        return
    for f in findings:
        out.write(f.to_json())
        out.write("\n")


def _output_problem(target: Path) -> str | None:
    """Why `--output` cannot be written (a usage error), or None. Its folder is not created: a
    mistyped folder name should not quietly grow a new tree, as with a shell redirection."""
    if target.is_dir():
        return "is a directory"
    if not target.parent.is_dir():
        return f"folder {target.parent} does not exist"
    return None


def _write_output(findings: list[Finding], fmt: str, target: Path) -> None:
    tmp = target.with_name(target.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            _write_findings(findings, fmt, fh)
        os.replace(tmp, target)  # readers never see half a file
    except OSError:
        with contextlib.suppress(OSError):  # a half-written temporary file is no use to anyone
            tmp.unlink()
        raise


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
    if args.output == "-":  # as for `report --output -`: stdout, not a file named "-"
        args.output = None
    if args.output and (problem := _output_problem(Path(args.output))):
        # checked before reading anything: a long scan must not end in a place it cannot write
        print(f"rolewatch scan: --output {args.output}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    snapshot_notices: list[str] = []
    try:
        posture = load_snapshots(args.iam_snapshot, notices=snapshot_notices) if args.iam_snapshot else None
    except SnapshotError as exc:
        raise ConfigError(str(exc)) from None
    try:
        out = scan(args.paths, config, now=now, since=since, until=until, posture=posture,
                   progress=_progress_bar(sys.stderr), workers=getattr(args, "workers", None))
    except ScanError as exc:
        print(f"\nrolewatch scan: failed: {redact_text(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    if sys.stderr.isatty():
        sys.stderr.write("\r\x1b[K")
    out.result.notices[:0] = snapshot_notices
    findings = out.result.findings
    if args.output:
        try:
            _write_output(findings, args.format, Path(args.output))
        except OSError as exc:
            print(f"rolewatch scan: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_FAILED
    else:
        _write_findings(findings, args.format, sys.stdout)
        sys.stdout.flush()
    print(_summary(out), file=sys.stderr)
    if args.fail_on and any(f.rank >= SEVERITY_RANK[args.fail_on] for f in findings):
        return EXIT_FINDINGS
    return EXIT_OK

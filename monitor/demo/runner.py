"""`rolewatch demo`: a real cycle against an embedded local AWS, with a planted trail.

Needs no AWS account and no credentials: it starts moto in server mode on 127.0.0.1 (a free
port), provisions the two-account scenario (monitor.demo.scenario), writes weeks of generated
trail (monitor.demo.synth) to the trail bucket and the last day of it to CloudWatch Logs, writes
a config pointing rolewatch's collectors at that endpoint, runs one `run_cycle` through boto3
over HTTP, and prints what was ingested and found. Nothing secret is printed: the ExternalId in
the trail's requestParameters, the session tokens and the audit key are registered with
`monitor.redact` before anything is written.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from monitor.aws import session as aws_session
from monitor.config import AwsConfig, Config, load_config
from monitor.demo import scenario, synth
from monitor.demo.local_aws import local_aws
from monitor.redact import redact_text, register_secret

# one day of a small organisation: enough for every detector to have a baseline, quick to ingest
DEMO_RECORDS_PER_ACCOUNT_DAY = 800
CLOUDWATCH_HOURS = 24
# CloudTrail delivers a file every ~5 minutes; the demo writes one per account and 6 hours (up to
# 1,000 records) so that moto, serving every request in this process, keeps the demo within a minute
HOURS_PER_FILE = 6
RECORDS_PER_FILE = 1000
# CloudWatch Logs PutLogEvents: at most 10,000 events and 1,048,576 bytes (26 bytes overhead each)
_CWL_MAX_EVENTS, _CWL_MAX_BYTES = 10_000, 1_000_000


def _isolate_environment() -> None:
    """Never reach real AWS from the demo, whatever the user's environment holds."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL"):
        os.environ.pop(var, None)
    os.environ["AWS_ACCESS_KEY_ID"] = "demo"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "demo"
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    # moto reads this when an account's IAM backend is created: ReadOnlyAccess must exist
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"


@dataclass
class UploadStats:
    files: int = 0
    records: int = 0
    bytes: int = 0
    log_events: int = 0
    log_streams: set[str] = field(default_factory=set)
    labels: list[dict[str, Any]] = field(default_factory=list)
    seconds_s3: float = 0.0


def upload_trail(aws: AwsConfig, made: scenario.DemoScenario, spec: synth.TrailSpec,
                 cloudwatch_since: datetime) -> UploadStats:
    """The generated trail into the bucket (every file) and the log group (records after `cloudwatch_since`)."""
    sess = aws_session(aws)
    s3 = scenario.account_client("s3", aws, made.owner_account, sess)
    trail = synth.prepare(spec)
    stats = UploadStats()
    started = time.perf_counter()
    events: dict[str, list[tuple[str, str | None]]] = {}
    to_logs: dict[str, list[dict[str, Any]]] = {}
    since = synth._ts(cloudwatch_since)

    def put(item: tuple[str, bytes]) -> None:
        s3.put_object(Bucket=made.trail_bucket, Key=item[0], Body=item[1], ContentType="application/json",
                      ContentEncoding="gzip")

    blocks: dict[tuple[str, int], list[synth.Unit]] = {}
    for unit in trail.units:
        blocks.setdefault((unit.region, int(unit.hour.timestamp()) // (3600 * HOURS_PER_FILE)), []).append(unit)
    with ThreadPoolExecutor(max_workers=8) as pool:
        for block in blocks.values():
            per_account: dict[str, list[dict[str, Any]]] = {}
            for unit in block:
                unit_records, incident_events = synth.generate_unit(spec, trail.population, unit, trail.ext_id)
                for acct, recs in unit_records.items():
                    per_account.setdefault(acct, []).extend(recs)
                for k, v in incident_events.items():
                    events.setdefault(k, []).extend(v)
            batch = []
            for key, chunk in synth.unit_files(spec, per_account, block[0]):
                data = synth.encode_file(chunk)
                batch.append((key, data))
                stats.files += 1
                stats.records += len(chunk)
                stats.bytes += len(data)
                recent = [r for r in chunk if r["eventTime"] >= since]
                if recent:
                    stream = f"{chunk[0]['recipientAccountId']}_CloudTrail_{unit.region}"
                    to_logs.setdefault(stream, []).extend(recent)
            list(pool.map(put, batch))
            stats.seconds_s3 = time.perf_counter() - started
    stats.labels = synth.finish_labels(trail.labels, events)
    logs = scenario.account_client("logs", aws, made.owner_account, sess)
    for stream, records in sorted(to_logs.items()):
        logs.create_log_stream(logGroupName=made.log_group, logStreamName=stream)
        records.sort(key=lambda r: r["eventTime"])
        for batch in _log_batches(records):
            reply = logs.put_log_events(logGroupName=made.log_group, logStreamName=stream, logEvents=batch)
            stats.log_events += accepted_log_events(len(batch), reply)
        stats.log_streams.add(stream)
    return stats


def accepted_log_events(sent: int, reply: dict[str, Any]) -> int:
    """How many of a PutLogEvents batch were stored: events too old, expired or too new are refused
    quietly (only `rejectedLogEventsInfo` says so), and the demo must not claim them."""
    info = reply.get("rejectedLogEventsInfo") or {}
    too_new = sent - info["tooNewLogEventStartIndex"] if "tooNewLogEventStartIndex" in info else 0
    too_old = max(info.get("tooOldLogEventEndIndex", 0), info.get("expiredLogEventEndIndex", 0))
    return max(0, sent - too_new - too_old)


def _log_batches(records: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    size = 0
    for r in records:
        message = orjson.dumps(r).decode()
        ts = int(datetime.strptime(r["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp() * 1000)
        if batch and (len(batch) >= _CWL_MAX_EVENTS or size + len(message) + 26 > _CWL_MAX_BYTES):
            yield batch
            batch, size = [], 0
        batch.append({"timestamp": ts, "message": message})
        size += len(message) + 26
    if batch:
        yield batch


def write_config(workdir: Path, endpoint: str, made: scenario.DemoScenario, spec: synth.TrailSpec) -> Path:
    """The config a user would write for this organisation, pointed at the local endpoint."""
    lookback = spec.days * 24 + 24
    text = f"""# written by `rolewatch demo`: the collectors read the local (moto) AWS at {endpoint}
[state]
path = "state.db"

[aws]
region = "{made.region}"
endpoint_url = "{endpoint}"
max_attempts = 3

[collection]
initial_lookback_hours = {lookback}

# the log group holds the last day, the bucket everything: events seen in one are not stored again
[[sources]]
type = "cloudwatch_logs"
log_groups = ["{made.log_group}"]

[[sources]]
type = "s3"
bucket = "{made.trail_bucket}"
accounts = ["{made.owner_account}", "{made.dev_account}"]

# moto implements neither GenerateServiceLastAccessedDetails nor Access Analyzer's findings APIs
[posture]
last_accessed = false
access_analyzer = false

# the generated people work 08:30-17:30 in {spec.timezone}
[detectors.off_hours]
timezone = "{spec.timezone}"

[detectors.unusual_source_ip]
learning_days = {spec.learning_days}

[detectors.first_time_principal]
learning_days = {spec.learning_days}
"""
    path = workdir / "rolewatch.toml"
    path.write_text(text)
    return path


def _collect_posture(config: Config, state: Any, now: datetime) -> Any:
    """The IAM inventory of the owner account (trust policies explain denials; unused roles).

    None when this build has no posture collectors: the cycle then runs without inventory."""
    try:
        from monitor.posture.store import collect_posture
    except ImportError:
        return None
    return collect_posture(config, state, now)


def _run_cycle(config: Config, now: datetime, since: datetime) -> Any:
    from monitor.pipeline import run_cycle
    from monitor.state import open_state

    state = open_state(config)
    try:
        posture = _collect_posture(config, state, now)
        result = run_cycle(config, state, now=now, since=since, until=now, notify=False, posture=posture)
        events = state.load_events(since=since - timedelta(days=1), until=now + timedelta(days=1))
    finally:
        state.close()
    return result, events


def cmd_demo(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    _isolate_environment()
    days = int(args.days)
    if days < 1:
        print("rolewatch demo: --days must be >= 1", file=sys.stderr)
        return 2
    keep = args.workdir is not None
    workdir = Path(args.workdir) if keep else Path(tempfile.mkdtemp(prefix="rolewatch-demo-"))
    if problem := synth.make_folder(workdir):
        print(f"rolewatch demo: --workdir {workdir}: {problem}", file=sys.stderr)
        return 2
    register_secret(synth.external_id(args.seed))
    out = _Printer()
    out._last = started
    try:
        with local_aws() as endpoint:
            aws = AwsConfig(region="us-east-1", endpoint_url=endpoint, max_attempts=3)
            made = scenario.provision(aws, seed=args.seed)
            for secret in made.audit_credentials.values():
                register_secret(secret)
            now = datetime.now(UTC).replace(second=0, microsecond=0)
            # the trail runs to the last full hour; the cycle's clock is now
            trail_end = now.replace(minute=0)
            spec = synth.make_spec(days, synth.DEMO_ACCOUNTS, end=trail_end, seed=args.seed,
                                   records_per_file=RECORDS_PER_FILE,
                                   records=days * len(synth.DEMO_ACCOUNTS) * DEMO_RECORDS_PER_ACCOUNT_DAY)
            out.line(f"local AWS (moto) at {endpoint}: accounts {made.owner_account} (roles, trail bucket, "
                     f"log group) and {made.dev_account} (DevUser) {out.lap()}")
            upload = upload_trail(aws, made, spec, cloudwatch_since=now - timedelta(hours=CLOUDWATCH_HOURS))
            out.line(f"wrote {upload.records:,} CloudTrail records ({days} days, {spec.start:%Y-%m-%d} .. "
                     f"{trail_end:%Y-%m-%d %H:%M}Z) in {upload.files:,} files to s3://{made.trail_bucket}/AWSLogs/ "
                     f"and the last {CLOUDWATCH_HOURS} h ({upload.log_events:,} events) to CloudWatch Logs "
                     f"group {made.log_group}")
            out.line(f"planted incidents: {', '.join(lab['incident'] for lab in upload.labels)} {out.lap()}")
            config_path = write_config(workdir, endpoint, made, spec)
            config = load_config(config_path)
            # rolewatch signs as the audit user of the security account, like it would in production
            os.environ["AWS_ACCESS_KEY_ID"] = made.audit_credentials["aws_access_key_id"]
            os.environ["AWS_SECRET_ACCESS_KEY"] = made.audit_credentials["aws_secret_access_key"]
            try:
                import monitor.pipeline  # noqa: F401
            except ImportError:
                out.line("the collection pipeline (monitor.pipeline) is not part of this build: "
                         "trail written, nothing ingested")
                return 1
            result, events = _run_cycle(config, now, spec.start)
            out.line(f"ran one cycle {out.lap()}")
            print_summary(out, result, events, upload.labels)
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    out.line(f"demo finished in {time.perf_counter() - started:.1f} s"
             + (f"; config and state kept in {workdir}" if keep else ""))
    return 0


class _Printer:
    """stdout, through the redaction net: the demo's output must never carry a secret."""

    def __init__(self) -> None:
        self._last = time.perf_counter()

    def lap(self) -> str:
        now = time.perf_counter()
        text = f"[{now - self._last:.1f} s]"
        self._last = now
        return text

    def line(self, text: str = "") -> None:
        print(redact_text(text), flush=True)


def print_summary(out: _Printer, result: Any, events: Any, labels: list[dict[str, Any]]) -> None:
    from monitor.events.merge import merge_shared_copies, one_row_per_call

    out.line()
    out.line(f"cycle {result.run_id}: {result.events_new:,} AssumeRole-family records stored, "
             f"{result.skipped:,} skipped (a record both sources hold is stored once)")
    for cov in result.coverage:
        where = " ".join(x for x in (cov.account, cov.region) if x)
        out.line(f"  source {cov.source}{' ' + where if where else ''}: {cov.status}, {cov.records:,} new records"
                 f" ({cov.start} .. {cov.end})" + (f" - {cov.message}" if cov.message else ""))
    if len(events):
        calls = one_row_per_call(merge_shared_copies(events))
        failed = int((~calls["success"].astype(bool)).sum())
        out.line(f"calls (cross-account copies counted once): {len(calls):,}, of which failed: {failed:,}")
        table = (calls.assign(failed=~calls["success"].astype(bool))
                 .groupby(["account_id", "role_arn"], dropna=False)
                 .agg(calls=("event_id", "size"), failed=("failed", "sum"),
                      principals=("principal_key", "nunique"))
                 .reset_index().sort_values(["account_id", "calls"], ascending=[True, False]))
        out.line(f"  {'account':<13} {'role':<78} {'calls':>6} {'failed':>6} {'callers':>7}")
        for row in table.itertuples(index=False):
            role = str(row.role_arn).split(":role", 1)[-1] if isinstance(row.role_arn, str) else "?"
            out.line(f"  {row.account_id!s:<13} {role:<78} {row.calls:>6} {int(row.failed):>6} {row.principals:>7}")
    out.line()
    findings = list(result.findings)
    out.line(f"findings: {len(findings)}" + (f" (+{len(result.suppressed)} suppressed)" if result.suppressed else ""))
    by = {}
    for f in findings:
        by.setdefault((f.detector, f.severity), []).append(f)
    for (detector, severity), group in sorted(by.items(), key=lambda kv: (-_rank(kv[0][1]), kv[0][0])):
        out.line(f"  {severity:<8} {detector:<22} {len(group)}")
        # a long tail of low findings (one per stray denial) would drown the ones that matter
        for f in sorted(group, key=lambda f: f.first_seen or "")[:5 if _rank(severity) >= _rank("medium") else 2]:
            cause = (f.details or {}).get("likely_cause")
            out.line(f"           {f.title}" + (f" (likely cause: {cause})" if cause else ""))
    caught = [lab["incident"] for lab in labels
              if any(set(lab["event_ids"]) & set(f.event_ids) and f.detector == lab["detector"] for f in findings)]
    out.line(f"planted incidents caught: {len(caught)}/{len(labels)}" + (f" ({', '.join(caught)})" if caught else ""))
    for note in list(result.notices) + list(result.errors):
        out.line(f"  note: {note}")


def _rank(severity: str) -> int:
    from monitor.findings import SEVERITY_RANK

    return SEVERITY_RANK.get(severity, 0)

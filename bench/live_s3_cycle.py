"""One collection cycle of the S3 source over an organisation trail, against moto in server mode.

    python bench/live_s3_cycle.py --accounts 200 --regions 17 --minutes 5

Writes `--minutes` of trail for every account and region into a bucket of a local moto server
(one delivery file per account, region and 5 minutes, as CloudTrail delivers), then runs one
`run_cycle` over it with a fresh state and prints the wall time, the S3 requests per second
achieved, and the API calls the cycle made by operation (counted with botocore event hooks on
every client rolewatch creates). moto is slower than S3 per request, so the wall time here is
an upper bound for the same request count against AWS.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

REGIONS = (
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "eu-west-1", "eu-west-2", "eu-west-3",
    "eu-central-1", "eu-north-1", "ap-south-1", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
    "ap-southeast-1", "ap-southeast-2", "sa-east-1",
)
BUCKET = "org-trail"
ORG = "o-bench00001"


def template_records() -> list[dict]:
    """A realistic mix to copy from: a small synth trail (all event types)."""
    from monitor.demo.synth import generate

    return [r for _, _, _, records in generate(days=1, accounts=2, end="2026-01-01", records=5000, seed=11)
            for r in records]


def trail_file(account: str, region: str, when: datetime, n: int, templates: list[dict], seq: int) -> bytes:
    records = []
    for i in range(n):
        rec = dict(templates[(seq * 31 + i) % len(templates)])
        rec["eventID"] = f"{account}-{region}-{seq:06d}-{i:03d}"
        rec["recipientAccountId"] = account
        rec["awsRegion"] = region
        rec["eventTime"] = (when + timedelta(seconds=i * 300 / max(n, 1))).strftime("%Y-%m-%dT%H:%M:%SZ")
        rec.pop("sharedEventID", None)
        records.append(rec)
    return gzip.compress(json.dumps({"Records": records}).encode(), compresslevel=6)


def populate(endpoint: str, accounts: list[str], regions: tuple[str, ...], start: datetime, minutes: int,
             per_file: int, templates: list[dict]) -> int:
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      config=Config(max_pool_connections=32))
    s3.create_bucket(Bucket=BUCKET)
    jobs = []
    for a_i, account in enumerate(accounts):
        for region in regions:
            for step in range(max(1, minutes // 5)):
                when = start + timedelta(minutes=5 * step)
                key = (f"AWSLogs/{ORG}/{account}/CloudTrail/{region}/{when:%Y/%m/%d}/"
                       f"{account}_CloudTrail_{region}_{when:%Y%m%dT%H%MZ}_{a_i:04d}{step:02d}bench.json.gz")
                jobs.append((key, account, region, when, len(jobs)))

    def put(job: tuple) -> None:
        key, account, region, when, seq = job
        s3.put_object(Bucket=BUCKET, Key=key, Body=trail_file(account, region, when, per_file, templates, seq))

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(put, jobs))
    return len(jobs)


class CallCounter:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, model, **_: object) -> None:  # noqa: ANN001 - botocore's before-call signature
        with self._lock:
            self.calls[f"{model.service_model.service_name}:{model.name}"] += 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accounts", type=int, default=200)
    ap.add_argument("--regions", type=int, default=17)
    ap.add_argument("--minutes", type=int, default=5)
    ap.add_argument("--records-per-file", type=int, default=20)
    ap.add_argument("--max-workers", type=int, default=None, help="S3 source max_workers (default: config default)")
    args = ap.parse_args()

    from monitor import aws
    from monitor.collectors.base import CycleWindow
    from monitor.config import parse_config
    from monitor.demo.local_aws import local_aws
    from monitor.pipeline import make_collector, run_cycle
    from monitor.state.sqlite import SqliteState

    server = contextlib.ExitStack()
    endpoint = server.enter_context(local_aws())
    try:
        accounts = [f"{100000000000 + i * 7919:012d}" for i in range(args.accounts)]
        regions = REGIONS[: args.regions]
        now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
        start = now - timedelta(minutes=args.minutes)
        t0 = time.perf_counter()
        templates = template_records()
        objects = populate(endpoint, accounts, regions, start, args.minutes, args.records_per_file, templates)
        print(f"moto: {objects:,} objects ({len(accounts)} accounts x {len(regions)} regions x "
              f"{args.minutes} min, {args.records_per_file} records each) written in {time.perf_counter() - t0:.1f} s")

        source = {"type": "s3", "bucket": BUCKET, "prefix": f"AWSLogs/{ORG}/"}
        if args.max_workers:
            source["max_workers"] = args.max_workers
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            config = parse_config({
                "state": {"path": f"{tmp}/state.db"},
                "aws": {"region": "us-east-1", "endpoint_url": endpoint},
                "collection": {"initial_lookback_hours": args.minutes / 60, "overlap_minutes": 0},
                "sources": [source],
            })
            # the S3 path alone: list + fetch + decompress + pre-check, records handed on, nothing stored
            collect_calls = CallCounter()
            aws.add_client_hook("before-call", collect_calls)
            state = SqliteState(Path(tmp) / "collect.db")
            collector = make_collector(config.sources[0], config, state)
            window = CycleWindow(now=now, until=now, since=None,
                                 initial_lookback=timedelta(minutes=args.minutes), overlap=timedelta(0))
            t0 = time.perf_counter()
            records = sum(len(b.records) for b in collector.batches(window))
            collect_seconds = time.perf_counter() - t0
            state.close()
            aws.remove_client_hook("before-call", collect_calls)
            n = sum(collect_calls.calls.values())
            print(f"collect only: {collect_seconds:.1f} s wall, {n:,} API calls, {n / collect_seconds:,.0f} "
                  f"requests/s, {records:,} AssumeRole records")

            counter = CallCounter()
            aws.add_client_hook("before-call", counter)
            state = SqliteState(Path(tmp) / "state.db")
            t0 = time.perf_counter()
            result = run_cycle(config, state, now=now, notify=False)
            seconds = time.perf_counter() - t0
            state.close()
        total = sum(counter.calls.values())
        print(f"full cycle (collect, store, detect): {seconds:.1f} s wall, {total:,} API calls, "
              f"{total / seconds:,.0f} requests/s; {result.events_new:,} AssumeRole events stored, "
              f"{result.skipped} skipped, {len(result.errors)} errors")
        for op, k in counter.calls.most_common():
            print(f"  {op:<40} {k:>8,}")
        print(f"schedule: every 5 min -> the full cycle uses {seconds / 300:.0%} of its interval")
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

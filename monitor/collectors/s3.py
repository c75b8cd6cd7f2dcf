"""S3 trail bucket source: `AWSLogs/[o-ORGID/]ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/*.json.gz`.

Only the day prefixes the window needs are listed. Accounts and regions come from delimiter
listings (or the configured subset). Each account/region keeps its own checkpoint, so one that
fails (AccessDenied, throttling beyond retries) is read again from where it stopped while the
others move on. Keys already processed (by ETag) are not fetched again; objects are fetched in
a bounded thread pool.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from monitor import aws
from monitor.collectors.base import BadInput, Batch, Collector, CycleWindow, Span, file_batches
from monitor.collectors.files import Item, is_trail_file, read_stream

AWS_ERRORS = (BotoCoreError, ClientError)
_ACCOUNT_RE = re.compile(r"^\d{12}$")


def trail_root(prefix: str) -> str:
    """The `.../AWSLogs/[o-ORG/][ACCOUNT/]` prefix to list under, from the configured prefix."""
    prefix = prefix.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    if "AWSLogs/" not in prefix:
        prefix += "AWSLogs/"
    return prefix


def days_between(start: datetime, end: datetime) -> list[date]:
    first, last = start.date(), end.date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def day_prefix(account_prefix: str, region: str, day: date) -> str:
    return f"{account_prefix}CloudTrail/{region}/{day:%Y/%m/%d}/"


class S3Collector(Collector):
    def _client(self) -> Any:
        return aws.client("s3", self.config.aws, max_pool_connections=max(10, self.source.max_workers))

    def _children(self, s3: Any, prefix: str) -> list[str]:
        """Immediate child 'folders' of a prefix (their names, without slashes)."""
        names = []
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.source.bucket, Prefix=prefix, Delimiter="/"
        ):
            for cp in page.get("CommonPrefixes", []):
                names.append(cp["Prefix"][len(prefix) :].rstrip("/"))
        return names

    def account_prefixes(self, s3: Any, root: str) -> dict[str, str]:
        """account id -> its prefix, across an organization trail's o-ORGID level."""
        last = root.rstrip("/").rsplit("/", 1)[-1]
        if _ACCOUNT_RE.match(last):
            return {last: root}
        found: dict[str, str] = {}
        for child in self._children(s3, root):
            if _ACCOUNT_RE.match(child):
                found[child] = f"{root}{child}/"
            elif child.startswith("o-"):
                for acct in self._children(s3, f"{root}{child}/"):
                    if _ACCOUNT_RE.match(acct):
                        found[acct] = f"{root}{child}/{acct}/"
        return found

    def batches(self, window: CycleWindow) -> Iterator[Batch]:
        s3 = self._client()
        bucket = self.source.bucket
        root = trail_root(self.source.prefix)
        accounts = self.account_prefixes(s3, root)  # a failure here fails the whole source
        wanted = self.source.accounts
        if wanted:
            for missing in sorted(set(wanted) - set(accounts)):
                self.spans.append(
                    Span(None, None, account=missing, status="failed",
                         message=f"no trail under s3://{bucket}/{root} for account {missing}")
                )
            accounts = {a: p for a, p in accounts.items() if a in set(wanted)}
        done = self.state.processed_files(self.source_id)
        with ThreadPoolExecutor(max_workers=self.source.max_workers, thread_name_prefix="s3-get") as pool:
            for account, account_prefix in sorted(accounts.items()):
                try:
                    regions = self.source.regions or self._children(s3, f"{account_prefix}CloudTrail/")
                except AWS_ERRORS as exc:
                    self.spans.append(Span(None, None, account=account, status="failed",
                                           message=f"cannot list regions of {account}: {exc}"))
                    continue
                for region in regions:
                    yield from self._unit(s3, pool, window, account, account_prefix, region, done)

    def _unit(self, s3: Any, pool: ThreadPoolExecutor, window: CycleWindow, account: str,
              account_prefix: str, region: str, done: dict[str, str]) -> Iterator[Batch]:
        """One account/region: list its day prefixes, fetch new keys, then advance its checkpoint."""
        key = f"{account}/{region}"
        start, end = self.start_for(window, key), window.until
        span = Span(start, end, account=account, region=region)
        self.spans.append(span)
        pending: list[tuple[str, str]] = []
        try:
            for day in days_between(start, end):
                for page in s3.get_paginator("list_objects_v2").paginate(
                    Bucket=self.source.bucket, Prefix=day_prefix(account_prefix, region, day)
                ):
                    for obj in page.get("Contents", []):
                        etag = obj.get("ETag", "").strip('"') or str(obj.get("Size"))
                        if is_trail_file(obj["Key"]) and done.get(obj["Key"]) != etag:
                            pending.append((obj["Key"], etag))
        except AWS_ERRORS as exc:
            span.fail(f"cannot list s3://{self.source.bucket}/{account_prefix}CloudTrail/{region}/: {exc}")
            return
        span.message = f"{len(pending)} new object(s)"

        def fetched() -> Iterator[tuple[str, str | None, list[Item]]]:
            step = self.source.max_workers * 4  # bounded read-ahead: memory stays flat on big backfills
            for i in range(0, len(pending), step):
                for name, version, items in pool.map(lambda kv: self._fetch(s3, *kv), pending[i : i + step]):
                    if version is None:
                        span.fail(f"{len(items)} object(s) unreadable, will retry", partial=True)
                    yield name, version, items

        last: Batch | None = None
        for batch in file_batches(fetched(), span):
            if last is not None:
                yield last
            last = batch
        last = last or Batch(span=span)
        if span.status == "ok":  # a key that could not be fetched keeps the window open for the next cycle
            last.checkpoints[key] = self.checkpoint_value(key, end)
        yield last

    def _fetch(self, s3: Any, key: str, etag: str) -> tuple[str, str | None, list[Item]]:
        origin = f"s3://{self.source.bucket}/{key}"
        try:
            body = s3.get_object(Bucket=self.source.bucket, Key=key)["Body"].read()
        except AWS_ERRORS as exc:
            return key, None, [BadInput(origin, "object", f"cannot read: {exc}")]
        return key, etag, list(read_stream(io.BytesIO(body), key, origin))

"""S3 trail bucket source: `AWSLogs/[o-ORGID/]ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/*.json.gz`.

Only the day prefixes the window needs are listed. Accounts and regions come from delimiter
listings (or the configured subset). Each account/region keeps its own checkpoint, so one that
fails (AccessDenied, throttling beyond retries) is read again from where it stopped while the
others move on. Keys already processed (by ETag) are not fetched again; objects are fetched in
a bounded thread pool. A reader crash fails the account/region being read; the ones after it
stay where they were for the next cycle (`S3Collector._read_units`).
"""

from __future__ import annotations

import io
import logging
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import islice
from typing import IO, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from monitor import aws
from monitor.collectors.base import BadInput, Batch, Collector, CycleWindow, Span, file_batches
from monitor.collectors.files import Item, is_trail_file, read_stream

AWS_ERRORS = (BotoCoreError, ClientError)
_ACCOUNT_RE = re.compile(r"^\d{12}$")
T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)


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


@dataclass
class _Unit:
    """One account/region of a cycle: where its checkpoint goes and the keys still to read."""

    key: str
    end: datetime
    span: Span
    pending: list[tuple[str, str]]


def ordered_map(pool: ThreadPoolExecutor, fn: Callable[[T], R], items: Iterable[T], *, ahead: int) -> Iterator[R]:
    """`pool.map` with at most `ahead` results in flight or waiting: memory stays flat on big backfills."""
    queue: deque[Future[R]] = deque()
    it = iter(items)
    for item in islice(it, ahead):
        queue.append(pool.submit(fn, item))
    while queue:
        result = queue.popleft().result()
        for item in islice(it, 1):
            queue.append(pool.submit(fn, item))
        yield result


class S3Collector(Collector):
    # the object reader; a seam so tests can make reading one object fail in a way real input cannot
    reader: Callable[[IO[bytes], str, str], Iterator[Item]] = staticmethod(read_stream)

    def nothing_found(self) -> str:
        return f"no AWSLogs/<account>/ prefixes found under s3://{self.source.bucket}/{trail_root(self.source.prefix)}"

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
        with ThreadPoolExecutor(max_workers=self.source.max_workers, thread_name_prefix="s3") as pool:
            # every listing of every account and region at once: an organisation has thousands of
            # account/region prefixes, and listing them one after another dominates a cycle
            units: list[tuple[str, str, str]] = []
            for (account, account_prefix), (regions, failed) in zip(
                sorted(accounts.items()),
                pool.map(lambda kv: self._regions(s3, kv[0], kv[1]), sorted(accounts.items())),
                strict=True,
            ):
                if failed is not None:
                    self.spans.append(failed)
                units.extend((account, account_prefix, region) for region in regions)
            # checkpoints are read here, in this thread: the state store's connection is not shared
            starts = [self.start_for(window, f"{account}/{region}") for account, _, region in units]
            listed = list(pool.map(lambda u, start: self._list_unit(s3, start, window.until, *u, done),
                                   units, starts))
            self.spans.extend(unit.span for unit in listed)  # in account/region order, as listed
            # then every new object of every unit through one bounded, ordered read-ahead: the
            # fetches of the next unit start while this one's are still being read
            fetches = ordered_map(pool, lambda task: self._fetch(s3, *task),
                                  [kv for unit in listed for kv in unit.pending],
                                  ahead=self.source.max_workers * 4)
            yield from self._read_units(listed, fetches)

    def _read_units(self, listed: list[_Unit], fetches: Iterator[tuple[str, str | None, list[Item]]]) -> Iterator[Batch]:
        """Every unit's batches in order; a reader crash fails the unit it hit, not the source.

        All spans are listed before reading, so without this the pipeline would blame the last
        listed unit and report the ones in between as read. The fetch stream is ordered, so an
        exception out of it belongs to the unit being read. Nothing after that unit can be read
        this cycle (the stream is dead), and those units keep their checkpoints: they are marked
        partial, not failed -- their listing worked, so their accounts are not out of sight.
        What was yielded before the crash is the pipeline's to store; the failed unit's stored
        files stay marked processed and its checkpoint stays put, so the next cycle retries the
        rest of it without reading anything twice.
        """
        at: int | None = None  # index of the unit being read; None once all are done
        try:
            for at, unit in enumerate(listed):  # noqa: B007 - `at` names the unit if reading stops
                if unit.span.status == "ok":
                    yield from self._unit_batches(unit, fetches)
            at = None
        except Exception as exc:  # noqa: BLE001 - reported as the unit's coverage, like an AWS error
            assert at is not None
            log.error("source %s: reading %s failed: %s", self.source_id, listed[at].key, exc, exc_info=True,
                      extra={"source": self.source_id})
            where = "; ".join(getattr(exc, "__notes__", []))
            listed[at].span.fail(f"{type(exc).__name__}: {exc}" + (f" ({where})" if where else ""))
        finally:
            # also when the consumer stops taking batches (a failed store closes this generator):
            # the unit in progress is then the consumer's to report, the later ones were not read
            if at is not None:
                for unit in listed[at + 1 :]:
                    if unit.span.status == "ok":  # one that could not be listed says so already
                        unit.span.fail(f"not read: cycle stopped at {listed[at].key}", partial=True)

    def _regions(self, s3: Any, account: str, account_prefix: str) -> tuple[list[str], Span | None]:
        if self.source.regions:
            return list(self.source.regions), None
        try:
            return self._children(s3, f"{account_prefix}CloudTrail/"), None
        except AWS_ERRORS as exc:
            return [], Span(None, None, account=account, status="failed",
                            message=f"cannot list regions of {account}: {exc}")

    def _list_unit(self, s3: Any, start: datetime, end: datetime, account: str, account_prefix: str,
                   region: str, done: dict[str, str]) -> _Unit:
        """One account/region: its span, and the new keys in the day prefixes of its window."""
        key = f"{account}/{region}"
        span = Span(start, end, account=account, region=region)
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
            return _Unit(key, end, span, [])
        span.message = f"{len(pending)} new object(s)"
        return _Unit(key, end, span, pending)

    def _unit_batches(self, unit: _Unit, fetches: Iterator[tuple[str, str | None, list[Item]]]) -> Iterator[Batch]:
        """This unit's share of the fetch stream as batches; the last one advances its checkpoint."""
        span = unit.span

        def fetched() -> Iterator[tuple[str, str | None, list[Item]]]:
            for _ in unit.pending:
                name, version, items = next(fetches)
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
            last.checkpoints[unit.key] = self.checkpoint_value(unit.key, unit.end)
        yield last

    def _fetch(self, s3: Any, key: str, etag: str) -> tuple[str, str | None, list[Item]]:
        origin = f"s3://{self.source.bucket}/{key}"
        try:
            body = s3.get_object(Bucket=self.source.bucket, Key=key)["Body"].read()
        except AWS_ERRORS as exc:
            return key, None, [BadInput(origin, "object", f"cannot read: {exc}")]
        try:
            return key, etag, list(self.reader(io.BytesIO(body), key, origin))
        except Exception as exc:
            exc.add_note(f"while reading {origin}")  # the reader's own error does not say which object
            raise

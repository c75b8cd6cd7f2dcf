"""What every CloudTrail collector hands the pipeline.

A collector reads; it never writes state. It yields `Batch`es: the raw records it read, the
bad input it met, and the checkpoint values / processed files that become true once the batch
is stored. The pipeline writes all of that in one transaction (with other small batches of the
same source, in yield order), so a crash before the commit means the batch is simply read again
(and seen event IDs keep it from counting twice).

Each batch also says how much the source *delivered* for it, whatever that held: the
monitor_health silence check asks whether the trail is still arriving, and a quiet account
with a working trail delivers plenty but no AssumeRole call. What is counted depends on what a
source can count without extra work (`Batch.delivered`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.findings import iso

FILES_PER_BATCH = 50
RECORDS_PER_BATCH = 20_000


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One CloudTrail record as read, with where it came from (file/key/log stream) and where in it."""

    record: dict[str, Any]
    origin: str
    position: str


@dataclass(frozen=True, slots=True)
class BadInput:
    """Input that could not be read: reported with its origin and position, then skipped."""

    origin: str
    position: str
    reason: str

    def __str__(self) -> str:
        return f"{self.origin} [{self.position}]: {self.reason}"


@dataclass
class Span:
    """Coverage of one unit of a source (an account/region, a log group, ...) in this cycle."""

    start: datetime | None
    end: datetime | None
    account: str | None = None
    region: str | None = None
    status: str = "ok"  # ok | partial | failed
    message: str | None = None
    records: int = 0  # AssumeRole-family events newly stored
    skipped: int = 0
    delivered: int = 0  # what the source delivered, whatever it held (Batch.delivered)
    times_from_records: bool = False  # no time window (local files): the range is what the records span

    def count(self, stored: int, skipped: int, times: list[datetime | None], delivered: int = 0) -> None:
        self.records += stored
        self.skipped += skipped
        self.delivered += delivered
        known = [t for t in times if t is not None]
        if self.times_from_records and known:
            self.start = min([*known, *([self.start] if self.start else [])])
            self.end = max([*known, *([self.end] if self.end else [])])

    def fail(self, message: str, *, partial: bool = False) -> None:
        self.status = "partial" if partial and self.status != "failed" else "failed"
        self.message = f"{self.message}; {message}" if self.message else message


@dataclass
class Batch:
    """Records read together and the bookkeeping to commit with them."""

    records: list[RawRecord] = field(default_factory=list)
    bad: list[BadInput] = field(default_factory=list)
    span: Span | None = None  # the coverage unit these records count towards
    checkpoints: dict[str, Any] = field(default_factory=dict)  # checkpoint key -> value
    files: dict[str, str] = field(default_factory=dict)  # path/key -> version, marked processed
    # What the source delivered for this batch, AssumeRole-family or not, before any filtering here:
    # - file sources (local, s3): trail files read and marked processed -- whatever records they
    #   hold, even content that turns out broken (it arrived); an object that could not be fetched
    #   is retried and not counted. Files, not records: the fast path never parses the records
    #   without the AssumeRole marker, and counting them would cost a pass over every file.
    # - cloudwatch_logs, lookup_events, push-down: events or rows the service returned. Their
    #   filter (pattern, event name, query) runs where the data lives, so these only ever see
    #   AssumeRole-family records.
    delivered: int = 0

    def add(self, item: RawRecord | BadInput | None) -> None:
        if isinstance(item, RawRecord):
            self.records.append(item)
        elif isinstance(item, BadInput):
            self.bad.append(item)

    def full(self) -> bool:
        """Big enough to store now (memory stays flat on long backfills)."""
        return len(self.records) >= RECORDS_PER_BATCH


@dataclass(frozen=True)
class CycleWindow:
    """How far back each time-based source reads in this cycle."""

    now: datetime
    until: datetime
    since: datetime | None  # explicit backfill start (--since), wins over checkpoints
    initial_lookback: timedelta
    overlap: timedelta


class Collector(ABC):
    """One configured source. `batches` reads; `spans` says what it read (and what it could not)."""

    def __init__(self, source: Any, source_id: str, config: Any, state: Any) -> None:
        self.source = source
        self.source_id = source_id
        self.config = config
        self.state = state  # read-only here: checkpoints and processed files
        self.spans: list[Span] = []

    @abstractmethod
    def batches(self, window: CycleWindow) -> Iterator[Batch]: ...

    def nothing_found(self) -> str:
        """What a cycle that found no unit to read says of this source (its coverage message)."""
        return "nothing found to read"

    def start_for(self, window: CycleWindow, key: str = "position") -> datetime:
        """Window start for one checkpoint key: --since, else checkpoint - overlap, else the initial lookback."""
        if window.since is not None:
            return window.since
        checkpoint = parse_checkpoint(self.state.get_checkpoint(self.source_id, key))
        if checkpoint is None:
            return window.now - window.initial_lookback
        return checkpoint - window.overlap

    def checkpoint_value(self, key: str, end: datetime) -> str:
        """The checkpoint to store after reading up to `end`; never moves backwards (a past --until)."""
        current = parse_checkpoint(self.state.get_checkpoint(self.source_id, key))
        if current is not None and current > end:
            return iso(current)  # type: ignore[return-value]
        return iso(end)  # type: ignore[return-value]


def parse_checkpoint(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    from monitor.events.normalise import parse_event_time

    return parse_event_time(value)


def file_batches(
    files: Iterable[tuple[str, str | None, Iterable[RawRecord | BadInput]]],
    span: Span,
    *,
    max_files: int = FILES_PER_BATCH,
    max_records: int = RECORDS_PER_BATCH,
) -> Iterator[Batch]:
    """Group per-file reads into batches of whole files.

    Each item is (path or key, version to mark processed or None to read it again next cycle,
    its records and bad input). A file's records always travel with its processed mark.
    """
    batch = Batch(span=span)
    for name, version, items in files:
        for item in items:
            batch.add(item)
        if version is not None:
            batch.files[name] = version
            batch.delivered += 1
        if len(batch.files) >= max_files or len(batch.records) >= max_records:
            yield batch
            batch = Batch(span=span)
    if batch.records or batch.bad or batch.files:
        yield batch

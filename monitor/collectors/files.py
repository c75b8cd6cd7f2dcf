"""Read CloudTrail files: `.json`, `.json.gz`, `.jsonl`, `.jsonl.gz`.

Two shapes exist: the trail's own delivery files (`{"Records": [...]}`, one per 5 minutes per
account and region) and one-record-per-line exports (JSON Lines). Both become a stream of
`RawRecord`s for AssumeRole-family records only; everything unreadable becomes a `BadInput`
naming the file and position, and reading goes on with the next line or file.

The hot path is `records_from_bytes`/`record_from_line`: a byte-level pre-check drops content
without the `AssumeRo` marker before any JSON parsing, since AssumeRole-family events are a
small share of a trail; in a delivery file only the records whose `"eventName":"AssumeRo`
bytes mark them are cut out and parsed (`marked_records`), and their index in `Records` is
counted only when a position is asked for.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from monitor.collectors.base import BadInput, RawRecord
from monitor.events.normalise import is_assume_role_record

try:  # ISA-L inflate is about twice as fast as zlib; same API as the stdlib module
    from isal import igzip as gzip_impl
    from isal.igzip_lib import IsalError

    GZIP_ERRORS: tuple[type[BaseException], ...] = (EOFError, OSError, zlib.error, IsalError)
except ImportError:  # pragma: no cover - isal is a runtime dependency, but gzip always works
    import gzip as gzip_impl

    GZIP_ERRORS = (EOFError, OSError, zlib.error)

TRAIL_SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz")
# every AssumeRole-family eventName (AssumeRole, AssumeRoleWith*, AssumeRoot) begins with these bytes;
# what else they match is dropped by is_assume_role_record, which checks the name exactly
MARKER = b"AssumeRo"
EVENT_NAME_MARKER = b'"eventName":"' + MARKER  # the same, as CloudTrail's compact writer lays it out

Item = RawRecord | BadInput


def is_trail_file(name: str) -> bool:
    """A file this reader understands; CloudTrail digest and Insights files are not event records."""
    if "CloudTrail-Digest" in name or "CloudTrail-Insight" in name:
        return False
    return name.endswith(TRAIL_SUFFIXES)


def is_line_format(name: str) -> bool:
    return name.removesuffix(".gz").endswith(".jsonl")


def _looks_like_object(line: bytes) -> bool:
    return line[:1] == b"{" and line[-1:] == b"}"


def _keep(record: Any, origin: str, position: str) -> Item | None:
    if not isinstance(record, dict):
        return BadInput(origin, position, f"not a JSON object but {type(record).__name__}")
    name = record.get("eventName")
    if name is not None and not isinstance(name, str):  # cannot tell whether it is ours: say so
        return BadInput(origin, position, f"eventName is not a string but {type(name).__name__}")
    return RawRecord(record, origin, position) if is_assume_role_record(record) else None


def record_from_line(line: bytes, origin: str, position: str) -> Item | None:
    """One line of a JSON Lines file -> a record of interest, bad input, or None (not of interest/blank)."""
    line = line.strip()
    if not line:
        return None
    if MARKER not in line:
        # not ours; a line that is not even shaped like a JSON object is still reported
        return None if _looks_like_object(line) else BadInput(origin, position, "not a JSON object (unparseable line)")
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return BadInput(origin, position, f"not valid JSON: {exc}")
    return _keep(record, origin, position)


def records_from_lines(lines: Any, origin: str) -> Iterator[Item]:
    """Lines (a list, or a possibly gzip-backed stream) -> records; a broken stream ends with one BadInput."""
    n = 0
    try:
        for n, line in enumerate(lines, 1):  # noqa: B007 - n names the position if the stream breaks
            item = record_from_line(line, origin, f"line {n}")
            if item is not None:
                yield item
    except GZIP_ERRORS as exc:
        yield BadInput(origin, f"line {n + 1}", f"truncated or corrupt gzip: {exc}")


def _is_json_lines(data: bytes) -> bool:
    """More than one line, and the first line is a whole JSON object on its own."""
    stripped = data.strip()
    first, sep, _ = stripped.partition(b"\n")
    if not sep or not _looks_like_object(first.strip()):
        return False
    try:
        return isinstance(orjson.loads(first), dict)
    except orjson.JSONDecodeError:
        return False


RECORD_START = b'{"eventVersion"'  # how every record of a trail delivery file begins
_DELIVERY_HEAD = b'{"Records":[' + RECORD_START


class NotCompact(Exception):
    """The buffer is not laid out the way CloudTrail writes its files: parse it the general way."""


def marked_records(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) of every record whose `eventName` is AssumeRole-family; the others are never parsed.

    Only for compact delivery documents (`is_compact_delivery`): CloudTrail writes
    `{"Records":[{"eventVersion":...},{"eventVersion":...}]}` with no whitespace, so an
    AssumeRole-family record holds the bytes `"eventName":"AssumeRo`, and `{"eventVersion"`
    occurs only where a record begins (inside a JSON string its quotes would be escaped). The
    record around a marker runs from the last record start before it to the next one. Any other
    layout (another key order, an embedded CloudTrail event) makes a cut that does not parse, and
    the caller falls back to parsing the whole document.
    """
    end_of_records = data.rfind(b"]")  # the close of Records, when the document ends with `]}`
    pos = data.find(EVENT_NAME_MARKER)
    while pos != -1:
        start = data.rfind(RECORD_START, 0, pos)
        if start == -1:
            raise NotCompact
        nxt = data.find(RECORD_START, pos)
        chunk = data[start : nxt if nxt != -1 else end_of_records].rstrip()
        yield start, chunk[:-1] if nxt != -1 else chunk  # drop the comma between records
        if nxt == -1:
            return
        pos = data.find(EVENT_NAME_MARKER, nxt)


def record_index(data: bytes, offset: int) -> int:
    """Index in Records of the record that starts at `offset` (counted only when a position is needed)."""
    return data.count(RECORD_START, 0, offset + len(RECORD_START)) - 1


def is_compact_delivery(data: bytes) -> bool:
    return data.startswith(_DELIVERY_HEAD) or data.lstrip().startswith(_DELIVERY_HEAD)


def marked_assume_role_records(data: bytes) -> Iterator[tuple[int, dict[str, Any]]]:
    """(offset, record) of the AssumeRole-family records `marked_records` cuts out of a compact document.

    Raises NotCompact when a cut does not parse as one JSON object: the document is laid out
    some other way, and the caller parses it whole instead.
    """
    try:
        for start, chunk in marked_records(data):
            record = orjson.loads(chunk)
            if not isinstance(record, dict):
                raise NotCompact
            if is_assume_role_record(record):
                yield start, record
    except orjson.JSONDecodeError:
        raise NotCompact from None


def assume_role_records_fast(data: bytes, origin: str) -> list[Item] | None:
    """The hot path for trail delivery files: parse only the records `marked_records` cuts out.

    None when `data` is not a compact `{"Records":[{"eventVersion"...` document, or a cut did not
    parse as one JSON object: the caller then parses the whole document (same result, slower).
    Records without the marker are not validated on this path: they are not of interest.
    """
    if not is_compact_delivery(data):
        return None
    items: list[Item] = []
    index, counted_to = -1, 0
    try:
        for start, record in marked_assume_role_records(data):
            index += data.count(RECORD_START, counted_to, start + len(RECORD_START))
            counted_to = start + len(RECORD_START)
            items.append(RawRecord(record, origin, f"Records[{index}]"))
    except NotCompact:
        return None
    return items


def records_from_bytes(data: bytes, origin: str) -> Iterator[Item]:
    """A whole decompressed `.json` document -> records of interest.

    Accepts `{"Records": [...]}` (trail delivery files), a JSON array of records, a single
    record, or JSON Lines saved with a `.json` name.
    """
    fast = assume_role_records_fast(data, origin)
    if fast is not None:
        yield from fast
        return
    if MARKER not in data:
        head = data.lstrip()[:1]
        if head and head not in (b"{", b"["):
            yield BadInput(origin, "byte 0", "not a JSON document")
        return
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if _is_json_lines(data):  # JSON Lines under a .json name
            yield from records_from_lines(data.splitlines(), origin)
        else:  # one broken document (e.g. a pretty-printed file cut short): one report, not one per line
            yield BadInput(origin, f"byte {exc.pos}", f"not valid JSON: {exc.msg}")
        return
    if isinstance(doc, dict) and isinstance(doc.get("Records"), list):
        records, label = doc["Records"], "Records"
    elif isinstance(doc, list):
        records, label = doc, ""
    elif isinstance(doc, dict):
        item = _keep(doc, origin, "record 0")
        if item is not None:
            yield item
        return
    else:
        yield BadInput(origin, "byte 0", f"expected an object or array, got {type(doc).__name__}")
        return
    for i, record in enumerate(records):
        item = _keep(record, origin, f"{label}[{i}]")
        if item is not None:
            yield item


def inflate(data: bytes) -> bytes:
    """A whole gzip file at once: about twice as fast as streaming it through GzipFile."""
    return gzip_impl.decompress(data)


def document_bytes(body: bytes, name: str, origin: str) -> bytes | BadInput:
    """A whole document's JSON bytes (inflated by name), or the BadInput saying why there are none.

    A delivery document is parsed whole anyway, so it is inflated whole.
    """
    try:
        return inflate(body) if name.endswith(".gz") else body
    except GZIP_ERRORS as exc:
        return BadInput(origin, "file", f"truncated or corrupt gzip: {exc}")


def cannot_open(origin: str, exc: OSError) -> BadInput:
    return BadInput(origin, "file", f"cannot open: {exc.strerror}")


def read_stream(fh: IO[bytes], name: str, origin: str) -> Iterator[Item]:
    """Records of interest from an open binary stream; gzip by name; JSON Lines are streamed line by line."""
    if is_line_format(name):
        stream: IO[bytes] = gzip_impl.GzipFile(fileobj=fh) if name.endswith(".gz") else fh  # type: ignore[assignment]
        yield from records_from_lines(stream, origin)
        return
    data = document_bytes(fh.read(), name, origin)
    if isinstance(data, BadInput):
        yield data
        return
    yield from records_from_bytes(data, origin)


def read_file(path: str | Path, origin: str | None = None) -> Iterator[Item]:
    """Records of interest from one local file; unreadable files become one BadInput."""
    p = Path(path)
    origin = origin or str(p)
    try:
        fh = open(p, "rb")  # noqa: SIM115 - closed in finally, generator-safe
    except OSError as exc:
        yield cannot_open(origin, exc)
        return
    try:
        yield from read_stream(fh, p.name, origin)
    finally:
        fh.close()

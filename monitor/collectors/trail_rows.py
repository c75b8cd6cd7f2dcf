"""Trail files straight to event-table rows: the offline scan's hot path.

For a compact delivery document (what CloudTrail writes) only the records `marked_records` cuts
out are parsed, each goes straight to `normalise_values`, and a record's index in `Records` is
counted only if it has to be reported. Every other file (JSON Lines, pretty-printed, an array
of records) goes the general way through `read_file`; the rows and the reports are the same.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from monitor.collectors.base import BadInput
from monitor.collectors.files import (
    NotCompact,
    cannot_open,
    document_bytes,
    is_compact_delivery,
    is_line_format,
    marked_assume_role_records,
    read_file,
    read_stream,
    record_index,
    records_from_bytes,
)
from monitor.events.normalise import RecordError, normalise_values


def delivery_rows(data: bytes, origin: str, rows: list[tuple[Any, ...]], skipped: list[str]) -> int | None:
    """Rows of a compact delivery document appended to `rows`; the records read, or None (not compact)."""
    if not is_compact_delivery(data):
        return None
    added: list[tuple[Any, ...]] = []
    refused: list[tuple[int, RecordError]] = []
    try:
        for start, record in marked_assume_role_records(data):
            try:
                added.append(normalise_values(record))
            except RecordError as exc:
                refused.append((start, exc))
    except NotCompact:
        return None
    rows.extend(added)
    skipped.extend(f"{origin} [Records[{record_index(data, start)}]]: {exc}" for start, exc in refused)
    return len(added) + len(refused)


def items_rows(items: Any, rows: list[tuple[Any, ...]], skipped: list[str]) -> int:
    """Rows of what the general reader yields; the AssumeRole-family records read."""
    records = 0
    for item in items:
        if isinstance(item, BadInput):
            skipped.append(str(item))
            continue
        records += 1
        try:
            rows.append(normalise_values(item.record))
        except RecordError as exc:
            skipped.append(f"{item.origin} [{item.position}]: {exc}")
    return records


def document_rows(body: bytes, name: str, origin: str, rows: list[tuple[Any, ...]], skipped: list[str]) -> int:
    """Rows of one whole (possibly gzip) trail document, e.g. an S3 object body."""
    if is_line_format(name):
        return items_rows(read_stream(io.BytesIO(body), name, origin), rows, skipped)
    data = document_bytes(body, name, origin)
    if isinstance(data, BadInput):
        skipped.append(str(data))
        return 0
    fast = delivery_rows(data, origin, rows, skipped)
    if fast is not None:
        return fast
    return items_rows(records_from_bytes(data, origin), rows, skipped)


def file_rows(path: str | Path, rows: list[tuple[Any, ...]], skipped: list[str]) -> int:
    """Rows of one local trail file; the AssumeRole-family records read."""
    p = Path(path)
    if is_line_format(p.name):  # streamed: an export can be larger than memory
        return items_rows(read_file(p), rows, skipped)
    try:
        body = p.read_bytes()
    except OSError as exc:
        skipped.append(str(cannot_open(str(p), exc)))
        return 0
    return document_rows(body, p.name, str(p), rows, skipped)

"""Local directory source: every trail file under a path that was not processed before.

Any tree works: the S3 delivery layout copied to disk, or loose `.json[.gz]`/`.jsonl[.gz]`
exports. A file is "processed" by path + size + mtime, so a file that grows or is replaced is
read again (seen event IDs drop what was already stored).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from monitor.collectors.base import Batch, Collector, CycleWindow, Span, file_batches
from monitor.collectors.files import is_trail_file, read_file


def trail_files(root: Path) -> Iterator[Path]:
    """Trail files under root (or root itself), in a stable order."""
    if root.is_file():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if is_trail_file(str(path)):
                yield path


class LocalCollector(Collector):
    def batches(self, window: CycleWindow) -> Iterator[Batch]:
        root = self.config.resolve_path(self.source.path)
        span = Span(start=None, end=None, times_from_records=True)
        self.spans.append(span)
        if not root.exists():
            span.fail(f"{root}: no such file or directory")
            return
        done = self.state.processed_files(self.source_id)
        pending = []
        for path in trail_files(root):
            try:
                st = path.stat()
            except OSError as exc:
                span.fail(f"{path}: {exc.strerror}", partial=True)
                continue
            key = path.name if root.is_file() else path.relative_to(root).as_posix()
            version = f"{st.st_size}:{st.st_mtime_ns}"
            if done.get(key) != version:
                pending.append((key, version, path))
        span.message = "; ".join(filter(None, [f"{len(pending)} new or changed file(s)", span.message]))
        yield from file_batches(((key, version, read_file(path)) for key, version, path in pending), span)

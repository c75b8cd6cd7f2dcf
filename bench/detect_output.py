"""How long `rolewatch scan` spends after reading: the detectors over the event table, then JSON Lines.

    python bench/detect_output.py --records 1000000

Uses the trail of bench/scan_throughput.py (generated once, cached under bench/.cache/) and
caches its event table there too, so only the first run pays for reading. Keeps the events up
to `--until` as `scan --until` does, then times in-process, best of `--repeat`:
1. `run_detectors` (every detector, no IAM inventory), as `scan` calls it;
2. the findings written as `scan` writes them (`Finding.to_json`, one line each).
Wall and CPU seconds for both, the event and finding counts, and the load average. Targets at
1M records (about 100k events, 13k findings): run_detectors under 1.0 s, JSON under 0.2 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.scan_throughput import CACHE, ensure_trail  # noqa: E402
from monitor.config import Config  # noqa: E402
from monitor.detect.context import DetectionContext  # noqa: E402
from monitor.detect.engine import run_detectors  # noqa: E402
from monitor.posture.model import Posture  # noqa: E402
from monitor.scan import _parse_time, read_events  # noqa: E402


def event_table(records: int) -> pd.DataFrame:
    cached = CACHE / f"events-{records}.pkl"
    if not cached.exists():
        events = read_events([str(ensure_trail(records))], Config())[0]
        events.to_pickle(cached)
    return pd.read_pickle(cached)


def best_of(repeat: int, run: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall s, cpu s, result) of the fastest of `repeat` runs."""
    best: tuple[float, float, Any] | None = None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        out = run()
        took = (time.perf_counter() - wall, time.process_time() - cpu, out)
        best = took if best is None or took[0] < best[0] else best
    assert best is not None
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--until", default="2026-01-01T00:00:00Z", help="the clock, as `scan --until`")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    until = _parse_time(args.until, "--until")
    events = event_table(args.records)
    events = events[events["event_time"].isna() | (events["event_time"] <= until)]
    ctx = DetectionContext(now=until, posture=Posture(), baselines={},
                           data_start=events["event_time"].min().to_pydatetime())
    config = Config()
    d_wall, d_cpu, result = best_of(args.repeat, lambda: run_detectors(events, ctx, config))
    j_wall, j_cpu, text = best_of(args.repeat, lambda: "".join(f.to_json() + "\n" for f in result.findings))
    load = os.getloadavg()[0]
    print(f"{len(events):,} events -> {len(result.findings):,} findings ({len(text) / 1e6:.1f} MB JSON Lines)")
    print(f"run_detectors  {d_wall:6.3f} s wall  {d_cpu:6.3f} s cpu   (best of {args.repeat})")
    print(f"JSON out       {j_wall:6.3f} s wall  {j_cpu:6.3f} s cpu")
    print(f"load average {load:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())

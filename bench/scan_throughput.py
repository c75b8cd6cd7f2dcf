"""How fast `rolewatch scan` reads an organisation trail, against the floor and the usual tools.

    python bench/scan_throughput.py --records 1000000

Generates (once, cached under bench/.cache/) an organisation trail in the S3 layout with
`rolewatch synth` (about 1.6 KB per record, 100 records per .json.gz, 10% AssumeRole-family of
which about 15% failed), then times as whole processes, on the same files:
1. the floor: decompress every file and nothing else, one process per core (ISA-L and zlib;
   the faster one is the floor);
2. `rolewatch scan` over the directory (all detectors, JSON Lines out);
3. jq and DuckDB `read_json` answering the same question (the AssumeRole-family records), when
   installed.
Prints records/s, MB/s (decompressed) and peak RSS (whole process tree) for each, and the ratio
scan/floor. Targets: scan within 1.5x the floor, peak RSS under 400 MB at 1M records.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._measure import Measured, measure  # noqa: E402
from monitor.events.schema import ASSUME_ROLE_EVENTS  # noqa: E402

CACHE = REPO / "bench" / ".cache"
ASSUME_ROLE_FAMILY = tuple(sorted(ASSUME_ROLE_EVENTS))


# --------------------------------------------------------------------------- the trail


def trail_shape(records: int) -> tuple[int, int, int]:
    """(days, accounts, regions) giving about 100 records per delivery file at this volume."""
    if records >= 500_000:
        return 14, 4, 2
    if records >= 50_000:
        return 7, 2, 1
    return 2, 2, 1


def ensure_trail(records: int) -> Path:
    out = CACHE / f"trail-{records}"
    done = out / ".complete"
    if done.exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    days, accounts, regions = trail_shape(records)
    print(f"generating {records:,} records with rolewatch synth (cached in {out}) ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "monitor", "synth", "--records", str(records), "--days", str(days),
                    "--accounts", str(accounts), "--regions", str(regions), "--end", "2026-01-01",
                    "--out", str(out)], cwd=REPO, check=True)
    done.write_text(json.dumps({"records": records}))
    return out


def trail_files(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*.json.gz"))


# --------------------------------------------------------------------------- the floor (runs in a child)


def _decompress_all(args: tuple[str, list[str]]) -> int:
    codec, paths = args
    if codec == "isal":  # igzip.decompress: the fastest whole-file inflate in python-isal
        from isal import igzip

        inflate = igzip.decompress
    else:
        def inflate(data: bytes) -> bytes:
            return zlib.decompress(data, 31)
    total = 0
    for p in paths:
        with open(p, "rb") as fh:
            total += len(inflate(fh.read()))
    return total


def floor_main(root: str, codec: str, workers: int) -> None:
    files = trail_files(Path(root))
    chunks = [(codec, files[i::workers * 8]) for i in range(workers * 8)]
    with ProcessPoolExecutor(workers) as pool:
        total = sum(pool.map(_decompress_all, chunks))
    print(total)


# --------------------------------------------------------------------------- runs


def run_floor(root: Path, codec: str, workers: int) -> Measured:
    return measure([sys.executable, __file__, "--floor-child", str(root), "--codec", codec,
                    "--workers", str(workers)])


def decompressed_bytes(root: Path) -> int:
    from isal import isal_zlib

    return sum(len(isal_zlib.decompress(Path(p).read_bytes(), 31)) for p in trail_files(root))


def run_scan(root: Path, out_dir: Path, workers: int) -> Measured:
    return measure([sys.executable, "-m", "monitor", "scan", str(root), "--until", "2026-01-01T00:00:00Z",
                    "--workers", str(workers), "--output", str(out_dir / "scan.jsonl")])


def run_jq(root: Path, out_dir: Path, workers: int) -> Measured | None:
    if not shutil.which("jq"):
        return None
    names = " or ".join(f'.eventName == "{n}"' for n in ASSUME_ROLE_FAMILY)
    jq_filter = out_dir / "assume_role.jq"
    jq_filter.write_text(f".Records[] | select({names})\n")
    cmd = (f"find {root} -name '*.json.gz' -print0 | xargs -0 -n 256 -P {workers} sh -c "
           f"'zcat -- \"$@\" | jq -c -f {jq_filter}' sh > {out_dir / 'jq.jsonl'}")
    return measure(cmd, shell=True)


DUCKDB_SCRIPT = """
import duckdb, sys
con = duckdb.connect()
con.execute("SET threads = {workers}")
con.execute('''COPY (
  SELECT r FROM (SELECT unnest(Records) AS r
                 FROM read_json('{root}/**/*.json.gz', columns = {{'Records': 'JSON[]'}}))
  WHERE r->>'eventName' IN ({names})
) TO '{out}' (FORMAT json)''')
"""


def run_duckdb(root: Path, out_dir: Path, workers: int) -> Measured | None:
    try:
        import duckdb  # noqa: F401
    except ImportError:
        return None
    names = ", ".join(f"'{n}'" for n in ASSUME_ROLE_FAMILY)
    script = DUCKDB_SCRIPT.format(workers=workers, root=root, out=out_dir / "duckdb.jsonl", names=names)
    return measure([sys.executable, "-c", script])


def count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for _ in fh)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--skip", action="append", default=[], choices=["jq", "duckdb", "scan"])
    ap.add_argument("--json", metavar="FILE", help="also write the figures here")
    ap.add_argument("--floor-child", metavar="DIR", help=argparse.SUPPRESS)
    ap.add_argument("--codec", choices=["isal", "zlib"], default="isal", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.floor_child:
        floor_main(args.floor_child, args.codec, args.workers)
        return 0

    root = ensure_trail(args.records)
    files = trail_files(root)
    gz_bytes = sum(os.path.getsize(p) for p in files)
    raw_bytes = decompressed_bytes(root)
    out_dir = CACHE / f"out-{args.records}"
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"trail: {args.records:,} records in {len(files):,} files, {gz_bytes / 1e6:.0f} MB gzip, "
          f"{raw_bytes / 1e6:.0f} MB decompressed ({raw_bytes / args.records:,.0f} B/record); "
          f"{args.workers} workers on {os.cpu_count()} cores")

    results: dict[str, Measured] = {}
    for codec in ("isal", "zlib"):
        results[f"floor ({codec})"] = run_floor(root, codec, args.workers)
    floor_name = min((k for k in results if k.startswith("floor")), key=lambda k: results[k].seconds)
    if "scan" not in args.skip:
        results["rolewatch scan"] = run_scan(root, out_dir, args.workers)
    if "jq" not in args.skip and (m := run_jq(root, out_dir, args.workers)):
        results["jq"] = m
    if "duckdb" not in args.skip and (m := run_duckdb(root, out_dir, args.workers)):
        results["duckdb read_json"] = m

    load = os.getloadavg()[0]
    print(f"\nload average at the end: {load:.1f} on {os.cpu_count()} cores"
          + ("  (busy machine: compare CPU seconds, wall time is inflated)" if load > (os.cpu_count() or 1) else ""))
    print(f"{'run':<20} {'wall s':>8} {'cpu s':>8} {'records/s':>12} {'MB/s':>8} {'peak RSS MB':>12} "
          f"{'peak PSS MB':>12}  note")
    for name, m in results.items():
        note = "FAILED: " + m.stderr.strip().splitlines()[-1] if m.returncode else ""
        if name == floor_name:
            note = note or "<- floor"
        print(f"{name:<20} {m.seconds:>8.2f} {m.cpu_seconds:>8.2f} {args.records / m.seconds:>12,.0f} "
              f"{raw_bytes / 1e6 / m.seconds:>8.0f} {m.peak_rss_mb:>12.0f} {m.peak_pss_mb:>12.0f}  {note}")
    floor = results[floor_name]
    if "rolewatch scan" in results:
        scan = results["rolewatch scan"]
        findings = count_lines(out_dir / "scan.jsonl") if (out_dir / "scan.jsonl").exists() else 0
        print(f"\nscan/floor = {scan.seconds / floor.seconds:.2f} wall, {scan.cpu_seconds / floor.cpu_seconds:.2f} cpu "
              "(target <= 1.5); "
              f"scan peak RSS {scan.peak_rss_mb:.0f} MB, PSS {scan.peak_pss_mb:.0f} MB (target < 400 MB); {findings} findings")
        if scan.returncode:
            print(scan.stderr[-3000:], file=sys.stderr)
    for name, fname in (("jq", "jq.jsonl"), ("duckdb read_json", "duckdb.jsonl")):
        if name in results and (out_dir / fname).exists():
            print(f"{name}: {count_lines(out_dir / fname):,} AssumeRole-family records")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "records": args.records, "files": len(files), "gzip_bytes": gz_bytes, "raw_bytes": raw_bytes,
            "workers": args.workers,
            "runs": {k: {"seconds": m.seconds, "cpu_seconds": m.cpu_seconds, "peak_rss_mb": m.peak_rss_mb,
                         "peak_pss_mb": m.peak_pss_mb, "returncode": m.returncode}
                     for k, m in results.items()},
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

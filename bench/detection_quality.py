"""Precision and recall of the whole detection engine on labelled synthetic trails.

Builds trails with `monitor.demo.synth` (planted, labelled incidents; a normal population that
behaves the way people, CI and AWS services do) and an IAM inventory of the scenario's roles (its
never-assumed `LegacyBackupRole` is the unused-role incident; a role younger than `unused_days`
must not be flagged), runs `run_detectors` once per trail exactly as `rolewatch scan` would (no state: baselines
learned from the data), and scores every finding:

- a finding is a true positive when its detector equals a label's and it shares an event with
  that label (for unused_role: the same role ARN);
- every other finding of severity medium or above is a false positive (the synthetic population
  is clean by construction);
- unmatched *low* findings are counted apart ("low, unlabelled"), not as false positives: the
  contract asks for one low finding per group of denied calls, and the synthetic population has
  scattered single denials (someone trying a role they lack) that are exactly that;
- a label is recalled when at least one finding matches it; "sev ok" counts true positives
  whose severity equals the label's.

Usage: python bench/detection_quality.py [--days 21] [--seeds 7,11,23] [--accounts 2]
Prints one line per detector with TP/FP/FN, precision and recall, then the engine's throughput.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from monitor.config import parse_config  # noqa: E402
from monitor.demo import synth  # noqa: E402
from monitor.detect.context import DetectionContext  # noqa: E402
from monitor.detect.engine import DETECTORS, run_detectors  # noqa: E402
from monitor.events.normalise import RecordError, is_assume_role_record, normalise  # noqa: E402
from monitor.events.schema import frame_from_rows  # noqa: E402
from monitor.findings import Finding  # noqa: E402
from monitor.posture.model import Posture, RoleInfo  # noqa: E402


def build(days: int, accounts: int, seed: int, end: str) -> tuple[Any, list[dict[str, Any]], Any]:
    spec = synth.make_spec(days, accounts, end=end, seed=seed)
    labels: list[dict[str, Any]] = []
    rows = []
    for _acct, _region, _hour, records in synth.generate(spec=spec, labels_out=labels):
        for r in records:
            if is_assume_role_record(r):
                with contextlib.suppress(RecordError):
                    rows.append(normalise(r))
    return frame_from_rows(rows), labels, spec


def inventory(spec: Any, labels: list[dict[str, Any]]) -> Posture:
    """The scenario's roles, all created long before the trail; plus a young role nobody used yet.

    The synthetic population never assumes its `LegacyBackupRole`: that is the unused-role incident.
    """
    start = spec.end - timedelta(days=spec.days)
    roles = {}
    for account, arns in synth.build_population(spec).roles.items():
        for arn in arns:
            path = "/" + arn.split(":role/", 1)[1].rsplit("/", 1)[0] + "/" if arn.count("/") > 1 else "/"
            roles[arn] = RoleInfo(arn=arn, name=arn.rsplit("/", 1)[-1], account_id=account, path=path,
                                  create_date=start - timedelta(days=400))
            if arn.endswith("/" + synth.UNUSED_ROLE):
                labels.append({"id": f"unused-{account}", "detector": "unused_role", "role_arn": arn,
                               "event_ids": []})
    owner = spec.accounts[0]
    young = RoleInfo(arn=f"arn:aws:iam::{owner}:role/bench-new", name="bench-new", account_id=owner,
                     create_date=spec.end - timedelta(days=89))
    roles[young.arn] = young
    return Posture(roles=roles, accounts=list(spec.accounts))


def matches(f: Finding, label: dict[str, Any]) -> bool:
    if f.detector != label["detector"]:
        return False
    if f.detector == "unused_role":
        return f.role_arn == label["role_arn"]
    return bool(set(f.event_ids) & set(label["event_ids"]))


def _line(name: str, lab: int, t: int, f_: int, n: int, ok: int, lo: int) -> str:
    prec = f"{t / (t + f_):.2f}" if t + f_ else "-"
    rec = f"{(lab - n) / lab:.2f}" if lab else "-"
    return f"{name:<22}{lab:>7}{t:>5}{f_:>5}{n:>5}{prec:>11}{rec:>8}{ok:>8}{lo:>17}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=21)
    ap.add_argument("--accounts", type=int, default=2)
    ap.add_argument("--seeds", default="7,11,23")
    ap.add_argument("--end", default="2026-03-20")
    ap.add_argument("--verbose", "-v", action="store_true", help="print every false positive and missed label")
    args = ap.parse_args()
    config = parse_config({"detectors": {"off_hours": {"timezone": synth.TIMEZONE}}})
    tp: dict[str, int] = defaultdict(int)
    fp: dict[str, int] = defaultdict(int)
    fn: dict[str, int] = defaultdict(int)
    low: dict[str, int] = defaultdict(int)
    sev_ok: dict[str, int] = defaultdict(int)
    n_labels: dict[str, int] = defaultdict(int)
    events_total, seconds = 0, 0.0
    for seed in (int(s) for s in args.seeds.split(",")):
        events, labels, spec = build(args.days, args.accounts, seed, args.end)
        posture = inventory(spec, labels)
        ctx = DetectionContext(now=spec.end, posture=posture)
        t0 = time.perf_counter()
        result = run_detectors(events, ctx, config)
        seconds += time.perf_counter() - t0
        events_total += len(events)
        for f in result.findings:
            if f.detector not in DETECTORS:
                continue  # posture detectors (trust_policy, least_privilege) are scored elsewhere
            hit = [lab for lab in labels if matches(f, lab)]
            if hit:
                tp[f.detector] += 1
                sev_ok[f.detector] += any(lab.get("severity", f.severity) == f.severity for lab in hit)
            elif f.severity == "low":
                low[f.detector] += 1
            else:
                fp[f.detector] += 1
                if args.verbose:
                    print(f"  FP seed={seed} {f.detector} {f.severity} {f.title}", file=sys.stderr)
        for lab in labels:
            n_labels[lab["detector"]] += 1
            if not any(matches(f, lab) for f in result.findings):
                fn[lab["detector"]] += 1
                if args.verbose:
                    print(f"  FN seed={seed} {lab['detector']} {lab.get('incident', lab['id'])}", file=sys.stderr)
    print(f"detection quality: {args.days} days, {args.accounts} accounts, seeds {args.seeds}")
    head = f"{'detector':<22}{'labels':>7}{'TP':>5}{'FP':>5}{'FN':>5}{'precision':>11}{'recall':>8}"
    print(head + f"{'sev ok':>8}{'low, unlabelled':>17}")
    totals = [0, 0, 0, 0, 0, 0]
    for name in DETECTORS:
        row = [n_labels[name], tp[name], fp[name], fn[name], sev_ok[name], low[name]]
        print(_line(name, *row))
        totals = [a + b for a, b in zip(totals, row, strict=True)]
    print(_line("all", *totals))
    print(f"engine: {events_total} AssumeRole events in {seconds:.2f} s ({events_total / max(seconds, 1e-9):,.0f} events/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`rolewatch report`: build the access review from state (or offline inputs) and write one format."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from monitor.config import Config
from monitor.posture.model import Posture
from monitor.posture.store import load_posture
from monitor.report.render import default_name, render_text, write_report
from monitor.report.tables import (
    SNAPSHOT_NAMESPACE,
    Period,
    ReviewOptions,
    ReviewTables,
    build_review,
    snapshot_key,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(ValueError):
    pass


def parse_iso(value: str | None, what: str) -> datetime | None:
    if not value:
        return None
    try:
        t = pd.Timestamp(value)
    except ValueError:
        raise UsageError(f"{what}: not an ISO 8601 time: {value!r}") from None
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.to_pydatetime()


def report_period(since: datetime | None, until: datetime | None, now: datetime, period_days: int) -> Period:
    end = until or now
    start = since or end - timedelta(days=period_days)
    if start >= end:
        raise UsageError(f"--since ({start.isoformat()}) must be before --until ({end.isoformat()})")
    return Period(start, end)


def review_from_state(config: Config, state: Any, *, now: datetime, period: Period,
                      accounts: list[str] | None = None) -> ReviewTables:
    opts = ReviewOptions.from_config(config, accounts)
    previous = state.get_json(SNAPSHOT_NAMESPACE, snapshot_key(opts.accounts))
    events = state.load_events(period.since, period.until)
    return build_review(events, load_posture(state), state.findings(), period, previous, opts, now=now)


def save_snapshot(state: Any, tables: ReviewTables) -> None:
    """Keep this run's role facts so the next report can say what changed."""
    state.put_json(SNAPSHOT_NAMESPACE, snapshot_key(tables.snapshot.get("accounts") or None), tables.snapshot)


def review_offline(config: Config, trail: list[str], snapshots: list[str], *, now: datetime, period: Period,
                   accounts: list[str] | None = None) -> tuple[ReviewTables, int]:
    from monitor.report.offline import read_iam_snapshots, read_trail

    events, skipped = read_trail(trail, config)
    notices: list[str] = []
    posture = read_iam_snapshots(snapshots, notices) if snapshots else Posture()
    findings = offline_findings(events, posture, config, period)
    tables = build_review(events, posture, findings, period, None, ReviewOptions.from_config(config, accounts),
                          now=now, source="offline")
    tables.meta["notes"].extend(notices)
    if skipped:
        tables.meta["notes"].append(f"{len(skipped)} unreadable trail records or files were skipped (see log)")
    return tables, len(skipped)


def offline_findings(events: pd.DataFrame, posture: Posture, config: Config, period: Period) -> list[Any]:
    """Offline there is no findings history: run the detectors over the trail, as `scan` does."""
    from monitor.detect.context import DetectionContext
    from monitor.detect.engine import run_detectors

    ctx = DetectionContext(now=period.until, posture=posture, data_start=period.since)
    return list(run_detectors(events, ctx, config).findings)


def default_folder(config: Config) -> Path:
    """Where a report goes without --output. `output_dir = ""` means no folder (as for the scheduled
    report), not the working directory: --output is then required."""
    if not config.report.output_dir:
        raise UsageError('[report] output_dir is "" (no folder): give --output PATH, or --output - for html/md/json')
    return config.resolve_path(config.report.output_dir)


def cmd_report(args: argparse.Namespace, *, now: datetime | None = None) -> int:
    from monitor.commands import config_from_args

    config = config_from_args(args)
    now = now or datetime.now(UTC)
    try:
        period = report_period(parse_iso(args.since, "--since"), parse_iso(args.until, "--until"), now,
                               config.report.period_days)
        folder = None if args.output else default_folder(config)  # known before the review is built
    except UsageError as exc:
        print(f"rolewatch report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    accounts = list(args.account) or None
    offline = bool(args.trail or args.iam_snapshot)
    try:
        if offline:
            tables, _ = review_offline(config, list(args.trail), list(args.iam_snapshot), now=now, period=period,
                                       accounts=accounts)
        else:
            from monitor.state import open_state

            state = open_state(config)
            try:
                tables = review_from_state(config, state, now=now, period=period, accounts=accounts)
                save_snapshot(state, tables)
            finally:
                state.close()
    except ValueError as exc:
        print(f"rolewatch report: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.output == "-" and args.format in ("html", "md", "json"):
        sys.stdout.write(render_text(tables, args.format))
        return EXIT_OK
    path = folder / default_name(tables, args.format) if folder else Path(args.output)
    try:
        written = write_report(tables, args.format, path)
    except OSError as exc:
        print(f"rolewatch report: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    s = tables.sections["summary"].set_index("metric")["value"]
    print(f"rolewatch report: wrote {written} ({tables.meta['since']} .. {tables.meta['until']}): "
          f"{s['roles']} roles, {s['cross_account_roles']} cross-account, {s['unused_roles']} unused, "
          f"{s['failed_attempts']} failed attempts, {s['open_findings']} open findings", file=sys.stderr)
    return EXIT_OK

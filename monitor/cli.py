"""The `rolewatch` command line. Thin: parse arguments, call one function, map errors to exit codes.

Exit codes (all subcommands): 0 success, 1 the work itself failed, 2 usage or configuration
error, 3 `scan --fail-on` threshold met.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from monitor.config import ConfigError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_FINDINGS = 0, 1, 2, 3
SEVERITY_CHOICES = ["info", "low", "medium", "high", "critical"]

# subcommand -> "module:function"; each function takes the parsed args and returns an exit code
COMMANDS = {
    "once": "monitor.commands:cmd_once",
    "check-config": "monitor.commands:cmd_check_config",
    "demo": "monitor.demo.runner:cmd_demo",
    "synth": "monitor.demo.synth:cmd_synth",
    "scan": "monitor.scan:cmd_scan",
    "report": "monitor.report.command:cmd_report",
    "run": "monitor.schedule:cmd_run",
    "status": "monitor.status:cmd_status",
}


def _config_arg(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("--config", "-c", metavar="FILE", required=required,
                   help="TOML configuration file (default: rolewatch.toml if present, else built-in defaults)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rolewatch",
        description="Audit and monitor AWS STS AssumeRole activity: who assumed which role, from where, "
        "when, what failed, and which roles nobody uses.",
    )
    parser.add_argument("--version", action="version", version="rolewatch 0.1.0")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], default=None,
                        help="log level; wins over [logging] level and ROLEWATCH_LOG_LEVEL (default: those, else INFO)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                help="see `rolewatch COMMAND --help` for its flags")

    p = sub.add_parser("once", help="run one tick of the service and exit (cron, containers): the collection "
                       "cycle, the posture collection when due, the monitor_health check")
    _config_arg(p)
    p.add_argument("--since", metavar="ISO", help="backfill from this time instead of the checkpoint")
    p.add_argument("--until", metavar="ISO", help="stop the window at this time (default: now)")
    p.add_argument("--posture", choices=["auto", "always", "never"], default="auto",
                   help="collect the IAM posture: auto = when [schedule] posture has fired since its last run "
                   "(default), always, never")
    p.add_argument("--no-notify", action="store_true", help="store findings but send no alerts")

    p = sub.add_parser("check-config", help="validate a config file and print it resolved, secrets masked")
    p.add_argument("file", metavar="FILE", help="the TOML configuration file to check")

    p = sub.add_parser("demo", help="run a full cycle against an embedded local AWS (moto) with a planted trail")
    p.add_argument("--days", type=int, default=21, metavar="N", help="days of synthetic activity (default 21)")
    p.add_argument("--workdir", metavar="DIR", help="keep state and trail here (default: a temporary folder)")
    p.add_argument("--seed", type=int, default=7, metavar="S", help="seed of the generated trail (default 7)")

    p = sub.add_parser("synth", help="write a synthetic CloudTrail trail (S3 layout) to a local folder")
    p.add_argument("--days", type=int, default=7, metavar="N", help="days of trail, ending at --end (default 7)")
    p.add_argument("--accounts", type=int, default=2, metavar="K",
                   help="accounts; the first two are 111122223333 and 444455556666 (default 2)")
    p.add_argument("--out", metavar="DIR", required=True,
                   help="write the trail here in the S3 layout (DIR/AWSLogs/...); created with its parents")
    p.add_argument("--records", type=int, default=None, metavar="N",
                   help="total records to write (all event types); default: a realistic volume for --days")
    p.add_argument("--records-per-file", type=int, default=100, metavar="N",
                   help="records per trail file (default 100; a file never spans more than an hour)")
    p.add_argument("--regions", type=int, default=1, metavar="R", help="regions per account (default 1)")
    p.add_argument("--seed", type=int, default=7, metavar="S", help="same seed and flags give byte-identical files (default 7)")
    p.add_argument("--end", metavar="ISO", help="a date (the trail ends at the end of that day) or a time; "
                   "default: now, to the hour")
    p.add_argument("--labels", metavar="FILE", help="write the planted incidents as JSON Lines here")

    p = sub.add_parser("scan", help="offline scan of CloudTrail files or s3://bucket/prefix (incident response)")
    _config_arg(p)
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="a CloudTrail file, a folder of them (S3 layout or loose exports) or s3://bucket/prefix")
    p.add_argument("--iam-snapshot", action="append", default=[], metavar="FILE",
                   help="output of `aws iam get-account-authorization-details` (repeat per account)")
    p.add_argument("--since", metavar="ISO", help="start of the event window, UTC (default: all the data)")
    p.add_argument("--until", metavar="ISO",
                   help="end of the event window, UTC, and the clock for unused_role and allowlist expiry "
                   "(default: now)")
    p.add_argument("--format", choices=["jsonl", "table"], default="jsonl",
                   help="findings as JSON Lines (default) or a table for people")
    p.add_argument("--output", "-o", metavar="FILE",
                   help="write findings to FILE, whose folder must exist (default: stdout; - is stdout too)")
    p.add_argument("--fail-on", choices=SEVERITY_CHOICES, metavar="SEVERITY",
                   help="exit 3 when a finding at or above this severity exists")
    p.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                   help="parallel file readers, 1 or more (default: one per core)")

    p = sub.add_parser("report", help="write an access-review report")
    _config_arg(p)
    p.add_argument("--since", metavar="ISO",
                   help="start of the review period, UTC when no zone (default: --until minus [report] period_days)")
    p.add_argument("--until", metavar="ISO", help="end of the review period, UTC when no zone (default: now)")
    p.add_argument("--format", choices=["html", "md", "csv", "xlsx", "json"], default="html",
                   help="report format (default html)")
    p.add_argument("--output", "-o", metavar="PATH",
                   help="write the report here; - writes html/md/json to stdout "
                   "(default: [report] output_dir/rolewatch-access-review-<until date>.<ext>)")
    p.add_argument("--account", action="append", default=[], metavar="ID",
                   help="review only the roles of this account (repeat per account; default: all)")
    p.add_argument("--trail", action="append", default=[], metavar="PATH",
                   help="offline: review these CloudTrail files or folders instead of the state (repeatable)")
    p.add_argument("--iam-snapshot", action="append", default=[], metavar="FILE",
                   help="offline: output of `aws iam get-account-authorization-details` (repeat per account)")

    p = sub.add_parser("run", help="run as a service on the configured schedule (APScheduler)")
    _config_arg(p)

    p = sub.add_parser("status", help="last runs, heartbeat, last cycle's coverage per source, outbox backlog, "
                       "open monitor_health findings")
    _config_arg(p)
    p.add_argument("--json", action="store_true", help="print the status as one JSON object instead of text")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from monitor.logs import setup_logging

    setup_logging(args.log_level)
    module_name, func_name = COMMANDS[args.command].split(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError):
        print(f"rolewatch {args.command}: not available in this build", file=sys.stderr)
        return EXIT_FAILED
    try:
        return int(func(args) or 0)
    except ConfigError as exc:
        print(f"rolewatch: configuration error:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

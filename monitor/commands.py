"""Implementations of the small subcommands (`once`, `check-config`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from monitor.config import Config, load_config
from monitor.redact import MASK


def config_from_args(args: argparse.Namespace) -> Config:
    path = getattr(args, "config", None)
    if path is None and Path("rolewatch.toml").exists():
        path = "rolewatch.toml"
    return load_config(path)


def masked_config(cfg: Config) -> dict:
    data = cfg.model_dump(mode="json", exclude_none=True)
    # an inline webhook URL is a credential (whoever has it can post), like a SecretRef value
    for notifier in data.get("notifiers", []):
        if notifier.get("type") in ("slack_webhook", "webhook") and notifier.get("url"):
            notifier["url"] = MASK

    def walk(obj):  # noqa: ANN001, ANN202
        if isinstance(obj, dict):
            if "value" in obj and set(obj) <= {"value"}:
                return {"value": MASK}
            return {k: walk(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        return obj

    return walk(data)


def cmd_check_config(args: argparse.Namespace) -> int:
    from monitor.config_warnings import config_warnings

    cfg = load_config(args.file)
    print(json.dumps(masked_config(cfg), indent=2))
    for warning in config_warnings(cfg):
        print(f"warning: {args.file}: {warning}", file=sys.stderr)
    print(f"{args.file}: OK", file=sys.stderr)
    return 0


def cmd_once(args: argparse.Namespace) -> int:
    from monitor.schedule import run_once

    return run_once(config_from_args(args), args)

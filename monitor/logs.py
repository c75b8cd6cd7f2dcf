"""Logging: JSON lines when stderr is not a terminal, text otherwise; secrets always masked."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import time

from monitor.redact import redact_text

run_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("run_id", default=None)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        record.msg = redact_text(msg)
        record.args = None
        record.run_id = run_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "run_id", None):
            out["run_id"] = record.run_id
        for key in ("source", "account", "region", "file", "job"):
            if hasattr(record, key):
                out[key] = getattr(record, key)
        if record.exc_info:
            out["exception"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    def formatException(self, ei) -> str:  # type: ignore[no-untyped-def,override]
        return redact_text(super().formatException(ei))


def setup_logging(level: str | None = None, fmt: str = "auto") -> None:
    level = level or os.environ.get("ROLEWATCH_LOG_LEVEL", "INFO")
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_rolewatch", False):
            root.removeHandler(h)
    handler._rolewatch = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3", "werkzeug", "s3transfer", "moto", "apscheduler.executors"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

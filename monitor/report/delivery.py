"""The scheduled access review: build it from state, write each configured format to a folder
and/or `s3://bucket/prefix/` (server-side encryption always on), and post a short summary to
Slack with the file attached (`files_upload_v2`) through the notifiers named in
`[report] slack_notifiers`.

One destination failing does not stop the others; the result says what went where and what
failed. The run's role snapshot (for "changes since the previous report") is kept only when
the report reached at least one destination, so a change nobody saw is reported again next time.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from monitor.config import Config, notifier_id
from monitor.redact import redact_text
from monitor.report.command import report_period, review_from_state, save_snapshot
from monitor.report.render import default_name, write_report
from monitor.report.tables import ReviewTables

log = logging.getLogger(__name__)


@dataclass
class DeliveryResult:
    written: list[str] = field(default_factory=list)  # local paths
    s3_objects: list[str] = field(default_factory=list)  # s3://bucket/key
    slack: dict[str, str] = field(default_factory=dict)  # notifier name -> file id or "posted"
    errors: list[str] = field(default_factory=list)
    summary: dict[str, int] = field(default_factory=dict)
    since: str | None = None
    until: str | None = None

    @property
    def delivered(self) -> bool:
        return bool(self.written or self.s3_objects or self.slack)

    def as_stats(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until, "written": self.written, "s3_objects": self.s3_objects,
                "slack": self.slack, "errors": self.errors, "summary": self.summary}


def summary_text(tables: ReviewTables) -> str:
    """The Slack post: a few lines a reader can act on without opening the file."""
    s = dict(zip(tables.sections["summary"]["metric"], tables.sections["summary"]["value"], strict=True))
    m = tables.meta
    lines = [
        f"*rolewatch access review* {m['since'][:10]} – {m['until'][:10]} "
        f"({len(m['accounts'])} account{'s' if len(m['accounts']) != 1 else ''})",
        f"• {s['roles']} roles, {s['cross_account_roles']} cross-account "
        f"({s['cross_account_roles_without_externalid_condition']} without an ExternalId condition)",
        f"• recommendations: {s['roles_to_remove']} remove (unused), {s['roles_to_tighten']} tighten, "
        f"{s['roles_to_keep']} keep",
        f"• {s['successful_assumptions']} assumptions, {s['failed_attempts']} failed attempts; "
        f"{s['open_findings']} open findings ({s['high_or_critical_findings']} high or critical)",
    ]
    if m.get("previous_report"):
        lines.append(f"• since the last report: {s['new_roles']} new roles, {s['new_trusted_principals']} new "
                     f"trusted principals, {s['newly_unused_roles']} newly unused, {s['removed_roles']} removed")
    else:
        lines.append("• first report: nothing to compare with yet")
    return redact_text("\n".join(lines))


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or len(uri) <= 5:
        raise ValueError(f"report.s3_uri: expected s3://bucket/prefix/, got {uri!r}")
    bucket, _, prefix = uri[5:].partition("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".md": "text/markdown; charset=utf-8",
                  ".json": "application/json", ".zip": "application/zip",
                  ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def upload_s3(config: Config, files: list[Path], s3_client: Any = None) -> list[str]:
    from monitor.aws import client

    bucket, prefix = parse_s3_uri(config.report.s3_uri or "")
    s3 = s3_client or client("s3", config.aws)
    encryption: dict[str, str] = {"ServerSideEncryption": "AES256"}
    if config.report.s3_kms_key_id:
        encryption = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": config.report.s3_kms_key_id}
    out = []
    for f in files:
        key = prefix + f.name
        with f.open("rb") as body:
            s3.put_object(Bucket=bucket, Key=key, Body=body,
                          ContentType=_CONTENT_TYPES.get(f.suffix, "application/octet-stream"), **encryption)
        out.append(f"s3://{bucket}/{key}")
    return out


def post_to_slack(config: Config, state: Any, name: str, text: str, files: list[Path], *,
                  sleep: Any = time.sleep) -> str:
    """Post through one configured notifier; returns what Slack answered (file ids) or raises."""
    from alerts.dispatch import build_notifier
    from alerts.slack import SlackNotifier

    cfg = next((n for n in config.notifiers if notifier_id(n) == name), None)
    if cfg is None:
        raise ValueError(f"report.slack_notifiers: no notifier named {name!r}")
    if cfg.type == "slack_webhook":
        # an incoming webhook cannot carry a file: the summary alone, with where the file went
        from slack_sdk.webhook import WebhookClient

        from alerts.retry import retry_handlers
        from alerts.slack_webhook import target_url

        client = WebhookClient(target_url(cfg, f"notifier {name}"), timeout=10,
                               retry_handlers=retry_handlers(sleep=sleep))
        resp = client.send(text=text + "\n(an incoming webhook cannot attach the file: see the report folder or S3)")
        if resp.status_code != 200:  # WebhookClient answers errors instead of raising them
            raise RuntimeError(f"notifier {name}: webhook answered HTTP {resp.status_code}")
        return "posted"
    if cfg.type != "slack":
        raise ValueError(f"report.slack_notifiers: {name!r} is a {cfg.type} notifier, not slack or slack_webhook")
    notifier = build_notifier(cfg, config, state, sleep=sleep)
    assert isinstance(notifier, SlackNotifier)  # cfg.type is "slack"
    # files.completeUploadExternal takes a channel ID only, where chat.postMessage also takes a name
    uploads = [{"file": str(f), "filename": f.name, "title": f.name} for f in files]
    resp = notifier.client.files_upload_v2(file_uploads=uploads, channel=notifier.channel_id(), initial_comment=text)
    return ",".join(str(f.get("id")) for f in resp.get("files") or []) or "posted"


def deliver(config: Config, state: Any, tables: ReviewTables, *, sleep: Any = time.sleep,
            s3_client: Any = None) -> DeliveryResult:
    rep = config.report
    result = DeliveryResult(summary={str(k): int(v) for k, v in zip(
        tables.sections["summary"]["metric"], tables.sections["summary"]["value"], strict=True)},
        since=tables.meta["since"], until=tables.meta["until"])
    with tempfile.TemporaryDirectory(prefix="rolewatch-report-") as tmp:
        files = [write_report(tables, fmt, Path(tmp) / default_name(tables, fmt)) for fmt in rep.formats]
        if rep.output_dir:
            folder = config.resolve_path(rep.output_dir)
            try:
                folder.mkdir(parents=True, exist_ok=True)
                for f in files:
                    shutil.copyfile(f, folder / f.name)
                    result.written.append(str(folder / f.name))
            except OSError as exc:
                result.errors.append(f"report.output_dir {folder}: {exc.strerror or exc}")
        if rep.s3_uri:
            try:
                result.s3_objects = upload_s3(config, files, s3_client)
            except Exception as exc:  # noqa: BLE001 - one destination failing must not stop the others
                result.errors.append(redact_text(f"report.s3_uri {rep.s3_uri}: {type(exc).__name__}: {exc}"))
        text = summary_text(tables)
        for name in rep.slack_notifiers:
            try:
                result.slack[name] = post_to_slack(config, state, name, text, files, sleep=sleep)
            except Exception as exc:  # noqa: BLE001
                result.errors.append(redact_text(f"report.slack_notifiers {name}: {type(exc).__name__}: {exc}"))
    for e in result.errors:
        log.error("report delivery: %s", e)
    return result


def run_scheduled_report(config: Config, state: Any, *, now: datetime, sleep: Any = time.sleep,
                         s3_client: Any = None) -> DeliveryResult:
    """The `report` job of `rolewatch run`: the last `period_days` up to now, every configured format."""
    period = report_period(None, None, now, config.report.period_days)
    tables = review_from_state(config, state, now=now, period=period)
    result = deliver(config, state, tables, sleep=sleep, s3_client=s3_client)
    if result.delivered:
        save_snapshot(state, tables)
    return result

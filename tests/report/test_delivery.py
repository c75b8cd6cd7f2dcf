"""The scheduled report: folder, S3 (moto over HTTP, SSE on) and Slack (the local stand-in, files_upload_v2)."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest

from monitor.config import parse_config
from monitor.report.delivery import run_scheduled_report
from monitor.report.tables import SNAPSHOT_NAMESPACE
from tests.report import org
from tests.slack_standin import SlackStandin, bot_standin

NOW = org.NOW


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlackStandin]:
    with bot_standin(monkeypatch, NOW) as standin:
        yield standin


@pytest.fixture
def filled_state(state):
    state.add_events(org.events())
    for sf in org.findings():
        state.upsert_finding(sf.finding, sf.status, NOW)
    return state


def _s3(aws_config):
    return boto3.client("s3", region_name="us-east-1", endpoint_url=aws_config.endpoint_url)


def _config(tmp_path: Path, slack: SlackStandin | None = None, **report) -> object:
    notifiers = []
    if slack is not None:
        notifiers.append({"type": "slack", "name": "reports", "channel": "#reports", "api_url": slack.api_url})
    cfg = parse_config({"report": {"period_days": 7, **report}, "notifiers": notifiers})
    cfg.source_path = str(tmp_path / "rolewatch.toml")
    return cfg


def test_folder_s3_and_slack(filled_state, aws_config, slack: SlackStandin, tmp_path: Path) -> None:
    s3 = _s3(aws_config)
    s3.create_bucket(Bucket="audit-reports")
    cfg = _config(tmp_path, slack, formats=["html", "csv", "json"], output_dir="out",
                  s3_uri="s3://audit-reports/rolewatch/", slack_notifiers=["reports"])
    cfg.aws = aws_config
    result = run_scheduled_report(cfg, filled_state, now=NOW, sleep=lambda s: None)
    assert result.errors == []
    names = ["rolewatch-access-review-2026-11-09.html", "rolewatch-access-review-2026-11-09.zip",
             "rolewatch-access-review-2026-11-09.json"]
    assert result.written == [str(tmp_path / "out" / n) for n in names]
    assert result.s3_objects == [f"s3://audit-reports/rolewatch/{n}" for n in names]
    for n in names:
        head = s3.head_object(Bucket="audit-reports", Key=f"rolewatch/{n}")
        assert head["ServerSideEncryption"] == "AES256"
        body = s3.get_object(Bucket="audit-reports", Key=f"rolewatch/{n}")["Body"].read()
        assert body == (tmp_path / "out" / n).read_bytes()
    with zipfile.ZipFile(tmp_path / "out" / names[1]) as z:
        assert "01_summary.csv" in z.namelist()
    # Slack: the three-step upload flow, the files shared into #reports with the summary as the comment
    flow = [r.method for r in slack.requests if r.method.startswith("files.") or r.method == "upload"]
    assert sorted(flow[:-1]) == ["files.getUploadURLExternal"] * 3 + ["upload"] * 3
    assert flow[-1] == "files.completeUploadExternal"
    [post] = slack.channel_messages("C0REPORTS01")
    assert [f["name"] for f in post.files] == names
    assert "5 roles, 3 cross-account" in post.text and "3 failed attempts" in post.text
    assert "first report: nothing to compare" in post.text
    uploaded = {u["filename"]: u["data"] for u in slack.uploads.values()}
    assert uploaded[names[0]] == (tmp_path / "out" / names[0]).read_bytes()
    assert result.slack == {"reports": ",".join(f["id"] for f in post.files)}
    # the snapshot is kept: the next report compares with this one
    assert filled_state.get_json(SNAPSHOT_NAMESPACE, "all")["generated_at"] == "2026-11-09T00:00:00Z"


def test_sse_kms_when_a_key_is_configured(filled_state, aws_config, tmp_path: Path) -> None:
    s3 = _s3(aws_config)
    s3.create_bucket(Bucket="audit-reports")
    key_id = boto3.client("kms", region_name="us-east-1", endpoint_url=aws_config.endpoint_url).create_key()[
        "KeyMetadata"]["KeyId"]
    cfg = _config(tmp_path, formats=["md"], output_dir=None, s3_uri="s3://audit-reports", s3_kms_key_id=key_id)
    cfg.aws = aws_config
    result = run_scheduled_report(cfg, filled_state, now=NOW)
    assert result.s3_objects == ["s3://audit-reports/rolewatch-access-review-2026-11-09.md"]
    head = s3.head_object(Bucket="audit-reports", Key="rolewatch-access-review-2026-11-09.md")
    assert head["ServerSideEncryption"] == "aws:kms" and key_id in head["SSEKMSKeyId"]


def test_one_destination_failing_does_not_stop_the_others(filled_state, aws_config, slack: SlackStandin,
                                                          tmp_path: Path) -> None:
    cfg = _config(tmp_path, slack, formats=["md"], output_dir="out", s3_uri="s3://no-such-bucket/x/",
                  slack_notifiers=["reports"])
    cfg.aws = aws_config
    slack.fail_next(500, times=10, method="files.getUploadURLExternal")
    result = run_scheduled_report(cfg, filled_state, now=NOW, sleep=lambda s: None)
    assert result.written == [str(tmp_path / "out" / "rolewatch-access-review-2026-11-09.md")]
    assert len(result.errors) == 2
    assert result.errors[0].startswith("report.s3_uri s3://no-such-bucket/x/: NoSuchBucket")
    assert result.errors[1].startswith("report.slack_notifiers reports:")
    assert slack.token not in " ".join(result.errors)
    assert filled_state.get_json(SNAPSHOT_NAMESPACE, "all") is not None  # the folder copy counts


def test_nothing_delivered_keeps_no_snapshot(filled_state, aws_config, tmp_path: Path) -> None:
    # "" is how a TOML file says "no folder" (README [report]); omitting the key gives "reports"
    cfg = _config(tmp_path, formats=["json"], output_dir="", s3_uri="s3://no-such-bucket/")
    cfg.aws = aws_config
    result = run_scheduled_report(cfg, filled_state, now=NOW)
    assert not result.delivered and result.errors and result.written == []
    assert not list(tmp_path.glob("rolewatch-access-review-*")) and not (tmp_path / "reports").exists()
    assert filled_state.get_json(SNAPSHOT_NAMESPACE, "all") is None


def test_the_service_report_job(filled_state, slack: SlackStandin, tmp_path: Path) -> None:
    from monitor.schedule import Service

    cfg = _config(tmp_path, slack, formats=["html"], output_dir="out", slack_notifiers=["reports"])
    out = Service(cfg, filled_state, clock=lambda: NOW).run_job("report")
    assert out.result == "ok", out.stats
    assert out.stats["summary"]["roles"] == 5  # no IAM inventory in this state: the roles the trail names
    assert len(slack.channel_messages("C0REPORTS01")) == 1
    assert filled_state.runs(job="report")[0]["status"] == "ok"


def test_no_secret_in_the_slack_post_or_upload(filled_state, slack: SlackStandin, tmp_path: Path) -> None:
    from monitor.findings import Finding
    from monitor.redact import register_secret

    register_secret(org.EXTERNAL_ID)  # as resolving the configured ExternalId does
    filled_state.upsert_finding(Finding("failed_assume_role", "high", f"wrong ExternalId {org.EXTERNAL_ID}",
                                        "fp-hostile", account_id=org.PROD, role_arn=org.DEV_ROLE,
                                        first_seen=org.SINCE, last_seen=org.SINCE), "open", NOW)
    cfg = _config(tmp_path, slack, formats=["md", "xlsx"], output_dir=None, slack_notifiers=["reports"])
    result = run_scheduled_report(cfg, filled_state, now=NOW)
    assert result.errors == []
    blobs = [r.body if isinstance(r.body, bytes) else str(r.body).encode() for r in slack.requests]
    assert blobs and not any(org.EXTERNAL_ID.encode() in b for b in blobs)
    md = next(u["data"] for u in slack.uploads.values() if u["filename"].endswith(".md"))
    assert b"wrong ExternalId ***" in md


def test_config_rejects_unknown_notifier_and_bad_uri() -> None:
    from monitor.config import ConfigError

    with pytest.raises(ConfigError, match="no notifier named 'nope'"):
        parse_config({"report": {"slack_notifiers": ["nope"]}})
    with pytest.raises(ConfigError, match="report.s3_uri: expected s3://bucket/prefix/"):
        parse_config({"report": {"s3_uri": "audit-reports/x"}})


def test_default_scheduled_period(filled_state, tmp_path: Path) -> None:
    cfg = _config(tmp_path, formats=["json"], output_dir="out")
    run_scheduled_report(cfg, filled_state, now=datetime(2026, 11, 9, tzinfo=UTC))
    import json

    doc = json.loads((tmp_path / "out" / "rolewatch-access-review-2026-11-09.json").read_text())
    assert (doc["meta"]["since"], doc["meta"]["until"]) == ("2026-11-02T00:00:00Z", "2026-11-09T00:00:00Z")

"""File (JSON Lines), console and SNS (moto over HTTP) notifiers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from alerts.base import Message
from alerts.dispatch import build_notifiers, notify
from alerts.file import FileNotifier
from monitor.aws import client
from monitor.config import Config, parse_config
from monitor.findings import FINDING_FIELDS, Finding
from monitor.state.sqlite import SqliteState
from tests.alerts.conftest import NOW, make_finding


def run(config: Config, state: Any, findings: list[Finding], sleeps: Any, **kw: Any) -> dict[str, int]:
    notifiers = kw.get("notifiers") or build_notifiers(config, state, sleep=sleeps)
    return notify([(f, True, None) for f in findings], state, config, kw.get("now", NOW), notifiers=notifiers)


def test_file_notifier_appends_the_findings_contract(tmp_path: Path, state, sleeps) -> None:  # noqa: ANN001
    config = parse_config({"notifiers": [{"type": "file", "path": "alerts/findings.jsonl"}]},
                          filename=str(tmp_path / "rolewatch.toml"))
    first, second = make_finding(), make_finding(fingerprint="a" * 32, severity="low", detector="off_hours")
    run(config, state, [first], sleeps)
    run(config, state, [second, first], sleeps)  # the first is not written again
    lines = (tmp_path / "alerts" / "findings.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [first.to_dict(), second.to_dict()]
    assert list(json.loads(lines[0])) == list(FINDING_FIELDS)
    assert lines[0] == first.to_json()


class CrashAfterWrite(FileNotifier):
    def send(self, message: Message) -> dict[str, Any]:
        super().send(message)
        raise KeyboardInterrupt  # the process is stopped right after the write


def crash_mid_write(tmp_path: Path, sleeps: Any) -> tuple[Config, Path, SqliteState]:
    """A file alert written, then the process stopped before `sent` was committed; the restarted state."""
    path = tmp_path / "findings.jsonl"
    config = parse_config({"notifiers": [{"type": "file", "path": str(path)}]})
    state = SqliteState(tmp_path / "state.db")
    with pytest.raises(KeyboardInterrupt):
        run(config, state, [make_finding()], sleeps, notifiers={f"file:{path}": CrashAfterWrite(f"file:{path}", path)})
    state.close()
    return config, path, SqliteState(tmp_path / "state.db")


def test_file_crash_between_write_and_commit_writes_once(tmp_path: Path, sleeps) -> None:  # noqa: ANN001
    config, path, state = crash_mid_write(tmp_path, sleeps)
    counts = run(config, state, [], sleeps)
    assert counts["recovered"] == 1
    assert len(path.read_text().splitlines()) == 1
    state.close()


def test_console_notifier_prints_plain_text(state, sleeps, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    config = parse_config({"notifiers": [{"type": "console"}]})
    run(config, state, [make_finding()], sleeps)
    out = capsys.readouterr().out
    assert out.startswith("🔴 HIGH: Burst of failed AssumeRole calls\n")
    assert "Principal: arn:aws:iam::444455556666:user/mallory" in out
    assert "CloudTrail: https://console.aws.amazon.com/cloudtrailv2/home?region=eu-central-1#/events/" in out


def test_sns_publishes_the_alert_document(aws_config, state, sleeps) -> None:  # noqa: ANN001
    sns = client("sns", aws_config)
    sqs = client("sqs", aws_config)
    topic = sns.create_topic(Name="rolewatch-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    config = Config.model_validate({"aws": aws_config.model_dump(),
                                    "notifiers": [{"type": "sns", "topic_arn": topic, "min_severity": "medium"}]})
    f = make_finding()
    counts = run(config, state, [f, make_finding(fingerprint="b" * 32, severity="low")], sleeps)
    assert counts["sent"] == 1
    (received,) = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    envelope = json.loads(received["Body"])
    assert envelope["Subject"] == "rolewatch HIGH: Burst of failed AssumeRole calls"
    assert envelope["MessageAttributes"]["severity"]["Value"] == "high"
    assert envelope["MessageAttributes"]["detector"]["Value"] == "failed_assume_role"
    doc = json.loads(envelope["Message"])
    assert doc["findings"] == [f.to_dict()] and doc["delivery_id"] == f"{f.fingerprint}-1"
    assert state.outbox_items()[0].receipt["message_id"] == envelope["MessageId"]


def test_sns_missing_topic_is_kept_with_the_reason(aws_config, state, sleeps) -> None:  # noqa: ANN001
    config = Config.model_validate({"aws": aws_config.model_dump(), "notifiers": [
        {"type": "sns", "topic_arn": "arn:aws:sns:us-east-1:123456789012:nope"}]})
    counts = run(config, state, [make_finding()], sleeps)
    assert counts["failed"] == 1
    assert "NotFound" in state.outbox_items()[0].last_error


def test_file_crash_then_the_finding_seen_again_is_recovered_not_rewritten(tmp_path: Path, sleeps) -> None:  # noqa: ANN001
    config, path, state = crash_mid_write(tmp_path, sleeps)
    # the next cycle detects it again with a higher count: the row left `sending` keeps what was written,
    # else the file would not hold the refreshed lines and the alert would be written twice
    counts = run(config, state, [make_finding(count=13)], sleeps)
    assert counts["recovered"] == 1 and counts["sent"] == 0
    assert [json.loads(line)["count"] for line in path.read_text().splitlines()] == [12]
    state.close()

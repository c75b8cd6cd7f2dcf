"""A hostile finding carrying secrets in its title and details reaches no wire, file or outbox row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alerts.dispatch import build_notifiers, notify
from monitor.aws import client
from monitor.config import Config
from monitor.redact import register_secret
from tests.alerts.conftest import NOW, Receiver, make_finding
from tests.slack_standin import SlackStandin

EXTERNAL_ID = "acme-ext-7781-zq"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDxk2bEXAMPLEsessiontoken0123456789"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SLACK_TOKEN = "xoxb-998877665544-1122334455-AbCdEfGhIjKlMnOpQrStUvWx"
ORG_EXTERNAL_ID = "org-wide-extid-55aa"  # known from config: masked even where no pattern gives it away
# the global STS endpoint's token shape (FwoG...), as common as the regional IQoJ... one
V1_SESSION_TOKEN = "FwoGZXIvYXdzEBAaDH7exAmPlEsEsSiOnToKeN0123456789abcdefghijKLMNOPQRSTuvwxyz/+=="
COMMA_EXTERNAL_ID = "acme-7781,tenant=zq"  # `,` and `=` are legal in an ExternalId
REPR_EXTERNAL_ID = "repr-extid-4411"
WORKFLOW_HOOK = "https://hooks.slack.com/workflows/T0123ABCD/A0456EFGH/789012345678/xYzWorkflowSecret"
SECRETS = (EXTERNAL_ID, SESSION_TOKEN, SECRET_KEY, SLACK_TOKEN, ORG_EXTERNAL_ID, V1_SESSION_TOKEN,
           COMMA_EXTERNAL_ID, "tenant=zq", REPR_EXTERNAL_ID, "xYzWorkflowSecret")


def hostile():  # noqa: ANN201
    return make_finding(
        title=f"AssumeRole with ExternalId={EXTERNAL_ID} failed; token {SLACK_TOKEN}",
        principal_arn=f"arn:aws:sts::444455556666:assumed-role/x/{ORG_EXTERNAL_ID}",
        details={
            "likely_cause": f"leaked credentials: aws_secret_access_key={SECRET_KEY}",
            "requestParameters": {"roleArn": "arn:aws:iam::111122223333:role/Audit", "externalId": EXTERNAL_ID},
            "credentials": {"sessionToken": SESSION_TOKEN, "accessKeyId": "ASIAEXAMPLE"},
            "note": f"seen with x-amz-security-token={SESSION_TOKEN} and {SESSION_TOKEN}",
            "region": "us-east-1",
            # secrets inside text rather than under a key: JSON and Python-repr renderings of a request
            "raw": json.dumps({"roleArn": "arn:aws:iam::111122223333:role/Audit", "externalId": COMMA_EXTERNAL_ID}),
            "repr": str({"RoleArn": "arn:aws:iam::111122223333:role/Audit", "ExternalId": REPR_EXTERNAL_ID}),
            "seen": f"session {V1_SESSION_TOKEN} posted to {WORKFLOW_HOOK}",
        },
    )


def test_no_secret_leaves_through_any_notifier(slack: SlackStandin, receiver: Receiver, aws_config, state,  # noqa: ANN001
                                               sleeps, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    register_secret(ORG_EXTERNAL_ID)
    monkeypatch.setenv("HOOK_SECRET", "hook-signing-secret-1")
    sns, sqs = client("sns", aws_config), client("sqs", aws_config)
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    jsonl = tmp_path / "findings.jsonl"
    config = Config.model_validate({"aws": aws_config.model_dump(), "notifiers": [
        {"type": "slack", "channel": "#security-alerts", "api_url": slack.api_url},
        {"type": "slack_webhook", "url": slack.webhook_url},
        {"type": "webhook", "url": receiver.url, "secret_env": "HOOK_SECRET"},
        {"type": "file", "path": str(jsonl)},
        {"type": "console"},
        {"type": "sns", "topic_arn": topic},
    ]})
    counts = notify([(hostile(), True, None)], state, config, NOW,
                    notifiers=build_notifiers(config, state, sleep=sleeps))
    assert counts["sent"] == 6, state.outbox_items()

    wires = {
        "slack": b"".join(r.raw for r in slack.requests),
        "webhook": b"".join(body for _, body in receiver.requests),
        "file": jsonl.read_bytes(),
        "console": capsys.readouterr().out.encode(),
        "sns": json.dumps(sqs.receive_message(QueueUrl=queue)["Messages"]).encode(),
        "outbox": json.dumps([i.payload for i in state.outbox_items()]).encode(),
    }
    for where, data in wires.items():
        assert data, where
        text = data.decode()
        for secret in SECRETS:
            assert secret not in text and json.dumps(secret)[1:-1] not in text, (where, secret)
        assert "***" in text, where  # masked, not dropped: the reader sees something was there
    # the finding is still recognisable
    assert "AssumeRole with ExternalId=***" in wires["file"].decode()
    assert json.loads(jsonl.read_text())["details"]["requestParameters"]["roleArn"] == \
        "arn:aws:iam::111122223333:role/Audit"

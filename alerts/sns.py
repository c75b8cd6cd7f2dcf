"""Amazon SNS notifier: Publish the alert document (JSON) to a topic.

Subscribers (email, SQS, Lambda, chat bots) get the same body as the generic webhook. Message
attributes carry severity, detector and kind for subscription filter policies. On a FIFO topic the
delivery id is the deduplication id, so a repeat after a crash is dropped by SNS itself.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from alerts.base import DeliveryError, Message, Notifier
from alerts.render import headline
from alerts.retry import describe
from alerts.webhook import alert_document
from monitor.config import AwsConfig
from monitor.redact import redact_text

MAX_SUBJECT = 100


def subject(message: Message) -> str:
    """SNS subjects: at most 100 printable ASCII characters, no line breaks."""
    text = "rolewatch " + headline(message)
    ascii_only = "".join(c if 32 <= ord(c) < 127 else " " for c in text)
    return " ".join(ascii_only.split())[:MAX_SUBJECT]


class SnsNotifier(Notifier):
    type = "sns"

    def __init__(self, name: str, topic_arn: str, *, aws: AwsConfig, client: Any = None) -> None:
        super().__init__(name)
        self.topic_arn = topic_arn
        self.aws = aws
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from monitor.aws import client as aws_client

            region = self.topic_arn.split(":")[3] if self.topic_arn.count(":") >= 5 else None
            self._client = aws_client("sns", self.aws, region=region or None)
        return self._client

    def send(self, message: Message) -> dict[str, Any]:
        document = alert_document(message, default_region=self.aws.region)
        attributes = {
            "severity": message.severity,
            "kind": message.kind,
            "detector": message.finding.detector if message.kind != "digest" else "digest",
        }
        args: dict[str, Any] = {
            "TopicArn": self.topic_arn,
            "Subject": subject(message),
            "Message": json.dumps(document, default=str),
            "MessageAttributes": {k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
        }
        if self.topic_arn.endswith(".fifo"):
            args["MessageGroupId"] = "rolewatch"
            args["MessageDeduplicationId"] = hashlib.sha256(message.delivery_id.encode()).hexdigest()
        try:
            resp = self.client.publish(**args)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            raise DeliveryError(redact_text(f"notifier {self.name}: SNS {code}: {exc}"),
                                transient=status >= 500 or "Throttl" in code) from None
        except BotoCoreError as exc:
            raise DeliveryError(redact_text(f"notifier {self.name}: {describe(exc)}")) from None
        return {"message_id": resp["MessageId"]}

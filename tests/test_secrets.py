"""Secret references resolve through the configured AWS endpoint and never show up again in text."""

from __future__ import annotations

import json

import boto3
import pytest

from monitor.config import ConfigError, SecretRef
from monitor.redact import redact_text
from monitor.secrets import resolve_secret


def _client(service: str, aws_config):  # noqa: ANN001, ANN202
    return boto3.client(service, region_name=aws_config.region, endpoint_url=aws_config.endpoint_url,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def test_secrets_manager_json_key_through_the_configured_endpoint(aws_config) -> None:  # noqa: ANN001
    _client("secretsmanager", aws_config).create_secret(
        Name="rolewatch/audit-2", SecretString=json.dumps({"external_id": "xid-7f3a9c01e2"}))
    value = resolve_secret(SecretRef(secretsmanager="rolewatch/audit-2#external_id"), aws=aws_config,
                           what="organization.external_id")
    assert value == "xid-7f3a9c01e2"
    assert "xid-7f3a9c01e2" not in redact_text("assumed with xid-7f3a9c01e2")


def test_ssm_secure_string_through_the_configured_endpoint(aws_config) -> None:  # noqa: ANN001
    _client("ssm", aws_config).put_parameter(Name="/rolewatch/slack-2", Value="xoxb-1-2-abcdefsecret",
                                             Type="SecureString")
    value = resolve_secret(SecretRef(ssm="/rolewatch/slack-2"), aws=aws_config)
    assert value == "xoxb-1-2-abcdefsecret"
    assert "abcdefsecret" not in redact_text("token xoxb-1-2-abcdefsecret")


def test_a_missing_environment_variable_is_named_and_the_message_survives_redaction(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RW_TEST_UNSET_XID", raising=False)
    with pytest.raises(ConfigError) as err:
        resolve_secret(SecretRef(env="RW_TEST_UNSET_XID"), what="organization.external_id")
    text = redact_text(str(err.value))
    assert "RW_TEST_UNSET_XID" in text and "organization.external_id" in text
    assert "environment variable" in text  # was masked when worded `external_id: environment ...`


@pytest.mark.parametrize(("name", "secret", "problem"), [
    ("rolewatch/number", {"external_id": 7310452981}, "is a JSON number, not a string"),
    ("rolewatch/list", {"external_id": ["xid-in-a-list-5521"]}, "is a JSON array, not a string"),
    ("rolewatch/other-key", {"other": "xid-elsewhere-8830"}, "has no key 'external_id'"),
    ("rolewatch/plain", "xid-plain-text-6402", "is not a JSON object, so it has no #external_id"),
])
def test_a_json_key_that_is_missing_or_not_a_string_is_a_config_error_naming_the_reference(
        aws_config, name: str, secret: object, problem: str) -> None:  # noqa: ANN001
    _client("secretsmanager", aws_config).create_secret(
        Name=name, SecretString=secret if isinstance(secret, str) else json.dumps(secret))
    with pytest.raises(ConfigError) as err:
        resolve_secret(SecretRef(secretsmanager=f"{name}#external_id"), aws=aws_config,
                       what="organization.external_id")
    # no chained KeyError/TypeError/decode error that a traceback would print with the secret's text
    assert err.value.__context__ is None or err.value.__suppress_context__
    text = redact_text(str(err.value))  # as the CLI prints it: the reference survives redaction
    assert text == f"secretsmanager {name}#external_id (needed for organization.external_id) {problem}"
    for value in ("7310452981", "xid-in-a-list", "xid-elsewhere", "xid-plain-text"):
        assert value not in text


def test_a_binary_secret_is_a_config_error_naming_the_reference(aws_config) -> None:  # noqa: ANN001
    _client("secretsmanager", aws_config).create_secret(Name="rolewatch/binary-1", SecretBinary=b"\x00xid")
    with pytest.raises(ConfigError, match=r"^secretsmanager rolewatch/binary-1 \(needed for secret\) holds no "
                                          r"SecretString"):
        resolve_secret(SecretRef(secretsmanager="rolewatch/binary-1"), aws=aws_config)

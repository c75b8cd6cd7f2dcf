"""Resolve secret references (env var, Secrets Manager, SSM SecureString) at run time.

Every resolved value is registered with `monitor.redact` so it never reaches a log line,
an alert or a report.
"""

from __future__ import annotations

import json
import os
from typing import Any

from monitor.config import AwsConfig, ConfigError, SecretRef
from monitor.redact import register_secret


def resolve_secret(ref: SecretRef | None, *, session: Any = None, aws: AwsConfig | None = None,
                   what: str = "secret") -> str | None:
    """The secret's value; Secrets Manager and SSM are reached through `aws` (endpoint, region, retries)."""
    if ref is None:
        return None
    value: str | None
    if ref.value is not None:
        value = ref.value
    elif ref.env:
        value = os.environ.get(ref.env)
        if not value:
            # worded so the redactor's `external_id: <value>` pattern does not mask the message itself
            raise ConfigError(f"environment variable {ref.env} is not set (needed for {what})")
    elif ref.secretsmanager:
        secret_id, _, json_key = ref.secretsmanager.partition("#")
        client = _client(session, "secretsmanager", aws)
        raw = client.get_secret_value(SecretId=secret_id).get("SecretString")
        # the reference, never the value; worded so no `external_id: ` of a json key reads as a secret
        where = f"secretsmanager {ref.secretsmanager} (needed for {what})"
        if raw is None:
            raise ConfigError(f"{where} holds no SecretString (binary secrets are not supported)")
        value = _json_field(raw, json_key, where) if json_key else raw
    elif ref.ssm:
        client = _client(session, "ssm", aws)
        value = client.get_parameter(Name=ref.ssm, WithDecryption=True)["Parameter"]["Value"]
    else:  # pragma: no cover - the model forbids it
        value = None
    register_secret(value)
    return value


_JSON_TYPES = {bool: "boolean", int: "number", float: "number", list: "array", dict: "object", type(None): "null"}


def _json_field(raw: str, key: str, where: str) -> str:
    try:
        doc = json.loads(raw)
    except ValueError:
        raise ConfigError(f"{where} is not a JSON object, so it has no #{key}") from None  # it holds the text
    if not isinstance(doc, dict) or key not in doc:
        raise ConfigError(f"{where} has no key {key!r}")
    value = doc[key]
    if not isinstance(value, str):
        raise ConfigError(f"{where} is a JSON {_JSON_TYPES.get(type(value), type(value).__name__)}, not a string")
    return value


def env_secret(name: str | None, *, what: str) -> str | None:
    """A secret held in a named environment variable (e.g. `token_env`)."""
    if not name:
        return None
    value = os.environ.get(name)
    if not value:
        raise ConfigError(f"environment variable {name} is not set (needed for {what})")
    register_secret(value)
    return value


def _client(session: Any, service: str, aws: AwsConfig | None) -> Any:
    from monitor.aws import client as make_client

    return make_client(service, aws, sess=session)

"""boto3 sessions and clients, configured once: region, endpoint, adaptive retries.

Throttling is botocore's job: the `adaptive` retry mode backs off and rate-limits on
ThrottlingException without code of ours.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from monitor.config import AwsConfig

# (event name, handler) registered on every client `client()` creates: how benchmarks and metrics
# count API calls per cycle (botocore event hooks, e.g. "before-call")
_CLIENT_HOOKS: list[tuple[str, Callable[..., Any]]] = []


def add_client_hook(event_name: str, handler: Callable[..., Any]) -> None:
    _CLIENT_HOOKS.append((event_name, handler))


def remove_client_hook(event_name: str, handler: Callable[..., Any]) -> None:
    _CLIENT_HOOKS.remove((event_name, handler))


def boto_config(aws: AwsConfig | None = None, **overrides: Any) -> BotoConfig:
    aws = aws or AwsConfig()
    return BotoConfig(
        region_name=aws.region,
        retries={"mode": "adaptive", "max_attempts": aws.max_attempts},
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=overrides.pop("max_pool_connections", 32),
        **overrides,
    )


def session(aws: AwsConfig | None = None, **credentials: Any) -> boto3.session.Session:
    aws = aws or AwsConfig()
    if credentials:
        return boto3.session.Session(region_name=aws.region, **credentials)
    return boto3.session.Session(profile_name=aws.profile, region_name=aws.region)


def client(service: str, aws: AwsConfig | None = None, *, sess: boto3.session.Session | None = None,
           region: str | None = None, **overrides: Any) -> Any:
    aws = aws or AwsConfig()
    sess = sess or session(aws)
    made = sess.client(
        service,
        region_name=region or aws.region,
        endpoint_url=aws.endpoint_url,
        config=boto_config(aws, **overrides),
    )
    for event_name, handler in _CLIENT_HOOKS:
        made.meta.events.register(event_name, handler)
    return made

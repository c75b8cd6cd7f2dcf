from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def dynamodb_client(moto_server: str) -> Any:
    from monitor.aws import client
    from monitor.config import AwsConfig

    return client("dynamodb", AwsConfig(region="us-east-1", endpoint_url=moto_server, max_attempts=3))

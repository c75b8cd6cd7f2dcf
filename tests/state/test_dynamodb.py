"""What only the DynamoDB backend has: table creation, TTL, and lock leases (moto over HTTP)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from monitor.aws import client
from monitor.config import AwsConfig, Config
from monitor.events.schema import frame_from_rows
from monitor.state import open_state
from monitor.state.base import StateLockedError
from monitor.state.dynamodb import DynamoState, ensure_table


@pytest.fixture
def cfg(moto_server: str) -> Config:
    return Config.model_validate({
        "state": {"backend": "dynamodb", "dynamodb_table": f"rolewatch-{uuid.uuid4().hex[:8]}", "seen_retention_days": 7},
        "aws": {"region": "us-east-1", "endpoint_url": moto_server, "max_attempts": 3},
    })


def test_from_config_creates_the_table_once_with_ttl(cfg: Config) -> None:
    first = open_state(cfg)
    assert isinstance(first, DynamoState) and first.path_or_table == f"dynamodb://{cfg.state.dynamodb_table}"
    first.set_checkpoint("src", "kept")
    second = open_state(cfg)  # table exists: reused, not recreated
    assert second.get_checkpoint("src") == "kept"
    ddb = client("dynamodb", AwsConfig.model_validate(cfg.aws.model_dump()))
    table = ddb.describe_table(TableName=cfg.state.dynamodb_table)["Table"]
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["pk", "sk"]
    assert table["GlobalSecondaryIndexes"][0]["IndexName"] == "gsi1"
    ttl = ddb.describe_time_to_live(TableName=cfg.state.dynamodb_table)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}


def test_seen_event_items_expire_after_the_retention(cfg: Config, dynamodb_client) -> None:
    ensure_table(dynamodb_client, cfg.state.dynamodb_table)
    st = DynamoState(dynamodb_client, cfg.state.dynamodb_table, seen_days=cfg.state.seen_retention_days)
    st.add_events(frame_from_rows([{"event_id": "e1", "event_time": "2026-03-01T00:00:00Z",
                                    "event_name": "AssumeRole", "success": True}]))
    item = dynamodb_client.get_item(TableName=cfg.state.dynamodb_table, Key={"pk": {"S": "event#e1"}, "sk": {"S": "-"}})["Item"]
    assert int(item["expires_at"]["N"]) == int(datetime(2026, 3, 8, tzinfo=UTC).timestamp())


def test_a_dead_holders_lease_is_taken_over_after_expiry(cfg: Config, dynamodb_client) -> None:
    now = [1_000_000.0]
    ddb = dynamodb_client
    ensure_table(ddb, cfg.state.dynamodb_table)
    dead = DynamoState(ddb, cfg.state.dynamodb_table, clock=lambda: now[0], lock_lease_seconds=120)
    alive = DynamoState(ddb, cfg.state.dynamodb_table, clock=lambda: now[0], lock_lease_seconds=120)
    held = dead.lock("service")
    held.__enter__()  # never released: the process "dies"
    with pytest.raises(StateLockedError, match=r"its lease expires within 120s"), alive.lock("service"):
        pass
    now[0] += 121
    try:
        with alive.lock("service"), pytest.raises(StateLockedError), dead.lock("service"):
            pass
    finally:
        held.__exit__(None, None, None)  # stops its renewal thread; the release finds the lock taken over

"""State backends behind one interface (`monitor.state.base.StateStore`)."""

from __future__ import annotations

from typing import Any

from monitor.state.base import StateLockedError, StateStore

__all__ = ["StateLockedError", "StateStore", "open_state"]


def open_state(config: Any) -> StateStore:
    """The backend the config selects: SQLite (default) or DynamoDB."""
    if config.state.backend == "dynamodb":
        from monitor.state.dynamodb import DynamoState  # type: ignore[import-not-found]

        return DynamoState.from_config(config)  # type: ignore[no-any-return]
    from monitor.state.sqlite import SqliteState

    return SqliteState(config.resolve_path(config.state.path))

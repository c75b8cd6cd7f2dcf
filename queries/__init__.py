"""The query library: named query files by dialect, shipped as package data and loaded by name."""

from __future__ import annotations

from importlib import resources


def query_text(*parts: str) -> str:
    """The text of `queries/<parts...>`, e.g. `query_text("athena", "assume_role_events.sql")`."""
    return resources.files(__name__).joinpath(*parts).read_text(encoding="utf-8")

"""The query library: named query files by dialect, shipped as package data.

    queries.load("filter_patterns", "assume_role_family")  # CloudWatch Logs filter pattern
    queries.load("jmespath", "lookup_events_records")       # JMESPath projection

A dialect is a folder here; a name is a file in it, with or without its extension.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


def query_text(*parts: str) -> str:
    """The text of `queries/<parts...>`, e.g. `query_text("athena", "assume_role_events.sql")`."""
    return resources.files(__name__).joinpath(*parts).read_text(encoding="utf-8")


DIALECTS = ("filter_patterns", "jmespath", "athena", "cloudtrail_lake", "logs_insights")


class QueryNotFound(LookupError):
    pass


@cache
def load(dialect: str, name: str) -> str:
    """The text of query `name` in `dialect` (trailing whitespace stripped; `#` comment lines dropped
    for dialects whose syntax has no comments)."""
    if dialect not in DIALECTS or "/" in name or name.startswith("."):
        raise QueryNotFound(f"no query dialect {dialect!r} (known: {', '.join(DIALECTS)})")
    folder = resources.files(__name__).joinpath(dialect)
    candidates = [f for f in folder.iterdir() if f.is_file() and (f.name == name or f.name.split(".", 1)[0] == name)]
    if len(candidates) != 1:
        known = sorted(f.name for f in folder.iterdir() if f.is_file() and not f.name.startswith("."))
        raise QueryNotFound(f"no query {name!r} in queries/{dialect} (have: {', '.join(known) or 'none'})")
    text = candidates[0].read_text(encoding="utf-8")
    if dialect in ("filter_patterns", "jmespath"):
        text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return text.strip()


def names(dialect: str) -> list[str]:
    folder = resources.files(__name__).joinpath(dialect)
    return sorted(f.name.split(".", 1)[0] for f in folder.iterdir() if f.is_file() and not f.name.startswith("."))

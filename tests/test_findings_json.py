"""Finding.to_json writes exactly what `json.dumps(to_dict(), default=str)` writes (the findings contract)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.findings import Finding


def _stdlib(f: Finding) -> str:
    return json.dumps(f.to_dict(), sort_keys=False, default=str, separators=(",", ":"))


def _finding(details: dict[str, Any], **fields: Any) -> Finding:
    return Finding(detector="off_hours", severity="low", title="t", fingerprint="fp", details=details, **fields)


@dataclass
class _Point:
    x: int
    inner: list[Any]


class _Colour(str, Enum):  # noqa: UP042 - str() is "_Colour.RED", not the value: a str subclass json writes natively
    RED = "red"


_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(), st.text(st.characters(max_codepoint=0x7F)),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.one_of(st.text(max_size=5), st.integers(0, 9)), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(details=st.dictionaries(st.text(max_size=8), _values, max_size=5), title=st.text(),
       ids=st.lists(st.text(max_size=6), max_size=5))
def test_same_bytes_as_the_stdlib_encoder(details: dict[str, Any], title: str, ids: list[str]) -> None:
    f = _finding(details, event_ids=ids, principal_arn=title or None)
    f.title = title
    assert f.to_json() == _stdlib(f)


def test_odd_values_the_same_as_before() -> None:
    odd = {
        "float": 1e-05, "big": 1e16, "nan": float("nan"), "huge_int": 2**64, "del": "a\x7fb", "accent": "café → x",
        "astral": "\U0001f600", "surrogate": "\ud800", "when": datetime(2030, 1, 1, tzinfo=UTC), "enum": _Colour.RED,
        "tuple": (1, "a"), "int_key": {1: "x"}, "set": {"a"}, "point": _Point(1, [_Point(2, [])]),
        "deep_point": [{"a": (_Point(3, ["x"]),)}], "point_class": _Point,
    }
    for key, value in odd.items():
        f = _finding({key: value})
        assert f.to_json() == _stdlib(f), key

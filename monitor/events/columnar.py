"""Event-table columns built where the records are read, and joined into one table once.

Reader processes keep rows as tuples in column order (`normalise_values`). What crosses the
process boundary is, per string column, one int32 code array and that column's distinct values,
and the other columns already typed: the parent unpickles a few arrays instead of millions of
Python strings, and a value repeated across rows (an ARN, a region, a user agent) is one shared
object in the table, so memory follows the distinct values, not the row count times their size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from monitor.events.schema import COLUMNS, empty_frame, typed_series

COLUMN_NAMES: tuple[str, ...] = tuple(COLUMNS)
STRING_COLUMNS: frozenset[str] = frozenset(n for n, t in COLUMNS.items() if t == "string")


@dataclass
class EncodedColumns:
    """Some rows of the event table, compact for pickling: see the module docstring."""

    rows: int = 0
    strings: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # codes (-1: null), values
    typed: dict[str, pd.Series] = field(default_factory=dict)


def encode(rows: Sequence[tuple[Any, ...]]) -> EncodedColumns:
    """Rows (tuples in `COLUMN_NAMES` order) -> EncodedColumns."""
    if not rows:
        return EncodedColumns()
    out = EncodedColumns(rows=len(rows))
    for name, values in zip(COLUMN_NAMES, zip(*rows, strict=True), strict=True):
        if name in STRING_COLUMNS:
            codes, distinct = pd.factorize(np.array(values, dtype=object))
            out.strings[name] = (codes.astype(np.int32), np.asarray(distinct, dtype=object))
        else:
            out.typed[name] = typed_series(name, values)
    return out


def _decoded(parts: list[EncodedColumns], name: str) -> pd.Series:
    distinct = [p.strings[name][1] for p in parts]
    offsets = np.cumsum([0, *(len(d) for d in distinct[:-1])])
    values = np.concatenate([*distinct, np.array([None], dtype=object)])  # the last slot is null
    codes = np.concatenate([
        np.where(p.strings[name][0] >= 0, p.strings[name][0] + off, len(values) - 1)
        for p, off in zip(parts, offsets, strict=True)
    ])
    return pd.Series(pd.array(values.take(codes), dtype=COLUMNS[name]))


def to_frame(parts: Sequence[EncodedColumns]) -> pd.DataFrame:
    """The typed event table from encoded parts, rows in the order of the parts."""
    parts = [p for p in parts if p.rows]
    if not parts:
        return empty_frame()
    return pd.DataFrame({
        name: _decoded(parts, name) if name in STRING_COLUMNS
        else pd.concat([p.typed[name] for p in parts], ignore_index=True)
        for name in COLUMN_NAMES
    })

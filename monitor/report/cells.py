"""One way to turn a table cell into text or JSON, shared by every renderer so numbers agree."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pandas as pd

from monitor.findings import iso


def cell_value(value: Any) -> Any:
    """A JSON-ready Python value: None for missing, ISO 8601 UTC for times, plain int/float/bool/str."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return iso(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def cell_text(value: Any) -> str:
    v = cell_value(value)
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3f}".rstrip("0").rstrip(".")
    return str(v)


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    cols = list(df.columns)
    return [{c: cell_value(v) for c, v in zip(cols, row, strict=True)} for row in df.itertuples(index=False, name=None)]


def text_rows(df: pd.DataFrame) -> list[list[str]]:
    return [[cell_text(v) for v in row] for row in df.itertuples(index=False, name=None)]

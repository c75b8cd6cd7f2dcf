"""One way to turn a table cell into text or JSON, shared by every renderer so numbers agree.

The column-wise forms (`column_texts`, `column_values`) are what the renderers use: a 10,000-role
report has millions of cells, and formatting a column at once is many times faster than a cell
at a time. `cell_text` / `cell_value` define the result; tests hold the two forms equal.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from monitor.findings import iso

_ISO = "%Y-%m-%dT%H:%M:%SZ"


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


def _float_text(v: float) -> str:
    return f"{v:.3f}".rstrip("0").rstrip(".")


def cell_text(value: Any) -> str:
    v = cell_value(value)
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return _float_text(v)
    return str(v)


def column_texts(s: pd.Series) -> list[str]:
    """`cell_text` of every cell of a column."""
    dtype = str(s.dtype)
    if dtype.startswith("datetime64"):
        return s.dt.tz_convert("UTC").dt.strftime(_ISO).fillna("").tolist()
    if dtype == "bool":
        return np.where(s.to_numpy(), "yes", "no").tolist()
    if dtype == "boolean":
        return s.map({True: "yes", False: "no"}).astype(object).where(s.notna(), "").tolist()
    if dtype in ("int64", "Int64"):
        return s.astype("string").fillna("").tolist()
    if dtype == "float64":
        return [("" if math.isnan(v) else _float_text(v)) for v in s.tolist()]
    return s.astype("string").fillna("").tolist()


def column_values(s: pd.Series) -> list[Any]:
    """`cell_value` of every cell of a column."""
    dtype = str(s.dtype)
    if dtype.startswith("datetime64"):
        return s.dt.tz_convert("UTC").dt.strftime(_ISO).astype(object).where(s.notna(), None).tolist()
    if dtype in ("bool", "int64"):
        return s.tolist()
    if dtype == "float64":
        return [None if math.isnan(v) else v for v in s.tolist()]
    return s.astype(object).where(s.notna(), None).tolist()


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    cols = list(df.columns)
    data = [column_values(df[c]) for c in cols]
    return [dict(zip(cols, row, strict=True)) for row in zip(*data, strict=True)] if cols else []


def text_rows(df: pd.DataFrame) -> list[list[str]]:
    if not len(df.columns):
        return []
    return [list(row) for row in zip(*(column_texts(df[c]) for c in df.columns), strict=True)]

"""CSV (one file per section, in a folder or a zip) and XLSX (one sheet per section) for auditors."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd

from monitor.report.cells import column_values, text_rows
from monitor.report.tables import SECTIONS, ReviewTables


def _meta_rows(tables: ReviewTables) -> list[list[str]]:
    m = tables.meta
    return [["key", "value"]] + [[k, ", ".join(v) if isinstance(v, list) else ("" if v is None else str(v))]
                                 for k, v in m.items()]


def _csv_text(header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def csv_files(tables: ReviewTables) -> dict[str, str]:
    """File name -> CSV text, one per section plus `report.csv` with the period and notes."""
    meta = _meta_rows(tables)
    files = {"report.csv": _csv_text(meta[0], meta[1:])}
    for i, name in enumerate(SECTIONS, start=1):
        df = tables.sections[name]
        files[f"{i:02d}_{name}.csv"] = _csv_text(list(df.columns), text_rows(df))
    return files


def write_csv(tables: ReviewTables, path: Path) -> Path:
    files = csv_files(tables)
    if path.suffix == ".zip":
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for fname, text in files.items():
                z.writestr(fname, text)
        return path
    path.mkdir(parents=True, exist_ok=True)
    for fname, text in files.items():
        (path / fname).write_text(text, encoding="utf-8")
    return path


def _xlsx_column(s: pd.Series) -> list[Any]:
    """Cells for one column: real numbers and times (naive UTC: Excel has no zones), clean text."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    if str(s.dtype).startswith("datetime64"):
        naive = s.dt.tz_convert("UTC").dt.tz_localize(None)
        return [None if pd.isna(v) else v.to_pydatetime() for v in naive]
    values = column_values(s)
    if str(s.dtype) == "string":
        # control characters are not allowed in XLSX cells (openpyxl raises on them)
        return [ILLEGAL_CHARACTERS_RE.sub("", v) if v and ILLEGAL_CHARACTERS_RE.search(v) else v for v in values]
    return values


def write_xlsx(tables: ReviewTables, path: Path) -> Path:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    path.parent.mkdir(parents=True, exist_ok=True)
    wb = Workbook(write_only=True)
    bold = Font(bold=True)

    def sheet(title: str, header: list[str], rows: Any) -> None:
        ws = wb.create_sheet(title[:31])
        ws.freeze_panes = "A2"
        cells = []
        for h in header:
            c = WriteOnlyCell(ws, value=h)
            c.font = bold
            cells.append(c)
        ws.append(cells)
        for row in rows:
            ws.append(row)

    meta = _meta_rows(tables)
    sheet("report", meta[0], meta[1:])
    for name in SECTIONS:
        df = tables.sections[name]
        columns = [_xlsx_column(df[c]) for c in df.columns]
        sheet(name, list(df.columns), zip(*columns, strict=True) if columns else [])
    wb.save(path)
    return path

"""CSV (one file per section, in a folder or a zip) and XLSX (one sheet per section) for auditors."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from monitor.report.cells import cell_value, text_rows
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


def _xlsx_value(value: Any) -> Any:
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.tz_convert("UTC").tz_localize(None).to_pydatetime()
    v = cell_value(value)
    if isinstance(v, str):
        return ILLEGAL_CHARACTERS_RE.sub("", v)
    return v


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
        sheet(name, list(df.columns), ([_xlsx_value(v) for v in row] for row in df.itertuples(index=False, name=None)))
    wb.save(path)
    return path


def xlsx_datetime_to_iso(value: datetime) -> str:
    """How a reader turns an XLSX time (naive UTC) back into the report's ISO form."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")

"""Read each rendered format back into rows of cell text, to compare formats with each other."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

from monitor.report.cells import cell_text
from monitor.report.tables import SECTIONS


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_head = False
        self._svg = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table" and (a.get("id") or "").startswith("t-"):
            self._table = a["id"][2:]  # type: ignore[index]
            self.tables[self._table] = []
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr" and self._table and not self._in_head:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "svg":
            self._svg += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag == "thead":
            self._in_head = False
        elif tag == "tr" and self._row is not None and self._table:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "td" and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "svg":
            self._svg -= 1

    def handle_data(self, data: str) -> None:
        if self._cell is not None and not self._svg:
            self._cell.append(data)


def html_rows(text: str) -> dict[str, list[list[str]]]:
    p = _Tables()
    p.feed(text)
    out = {name: p.tables.get(name, []) for name in SECTIONS}
    out["roles"] = [row[1:] for row in out["roles"]]  # the first column is the activity chart
    return out


def markdown_rows(text: str) -> dict[str, list[list[str]]]:
    titles = {f"## {title}": name for name, (title, _) in SECTIONS.items()}
    out: dict[str, list[list[str]]] = {name: [] for name in SECTIONS}
    current = None
    seen_rule = False
    for line in text.splitlines():
        if line in titles:
            current, seen_rule = titles[line], False
            continue
        if current and line.startswith("|"):
            if line.startswith("|---"):
                seen_rule = True
                continue
            if seen_rule:
                cells, buf, i = [], "", 1
                body = line[1:-1]
                while i <= len(body):
                    ch = body[i - 1] if i - 1 < len(body) else ""
                    if ch == "\\" and i < len(body):
                        buf += body[i]
                        i += 2
                        continue
                    if ch == "|":
                        cells.append(buf.strip())
                        buf = ""
                    else:
                        buf += ch
                    i += 1
                cells.append(buf.strip())
                out[current].append(cells)
    return out


def csv_rows(path: Path) -> dict[str, list[list[str]]]:
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n).decode() for n in z.namelist()}
    out = {}
    for i, name in enumerate(SECTIONS, start=1):
        rows = list(csv.reader(io.StringIO(files[f"{i:02d}_{name}.csv"])))
        assert rows[0] == list(SECTIONS[name][1])
        out[name] = rows[1:]
    return out


def json_rows(text: str) -> dict[str, list[list[str]]]:
    doc = json.loads(text)
    return {name: [[cell_text(r[c]) for c in SECTIONS[name][1]] for r in doc["sections"][name]] for name in SECTIONS}


def xlsx_rows(path: Path) -> dict[str, list[list[str]]]:
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True)

    def text(v: object) -> str:
        if isinstance(v, datetime):
            return v.strftime("%Y-%m-%dT%H:%M:%SZ")
        return cell_text(v)

    out = {}
    for name in SECTIONS:
        rows = list(wb[name].iter_rows(values_only=True))
        assert list(rows[0]) == list(SECTIONS[name][1])
        width = len(rows[0])  # read-only sheets drop trailing empty cells
        out[name] = [[text(v) for v in r] + [""] * (width - len(r)) for r in rows[1:]]
    return out

"""Write a review in one of the formats: html | md | csv | xlsx | json."""

from __future__ import annotations

from pathlib import Path

from monitor.report.tables import ReviewTables

FORMATS = ("html", "md", "csv", "xlsx", "json")
# csv is a zip of one file per section unless the path names a folder (no suffix)
EXTENSIONS = {"html": ".html", "md": ".md", "csv": ".zip", "xlsx": ".xlsx", "json": ".json"}


def render_text(tables: ReviewTables, fmt: str) -> str:
    if fmt == "html":
        from monitor.report.html import render_html

        return render_html(tables)
    if fmt == "md":
        from monitor.report.markdown import render_markdown

        return render_markdown(tables)
    if fmt == "json":
        from monitor.report.json_out import render_json

        return render_json(tables)
    raise ValueError(f"{fmt} is not a text format")


def write_report(tables: ReviewTables, fmt: str, path: Path) -> Path:
    """Write the report to `path` (a file; for csv a .zip or a folder) and return what was written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "csv":
        from monitor.report.csv_xlsx import write_csv

        return write_csv(tables, path)
    if fmt == "xlsx":
        from monitor.report.csv_xlsx import write_xlsx

        return write_xlsx(tables, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_text(tables, fmt), encoding="utf-8")
    return path


def default_name(tables: ReviewTables, fmt: str) -> str:
    until = (tables.meta.get("until") or "")[:10] or "report"
    return f"rolewatch-access-review-{until}{EXTENSIONS[fmt]}"

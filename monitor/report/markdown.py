"""Markdown for wikis and pull requests: the summary first, then one pipe table per section."""

from __future__ import annotations

import pandas as pd

from monitor.report.cells import text_rows
from monitor.report.tables import SECTIONS, ReviewTables


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def markdown_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_none_\n"
    head = "| " + " | ".join(df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(_escape(c) for c in row) + " |" for row in text_rows(df)]
    return "\n".join([head, rule, *body]) + "\n"


def render_markdown(tables: ReviewTables) -> str:
    m = tables.meta
    out = [f"# {m['title']}", "",
           f"Period: {m['since']} to {m['until']} (UTC) · generated {m['generated_at']} · "
           f"accounts: {', '.join(m['accounts']) or 'none'} · source: {m['source']}", ""]
    out.append(f"Previous report: {m['previous_report'] or 'none (first report: no changes to compare)'}")
    out.extend(f"> note: {n}" for n in m["notes"])
    out.append("")
    for name, (title, _) in SECTIONS.items():
        out.extend([f"## {title}", "", markdown_table(tables.sections[name])])
    return "\n".join(out)

"""JSON for other tools: the report's metadata, the summary as an object, and every section as records."""

from __future__ import annotations

import json
from typing import Any

from monitor.report.cells import records
from monitor.report.tables import SECTIONS, ReviewTables


def report_document(tables: ReviewTables) -> dict[str, Any]:
    summary = tables.sections["summary"]
    return {
        "meta": tables.meta,
        "summary": {str(m): int(v) for m, v in zip(summary["metric"], summary["value"], strict=True)},
        "sections": {name: records(tables.sections[name]) for name in SECTIONS},
        "columns": {name: list(SECTIONS[name][1]) for name in SECTIONS},
    }


def render_json(tables: ReviewTables) -> str:
    return json.dumps(report_document(tables), indent=1, ensure_ascii=False)

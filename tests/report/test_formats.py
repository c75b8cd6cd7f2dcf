"""Every format carries the same facts: the numbers agree across HTML, Markdown, CSV, XLSX and JSON."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from monitor.report.cells import text_rows
from monitor.report.render import FORMATS, write_report
from monitor.report.tables import SECTIONS, Period, ReviewOptions, build_review
from tests.report import org
from tests.report.readers import csv_rows, html_rows, json_rows, markdown_rows, xlsx_rows


@pytest.fixture
def rendered(review, tmp_path: Path) -> dict[str, Path]:
    return {fmt: write_report(review, fmt, tmp_path / f"r.{'zip' if fmt == 'csv' else fmt}") for fmt in FORMATS}


def test_all_formats_agree_cell_for_cell(review, rendered) -> None:
    reference = {name: text_rows(review.sections[name]) for name in SECTIONS}
    readers = {
        "html": html_rows(rendered["html"].read_text()),
        "md": markdown_rows(rendered["md"].read_text()),
        "csv": csv_rows(rendered["csv"]),
        "xlsx": xlsx_rows(rendered["xlsx"]),
        "json": json_rows(rendered["json"].read_text()),
    }
    for fmt, sections in readers.items():
        for name in SECTIONS:
            assert sections[name] == reference[name], f"{fmt}: section {name} differs"
    # and the facts are non-trivial: the summary numbers are there in every format
    assert ["failed_attempts", "3"] in readers["html"]["summary"]
    assert ["cross_account_roles", "5"] in readers["md"]["summary"]


def test_json_summary_is_an_object_of_numbers(rendered) -> None:
    doc = json.loads(rendered["json"].read_text())
    assert doc["summary"]["roles"] == 8
    assert doc["summary"]["successful_assumptions"] == 10
    assert doc["meta"]["since"] == "2026-11-02T00:00:00Z"
    assert doc["sections"]["roles"][0]["external_id_required"] is None
    assert doc["sections"]["roles"][1]["last_used"] == "2026-05-01T00:00:00Z"


def test_csv_to_a_folder(review, tmp_path: Path) -> None:
    out = write_report(review, "csv", tmp_path / "csvdir")
    names = sorted(p.name for p in out.iterdir())
    assert names[0] == "01_summary.csv" and "report.csv" in names and len(names) == len(SECTIONS) + 1


def test_html_is_self_contained(rendered) -> None:
    html = rendered["html"].read_text()
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    for marker in ("http://", "https://", "<link", "src=", "@import", "url("):
        # only the SVG namespace URI may appear; it is an identifier, never fetched
        assert html.replace('xmlns="http://www.w3.org/2000/svg"', "").count(marker) == 0, marker
    assert html.count("<svg") >= 1 + 5  # the account timeline + a chart per active role


def _hostile_review():
    from monitor.findings import Finding
    from monitor.state.base import StoredFinding

    secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    token = "xoxb-1234567890-abcdefghijklmnop"
    session = "IQoJb3JpZ2luX2VjEHMaCXVzLWVhc3QtMSJHMEUCIQD" + "A" * 40
    ev = org.events()
    ev.loc[0, "role_session_name"] = f"externalId={org.EXTERNAL_ID}"
    ev.loc[2, "principal_arn"] = f"arn:aws:iam::{org.DEV}:user/{org.EXTERNAL_ID}"
    ev.loc[2, "principal_key"] = ev.loc[2, "principal_arn"]
    findings = org.findings() + [StoredFinding(Finding(
        "failed_assume_role", "high",
        f"ExternalId {org.EXTERNAL_ID} wrong; aws_secret_access_key={secret_key} {token} sessionToken={session}",
        "fp-hostile", account_id=org.PROD, role_arn=org.DEV_ROLE, principal_arn=f"<script>alert(1)</script>{token}",
        first_seen=org.SINCE, last_seen=org.SINCE), "open", "x", "x")]
    r = build_review(ev, org.posture(), findings, Period(org.SINCE, org.UNTIL), org.previous_snapshot(),
                     ReviewOptions(), now=org.NOW)
    return r, [org.EXTERNAL_ID, "another-ext-id-77", secret_key, token, session]


def test_no_secret_reaches_any_format(tmp_path: Path) -> None:
    review, secrets = _hostile_review()
    blobs = {}
    for fmt in FORMATS:
        path = write_report(review, fmt, tmp_path / f"h.{'zip' if fmt == 'csv' else fmt}")
        if path.suffix in (".zip", ".xlsx"):
            with zipfile.ZipFile(path) as z:
                blobs[fmt] = "".join(z.read(n).decode("utf-8", "replace") for n in z.namelist())
        else:
            blobs[fmt] = path.read_text()
    for fmt, text in blobs.items():
        for secret in secrets:
            assert secret not in text, f"{fmt} leaks {secret[:8]}..."
        assert "***" in text, fmt  # masked, not dropped: the row is still there
    assert "<script>alert(1)" not in blobs["html"]  # markup in data is escaped
    assert "&lt;script&gt;" in blobs["html"]


def test_column_formatting_equals_cell_formatting(review) -> None:
    from monitor.report.cells import cell_text, cell_value, records

    for name, df in review.sections.items():
        per_cell = [[cell_text(v) for v in row] for row in df.itertuples(index=False, name=None)]
        assert text_rows(df) == per_cell, name
        per_value = [{c: cell_value(v) for c, v in zip(df.columns, row, strict=True)}
                     for row in df.itertuples(index=False, name=None)]
        assert records(df) == per_value, name


def test_batch_redaction_equals_one_value_at_a_time() -> None:
    from monitor.redact import redact_text, register_secret
    from monitor.report.tables import redacted_values

    register_secret("batch-secret-9")
    values = ["plain", "has batch-secret-9 inside", "externalId=abc123", "ends with externalId",
              "=starts-with-equals", "xoxb-1234567890-abcdef", "brace }\n newline batch-secret-9", ""]
    expected = {v: redact_text(v) for v in values if redact_text(v) != v}
    assert redacted_values(values) == expected
    assert set(expected) == {values[1], values[2], values[5], values[6]}

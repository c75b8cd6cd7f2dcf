"""The HTML report in headless Chromium: it loads with no console errors and no network request,
the summary numbers are on the page, the tables sort, and it renders to a screenshot and a PDF."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.report.render import write_report
from tests.report.browser import DevTools, find_chromium, remote_requests, run_cli

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> str:
    return find_chromium()


@pytest.fixture
def report_html(review, tmp_path: Path) -> Path:
    return write_report(review, "html", tmp_path / "report.html")


@pytest.fixture
def devtools(browser: str, tmp_path: Path) -> Iterator[DevTools]:
    dt = DevTools(browser, tmp_path / "profile-cdp")
    try:
        yield dt
    finally:
        dt.close()


def test_loads_offline_without_errors_and_shows_the_summary(devtools: DevTools, report_html: Path, review) -> None:
    load = devtools.load(report_html.as_uri())
    assert remote_requests(load.requests) == []
    assert any(u.startswith("file:") for u in load.requests)  # the harness does see requests
    assert load.console_errors == []
    for metric in ("roles", "cross_account_roles", "unused_roles", "failed_attempts", "open_findings"):
        shown = devtools.evaluate(f"document.querySelector('[data-metric={metric}] .v').textContent")
        assert shown == str(review.summary_value(metric)), metric
    assert devtools.evaluate("document.querySelectorAll('#t-roles tbody tr').length") == 8
    assert devtools.evaluate("document.querySelectorAll('#t-roles svg').length") == 5  # roles with activity


def test_tables_sort_on_click(devtools: DevTools, report_html: Path) -> None:
    devtools.load(report_html.as_uri())
    col = "Array.from(document.querySelectorAll('#t-top_principals tbody tr')).map(r => r.cells[3].textContent)"
    assert devtools.evaluate(col) == ["4", "3", "2", "1", "0"]
    devtools.evaluate("document.querySelectorAll('#t-top_principals th')[3].click()")
    assert devtools.evaluate(col) == ["0", "1", "2", "3", "4"]
    devtools.evaluate("document.querySelectorAll('#t-top_principals th')[3].click()")
    assert devtools.evaluate(col) == ["4", "3", "2", "1", "0"]


def test_the_harness_catches_a_network_request(devtools: DevTools, tmp_path: Path) -> None:
    # control: a page without the report's Content-Security-Policy that fetches something
    page = tmp_path / "leaky.html"
    page.write_text('<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/x.png">'
                    "<script>console.error('boom')</script></body></html>")
    load = devtools.load(page.as_uri())
    assert remote_requests(load.requests) == ["http://127.0.0.1:9/x.png"]
    assert "boom" in " ".join(load.console_errors)


def test_screenshot_pdf_and_dom(browser: str, report_html: Path, tmp_path: Path, review) -> None:
    shot = tmp_path / "report.png"
    r = run_cli(browser, tmp_path / "p1", f"--screenshot={shot}", "--window-size=1280,1600", report_html.as_uri())
    assert shot.exists(), r.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    pdf = tmp_path / "report.pdf"
    r = run_cli(browser, tmp_path / "p2", f"--print-to-pdf={pdf}", "--no-pdf-header-footer", report_html.as_uri())
    assert pdf.exists(), r.stderr[-2000:]
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and data.count(b"/Type /Page") - data.count(b"/Type /Pages") >= 2
    r = run_cli(browser, tmp_path / "p3", "--dump-dom", report_html.as_uri())
    assert 'data-metric="failed_attempts"><div class="v">3</div>' in r.stdout
    assert f'data-metric="roles"><div class="v">{review.summary_value("roles")}</div>' in r.stdout
    keep = Path("/tmp/rolewatch-report-shot")
    if keep.is_dir():  # developers: mkdir it to keep the rendered files for a look
        (keep / "report.png").write_bytes(shot.read_bytes())
        (keep / "report.pdf").write_bytes(data)

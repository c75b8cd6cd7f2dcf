"""One self-contained HTML file: inline CSS, inline SVG charts, a few lines of JS to sort tables.

Opened from a laptop, a mail attachment or an S3 console download, it fetches nothing: a
Content-Security-Policy forbids every network source, so even a hostile string that slipped
into a cell could not load anything. It prints to PDF (print styles open collapsed sections).
"""

from __future__ import annotations

from collections import defaultdict
from html import escape

import pandas as pd

from monitor.report.cells import text_rows
from monitor.report.tables import SECTIONS, ReviewTables

CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; "
       "base-uri 'none'; form-action 'none'")

_CSS = """
:root{--ok:#2e7d32;--fail:#c62828;--ink:#1d2330;--mute:#5f6b7a;--line:#d9dee5;--bg:#f6f8fa}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--ink);margin:0}
header{padding:20px 28px;background:#14213d;color:#fff}
header h1{margin:0 0 4px;font-size:22px}
header p{margin:2px 0;color:#cfd8e3}
main{padding:8px 28px 40px}
h2{font-size:18px;margin:28px 0 8px;border-bottom:2px solid var(--line);padding-bottom:4px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px;margin:12px 0}
.card{background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:10px 12px}
.card .v{font-size:24px;font-weight:700}
.card .k{color:var(--mute);font-size:12px}
.card.warn .v{color:var(--fail)}
.note{background:#fff8e1;border-left:4px solid #f9a825;padding:6px 10px;margin:8px 0}
.scroll{overflow-x:auto;margin:6px 0 14px}
table{border-collapse:collapse;min-width:100%;font-size:12.5px}
th,td{border:1px solid var(--line);padding:4px 6px;text-align:left;vertical-align:top}
th{background:var(--bg);cursor:pointer;position:sticky;top:0;white-space:nowrap}
th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}
td.n{text-align:right;font-variant-numeric:tabular-nums}
td{overflow-wrap:anywhere;max-width:420px}
td.w{min-width:240px}
td.nw{white-space:nowrap;min-width:0}
td.n{min-width:0}
tr.remove td:first-child{border-left:4px solid var(--fail)}
tr.tighten td:first-child{border-left:4px solid #f9a825}
tr.keep td:first-child{border-left:4px solid var(--ok)}
.legend span{display:inline-block;margin-right:14px}
.sw{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:12px}
figure{margin:0;border:1px solid var(--line);border-radius:6px;padding:6px}
figcaption{font-size:12px;color:var(--mute)}
details>summary{cursor:pointer;color:#1f4e99;margin:6px 0}
.empty{color:var(--mute);font-style:italic}
@page{size:A4 landscape;margin:10mm}
@media print{
 .scroll{overflow:visible}
 header{background:none;color:#000;padding:0}header p{color:#000}
 th{position:static}table{font-size:7pt}td{max-width:none}
 thead{display:table-header-group}tr{break-inside:avoid}
 h2{break-after:avoid}section{break-before:auto}
 .charts{grid-template-columns:repeat(2,1fr)}
}
"""

# Sort on click: numbers as numbers, everything else as text; a second click reverses.
_JS = """
document.querySelectorAll('table.sortable th').forEach(function(th){
 th.addEventListener('click',function(){
  var table=th.closest('table'),body=table.tBodies[0],i=Array.prototype.indexOf.call(th.parentNode.children,th);
  var asc=th.getAttribute('aria-sort')!=='ascending';
  table.querySelectorAll('th').forEach(function(h){h.removeAttribute('aria-sort')});
  th.setAttribute('aria-sort',asc?'ascending':'descending');
  var rows=Array.prototype.slice.call(body.rows);
  rows.sort(function(a,b){
   var x=a.cells[i].textContent,y=b.cells[i].textContent,nx=parseFloat(x),ny=parseFloat(y);
   var c=(!isNaN(nx)&&!isNaN(ny)&&/^-?[0-9.]+$/.test(x)&&/^-?[0-9.]+$/.test(y))?nx-ny:x.localeCompare(y);
   return asc?c:-c;});
  rows.forEach(function(r){body.appendChild(r)});
 });
});
window.addEventListener('beforeprint',function(){document.querySelectorAll('details').forEach(function(d){d.open=true})});
"""

_NUMERIC = {"int64", "Int64", "float64"}


def html_table(name: str, df: pd.DataFrame, *, row_class: str | None = None, extra: dict[str, list[str]] | None = None) -> str:
    if df.empty:
        return f'<p class="empty" id="t-{name}">none</p>'
    rows = text_rows(df)
    extra = extra or {}
    # numbers right-aligned; short values (ids, dates, yes/no) kept on one line; long ones wrap
    tds = []
    for j, c in enumerate(df.columns):
        longest = max((len(r[j]) for r in rows), default=0)
        cls = "n" if str(df[c].dtype) in _NUMERIC else "nw" if longest <= 28 else "w"
        tds.append(f'<td class="{cls}">')
    head = "".join(f"<th>{escape(h)}</th>" for h in [*extra, *df.columns])
    classes = df[row_class].astype(str).tolist() if row_class else None
    out = [f'<div class="scroll"><table class="sortable" id="t-{name}"><thead><tr>{head}</tr></thead><tbody>']
    extra_cols = list(extra.values())
    for i, row in enumerate(rows):
        cls = f' class="{escape(classes[i])}"' if classes else ""
        pre = "".join(f"<td>{col[i]}</td>" for col in extra_cols)  # trusted markup (charts)
        cells = "".join(f"{td}{escape(v)}</td>" for v, td in zip(row, tds, strict=True))
        out.append(f"<tr{cls}>{pre}{cells}</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def bar_chart(days: list[str], ok: list[int], failed: list[int], *, width: int, height: int,
              axis: bool, label: str) -> str:
    """Stacked daily bars (successes below, failures above) as inline SVG."""
    n = max(1, len(days))
    top = max([a + b for a, b in zip(ok, failed, strict=True)] + [1])
    pad_l, pad_b = (34, 16) if axis else (0, 0)
    plot_w, plot_h = width - pad_l, height - pad_b - (4 if axis else 0)
    bw = plot_w / n
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}"><title>{escape(label)}</title>']
    base = plot_h + (4 if axis else 0)
    for i, (a, b) in enumerate(zip(ok, failed, strict=True)):
        x = pad_l + i * bw
        ha, hb = plot_h * a / top, plot_h * b / top
        tip = f"{days[i]}: {a} ok, {b} failed"
        if a:
            parts.append(f'<rect x="{x:.1f}" y="{base - ha:.1f}" width="{max(bw - 1, 0.8):.1f}" height="{ha:.1f}" '
                         f'fill="#2e7d32"><title>{tip}</title></rect>')
        if b:
            parts.append(f'<rect x="{x:.1f}" y="{base - ha - hb:.1f}" width="{max(bw - 1, 0.8):.1f}" '
                         f'height="{hb:.1f}" fill="#c62828"><title>{tip}</title></rect>')
    if axis:
        parts.append(f'<line x1="{pad_l}" y1="{base}" x2="{width}" y2="{base}" stroke="#999"/>')
        parts.append(f'<text x="{pad_l - 4}" y="10" font-size="10" text-anchor="end">{top}</text>')
        parts.append(f'<text x="{pad_l - 4}" y="{base}" font-size="10" text-anchor="end">0</text>')
        for i in sorted({0, n // 2, n - 1}):
            if i < len(days):
                parts.append(f'<text x="{pad_l + i * bw + bw / 2:.1f}" y="{height - 2}" font-size="9" '
                             f'text-anchor="middle">{days[i][5:]}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _period_days(tables: ReviewTables) -> list[str]:
    tl = tables.sections["timeline"]
    if len(tl):
        return sorted(tl["date"].unique().tolist())
    days = pd.date_range(pd.Timestamp(tables.meta["since"]).normalize(),
                         (pd.Timestamp(tables.meta["until"]) - pd.Timedelta(microseconds=1)).normalize(), freq="D")
    return [d.strftime("%Y-%m-%d") for d in days]


def role_sparklines(tables: ReviewTables) -> dict[str, str]:
    days = _period_days(tables)
    index = {d: i for i, d in enumerate(days)}
    series: dict[str, tuple[list[int], list[int]]] = defaultdict(lambda: ([0] * len(days), [0] * len(days)))
    daily = tables.sections["daily"]
    for arn, day, a, b in zip(daily["role_arn"], daily["date"], daily["assumptions"], daily["failures"], strict=True):
        if day in index:
            ok, failed = series[arn]
            ok[index[day]] += int(a)
            failed[index[day]] += int(b)
    return {arn: bar_chart(days, ok, failed, width=120, height=24, axis=False,
                           label=f"{arn}: {sum(ok)} ok, {sum(failed)} failed by day")
            for arn, (ok, failed) in series.items()}


def _timeline_charts(tables: ReviewTables) -> str:
    tl = tables.sections["timeline"]
    if tl.empty:
        return '<p class="empty">no activity</p>'
    figs = []
    for account, g in tl.groupby("account_id", sort=True):
        g = g.sort_values("date")
        ok, failed = g["assumptions"].astype(int).tolist(), g["failures"].astype(int).tolist()
        label = f"account {account}: {sum(ok)} assumptions, {sum(failed)} failures"
        chart = bar_chart(g["date"].tolist(), ok, failed, width=360, height=110, axis=True, label=label)
        figs.append(f"<figure>{chart}<figcaption>{escape(label)}</figcaption></figure>")
    legend = ('<p class="legend"><span><i class="sw" style="background:#2e7d32"></i>successful assumptions</span>'
              '<span><i class="sw" style="background:#c62828"></i>failed attempts</span></p>')
    return legend + '<div class="charts">' + "".join(figs) + "</div>"


_WARN_METRICS = {"unused_roles", "cross_account_roles_without_externalid_condition", "failed_attempts",
                 "high_or_critical_findings", "roles_to_remove", "roles_to_tighten", "new_trusted_principals"}


def render_html(tables: ReviewTables) -> str:
    m = tables.meta
    s = tables.sections
    cards = "".join(
        f'<div class="card{" warn" if metric in _WARN_METRICS and int(value) else ""}" data-metric="{escape(metric)}">'
        f'<div class="v">{int(value)}</div><div class="k">{escape(metric.replace("_", " "))}</div></div>'
        for metric, value in zip(s["summary"]["metric"], s["summary"]["value"], strict=True))
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in m["notes"])
    prev = m["previous_report"] or "none (first report: no changes to compare)"
    spark = role_sparklines(tables)
    roles = s["roles"]
    role_charts = [spark.get(arn, "") for arn in roles["role_arn"]]
    body = [
        f'<header><h1>{escape(m["title"])}</h1>'
        f'<p>Period <b id="period">{escape(m["since"])} – {escape(m["until"])}</b> (UTC) · generated '
        f'{escape(m["generated_at"])} · source: {escape(m["source"])}</p>'
        f'<p>Accounts: {escape(", ".join(m["accounts"]) or "none")} · previous report: {escape(prev)}</p></header>',
        "<main>", notes,
        '<section id="summary"><h2>Summary</h2>'
        f'<div class="cards">{cards}</div><details><summary>summary as a table</summary>'
        f'{html_table("summary", s["summary"])}</details></section>',
        f'<section id="changes"><h2>{SECTIONS["changes"][0]}</h2>{html_table("changes", s["changes"])}</section>',
        f'<section id="top_principals"><h2>{SECTIONS["top_principals"][0]}</h2>'
        f'{html_table("top_principals", s["top_principals"])}</section>',
        f'<section id="findings_by_detector"><h2>{SECTIONS["findings_by_detector"][0]}</h2>'
        f'{html_table("findings_by_detector", s["findings_by_detector"])}</section>',
        f'<section id="timeline"><h2>{SECTIONS["timeline"][0]}</h2>{_timeline_charts(tables)}'
        f'<details><summary>daily numbers</summary>{html_table("timeline", s["timeline"])}</details></section>',
        f'<section id="roles"><h2>{SECTIONS["roles"][0]}</h2>'
        '<p>Cross-account roles first. Colour bar: red remove, amber tighten, green keep. '
        'Reviewer, decision and date are for sign-off.</p>'
        f'{html_table("roles", roles, row_class="recommendation", extra={"activity": role_charts})}</section>',
    ]
    for name in ("trust", "principals", "services", "analyzer", "findings"):
        body.append(f'<section id="{name}"><h2>{SECTIONS[name][0]}</h2>{html_table(name, s[name])}</section>')
    body.append(f'<section id="daily"><h2>{SECTIONS["daily"][0]}</h2><details><summary>{len(s["daily"])} rows'
                f'</summary>{html_table("daily", s["daily"])}</details></section>')
    body.append("</main>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(m['title'])} {escape(m['since'][:10])} – {escape(m['until'][:10])}</title>"
        f"<style>{_CSS}</style></head><body>{''.join(body)}<script>{_JS}</script></body></html>\n"
    )


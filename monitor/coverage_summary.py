"""One cycle's coverage rows summarised per source, for `rolewatch status` and `rolewatch once`.

An organisation S3 source records one coverage row per account/region -- thousands of them. A
person reading either command needs the counts, the units that did not read cleanly and the one
that lags most, not every row; both commands render from this one summary so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from monitor.state.base import Coverage

# how many failed (and partial) units the text outputs name before "... and N more"
UNIT_LIST_CAP = 20


def _unit(c: Coverage) -> dict[str, Any]:
    return {"account": c.account, "region": c.region, "status": c.status, "start": c.start, "end": c.end,
            "message": c.message}


@dataclass
class SourceCoverage:
    """The coverage of one source in one cycle (all its rows come from the same run)."""

    source: str
    rows: list[Coverage]

    def units(self, status: str) -> list[Coverage]:
        return [c for c in self.rows if c.status == status]

    @property
    def status(self) -> str:
        statuses = {c.status for c in self.rows}
        if statuses == {"ok"}:
            return "ok"
        return "failed" if statuses == {"failed"} else "partial"

    def oldest_checkpoint(self) -> Coverage | None:
        """The unit that lags most: where each unit's checkpoint stands after the cycle.

        A unit read cleanly moved its checkpoint to the end of its window; one that did not kept it,
        so it stands where the window started. A unit with no window (its listing failed before it
        had one) is not placed: it is named among the failed units instead.
        """
        placed = [(c.end if c.status == "ok" else c.start, c) for c in self.rows]
        placed = [(at, c) for at, c in placed if at]
        return min(placed, key=lambda p: p[0])[1] if placed else None

    def as_dict(self) -> dict[str, Any]:
        """The `status --json` shape: the keys a single row always had, now over all the rows, plus units.

        Full lists: a machine reading the JSON slices them itself; only the text output caps them.
        """
        first = self.rows[0]
        single = len(self.rows) == 1
        starts = [c.start for c in self.rows if c.start]
        ends = [c.end for c in self.rows if c.end]
        delivered = [c.delivered for c in self.rows if c.delivered is not None]
        oldest = self.oldest_checkpoint()
        by_status = {s: self.units(s) for s in ("ok", "partial", "failed")}
        return {
            "run_id": first.run_id, "status": self.status,
            "start": min(starts) if starts else None, "end": max(ends) if ends else None,
            "records": sum(c.records for c in self.rows),
            "delivered": sum(delivered) if delivered else None,
            "skipped": sum(c.skipped for c in self.rows),
            "message": first.message if single else None,
            "account": first.account if single else None, "region": first.region if single else None,
            "units": {"total": len(self.rows), **{s: len(units) for s, units in by_status.items()}},
            "failed_units": [_unit(c) for c in by_status["failed"]],
            "partial_units": [_unit(c) for c in by_status["partial"]],
            "oldest_checkpoint": None if oldest is None else {
                "account": oldest.account, "region": oldest.region, "status": oldest.status,
                "at": oldest.end if oldest.status == "ok" else oldest.start},
        }


def summarise(rows: Iterable[Coverage]) -> dict[str, SourceCoverage]:
    """Rows of one cycle grouped by source, in the order the sources first appear."""
    out: dict[str, SourceCoverage] = {}
    for c in rows:
        out.setdefault(c.source, SourceCoverage(c.source, [])).rows.append(c)
    return out


def capped(lines: list[str], what: str, cap: int = UNIT_LIST_CAP) -> list[str]:
    if len(lines) <= cap:
        return lines
    indent = lines[cap][: len(lines[cap]) - len(lines[cap].lstrip())]
    return [*lines[:cap], f"{indent}... and {len(lines) - cap} more {what}"]


def unit_lines(summary: dict[str, Any], indent: str, cap: int = UNIT_LIST_CAP) -> list[str]:
    """The text under a source with account/region units: counts, the units in trouble, the laggard."""
    u = summary["units"]
    lines = [f"{indent}units: {u['ok']} ok, {u['partial']} partial, {u['failed']} failed of {u['total']}"]
    for key in ("failed", "partial"):
        named = [f"{indent}  {key} {'/'.join(p for p in (x['account'], x['region']) if p) or '(source)'}"
                 f"{': ' + x['message'] if x['message'] else ''}" for x in summary[f"{key}_units"]]
        lines += capped(named, f"{key} unit(s)", cap)
    oldest = summary["oldest_checkpoint"]
    if oldest is not None:
        where = "/".join(p for p in (oldest["account"], oldest["region"]) if p)
        lines.append(f"{indent}oldest checkpoint: {where} at {oldest['at']}"
                     + ("" if oldest["status"] == "ok" else f" ({oldest['status']})"))
    return lines


def render_source(summary: dict[str, Any], name: str, *, once: bool) -> list[str]:
    """One source's lines: `status` says `name [where]: status span, N records, ...`; `once` keeps its columns."""
    span = f"{summary['start'] or '?'} .. {summary['end'] or '?'}"
    msg = f" ({summary['message']})" if summary["message"] else ""
    # set only for a source of one row: a source of several units names them below
    where = "/".join(p for p in (summary["account"], summary["region"]) if p)
    if once:
        head = (f"  {name}{' ' + where if where else ''}  {span}  {summary['status']}  "
                f"{summary['records']} stored, {summary['skipped']} skipped, {summary['delivered']} delivered{msg}")
    else:
        head = (f"  {name}{' ' + where if where else ''}: {summary['status']} {span}, {summary['records']} records"
                + (f", {summary['delivered']} delivered" if summary["delivered"] is not None else "")
                + (f", {summary['skipped']} skipped" if summary["skipped"] else "") + msg)
    # a source read as one unit of no account (a log group -- its row carries the region of [aws] --,
    # a local path, an S3 bucket with nothing in it): that row is the source, so "1 ok of 1" and a
    # checkpoint named only by a region would say nothing its line does not
    if summary["account"] is None and summary["units"]["total"] == 1:
        return [head]
    return [head, *unit_lines(summary, "    ")]

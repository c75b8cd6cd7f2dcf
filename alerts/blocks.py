"""Slack Block Kit for a message, within Slack's limits.

Slack rejects a message with more than 50 blocks, a section text over 3,000 characters, more than
10 section fields or a field over 2,000, or a header over 150. `fit_blocks` enforces all of them on
any block list by truncating with a visible note, so a long finding never fails to post.
"""

from __future__ import annotations

import json
from typing import Any

from alerts.base import Message
from alerts.render import (
    SEVERITY_MARK,
    console_url,
    facts,
    headline,
    likely_cause,
    role_console_url,
    summary_line,
    truncate,
)
from monitor.findings import SEVERITY_RANK, Finding
from monitor.redact import redact

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150


def escape(text: str) -> str:
    """mrkdwn control characters: a title must not become a link or a mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def finding_blocks(message: Message, *, zone: str, default_region: str) -> list[dict[str, Any]]:
    f = message.finding
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": headline(message), "emoji": True}}
    ]
    if message.kind == "escalated":
        blocks.append(_section(f"*Severity raised* from `{message.previous_severity}` to `{f.severity}`"))
    elif message.kind == "reminder":
        blocks.append(_section("*Reminder*: this finding is still open and was alerted before."))
    blocks.append({
        "type": "section",
        "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{escape(v)}"} for k, v in facts(f, zone, default_region)],
    })
    cause = likely_cause(f)
    if cause:
        blocks.append(_section(f"*Likely cause*\n{escape(cause)}"))
    url = console_url(f, default_region)
    if url:
        blocks.append(_section(f"<{url}|View the event in CloudTrail event history>"))
    elif role_console_url(f):
        blocks.append(_section(f"<{role_console_url(f)}|View the role in the IAM console>"))
    if f.details:
        body = json.dumps(redact(f.details), indent=1, default=str, sort_keys=True)
        blocks.append(_section("*Details*\n```" + escape(body) + "```"))
    blocks.append(_context(f"rolewatch · `{f.detector}` · fingerprint `{f.fingerprint}`"))
    return fit_blocks(blocks)


def digest_blocks(message: Message, *, default_region: str) -> list[dict[str, Any]]:
    """One line per finding, highest severity first, packed into sections of at most 3,000 characters."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": headline(message), "emoji": True}}
    ]
    ordered = sorted(message.findings, key=lambda x: (-SEVERITY_RANK[x.severity], x.first_seen or ""))
    sections: list[list[str]] = []
    for f in ordered:
        line = truncate(_digest_line(f, default_region), MAX_SECTION_TEXT, "line")
        if sections and len("\n".join([*sections[-1], line])) <= MAX_SECTION_TEXT:
            sections[-1].append(line)
        else:
            sections.append([line])
    room = MAX_BLOCKS - len(blocks) - 1  # one block kept for the "not shown" note
    blocks += [_section("\n".join(s)) for s in sections[:room]]
    hidden = sum(len(s) for s in sections[room:])
    if hidden:
        blocks.append(_context(f"… and {hidden} more finding(s) not shown; see the findings file "
                               "or `rolewatch report`."))
    return fit_blocks(blocks)


def _digest_line(f: Finding, default_region: str) -> str:
    mark = SEVERITY_MARK.get(f.severity, "")
    line = f"{mark} {escape(summary_line(f))}"
    url = console_url(f, default_region)
    return f"{line} <{url}|event>" if url else line


def message_blocks(message: Message, *, zone: str = "UTC", default_region: str = "us-east-1") -> list[dict[str, Any]]:
    if message.kind == "digest":
        return digest_blocks(message, default_region=default_region)
    return finding_blocks(message, zone=zone, default_region=default_region)


def fit_blocks(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Enforce Slack's block limits by truncating with a note; never raise."""
    out = []
    for block in blocks:
        block = json.loads(json.dumps(block))
        if block["type"] == "header":
            text = block["text"]["text"]
            if len(text) > MAX_HEADER_TEXT:
                block["text"]["text"] = text[: MAX_HEADER_TEXT - 1] + "…"
        elif block["type"] == "section":
            if "text" in block:
                block["text"]["text"] = truncate(block["text"]["text"], MAX_SECTION_TEXT)
            if "fields" in block:
                fields = block["fields"]
                for fld in fields:
                    fld["text"] = truncate(fld["text"], MAX_FIELD_TEXT)
                if len(fields) > MAX_FIELDS:
                    extra = fields[MAX_FIELDS - 1 :]
                    fields[MAX_FIELDS - 1 :] = [{
                        "type": "mrkdwn",
                        "text": truncate("\n".join(x["text"] for x in extra), MAX_FIELD_TEXT),
                    }]
        out.append(block)
    if len(out) > MAX_BLOCKS:
        omitted = len(out) - (MAX_BLOCKS - 1)
        out = out[: MAX_BLOCKS - 1] + [_context(f"… {omitted} more block(s) not shown (Slack allows {MAX_BLOCKS}).")]
    return out

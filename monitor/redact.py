"""Keep secrets out of logs, alerts and reports.

Two nets: known secret values registered at run time (ExternalIds, tokens read from env or a
secret store) are replaced wherever they appear, and patterns catch the secret shapes that
could arrive from outside (Slack tokens, STS session tokens, AWS secret keys, `externalId`
fields in raw records).
"""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import urlsplit

MASK = "***"

_known: set[str] = set()
_known_lock = threading.Lock()

# `key: value`, `key=value`, `"key": "value"` (JSON) and `'key': 'value'` (a Python repr)
_KEYED = r"""([\"']?\s*[:=]\s*[\"']?)"""

_PATTERNS = [
    re.compile(r"xox[abposre]-[A-Za-z0-9-]{8,}"),  # Slack bot/user/app tokens
    re.compile(r"xapp-[A-Za-z0-9-]{8,}"),
    re.compile(r"https://hooks\.slack(?:-gov)?\.com/(?:services|workflows|triggers)/[A-Za-z0-9/]+"),
    re.compile(r"(?i)(aws_secret_access_key|secretaccesskey|secret_access_key)" + _KEYED + r"[A-Za-z0-9/+=]{40}"),
    re.compile(r"(?i)(sessiontoken|session_token|x-amz-security-token)" + _KEYED + r"[A-Za-z0-9/+=%]{16,}"),
    # the whole ExternalId alphabet ([\w+=,.@:/-]): stopping at `,` or `=` would print the rest of it;
    # a trust policy may list several (`"sts:ExternalId": ["a", "b"]`)
    re.compile(r"(?i)(externalid|external_id)" + _KEYED + r"(?:\[[^\]]*\]|[\w+=,.@:/-]+)"),
    # an STS session token is base64 of a header whose first byte varies but whose next bytes do not:
    # after two free characters come oJb3JpZ2luX2Vj (IQoJ.., AgoJ..), oGZXIvYXdz (FQoG.., FwoG..) or oDYXdz
    re.compile(r"\b(?:FQoG|IQoJ)[A-Za-z0-9/+=]{40,}"
               r"|\b[A-Za-z0-9+/]{2}o(?:Jb3JpZ2luX2Vj|GZXIvYXdz|DYXdz)[A-Za-z0-9/+=]{20,}"),
]

_SENSITIVE_KEYS = {
    "externalid",
    "external_id",
    "sessiontoken",
    "session_token",
    "secretaccesskey",
    "secret_access_key",
    "token",
    "password",
    "secret",
}


# a 12-digit account ID is in every ARN of its account: masking it would blank those ARNs and
# account columns everywhere, and an ExternalId that equals one is guessable, so nothing is hidden
_ACCOUNT_ID = re.compile(r"\d{12}")
# a shorter value is a word (`prod`, `team1`) that turns up inside role names and ARNs, which masking
# it everywhere would destroy; it is guessable anyway, and still masked under its key (patterns above)
KNOWN_SECRET_MIN_LENGTH = 8


def register_secret(value: str | None) -> None:
    """Remember a secret value so it is masked wherever it would be printed."""
    if value and len(value) >= KNOWN_SECRET_MIN_LENGTH and not _ACCOUNT_ID.fullmatch(value):
        with _known_lock:
            _known.add(value)


# a webhook URL's path or query is the credential; from this length on it is masked on its own too
URL_PART_SECRET_LENGTH = 16


def register_url(url: str) -> None:
    """Register a URL that is a credential, and its path and query: a server's error page often
    repeats the path it was asked for (Express: `Cannot POST /hooks/<token>`) without the host."""
    register_secret(url)
    parts = urlsplit(url)
    pieces = [parts.path, parts.query]
    if parts.query:
        pieces.append(f"{parts.path}?{parts.query}")
    for piece in pieces:
        if len(piece) >= URL_PART_SECRET_LENGTH:
            register_secret(piece)


def redact_text(text: str) -> str:
    if not text:
        return text
    with _known_lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    for pat in _PATTERNS:
        if pat.groups >= 2:
            text = pat.sub(lambda m: m.group(1) + m.group(2) + MASK, text)
        else:
            text = pat.sub(MASK, text)
    return text


def redact(obj: Any) -> Any:
    """Deep copy of a JSON-like value with secrets masked (keys and values)."""
    if isinstance(obj, str):
        return redact_text(obj)
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            # by the key's own name, without its namespace: a policy condition's `sts:ExternalId` too
            if isinstance(k, str) and k.lower().rpartition(":")[2] in _SENSITIVE_KEYS \
                    and v not in (None, "", True, False):
                out[k] = MASK
            else:
                out[k] = redact(v)
        return out
    if isinstance(obj, list | tuple):
        return [redact(v) for v in obj]
    return obj

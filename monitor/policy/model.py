"""A role's trust policy (its AssumeRolePolicyDocument) as a small typed model.

Parsing is lenient in shape (IAM accepts `Statement` as an object or a list, every value as a
string or a list of strings) and strict in meaning: a document that is not a policy raises
`PolicyError` naming what is wrong, so the caller can report the role and go on.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

ACCOUNT_RE = re.compile(r"^\d{12}$")
_IAM_ARN_RE = re.compile(r"^arn:(?P<partition>aws[a-z-]*):(?P<service>iam|sts)::(?P<account>\d{12}):(?P<resource>.+)$")


class PolicyError(ValueError):
    """A document that cannot be read as an IAM policy."""


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


@dataclass(frozen=True)
class PrincipalRef:
    """One entry of a Principal element: kind is "*", "AWS", "Service", "Federated" or "CanonicalUser"."""

    kind: str
    value: str

    @property
    def is_wildcard(self) -> bool:
        return self.kind == "*" or (self.kind == "AWS" and self.value == "*")

    @property
    def account_id(self) -> str | None:
        """The account an AWS principal belongs to (a bare account id or any IAM/STS ARN)."""
        if self.kind != "AWS":
            return None
        if ACCOUNT_RE.match(self.value):
            return self.value
        m = _IAM_ARN_RE.match(self.value)
        return m.group("account") if m else None

    @property
    def is_account_root(self) -> bool:
        """Whole-account trust: the account id alone or `arn:aws:iam::ACCOUNT:root`."""
        if self.kind != "AWS":
            return False
        if ACCOUNT_RE.match(self.value):
            return True
        m = _IAM_ARN_RE.match(self.value)
        return bool(m and m.group("service") == "iam" and m.group("resource") == "root")


def parse_principal(element: Any) -> list[PrincipalRef]:
    if element is None:
        return []
    if element == "*":
        return [PrincipalRef("*", "*")]
    if not isinstance(element, dict):
        raise PolicyError(f"Principal must be \"*\" or an object, got {type(element).__name__}")
    refs = []
    for kind, values in element.items():
        if kind not in ("AWS", "Service", "Federated", "CanonicalUser"):
            raise PolicyError(f"unknown principal type {kind!r}")
        for v in _as_list(values):
            if not isinstance(v, str):
                raise PolicyError(f"principal {kind} value must be a string, got {v!r}")
            refs.append(PrincipalRef(kind, v.strip()))
    return refs


# operator -> condition key -> policy values (always a list of strings)
Conditions = dict[str, dict[str, list[str]]]


def _value_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def parse_conditions(element: Any) -> Conditions:
    if element is None:
        return {}
    if not isinstance(element, dict):
        raise PolicyError("Condition must be an object")
    out: Conditions = {}
    for operator, clauses in element.items():
        if not isinstance(clauses, dict):
            raise PolicyError(f"Condition {operator} must map keys to values")
        out[str(operator)] = {str(k): [_value_text(v) for v in _as_list(vals)] for k, vals in clauses.items()}
    return out


@dataclass
class Statement:
    effect: str  # Allow | Deny
    sid: str | None = None
    principals: list[PrincipalRef] | None = None  # None: the statement has NotPrincipal instead
    not_principals: list[PrincipalRef] | None = None
    actions: list[str] | None = None  # None: NotAction
    not_actions: list[str] | None = None
    conditions: Conditions = field(default_factory=dict)

    @property
    def allows(self) -> bool:
        return self.effect == "Allow"

    def all_principals(self) -> list[PrincipalRef]:
        return list(self.principals or [])

    def action_matches(self, action: str) -> bool:
        """IAM action names compare case-insensitively with `*` and `?` wildcards."""
        if self.actions is not None:
            return any(_action_glob(a).match(action) for a in self.actions)
        if self.not_actions is not None:
            return not any(_action_glob(a).match(action) for a in self.not_actions)
        return False

    def condition_keys(self) -> set[str]:
        return {k.lower() for clauses in self.conditions.values() for k in clauses}


def _action_glob(pattern: str) -> re.Pattern[str]:
    return re.compile(glob_regex(pattern), re.IGNORECASE)


def glob_regex(pattern: str) -> str:
    """IAM wildcard (`*` any run, `?` one character, nothing else special) -> anchored regex."""
    parts = []
    for ch in pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return "^" + "".join(parts) + "$"


@dataclass
class TrustPolicy:
    statements: list[Statement]
    version: str | None = None

    @property
    def allow_statements(self) -> list[Statement]:
        return [s for s in self.statements if s.allows]

    @property
    def deny_statements(self) -> list[Statement]:
        return [s for s in self.statements if not s.allows]


def load_document(document: Any) -> dict[str, Any]:
    """A policy document as IAM hands it out: a dict, a JSON string, or URL-encoded JSON (raw API)."""
    if isinstance(document, dict):
        return document
    if isinstance(document, str):
        text = document.strip()
        if text.startswith("%7B") or text.startswith("%7b"):
            text = urllib.parse.unquote(text)
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PolicyError(f"policy document is not JSON: {exc.msg} at position {exc.pos}") from None
        if isinstance(loaded, dict):
            return loaded
    raise PolicyError(f"policy document must be a JSON object, got {type(document).__name__}")


def parse_statement(raw: Any, index: int) -> Statement:
    if not isinstance(raw, dict):
        raise PolicyError(f"Statement[{index}] is not an object")
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise PolicyError(f"Statement[{index}].Effect must be Allow or Deny, got {effect!r}")
    if "Principal" in raw and "NotPrincipal" in raw:
        raise PolicyError(f"Statement[{index}] has both Principal and NotPrincipal")
    if "Action" in raw and "NotAction" in raw:
        raise PolicyError(f"Statement[{index}] has both Action and NotAction")
    try:
        principals = parse_principal(raw["Principal"]) if "Principal" in raw else None
        not_principals = parse_principal(raw["NotPrincipal"]) if "NotPrincipal" in raw else None
        conditions = parse_conditions(raw.get("Condition"))
    except PolicyError as exc:
        raise PolicyError(f"Statement[{index}]: {exc}") from None
    return Statement(
        effect=effect,
        sid=raw.get("Sid"),
        principals=principals if principals is not None or not_principals is not None else [],
        not_principals=not_principals,
        actions=[str(a) for a in _as_list(raw["Action"])] if "Action" in raw else None,
        not_actions=[str(a) for a in _as_list(raw["NotAction"])] if "NotAction" in raw else None,
        conditions=conditions,
    )


def parse_policy(document: Any) -> TrustPolicy:
    doc = load_document(document)
    if "Statement" not in doc:
        raise PolicyError("policy document has no Statement")
    statements = [parse_statement(s, i) for i, s in enumerate(_as_list(doc["Statement"]))]
    version = doc.get("Version")
    return TrustPolicy(statements=statements, version=str(version) if version is not None else None)


def iam_arn_parts(arn: str) -> tuple[str, str, str] | None:
    """(service, account, resource) of an IAM or STS ARN, else None."""
    m = _IAM_ARN_RE.match(arn or "")
    return (m.group("service"), m.group("account"), m.group("resource")) if m else None

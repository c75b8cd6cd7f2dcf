"""Evaluate an IAM Condition block against what is known of a request.

Semantics follow the IAM User Guide ("IAM JSON policy elements: Condition operators" and
"Creating a condition with multiple context keys or values"):

- several operators in a block, and several keys under one operator: all must hold (AND);
- several values for one key: any may match (OR); for a negated operator (StringNotEquals,
  StringNotLike, NumericNotEquals, DateNotEquals, ArnNotEquals, ArnNotLike, NotIpAddress) the
  key must match none of them;
- a key absent from the request context: the condition is false, except negated operators
  (true), `...IfExists` (true) and `Null` (which tests presence itself);
- `ForAllValues:` is true when every request value matches (and when the key is absent or
  empty); `ForAnyValue:` is true when at least one does (false when absent);
- condition keys compare case-insensitively; string values case-sensitively unless the
  operator says IgnoreCase; `Like` operators take `*` and `?` wildcards; Arn operators
  compare each of the six colon-separated parts, each with wildcards.

The evaluator is three-valued because a failed CloudTrail record rarely tells everything:
`True`, `False`, or `None` (cannot tell). A context value may be `UNKNOWN` (we do not know
whether the key was in the request) or `PRESENT` (it was, but its value is not recorded, as
with an ExternalId).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from monitor.policy.model import Conditions, glob_regex

Tri = bool | None  # True, False, or None when it cannot be decided


class _Sentinel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


UNKNOWN = _Sentinel("UNKNOWN")  # may or may not be in the request
PRESENT = _Sentinel("PRESENT")  # in the request, value not known
_MISSING = _Sentinel("MISSING")
MISSING = _MISSING  # known to be absent from the request (as opposed to UNKNOWN)

NEGATED = {
    "StringNotEquals",
    "StringNotEqualsIgnoreCase",
    "StringNotLike",
    "NumericNotEquals",
    "DateNotEquals",
    "ArnNotEquals",
    "ArnNotLike",
    "NotIpAddress",
}
# a negated operator is the complement of its positive twin, value by value
_POSITIVE_OF = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "NumericNotEquals": "NumericEquals",
    "DateNotEquals": "DateEquals",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
    "NotIpAddress": "IpAddress",
}
BASE_OPERATORS = {
    "StringEquals", "StringEqualsIgnoreCase", "StringLike",
    "NumericEquals", "NumericLessThan", "NumericLessThanEquals", "NumericGreaterThan", "NumericGreaterThanEquals",
    "DateEquals", "DateLessThan", "DateLessThanEquals", "DateGreaterThan", "DateGreaterThanEquals",
    "Bool", "BinaryEquals", "IpAddress", "ArnEquals", "ArnLike", "Null",
} | NEGATED


class UnsupportedOperator(ValueError):
    pass


@dataclass(frozen=True)
class Operator:
    base: str  # e.g. StringLike
    if_exists: bool = False
    set_op: str | None = None  # ForAllValues | ForAnyValue

    @property
    def negated(self) -> bool:
        return self.base in NEGATED

    @property
    def narrows(self) -> bool:
        """Whether a match can only narrow who passes: positive and failing without the key. `...IfExists`
        and `ForAllValues:` pass when the key is absent, negated operators and `Null` admit what is not
        listed."""
        return not (self.negated or self.if_exists or self.set_op == "ForAllValues" or self.base == "Null")


@lru_cache(maxsize=512)
def parse_operator(text: str) -> Operator:
    set_op = None
    name = text
    if ":" in name:
        prefix, _, name = name.partition(":")
        if prefix not in ("ForAllValues", "ForAnyValue"):
            raise UnsupportedOperator(f"unknown set operator {prefix!r}")
        set_op = prefix
    if_exists = name.endswith("IfExists")
    if if_exists:
        name = name.removesuffix("IfExists")
    if name not in BASE_OPERATORS or (if_exists and name == "Null"):
        raise UnsupportedOperator(f"unknown condition operator {text!r}")
    return Operator(name, if_exists, set_op)


@dataclass(frozen=True)
class Clause:
    operator: str  # as written in the policy
    key: str
    values: tuple[str, ...]


def iter_clauses(conditions: Conditions) -> Iterator[Clause]:
    for operator, keys in conditions.items():
        for key, values in keys.items():
            yield Clause(operator, key, tuple(values))


# ------------------------------------------------------------------ value comparisons


def _parse_date(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", text):  # epoch seconds, as aws:EpochTime
        return datetime.fromtimestamp(float(text), tz=UTC)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _parse_number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _bool_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


@lru_cache(maxsize=2048)
def _glob(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    return re.compile(glob_regex(pattern), re.IGNORECASE if ignore_case else 0)


def _arn_like(context_value: str, pattern: str) -> bool:
    got = context_value.split(":", 5)
    want = pattern.split(":", 5)
    if len(got) != 6 or len(want) != 6:
        return False
    return all(_glob(w).match(g) for g, w in zip(got, want, strict=True))


def _ip_in(context_value: Any, cidr: str) -> bool:
    try:
        addr = ipaddress.ip_address(str(context_value))
        net = ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError:
        return False
    return addr.version == net.version and addr in net


def _compare_one(base: str, context_value: Any, policy_value: str) -> bool | None:
    """A positive (non-negated) operator on one context value and one policy value. None: incomparable."""
    match base:
        case "StringEquals" | "BinaryEquals":
            return str(context_value) == policy_value
        case "StringEqualsIgnoreCase":
            return str(context_value).lower() == policy_value.lower()
        case "StringLike":
            return bool(_glob(policy_value).match(str(context_value)))
        case "Bool":
            return _bool_text(context_value) == policy_value.lower()
        case "IpAddress":
            return _ip_in(context_value, policy_value)
        case "ArnEquals" | "ArnLike":  # documented to behave identically, wildcards in each part
            return _arn_like(str(context_value), policy_value)
    if base.startswith("Numeric"):
        a, b = _parse_number(context_value), _parse_number(policy_value)
    elif base.startswith("Date"):
        a, b = _parse_date(context_value), _parse_date(policy_value)  # type: ignore[assignment]
    else:
        raise UnsupportedOperator(base)
    if a is None or b is None:
        return None
    op = base.removeprefix("Numeric").removeprefix("Date")
    return {
        "Equals": a == b,
        "LessThan": a < b,
        "LessThanEquals": a <= b,
        "GreaterThan": a > b,
        "GreaterThanEquals": a >= b,
    }[op]


def _single_value(op: Operator, context_value: Any, policy_values: tuple[str, ...]) -> Tri:
    """One request value against the policy's values (OR; NOR for a negated operator)."""
    base = _POSITIVE_OF.get(op.base, op.base)
    results = [_compare_one(base, context_value, pv) for pv in policy_values]
    if any(r is True for r in results):
        matched: Tri = True
    elif all(r is False for r in results):
        matched = False
    else:
        matched = None
    if matched is None:
        return None
    return (not matched) if op.negated else matched


# ------------------------------------------------------------------ clauses and blocks


def _lookup(context: Mapping[str, Any], key: str) -> Any:
    lowered = key.lower()
    for k, v in context.items():
        if k.lower() == lowered:
            return v
    return _MISSING


def _resolve_variables(values: tuple[str, ...], context: Mapping[str, Any]) -> tuple[str, ...] | None:
    """Substitute ${key} policy variables; None when one cannot be resolved from what is known."""
    if not any("${" in v for v in values):
        return values
    out = []
    for v in values:
        unresolved = False

        def sub(m: re.Match[str]) -> str:
            nonlocal unresolved
            name = m.group(1)
            if name in ("*", "?", "$"):
                return name
            var, _, default = name.partition(", ")
            got = _lookup(context, var)
            if got is _MISSING and default:
                return default.strip("'")
            if got is _MISSING or got is UNKNOWN or got is PRESENT or isinstance(got, list):
                unresolved = True
                return ""
            return str(got)

        text = re.sub(r"\$\{([^}]+)\}", sub, v)
        if unresolved:
            return None
        out.append(text)
    return tuple(out)


def evaluate_clause(clause: Clause, context: Mapping[str, Any]) -> Tri:
    """One operator/key/values triple against the request context."""
    try:
        op = parse_operator(clause.operator)
    except UnsupportedOperator:
        return None
    got = _lookup(context, clause.key)

    if op.base == "Null":
        # "true": the key must be absent; "false": present
        if got is UNKNOWN:
            return None
        absent = got is _MISSING or (isinstance(got, list) and not got)
        return any((v.lower() == "true") == absent for v in clause.values)

    if got is UNKNOWN:
        return None
    values = _resolve_variables(clause.values, context)
    if values is None:
        return None

    if op.set_op is not None:
        members = [] if got is _MISSING else (got if isinstance(got, list) else [got])
        if not members:
            # ForAllValues over nothing is vacuously true; ForAnyValue needs one match
            return op.set_op == "ForAllValues"
        if got is PRESENT or any(m is PRESENT for m in members):
            return None
        results = [_single_value(op, m, values) for m in members]
        if op.set_op == "ForAllValues":
            if any(r is False for r in results):
                return False
            return True if all(r is True for r in results) else None
        if any(r is True for r in results):
            return True
        return False if all(r is False for r in results) else None

    if got is _MISSING:
        return op.if_exists or op.negated
    if got is PRESENT:
        return None
    if isinstance(got, list):
        # a multivalued key without a set operator: AWS treats it as matching any member;
        # the guide advises against it, so we do not pretend to know
        return None
    return _single_value(op, got, values)


def evaluate_conditions(conditions: Conditions, context: Mapping[str, Any]) -> Tri:
    """A whole Condition block: every clause must hold. False wins over unknown."""
    results = [evaluate_clause(c, context) for c in iter_clauses(conditions)]
    if any(r is False for r in results):
        return False
    return True if all(r is True for r in results) else None

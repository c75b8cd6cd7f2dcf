"""CloudTrail record (a dict) -> one row of the event table.

Real records are messier than the documentation: failed calls carry no request parameters
(the role and caller survive only in `errorMessage`), the role owner's copy of a cross-account
call knows the caller only as an account, `sourceIPAddress` may be a service name or not an
address at all, and exports stringify booleans and numbers. Nothing here guesses: a field the
record lacks stays null.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from datetime import UTC, datetime
from typing import Any

from monitor.events.schema import ASSUME_ROLE_EVENTS, COLUMNS

COLUMN_NAMES = tuple(COLUMNS)

# "User: <arn> is not authorized to perform: sts:AssumeRole on resource: <arn>[ because ...]"
_DENIED_RE = re.compile(
    r"User: (?P<caller>arn:[^\s]+) is not authorized to perform: (?P<action>sts:\w+)"
    r"(?: on resource: (?P<resource>arn:[^\s]+))?"
)
_ARN_TAIL = ".,;:)"
_ROLE_ARN_RE = re.compile(r"^arn:aws[\w-]*:iam::(\d{12}):role/(.+)$")
_ASSUMED_ROLE_RE = re.compile(r"^arn:aws[\w-]*:sts::(\d{12}):assumed-role/([^/]+)/(.+)$")
_ACCOUNT_IN_ARN_RE = re.compile(r"^arn:aws[\w-]*:[\w-]+::(\d{12}):")
# AssumeRoot's targetPrincipal: "the member account principal ARN or account ID" (STS API reference)
_TARGET_ACCOUNT_RE = re.compile(r"^(?:arn:aws[\w-]*:[\w-]+::)?(\d{12})(?::|$)")
_ROOT_ARN_RE = re.compile(r"^arn:aws[\w-]*:iam::\d{12}:root$")
_PARTITION_RE = re.compile(r"^arn:(aws[\w-]*):")
_EXPIRATION_FORMATS = ("%b %d, %Y, %I:%M:%S %p", "%b %d, %Y %I:%M:%S %p")
# the same two formats without strptime, which costs ~100 us a call on the scan hot path
_EXPIRATION_RE = re.compile(r"^(\w{3}) (\d{1,2}), (\d{4}),? (\d{1,2}):(\d{2}):(\d{2}) ([AP]M)$")
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                                         "Nov", "Dec"), 1)}
# record format majors this parser understands; a new major may move fields, so it is reported, not guessed
SUPPORTED_EVENT_VERSION_MAJORS = frozenset({"1"})


class RecordError(ValueError):
    """A record that cannot become a row (reported with its file and position, then skipped)."""


def is_assume_role_record(record: dict[str, Any]) -> bool:
    name = record.get("eventName")
    return isinstance(name, str) and name in ASSUME_ROLE_EVENTS and record.get("eventSource", "sts.amazonaws.com") in (
        "sts.amazonaws.com",
        None,
    )


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _s(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def parse_event_time(value: Any) -> datetime | None:
    """ISO 8601 with Z, or the `2024-06-02 20:27:12[.000000000]` form of some exports."""
    if not isinstance(value, str) or not value:
        return None
    if len(value) == 20 and value[10] == "T" and value[19] == "Z":  # CloudTrail's own form: the hot path
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    text = value.strip().replace(" ", "T", 1)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Python's fromisoformat takes at most microseconds
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", text)
    if m and m.group(2) and len(m.group(2)) > 7:
        text = m.group(1) + m.group(2)[:7] + m.group(3)
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def parse_expiration(value: Any) -> datetime | None:
    """`Jul 5, 2021 1:18:34 PM` (and the comma variant) in UTC, or ISO 8601."""
    if not isinstance(value, str) or not value:
        return None
    m = _EXPIRATION_RE.match(value.strip())
    if m and m.group(1) in _MONTHS and 1 <= int(m.group(4)) <= 12:
        hour = int(m.group(4)) % 12 + (12 if m.group(7) == "PM" else 0)
        try:
            return datetime(int(m.group(3)), _MONTHS[m.group(1)], int(m.group(2)), hour, int(m.group(5)),
                            int(m.group(6)), tzinfo=UTC)
        except ValueError:
            return None  # Feb 30 and the like: strptime would refuse it too
    for fmt in _EXPIRATION_FORMATS:
        try:
            return datetime.strptime(value.strip(), fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return parse_event_time(value)


def classify_source(value: Any) -> tuple[str | None, str | None]:
    """sourceIPAddress -> (valid IP or None, AWS service name or None)."""
    if not isinstance(value, str) or not value:
        return None, None
    return _classify_address(value)


@functools.lru_cache(maxsize=65536)  # a trail repeats its callers' addresses; ip_address() is slow
def _classify_address(value: str) -> tuple[str | None, str | None]:
    if value == "AWS Internal" or value.endswith(".amazonaws.com"):
        return None, value
    try:
        return str(ipaddress.ip_address(value)), None
    except ValueError:
        return None, None


def account_of_arn(arn: str | None) -> str | None:
    if not arn:
        return None
    m = _ACCOUNT_IN_ARN_RE.match(arn)
    return m.group(1) if m else None


def role_arn_of_session(arn: str | None) -> str | None:
    """arn:aws:sts::A:assumed-role/R/S -> arn:aws:iam::A:role/R (path unknown from a session ARN)."""
    if not arn:
        return None
    m = _ASSUMED_ROLE_RE.match(arn)
    if not m:
        return None
    partition = arn.split(":", 2)[1]
    return f"arn:{partition}:iam::{m.group(1)}:role/{m.group(2)}"


def partition_of(caller_arn: str | None, region: str | None) -> str:
    """The caller's partition: from its ARN, else from the region (a region is in exactly one partition)."""
    m = _PARTITION_RE.match(caller_arn or "")
    if m:
        return m.group(1)
    if (region or "").startswith("cn-"):
        return "aws-cn"
    if (region or "").startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def root_arn(target_principal: str | None, partition: str) -> str | None:
    """AssumeRoot's targetPrincipal (account id or ARN) -> `arn:<partition>:iam::<account>:root`.

    The event table has no column for "the root user of the target account", so AssumeRoot rows
    carry it in `role_arn` in the form IAM uses for an account's root principal: every detector
    that groups by role then groups by target account, and no IAM role ever has this ARN.
    """
    m = _TARGET_ACCOUNT_RE.match(target_principal or "")
    return f"arn:{partition}:iam::{m.group(1)}:root" if m else None


def is_root_arn(arn: str | None) -> bool:
    """An account's root principal (`arn:PARTITION:iam::ACCOUNT:root`): an AssumeRoot row's role, never an IAM role."""
    return bool(arn and _ROOT_ARN_RE.match(arn))


def _assume_root_target(req: dict[str, Any], ident: dict[str, Any], record: dict[str, Any],
                        denied_role: str | None) -> str | None:
    """The root ARN an AssumeRoot row names as its role: from targetPrincipal, else from a refusal's message."""
    target = root_arn(_s(req.get("targetPrincipal")), partition_of(_s(ident.get("arn")), _s(record.get("awsRegion"))))
    if target is None and is_root_arn(denied_role):
        return denied_role  # a refused call may carry no request parameters
    return target


def parse_denied_message(message: str | None) -> tuple[str | None, str | None]:
    """errorMessage of an AccessDenied AssumeRole-family call -> (caller ARN, role ARN).

    A refused sts:AssumeRoot names the target account's root (`arn:aws:iam::ACCOUNT:root`) as its resource.
    """
    if not message:
        return None, None
    m = _DENIED_RE.search(message)
    if not m:
        return None, None
    caller = m.group("caller").rstrip(_ARN_TAIL)
    resource = m.group("resource")
    return caller, resource.rstrip(_ARN_TAIL) if resource else None


def normalise(record: dict[str, Any]) -> dict[str, Any]:
    """One AssumeRole-family record -> one row (a dict keyed by the schema's column names)."""
    return dict(zip(COLUMN_NAMES, normalise_values(record), strict=True))


def normalise_values(record: dict[str, Any]) -> tuple[Any, ...]:
    """One AssumeRole-family record -> its row's values in column order (the scan's hot path)."""
    if not isinstance(record, dict):
        raise RecordError("record is not a JSON object")
    event_id = _s(record.get("eventID"))
    if not event_id:
        raise RecordError("record has no eventID")
    event_version = _s(record.get("eventVersion"))
    if event_version is not None and event_version.split(".", 1)[0].strip() not in SUPPORTED_EVENT_VERSION_MAJORS:
        raise RecordError(f"unknown eventVersion {event_version!r} (this parser reads 1.x)")
    event_name = record.get("eventName")
    if event_name not in ASSUME_ROLE_EVENTS:
        raise RecordError(f"not an AssumeRole-family event: {event_name!r}")

    ident = _d(record.get("userIdentity"))
    req = _d(record.get("requestParameters"))
    resp = _d(record.get("responseElements"))
    creds = _d(resp.get("credentials"))
    assumed_user = _d(resp.get("assumedRoleUser"))
    session_ctx = _d(ident.get("sessionContext"))
    issuer = _d(session_ctx.get("sessionIssuer"))
    attrs = _d(session_ctx.get("attributes"))

    error_code = _s(record.get("errorCode"))
    error_message = _s(record.get("errorMessage"))
    denied_caller, denied_role = parse_denied_message(error_message)

    if event_name == "AssumeRoot":
        role_arn = _assume_root_target(req, ident, record, denied_role)
    else:
        role_arn = _s(req.get("roleArn")) or denied_role
        if not role_arn:
            for res in record.get("resources") or []:
                if isinstance(res, dict) and res.get("type") == "AWS::IAM::Role":
                    role_arn = _s(res.get("ARN") or res.get("arn"))
                    break

    principal_type = _s(ident.get("type"))
    principal_arn = _s(ident.get("arn")) or denied_caller
    principal_service = _s(ident.get("invokedBy")) if principal_type == "AWSService" else None
    principal_account = _s(ident.get("accountId")) or account_of_arn(principal_arn)
    principal_id = _s(ident.get("principalId"))
    identity_provider = _s(ident.get("identityProvider"))
    if event_name == "AssumeRoleWithSAML":
        identity_provider = identity_provider or _s(req.get("principalArn"))
    elif event_name == "AssumeRoleWithWebIdentity":
        identity_provider = identity_provider or _s(req.get("providerId"))
    if principal_type in ("SAMLUser", "WebIdentityUser"):
        principal_id = principal_id or _s(ident.get("userName"))

    principal_role_arn = _s(issuer.get("arn")) if issuer.get("type") == "Role" else None
    if not principal_role_arn:
        principal_role_arn = role_arn_of_session(principal_arn)

    if principal_arn:
        principal_key = principal_arn
    elif principal_service:
        principal_key = principal_service
    elif principal_type in ("SAMLUser", "WebIdentityUser") and identity_provider:
        principal_key = f"{identity_provider}:{_s(ident.get('userName')) or principal_id}"
    elif principal_id or principal_account:
        principal_key = f"{principal_account or '?'}:{principal_id or '?'}"
    else:
        principal_key = None

    source_ip, via_service = classify_source(record.get("sourceIPAddress"))
    role_account = account_of_arn(role_arn)

    mfa = _bool(attrs.get("mfaAuthenticated"))
    if req.get("serialNumber") or req.get("tokenCode"):
        mfa = True

    external_id_supplied: bool | None = None
    if req:
        external_id_supplied = bool(req.get("externalId"))

    source_identity = _s(req.get("sourceIdentity")) or _s(resp.get("sourceIdentity"))
    source_identity = source_identity or _s(ident.get("sourceIdentity")) or _s(session_ctx.get("sourceIdentity"))

    is_cross: bool | None = None
    if role_account and principal_account:
        is_cross = role_account != principal_account
    elif role_account and principal_service:
        is_cross = False

    # the order of COLUMNS (a test holds them together)
    return (
        event_id,  # event_id
        _s(record.get("sharedEventID")),  # shared_event_id
        parse_event_time(record.get("eventTime")),  # event_time
        event_name,  # event_name
        event_version,  # event_version
        _s(record.get("recipientAccountId")) or role_account,  # account_id
        _s(record.get("awsRegion")),  # aws_region
        role_arn,  # role_arn
        role_account,  # role_account_id
        _s(req.get("roleSessionName")),  # role_session_name
        principal_arn,  # principal_arn
        principal_type,  # principal_type
        principal_id,  # principal_id
        principal_account,  # principal_account_id
        principal_role_arn,  # principal_role_arn
        principal_service,  # principal_service
        principal_key,  # principal_key
        identity_provider,  # identity_provider
        _s(ident.get("accessKeyId")),  # caller_access_key_id
        source_ip,  # source_ip
        _s(record.get("sourceIPAddress")),  # source_ip_raw
        via_service,  # via_aws_service
        _s(record.get("userAgent")),  # user_agent
        error_code,  # error_code
        error_message,  # error_message
        external_id_supplied,  # external_id_supplied
        mfa,  # mfa_authenticated
        _int(req.get("durationSeconds")),  # duration_seconds
        source_identity,  # source_identity
        _s(assumed_user.get("arn")),  # assumed_role_arn
        _s(creds.get("accessKeyId")),  # access_key_id
        parse_expiration(creds.get("expiration")),  # credentials_expiration
        is_cross,  # is_cross_account
        error_code is None,  # success
    )

"""What the push-down sources (Athena, CloudTrail Lake, Logs Insights) share.

Each dialect's `assume_role_events` query returns the same flat *push-down record columns*.
`record_from_columns` rebuilds a CloudTrail-shaped record from one such row, so the row goes
through the very `normalise` the file and S3 paths use: the findings cannot depend on which path
produced the events. Secrets never leave the store: the queries return only whether an
ExternalId or an MFA code was supplied, and the rebuilt record carries a placeholder instead.

Query files are parameterised with `{{name}}` placeholders; `{{include _fragment}}` pastes a
fragment file shared by several queries. Values are rendered as SQL literals
here, from validated Python values only (datetimes, account IDs, region names, identifiers), so
nothing a config file holds is pasted into SQL unchecked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor import aws
from monitor.collectors.base import RECORDS_PER_BATCH, Batch, Collector, CycleWindow, RawRecord, Span
from queries import query_text

# what the rebuilt record carries in place of a supplied ExternalId / MFA code
SUPPLIED = "(supplied; value not read)"

PUSHDOWN_COLUMNS: tuple[str, ...] = (
    "event_version", "event_time", "event_source", "event_name", "aws_region", "source_ip_address",
    "user_agent", "error_code", "error_message", "event_id", "shared_event_id", "recipient_account_id",
    "ui_type", "ui_principal_id", "ui_arn", "ui_account_id", "ui_invoked_by", "ui_access_key_id",
    "ui_user_name", "ui_identity_provider", "issuer_type", "issuer_arn", "mfa_authenticated",
    "ui_source_identity", "rp_present", "rp_role_arn", "rp_role_session_name", "rp_duration_seconds",
    "rp_source_identity", "rp_principal_arn", "rp_provider_id", "rp_target_principal",
    "rp_external_id_supplied", "rp_mfa_supplied", "re_assumed_role_arn", "re_access_key_id", "re_expiration", "re_source_identity",
    "resource_role_arn",
)

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_INCLUDE = re.compile(r"\{\{include (\w+)\}\}")
_IDENTIFIER = re.compile(r"^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)?$")
_EVENT_DATA_STORE = re.compile(r"^(arn:aws[\w-]*:cloudtrail:[\w-]+:\d{12}:eventdatastore/)?[\w-]+$")
_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


class PushdownError(RuntimeError):
    """A push-down query failed, was cancelled or timed out (the message names the query)."""


# --------------------------------------------------------------------------- rendering


def render(template: str, **params: str) -> str:
    """Fill `{{name}}` placeholders; a missing or unused parameter is a programming error."""
    used: set[str] = set()

    def fill(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in params:
            raise KeyError(f"query parameter {name!r} not given")
        used.add(name)
        return params[name]

    text = _PLACEHOLDER.sub(fill, template)
    unused = set(params) - used
    if unused:
        raise KeyError(f"query does not take {sorted(unused)}")
    return text


def query_source(dialect: str, name: str) -> str:
    """A query file with its `{{include _fragment}}`s expanded (fragments shared by several queries)."""
    suffix = ".logsinsights" if dialect == "logs_insights" else ".sql"
    lines = query_text(dialect, name + suffix).splitlines()
    while lines and lines[0].lstrip().startswith(("--", "#")):
        lines.pop(0)  # the file's header is documentation; not every service accepts comments
    text = "\n".join(lines) + "\n"
    return _INCLUDE.sub(lambda m: query_source(dialect, m.group(1)).rstrip("\n"), text)


def load_query(dialect: str, name: str, **params: str) -> str:
    return render(query_source(dialect, name), **params)


def sql_identifier(name: str) -> str:
    """`table` or `database.table`, checked, each part double-quoted."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a table name: {name!r}")
    return ".".join(f'"{part}"' for part in name.split("."))


def event_data_store_id(value: str) -> str:
    if not _EVENT_DATA_STORE.match(value):
        raise ValueError(f"not an event data store ARN or ID: {value!r}")
    return value.rsplit("/", 1)[-1]


def _checked_list(values: Iterable[str] | None, pattern: re.Pattern[str], what: str) -> tuple[str, str]:
    """(all_flag, quoted list) for `(all OR col IN (list))` filters."""
    if not values:
        return "TRUE", "''"
    for v in values:
        if not pattern.match(v):
            raise ValueError(f"not {what}: {v!r}")
    return "FALSE", ", ".join(f"'{v}'" for v in values)


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError("push-down windows need timezone-aware datetimes")
    return t.astimezone(UTC)


def athena_params(table: str, start: datetime, end: datetime, *, accounts: Iterable[str] | None = None,
                  regions: Iterable[str] | None = None) -> dict[str, str]:
    """Parameters of the Athena queries: the window, and the partitions it needs (inclusive days)."""
    start, end = _utc(start), _utc(end)
    last_day = end - timedelta(microseconds=1) if end > start else end
    all_accounts, account_list = _checked_list(accounts, _ACCOUNT, "an account ID")
    all_regions, region_list = _checked_list(regions, _REGION, "a region")
    return {
        "table": sql_identifier(table),
        "start": start.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "end": end.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "start_day": start.strftime("%Y/%m/%d"),
        "end_day": last_day.strftime("%Y/%m/%d"),
        "all_accounts": all_accounts,
        "accounts": account_list,
        "all_regions": all_regions,
        "regions": region_list,
    }


def lake_params(event_data_store: str, start: datetime, end: datetime) -> dict[str, str]:
    return {
        "event_data_store": event_data_store_id(event_data_store),
        "start": _utc(start).strftime("%Y-%m-%d %H:%M:%S"),
        "end": _utc(end).strftime("%Y-%m-%d %H:%M:%S"),
    }


# --------------------------------------------------------------------------- rows -> records


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1")


def _prune(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v != {}}


def record_from_columns(row: Mapping[str, Any]) -> dict[str, Any]:
    """One row of push-down record columns -> the CloudTrail-shaped record `normalise` reads."""
    g = row.get
    request: dict[str, Any] | None = None
    if _truthy(g("rp_present")):
        request = _prune({
            "roleArn": g("rp_role_arn"),
            "roleSessionName": g("rp_role_session_name"),
            "durationSeconds": g("rp_duration_seconds"),
            "sourceIdentity": g("rp_source_identity"),
            "principalArn": g("rp_principal_arn"),
            "providerId": g("rp_provider_id"),
            "targetPrincipal": g("rp_target_principal"),
            "serialNumber": SUPPLIED if _truthy(g("rp_mfa_supplied")) else None,
        })
        # present even when not supplied, so the record still says "request parameters were there"
        request["externalId"] = SUPPLIED if _truthy(g("rp_external_id_supplied")) else None
    response = _prune({
        "assumedRoleUser": _prune({"arn": g("re_assumed_role_arn")}),
        "credentials": _prune({"accessKeyId": g("re_access_key_id"), "expiration": g("re_expiration")}),
        "sourceIdentity": g("re_source_identity"),
    })
    session_context = _prune({
        "sessionIssuer": _prune({"type": g("issuer_type"), "arn": g("issuer_arn")}),
        "attributes": _prune({"mfaAuthenticated": g("mfa_authenticated")}),
        "sourceIdentity": g("ui_source_identity"),
    })
    identity = _prune({
        "type": g("ui_type"),
        "principalId": g("ui_principal_id"),
        "arn": g("ui_arn"),
        "accountId": g("ui_account_id"),
        "invokedBy": g("ui_invoked_by"),
        "accessKeyId": g("ui_access_key_id"),
        "userName": g("ui_user_name"),
        "identityProvider": g("ui_identity_provider"),
        "sessionContext": session_context,
    })
    record = _prune({
        "eventVersion": g("event_version"),
        "eventTime": g("event_time"),
        "eventSource": g("event_source"),
        "eventName": g("event_name"),
        "awsRegion": g("aws_region"),
        "sourceIPAddress": g("source_ip_address"),
        "userAgent": g("user_agent"),
        "errorCode": g("error_code"),
        "errorMessage": g("error_message"),
        "eventID": g("event_id"),
        "sharedEventID": g("shared_event_id"),
        "recipientAccountId": g("recipient_account_id"),
        "userIdentity": identity,
    })
    record["requestParameters"] = request
    record["responseElements"] = response or None
    if g("resource_role_arn"):
        record["resources"] = [{"type": "AWS::IAM::Role", "ARN": g("resource_role_arn")}]
    return record


# --------------------------------------------------------------------------- polling


@dataclass(frozen=True)
class Backoff:
    """Poll delays: `first`, growing by `factor` up to `cap`; give up after `timeout` seconds of waiting."""

    first: float = 0.5
    factor: float = 1.6
    cap: float = 10.0
    timeout: float = 1800.0

    def delays(self) -> Iterable[float]:
        delay, waited = self.first, 0.0
        while waited < self.timeout:
            step = min(delay, self.cap, self.timeout - waited)
            yield step
            waited += step
            delay *= self.factor


def wait_until_done(check: Callable[[], bool], *, sleep: Callable[[float], None], backoff: Backoff,
                    what: str) -> None:
    """Call `check` (True: done; it raises on failure) until done, sleeping between calls."""
    if check():
        return
    for delay in backoff.delays():
        sleep(delay)
        if check():
            return
    raise PushdownError(f"{what}: still running after {backoff.timeout:.0f} s; gave up")


# --------------------------------------------------------------------------- the source


class PushdownCollector(Collector):
    """A push-down source for the pipeline: one window per cycle, from its checkpoint to `until`.

    Records go out in batches as the query service pages them; the checkpoint moves only when
    the whole window has been read, so a query that fails or times out is asked again, from the
    same point, next cycle (seen event IDs keep the re-read from counting twice).
    """

    service: str = ""

    def rows(self, client: Any, start: datetime, end: datetime) -> Iterator[tuple[str, str, dict[str, Any]]]:
        raise NotImplementedError

    def batches(self, window: CycleWindow) -> Iterator[Batch]:
        start, end = self.start_for(window), window.until
        span = Span(start, end)
        self.spans.append(span)
        client = aws.client(self.service, self.config.aws)
        batch = Batch(span=span)
        for origin, position, record in self.rows(client, start, end):
            batch.records.append(RawRecord(record, origin, position))
            batch.delivered += 1
            if len(batch.records) >= RECORDS_PER_BATCH:
                yield batch
                batch = Batch(span=span)
        batch.checkpoints["position"] = self.checkpoint_value("position", end)
        yield batch

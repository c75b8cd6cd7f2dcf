"""The TOML configuration, as pydantic models.

This module is the only place defaults live. Every key here is a public interface: it is
documented in the README and a rename is a breaking change.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITY_ORDER: dict[str, int] = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


class ConfigError(Exception):
    """A configuration problem, already phrased for the user (file and dotted key)."""


def _account_id(value: Any) -> Any:
    # an account id is not a secret: the message quotes it, so the typo is found at once, not as an
    # account that never matches (an allowlist entry, a trusted account) or an empty S3 listing
    if isinstance(value, str) and re.fullmatch(r"\d{12}", value):
        return value
    number = isinstance(value, int) and not isinstance(value, bool)
    raise ValueError(f"{value!r} is not a 12-digit account id in quotes"
                     + (" (a TOML number drops leading zeros)" if number else ""))


AccountId = Annotated[str, BeforeValidator(_account_id)]


class _Model(BaseModel):
    # A typo in a key is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid", frozen=False)


# --------------------------------------------------------------------------- secrets


class SecretRef(_Model):
    """Where a secret lives. Exactly one of env / secretsmanager / ssm.

    Inline values are accepted only through `value` for tests and demos and are masked
    everywhere they are printed.
    """

    env: str | None = None
    secretsmanager: str | None = None  # secret id or ARN; optional "#jsonkey" suffix
    ssm: str | None = None  # SecureString parameter name
    value: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        given = [k for k in ("env", "secretsmanager", "ssm", "value") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of env, secretsmanager, ssm, value")
        return self


# --------------------------------------------------------------------------- state / aws


class StateConfig(_Model):
    backend: Literal["sqlite", "dynamodb"] = "sqlite"
    path: str = ".rolewatch/state.db"
    dynamodb_table: str = "rolewatch-state"
    seen_retention_days: int = Field(default=30, ge=1)
    findings_retention_days: int = Field(default=400, ge=1)


class AwsConfig(_Model):
    region: str = "us-east-1"
    endpoint_url: str | None = None
    profile: str | None = None
    max_attempts: int = Field(default=10, ge=1)  # botocore adaptive retry mode


# --------------------------------------------------------------------------- sources


class _SourceBase(_Model):
    name: str | None = None  # defaults to a stable id derived from type and location
    enabled: bool = True


class LocalSource(_SourceBase):
    type: Literal["local"]
    path: str


class S3Source(_SourceBase):
    type: Literal["s3"]
    bucket: str
    prefix: str = ""
    accounts: list[AccountId] | None = None
    regions: list[str] | None = None
    max_workers: int = Field(default=16, ge=1, le=128)


class CloudWatchLogsSource(_SourceBase):
    type: Literal["cloudwatch_logs"]
    log_groups: list[str] = Field(min_length=1)
    filter_pattern: str = "assume_role_family"  # name of a file in queries/filter_patterns
    requests_per_second: float = Field(default=5.0, gt=0)
    # one FilterLogEvents query (and checkpoint) per slice: a crash re-reads at most one slice
    slice_minutes: int = Field(default=1440, ge=1)
    # slices fetched at once (across all log groups); they still share the one requests_per_second
    # bucket, so more workers only hide request latency, never raise the rate (32: the client's
    # connection pool)
    max_workers: int = Field(default=4, ge=1, le=32)


class LookupEventsSource(_SourceBase):
    type: Literal["lookup_events"]
    regions: list[str] | None = None
    requests_per_second: float = Field(default=2.0, gt=0)
    # None: the account of rolewatch's own credentials. Event history is per account, so an
    # organisation without an org trail is read account by account through the audit role:
    # "organization" (the accounts [organization] puts in scope) or these account ids
    accounts: Literal["organization"] | list[AccountId] | None = None

    @field_validator("accounts", mode="before")
    @classmethod
    def _organization_or_account_ids(cls, value: Any) -> Any:
        # checked here so a mistake reads as one line, not as one error per branch of the union
        if value is None or value == "organization":
            return value
        if not isinstance(value, list):
            raise ValueError(f'expected "organization" or a list of 12-digit account ids, not {value!r}')
        return [_account_id(account) for account in value]


class AthenaSource(_SourceBase):
    type: Literal["athena"]
    database: str = "default"
    table: str = "cloudtrail_logs"
    workgroup: str = "primary"
    output_location: str | None = None


class CloudTrailLakeSource(_SourceBase):
    type: Literal["cloudtrail_lake"]
    event_data_store: str


class LogsInsightsSource(_SourceBase):
    type: Literal["logs_insights"]
    log_groups: list[str] = Field(min_length=1)
    max_concurrent_queries: int = Field(default=4, ge=1, le=30)


Source = Annotated[
    LocalSource
    | S3Source
    | CloudWatchLogsSource
    | LookupEventsSource
    | AthenaSource
    | CloudTrailLakeSource
    | LogsInsightsSource,
    Field(discriminator="type"),
]


class CollectionConfig(_Model):
    initial_lookback_hours: float = Field(default=24, gt=0)
    overlap_minutes: float = Field(default=20, ge=0)  # CloudTrail delivers ~5 min late, no maximum


# --------------------------------------------------------------------------- organization


class OrganizationConfig(_Model):
    enabled: bool = False
    accounts: list[AccountId] | None = None  # explicit list; otherwise Organizations ListAccounts
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    audit_role_arn_template: str = "arn:aws:iam::{account_id}:role/rolewatch-audit"
    external_id: SecretRef | None = None
    session_duration_seconds: int = Field(default=900, ge=900, le=43200)
    max_workers: int = Field(default=8, ge=1, le=64)
    account_timeout_seconds: float = Field(default=300, gt=0)
    regions: list[str] = Field(default_factory=lambda: ["us-east-1"])


class PostureConfig(_Model):
    enabled: bool = True
    access_analyzer: bool = True
    last_accessed: bool = True
    last_accessed_granularity: Literal["SERVICE_LEVEL", "ACTION_LEVEL"] = "SERVICE_LEVEL"
    last_accessed_max_in_flight: int = Field(default=5, ge=1, le=50)
    last_accessed_cache_hours: float = Field(default=24, ge=0)


# --------------------------------------------------------------------------- detectors


class _DetectorBase(_Model):
    enabled: bool = True


class FailedAssumeRoleConfig(_DetectorBase):
    window_minutes: int = Field(default=10, ge=1)
    burst_threshold: int = Field(default=5, ge=1)
    enumeration_roles: int = Field(default=3, ge=2)


def _check_cidr(value: str) -> str:
    import ipaddress

    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"not a CIDR or IP address: {value!r}") from None
    return value


def _check_hours(value: str) -> str:
    import re

    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d", value):
        raise ValueError(f"expected HH:MM-HH:MM, got {value!r}")
    return value


def _check_timezone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r}") from None
    return value


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _check_days(value: list[str]) -> list[str]:
    bad = [d for d in value if d.lower() not in _WEEKDAYS]
    if bad:
        raise ValueError(f"unknown day {bad[0]!r}; use {', '.join(_WEEKDAYS)}")
    return [d.lower() for d in value]


class UnusualSourceIpConfig(_DetectorBase):
    learning_days: int = Field(default=14, ge=0)
    allowed_cidrs: list[str] = Field(default_factory=list)
    ipv4_prefix: int = Field(default=24, ge=0, le=32)
    ipv6_prefix: int = Field(default=64, ge=0, le=128)

    @field_validator("allowed_cidrs")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        return [_check_cidr(c) for c in v]


class OffHoursOverride(_Model):
    role_arn: str  # glob
    timezone: str | None = None
    business_hours: str | None = None
    business_days: list[str] | None = None

    _tz = field_validator("timezone")(lambda cls, v: v if v is None else _check_timezone(v))
    _hours = field_validator("business_hours")(lambda cls, v: v if v is None else _check_hours(v))
    _days = field_validator("business_days")(lambda cls, v: v if v is None else _check_days(v))


class OffHoursConfig(_DetectorBase):
    timezone: str = "UTC"
    business_hours: str = "08:00-18:00"
    business_days: list[str] = Field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"])
    holidays: list[str] = Field(default_factory=list)  # ISO dates, local to `timezone`
    exempt_principals: list[str] = Field(default_factory=list)  # ARN globs
    overrides: list[OffHoursOverride] = Field(default_factory=list)

    _tz = field_validator("timezone")(lambda cls, v: _check_timezone(v))
    _hours = field_validator("business_hours")(lambda cls, v: _check_hours(v))
    _days = field_validator("business_days")(lambda cls, v: _check_days(v))

    @field_validator("holidays")
    @classmethod
    def _holidays(cls, v: list[str]) -> list[str]:
        from datetime import date

        for d in v:
            try:
                date.fromisoformat(d)
            except ValueError:
                raise ValueError(f"not an ISO date (YYYY-MM-DD): {d!r}") from None
        return v


class UnusedRoleConfig(_DetectorBase):
    unused_days: int = Field(default=90, ge=1)
    unused_services_ratio: float = Field(default=0.5, ge=0, le=1)  # least-privilege finding


class FirstTimePrincipalConfig(_DetectorBase):
    learning_days: int = Field(default=14, ge=0)


class LongSessionConfig(_DetectorBase):
    max_duration_seconds: int = Field(default=3600, ge=900)


class WatchedRoleConfig(_DetectorBase):
    # role-ARN globs, matched case-insensitively: break-glass roles are named every which way
    roles: list[str] = Field(default_factory=lambda: [
        "arn:*:iam::*:role/OrganizationAccountAccessRole",
        "arn:*:iam::*:role/*BreakGlass*",
        "arn:*:iam::*:role/*break-glass*",
        "arn:*:iam::*:role/*break_glass*",
    ])
    severity: Severity = "high"
    include_failed: bool = False  # refused calls are failed_assume_role findings already
    root: bool = True  # any AssumeRole-family call by the account root user
    assume_root: bool = True  # every sts:AssumeRoot: a member account's root session (centralized root access)


class TrustPolicyConfig(_DetectorBase):
    trusted_accounts: list[AccountId] = Field(default_factory=list)
    organization_accounts: list[AccountId] = Field(default_factory=list)
    privileged_policy_patterns: list[str] = Field(
        default_factory=lambda: ["*AdministratorAccess*", "*PowerUserAccess*", "*IAMFullAccess*"]
    )
    expiry_warning_days: int = Field(default=14, ge=0)
    max_session_duration_seconds: int = Field(default=3600, ge=900, le=43200)


class MonitorHealthConfig(_DetectorBase):
    failed_cycles: int = Field(default=3, ge=1)
    max_silence_minutes: int = Field(default=60, ge=1)


class DetectorsConfig(_Model):
    failed_assume_role: FailedAssumeRoleConfig = Field(default_factory=FailedAssumeRoleConfig)
    unusual_source_ip: UnusualSourceIpConfig = Field(default_factory=UnusualSourceIpConfig)
    off_hours: OffHoursConfig = Field(default_factory=OffHoursConfig)
    unused_role: UnusedRoleConfig = Field(default_factory=UnusedRoleConfig)
    first_time_principal: FirstTimePrincipalConfig = Field(default_factory=FirstTimePrincipalConfig)
    long_session: LongSessionConfig = Field(default_factory=LongSessionConfig)
    watched_role: WatchedRoleConfig = Field(default_factory=WatchedRoleConfig)
    trust_policy: TrustPolicyConfig = Field(default_factory=TrustPolicyConfig)
    monitor_health: MonitorHealthConfig = Field(default_factory=MonitorHealthConfig)


class AllowlistEntry(_Model):
    cidr: str | None = None
    account: AccountId | None = None
    principal_arn: str | None = None  # glob
    role_arn: str | None = None  # glob
    user_agent: str | None = None  # glob
    detectors: list[str] | None = None  # None: every detector
    owner: str
    reason: str
    expires: str  # ISO date or datetime

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, v: str | None) -> str | None:
        return v if v is None else _check_cidr(v)

    @field_validator("expires")
    @classmethod
    def _expires(cls, v: str) -> str:
        from monitor.events.normalise import parse_event_time

        if parse_event_time(v if "T" in v else v + "T00:00:00Z") is None:
            raise ValueError(f"not an ISO date or datetime: {v!r}")
        return v

    @field_validator("detectors")
    @classmethod
    def _detectors(cls, v: list[str] | None) -> list[str] | None:
        from monitor.findings import DETECTORS

        bad = [d for d in v or [] if d not in DETECTORS]
        if bad:
            raise ValueError(f"unknown detector {bad[0]!r}")
        return v

    @model_validator(mode="after")
    def _has_matcher(self) -> AllowlistEntry:
        if not any((self.cidr, self.account, self.principal_arn, self.role_arn, self.user_agent)):
            raise ValueError("an allowlist entry needs at least one of cidr, account, principal_arn, role_arn, user_agent")
        return self


# --------------------------------------------------------------------------- notifiers


class _NotifierBase(_Model):
    name: str | None = None  # defaults to a stable id from type and target (see notifier_id)
    min_severity: Severity = "low"
    max_severity: Severity | None = None  # e.g. "medium" for a digest that leaves high to another notifier
    detectors: list[str] | None = None
    exclude_detectors: list[str] = Field(default_factory=list)
    digest: bool = False  # batch into one message per digest period instead of one each
    digest_period_hours: float = Field(default=24, gt=0)
    realert_hours: float | None = Field(default=None, gt=0)

    @field_validator("detectors", "exclude_detectors")
    @classmethod
    def _known_detectors(cls, names: list[str] | None) -> list[str] | None:
        from monitor.findings import DETECTORS

        for name in names or []:
            if name not in DETECTORS:
                raise ValueError(f"unknown detector {name!r} (known: {', '.join(DETECTORS)})")
        return names


class _Zoned(_Model):
    timezone: str = "UTC"  # Slack messages show times in UTC and in this zone

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone!r} (use an IANA name such as Europe/Berlin)") from None
        return zone


class SlackNotifier(_NotifierBase, _Zoned):
    type: Literal["slack"]
    channel: str
    token_env: str | None = "SLACK_BOT_TOKEN"
    token: SecretRef | None = None
    api_url: str = "https://slack.com/api/"


class _UrlTarget(_Model):
    url: str | None = None
    url_env: str | None = None  # name of the env var holding the URL (webhook URLs are secrets)

    @model_validator(mode="after")
    def _one_url(self) -> _UrlTarget:
        if bool(self.url) == bool(self.url_env):
            raise ValueError("give exactly one of url, url_env")
        return self


class SlackWebhookNotifier(_NotifierBase, _UrlTarget, _Zoned):
    type: Literal["slack_webhook"]


class WebhookNotifier(_NotifierBase, _UrlTarget):
    type: Literal["webhook"]
    secret_env: str | None = None  # HMAC-SHA256 shared secret
    signature_header: str = "X-Rolewatch-Signature"


class FileNotifier(_NotifierBase):
    type: Literal["file"]
    path: str


class ConsoleNotifier(_NotifierBase):
    type: Literal["console"]


class SnsNotifier(_NotifierBase):
    type: Literal["sns"]
    topic_arn: str


Notifier = Annotated[
    SlackNotifier | SlackWebhookNotifier | WebhookNotifier | FileNotifier | ConsoleNotifier | SnsNotifier,
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------- service


class JobSchedule(_Model):
    enabled: bool = True
    cron: str | None = None  # crontab expression (UTC); wins over interval
    interval_minutes: float | None = Field(default=None, gt=0)

    @field_validator("cron")
    @classmethod
    def _crontab(cls, cron: str | None) -> str | None:
        # checked here rather than when a trigger is built, so `check-config` and every command
        # reject it before any work, naming the file and key
        if cron is not None:
            from datetime import UTC

            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(cron, timezone=UTC)
            except ValueError as exc:
                raise ValueError(f"{cron!r} is not a crontab expression: {exc}") from None
        return cron

    @model_validator(mode="after")
    def _one_trigger(self) -> JobSchedule:
        if self.enabled and not self.cron and not self.interval_minutes:
            raise ValueError("give cron or interval_minutes")
        return self


class ScheduleConfig(_Model):
    collect: JobSchedule = Field(default_factory=lambda: JobSchedule(interval_minutes=5))
    posture: JobSchedule = Field(default_factory=lambda: JobSchedule(cron="0 3 * * *"))
    report: JobSchedule = Field(default_factory=lambda: JobSchedule(cron="0 6 * * mon"))
    retention: JobSchedule = Field(default_factory=lambda: JobSchedule(cron="30 4 * * *"))
    misfire_grace_seconds: int = Field(default=120, ge=1)


class MetricsConfig(_Model):
    enabled: bool = False
    port: int = Field(default=9108, ge=1, le=65535)
    address: str = "127.0.0.1"


class ReportConfig(_Model):
    period_days: int = Field(default=30, ge=1)
    formats: list[Literal["html", "md", "csv", "xlsx", "json"]] = Field(default_factory=lambda: ["html"])
    output_dir: str | None = "reports"
    s3_uri: str | None = None  # s3://bucket/prefix/ (SSE on)
    s3_kms_key_id: str | None = None  # SSE-KMS with this key; default SSE-S3 (AES256)
    slack_notifiers: list[str] = Field(default_factory=list)  # notifier names that get the summary

    @field_validator("s3_uri")
    @classmethod
    def _s3_uri(cls, uri: str | None) -> str | None:
        if uri is not None and (not uri.startswith("s3://") or not uri[5:].split("/")[0]):
            raise ValueError("expected s3://bucket/prefix/")
        return uri


class LoggingConfig(_Model):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "text"] = "auto"  # auto: JSON when not on a TTY


# --------------------------------------------------------------------------- root


class Config(_Model):
    state: StateConfig = Field(default_factory=StateConfig)
    aws: AwsConfig = Field(default_factory=AwsConfig)
    collection: CollectionConfig = Field(default_factory=CollectionConfig)
    sources: list[Source] = Field(default_factory=list)
    organization: OrganizationConfig = Field(default_factory=OrganizationConfig)
    posture: PostureConfig = Field(default_factory=PostureConfig)
    detectors: DetectorsConfig = Field(default_factory=DetectorsConfig)
    allowlist: list[AllowlistEntry] = Field(default_factory=list)
    notifiers: list[Notifier] = Field(default_factory=list)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    # where the file was read from; relative paths in it resolve against its folder
    source_path: str | None = Field(default=None, exclude=True)

    @field_validator("notifiers")
    @classmethod
    def _unique_notifier_names(cls, notifiers: list[Any]) -> list[Any]:
        # the name keys the outbox: two notifiers sharing one would swallow each other's alerts
        return _require_unique(notifiers, notifier_id, "notifiers")

    @field_validator("sources")
    @classmethod
    def _unique_source_names(cls, sources: list[Any]) -> list[Any]:
        return _require_unique(sources, source_id, "sources")

    @model_validator(mode="after")
    def _member_sources_need_the_organization(self) -> Config:
        # reading a member account goes through the audit role, which only [organization] configures
        for i, s in enumerate(self.sources):
            if s.type == "lookup_events" and s.accounts is not None and not self.organization.enabled:
                raise ValueError(f"sources[{i}].accounts: reading other accounts needs [organization] "
                                 "enabled = true (the audit role and its ExternalId)")
        return self

    @model_validator(mode="after")
    def _report_notifiers_exist(self) -> Config:
        names = {notifier_id(n) for n in self.notifiers}
        missing = [n for n in self.report.slack_notifiers if n not in names]
        if missing:
            raise ValueError(f"report.slack_notifiers: no notifier named {missing[0]!r} "
                             f"(known: {', '.join(sorted(names)) or 'none'})")
        return self

    def resolve_path(self, p: str) -> Path:
        path = Path(os.path.expanduser(p))
        if path.is_absolute() or not self.source_path:
            return path
        return Path(self.source_path).parent / path


def source_id(source: Any) -> str:
    """A stable name for a source: its checkpoint key in state."""
    if source.name:
        return source.name
    match source.type:
        case "local":
            return f"local:{source.path}"
        case "s3":
            return f"s3:{source.bucket}/{source.prefix}"
        case "cloudwatch_logs" | "logs_insights":
            return f"{source.type}:{','.join(source.log_groups)}"
        case "lookup_events":
            return "lookup_events"
        case "athena":
            return f"athena:{source.database}.{source.table}"
        case "cloudtrail_lake":
            return f"cloudtrail_lake:{source.event_data_store}"
    return source.type


def _require_unique(items: list[Any], name_of: Any, what: str) -> list[Any]:
    names = [name_of(item) for item in items]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ValueError(f"two {what} share the name {sorted(dupes)[0]!r}; give them distinct `name`s")
    return items


def notifier_id(notifier: Any) -> str:
    """A stable name for a notifier: its key in the outbox (so reordering the config resends nothing)."""
    if notifier.name:
        return str(notifier.name)
    match notifier.type:
        case "slack":
            return f"slack:{notifier.channel}"
        case "slack_webhook" | "webhook":
            if notifier.url_env:
                return f"{notifier.type}:{notifier.url_env}"
            # the URL itself is a credential: name it by a digest, never print it
            import hashlib

            return f"{notifier.type}:{hashlib.sha256(notifier.url.encode()).hexdigest()[:12]}"
        case "file":
            return f"file:{notifier.path}"
        case "sns":
            return f"sns:{notifier.topic_arn}"
    return str(notifier.type)


def _type_tags(union: Any) -> tuple[str, ...]:
    """The `type` values of a discriminated union of models, in declaration order."""
    members = get_args(get_args(union)[0])
    return tuple(get_args(m.model_fields["type"].annotation)[0] for m in members)


# the lists whose entries are told apart by `type`
TYPES_OF = {"sources": _type_tags(Source), "notifiers": _type_tags(Notifier)}


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            # pydantic puts the discriminator tag into the location of union members
            if out and any(part in tags for tags in TYPES_OF.values()):
                continue
            out += f".{part}" if out else str(part)
    return out


def _error_line(err: dict[str, Any]) -> str:
    """`dotted.key: message` for one pydantic error, in the words of the config file."""
    where, kind = _dotted(err["loc"]), err["type"]
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        # an entry of [[sources]] / [[notifiers]] whose `type` is missing or not one we know
        tags = ", ".join(TYPES_OF.get(str(err["loc"][0]), ()))
        if kind == "union_tag_not_found":
            return f"{where}.type: field required (one of {tags})"
        return f"{where}.type: unknown type {err['ctx']['tag']!r} (one of {tags})"
    if kind == "missing":
        msg = "field required"
    elif kind == "extra_forbidden":
        msg = "unknown key"
    else:
        msg = err["msg"].removeprefix("Value error, ")
    # the root's own checks name their key in the message (`report.slack_notifiers: ...`)
    return f"{where}: {msg}" if where else msg


def parse_config(data: dict[str, Any], *, filename: str = "<config>") -> Config:
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("\n".join(f"{filename}: {_error_line(e)}" for e in exc.errors())) from None
    cfg.source_path = filename if filename != "<config>" else None
    return cfg


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Read and validate a TOML file; `None` gives the defaults."""
    if path is None:
        return Config()
    p = Path(path)
    name = str(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name}: not valid TOML: {exc}") from None
    cfg = parse_config(data, filename=name)
    cfg.source_path = str(p)
    return cfg

"""The accounts in scope and a session into each: the Organization, audited the way it should be.

Accounts come from `organization.accounts` or Organizations ListAccounts (ACTIVE only), then
`include`/`exclude` (account ids or name globs). In each account rolewatch assumes
`audit_role_arn_template` with the ExternalId from a secret, session name
`rolewatch-<account>-<UTC date>`, and the shortest session that works with refreshing
credentials (see `effective_duration`); botocore refreshes the credentials before they expire,
so a long-running service never uses an expired session.

`run_per_account` processes accounts concurrently in a bounded pool; an account that cannot be
assumed, fails or runs past `account_timeout_seconds` is logged (account and error, redacted)
and returned in `errors`, and in `failures` with the step it stopped at (`assume_audit_role` or
the caller's step, e.g. `list_roles`) and the AWS error code, for the monitor_health detector;
the others finish.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import boto3
import botocore.loaders
import botocore.session
from botocore.credentials import CredentialProvider, CredentialResolver, RefreshableCredentials

from monitor.aws import client as make_client
from monitor.aws import session as base_session
from monitor.collectors import throttle
from monitor.config import Config, OrganizationConfig
from monitor.redact import redact_text
from monitor.secrets import resolve_secret

log = logging.getLogger(__name__)
T = TypeVar("T")

# botocore starts refreshing temporary credentials this long before they expire (advisory: one
# thread tries; mandatory: every caller waits). Ours are shorter than botocore's 15/10 minute
# defaults so that a 15-minute session is not re-assumed on every call.
ADVISORY_REFRESH_SECONDS = 5 * 60
MANDATORY_REFRESH_SECONDS = 2 * 60
MIN_DURATION_SECONDS = 900  # the STS minimum
ASSUME_AUDIT_ROLE = "assume_audit_role"  # the step of a failure to get a session into the account


@functools.cache
def _shared_loader() -> botocore.loaders.Loader:
    """One model loader for every account's session: service models are parsed once, not per account."""
    return botocore.loaders.create_loader()


@dataclass
class Account:
    account_id: str
    name: str | None = None


def effective_duration(org: OrganizationConfig) -> int:
    """The configured session duration, never below what STS accepts or refresh needs."""
    return max(MIN_DURATION_SECONDS, org.session_duration_seconds, ADVISORY_REFRESH_SECONDS * 2)


def session_name(account_id: str, now: datetime) -> str:
    return f"rolewatch-{account_id}-{now.astimezone(UTC):%Y-%m-%d}"


def _selected(account: Account, org: OrganizationConfig) -> bool:
    def hit(patterns: list[str]) -> bool:
        return any(
            fnmatch.fnmatchcase(account.account_id, p) or (account.name and fnmatch.fnmatchcase(account.name, p))
            for p in patterns
        )

    if org.include and not hit(org.include):
        return False
    return not hit(org.exclude)


def list_accounts(config: Config, session: Any = None) -> list[Account]:
    """Accounts in scope: the configured list, else every ACTIVE account of the Organization."""
    org = config.organization
    if org.accounts is not None:
        accounts = [Account(a) for a in org.accounts]
    else:
        orgs = make_client("organizations", config.aws, sess=session)
        accounts = []
        for page in orgs.get_paginator("list_accounts").paginate():
            for a in page["Accounts"]:
                # `State` replaces the deprecated `Status`; either says ACTIVE for a live account
                if (a.get("State") or a.get("Status")) == "ACTIVE":
                    accounts.append(Account(a["Id"], a.get("Name")))
    return sorted((a for a in accounts if _selected(a, org)), key=lambda a: a.account_id)


class _FixedProvider(CredentialProvider):
    METHOD = "rolewatch-assume-role"

    def __init__(self, credentials: RefreshableCredentials) -> None:
        self._credentials = credentials

    def load(self) -> RefreshableCredentials:
        return self._credentials


class AuditSessions:
    """Makes sessions into member accounts via the audit role, credentials refreshed by botocore."""

    def __init__(self, config: Config, *, now: datetime, source_session: Any = None,
                 clock: Callable[[], datetime] | None = None, on_assume: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.org = config.organization
        self.source = source_session or base_session(config.aws)
        self.now = now
        self._clock = clock
        self._on_assume = on_assume
        self._sts = make_client("sts", config.aws, sess=self.source)
        self._external_id = resolve_secret(self.org.external_id, session=self.source, aws=config.aws,
                                           what="organization.external_id")
        self._lock = threading.Lock()

    def role_arn(self, account_id: str) -> str:
        return self.org.audit_role_arn_template.format(account_id=account_id)

    def _fetcher(self, account_id: str) -> Callable[[], dict[str, Any]]:
        def fetch() -> dict[str, Any]:
            params: dict[str, Any] = {
                "RoleArn": self.role_arn(account_id),
                "RoleSessionName": session_name(account_id, self._clock() if self._clock else self.now),
                "DurationSeconds": effective_duration(self.org),
            }
            if self._external_id:
                params["ExternalId"] = self._external_id
            creds = self._sts.assume_role(**params)["Credentials"]
            if self._on_assume:
                self._on_assume(account_id)
            return {
                "access_key": creds["AccessKeyId"],
                "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"],
                "expiry_time": creds["Expiration"].isoformat(),
            }

        return fetch

    def credentials(self, account_id: str) -> RefreshableCredentials:
        """Assumes the role now (so a refusal surfaces here) and refreshes before expiry."""
        fetch = self._fetcher(account_id)
        first = fetch()
        kwargs: dict[str, Any] = {}
        if self._clock is not None:
            kwargs["time_fetcher"] = self._clock
        return RefreshableCredentials(
            first["access_key"], first["secret_key"], first["token"],
            datetime.fromisoformat(first["expiry_time"]), fetch, _FixedProvider.METHOD,
            advisory_timeout=ADVISORY_REFRESH_SECONDS, mandatory_timeout=MANDATORY_REFRESH_SECONDS, **kwargs,
        )

    def session(self, account_id: str) -> boto3.session.Session:
        creds = self.credentials(account_id)
        core = botocore.session.Session()
        core.register_component("data_loader", _shared_loader())
        core.register_component("credential_provider", CredentialResolver([_FixedProvider(creds)]))
        return boto3.session.Session(botocore_session=core, region_name=self.config.aws.region)


@dataclass(frozen=True)
class AccountFailure:
    """Why one account could not be processed: where it stopped and what the error was."""

    step: str  # ASSUME_AUDIT_ROLE, or the step the caller named for its work (e.g. "list_roles")
    error_code: str  # the AWS error code (AccessDenied, ...), else the exception's type name
    message: str  # "<type>: <message>", redacted


@dataclass
class AccountResults:
    results: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, AccountFailure] = field(default_factory=dict)  # account -> where and why it failed

    @property
    def errors(self) -> dict[str, str]:
        """account -> its redacted error message."""
        return {account: failure.message for account, failure in self.failures.items()}


def error_code(exc: BaseException) -> str:
    """The AWS error code of a failure, else the exception's type (a timeout, a network error)."""
    return str(throttle.error_code(exc) or type(exc).__name__)


def run_per_account(accounts: list[str], work: Callable[[str], T], *, max_workers: int, timeout_seconds: float,
                    clock: Callable[[], float] = time.monotonic, poll_seconds: float = 1.0,
                    step: str = "work", steps: dict[str, str] | None = None) -> AccountResults:
    """work(account) for every account in a bounded pool; failures and timeouts are reported, not raised.

    A failure is reported at `steps[account]` when `work` keeps it up to date (it says where a
    hung account was stuck, too), else at `step`. A timed-out account's thread cannot be
    interrupted; it is abandoned (its botocore read timeout ends it) and its result, if any, ignored.
    """
    out = AccountResults()
    started: dict[str, float] = {}
    steps = steps if steps is not None else {}

    def fail(account: str, exc: BaseException) -> None:
        out.failures[account] = AccountFailure(steps.get(account, step), error_code(exc), _report(account, exc))

    def run(account: str) -> T:
        started[account] = clock()
        return work(account)

    pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rolewatch-account")
    pending: dict[Future[T], str] = {pool.submit(run, a): a for a in accounts}
    try:
        while pending:
            done, _ = wait(pending, timeout=poll_seconds, return_when=FIRST_COMPLETED)
            for fut in done:
                account = pending.pop(fut)
                exc = fut.exception()
                if exc is None:
                    out.results[account] = fut.result()
                else:
                    fail(account, exc)
            now = clock()
            for fut, account in list(pending.items()):
                if account in started and now - started[account] > timeout_seconds:
                    pending.pop(fut)
                    fail(account, TimeoutError(f"no result after {timeout_seconds:g}s"))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return out


def _report(account: str, exc: BaseException) -> str:
    message = redact_text(f"{type(exc).__name__}: {exc}")
    log.warning("account %s skipped: %s", account, message, extra={"account_id": account})
    return message


def in_audit_account(sessions: AuditSessions, step: str, steps: dict[str, str],
                     work: Callable[[str, Any], T]) -> Callable[[str], T]:
    """`work(account, session)` in the account's audit-role session, noting in `steps` what it is
    doing there: `assume_audit_role` while the session is made, then `step` (for failure reports)."""
    def in_account(account: str) -> T:
        steps[account] = ASSUME_AUDIT_ROLE
        session = sessions.session(account)
        steps[account] = step
        return work(account, session)

    return in_account


def for_each_account(config: Config, work: Callable[[str, boto3.session.Session], T], *, now: datetime,
                     source_session: Any = None, clock: Callable[[], float] = time.monotonic,
                     poll_seconds: float = 1.0, step: str = "work") -> tuple[list[Account], AccountResults]:
    """Every account in scope, each through its audit-role session (or the source session when
    the Organization is not enabled: a single-account deployment).

    A failure is reported at `assume_audit_role` while the session is being made, at `step`
    (what `work` does, e.g. "list_roles") after that."""
    org = config.organization
    source = source_session or base_session(config.aws)
    if not org.enabled:
        account_id = make_client("sts", config.aws, sess=source).get_caller_identity()["Account"]
        accounts = [Account(account_id)]
        return accounts, run_per_account([account_id], lambda a: work(a, source), max_workers=1,
                                         timeout_seconds=org.account_timeout_seconds, clock=clock,
                                         poll_seconds=poll_seconds, step=step)
    accounts = list_accounts(config, source)
    sessions = AuditSessions(config, now=now, source_session=source)
    steps: dict[str, str] = {}
    results = run_per_account([a.account_id for a in accounts], in_audit_account(sessions, step, steps, work),
                              max_workers=org.max_workers, timeout_seconds=org.account_timeout_seconds,
                              clock=clock, poll_seconds=poll_seconds, step=step, steps=steps)
    return accounts, results


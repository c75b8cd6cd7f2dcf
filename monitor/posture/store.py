"""Collect the IAM posture of every account in scope and keep the last one in state.

`collect_posture` is the posture job (`schedule.posture` and `rolewatch once`): per account,
the role inventory, service-last-accessed (cached) and Access Analyzer findings, accounts in
parallel. `load_posture` gives what the detectors use between collections.

An account that fails this time keeps its previous inventory (listed in `errors` with the
reason) rather than vanishing: its roles would otherwise look deleted. It is also a blind spot:
every collection records which accounts in scope it reached and, for the others, the step that
failed (`assume_audit_role`, `list_roles`) and the error code, so that monitor_health alerts on
it (`monitor.health.record_account_rounds`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitor.aws import client as make_client
from monitor.collectors.access_analyzer import collect_analyzer_findings
from monitor.collectors.last_accessed import LastAccessedCollector
from monitor.collectors.organizations import for_each_account
from monitor.collectors.roles import collect_roles
from monitor.config import Config
from monitor.detect.monitor_health import POSTURE, AccountObservation
from monitor.health import record_account_rounds
from monitor.posture.model import AnalyzerFinding, Posture, RoleInfo, posture_from_dict, posture_to_dict

log = logging.getLogger(__name__)
NAMESPACE = "posture"
KEY = "latest"


@dataclass
class AccountPosture:
    roles: list[RoleInfo] = field(default_factory=list)
    analyzer_findings: list[AnalyzerFinding] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


def load_posture(state: Any) -> Posture:
    """The last collected posture; an empty Posture when none was ever collected."""
    doc = state.get_json(NAMESPACE, KEY) if state is not None else None
    return posture_from_dict(doc) if doc else Posture()


def save_posture(state: Any, posture: Posture) -> None:
    state.put_json(NAMESPACE, KEY, posture_to_dict(posture))


def account_posture(account_id: str, session: Any, config: Config, state: Any, now: datetime, *,
                    sleep: Callable[[float], Any], clock: Callable[[], float]) -> AccountPosture:
    out = AccountPosture()
    out.roles = collect_roles(session, config.aws, notices=out.notices)
    pc = config.posture
    # The role inventory is the part everything else needs; a last-accessed or Access Analyzer
    # failure (an API the account lacks, a missing permission) costs only its own data.
    if pc.last_accessed:
        try:
            _add_last_accessed(out, account_id, session, config, state, now, sleep=sleep, clock=clock)
        except Exception as exc:  # any failure here costs only the last-accessed data
            out.notices.append(f"account {account_id}: service last accessed not collected: {exc}")
    if pc.access_analyzer:
        try:
            out.analyzer_findings = collect_analyzer_findings(session, config.aws, account_id,
                                                              config.organization.regions, notices=out.notices,
                                                              sleep=sleep)
        except Exception as exc:  # any failure here costs only the analyzer findings
            out.notices.append(f"account {account_id}: Access Analyzer findings not collected: {exc}")
    return out


def _add_last_accessed(out: AccountPosture, account_id: str, session: Any, config: Config, state: Any,
                       now: datetime, *, sleep: Callable[[float], Any], clock: Callable[[], float]) -> None:
    pc = config.posture
    collector = LastAccessedCollector(
        make_client("iam", config.aws, sess=session), now=now, granularity=pc.last_accessed_granularity,
        max_in_flight=pc.last_accessed_max_in_flight, cache=state, cache_hours=pc.last_accessed_cache_hours,
        sleep=sleep, clock=clock,
    )
    reports = collector.collect([r.arn for r in out.roles if not r.is_service_linked])
    for role in out.roles:
        report = reports.get(role.arn)
        if report is not None and report.status == "COMPLETED":
            role.services_last_accessed = report.services
            if report.granularity == "ACTION_LEVEL":
                role.actions_last_accessed = report.actions
        elif report is not None:
            out.notices.append(f"account {account_id}: service last accessed for {role.arn}: "
                               f"{report.status} ({report.error})")


def collect_posture(config: Config, state: Any, now: datetime, *, source_session: Any = None,
                    sleep: Callable[[float], Any] = time.sleep, clock: Callable[[], float] = time.monotonic,
                    poll_seconds: float = 1.0) -> Posture:
    previous = load_posture(state)
    if not config.posture.enabled:
        return previous
    accounts, results = for_each_account(
        config, lambda a, s: account_posture(a, s, config, state, now, sleep=sleep, clock=clock),
        now=now, source_session=source_session, clock=clock, poll_seconds=poll_seconds, step="list_roles",
    )
    posture = Posture(collected_at=now, errors=dict(results.errors))
    if config.organization.enabled:
        posture.organization_accounts = [a.account_id for a in accounts]
    for account_id in sorted(results.results):
        part: AccountPosture = results.results[account_id]
        posture.roles.update((r.arn, r) for r in part.roles)
        posture.analyzer_findings.extend(part.analyzer_findings)
        posture.notices.extend(part.notices)
        posture.accounts.append(account_id)
    for account_id, error in sorted(results.errors.items()):
        if account_id in previous.accounts:
            posture.roles.update((arn, r) for arn, r in previous.roles.items() if r.account_id == account_id)
            posture.analyzer_findings.extend(f for f in previous.analyzer_findings if f.account_id == account_id)
            posture.accounts.append(account_id)
            stamp = previous.collected_at.isoformat() if previous.collected_at else "an earlier run"
            posture.notices.append(f"account {account_id}: inventory from {stamp} kept: {error}")
        else:
            posture.notices.append(f"account {account_id}: no inventory: {error}")
    for notice in posture.notices:
        log.info("posture: %s", notice)
    log.info("posture: %d roles in %d accounts, %d analyzer findings, %d accounts failed",
             len(posture.roles), len(results.results), len(posture.analyzer_findings), len(results.errors))
    reached = []
    for account in accounts:
        failure = results.failures.get(account.account_id)
        reached.append(AccountObservation(account.account_id, POSTURE, now, ok=failure is None,
                                          step=failure.step if failure else None,
                                          error_code=failure.error_code if failure else None,
                                          message=failure.message if failure else None))
    with state.transaction():
        save_posture(state, posture)
        record_account_rounds(state, {POSTURE: reached})
    return posture

"""`rolewatch run`: the service. APScheduler 3.x jobs from `[schedule]`, one process per state.
`rolewatch once`: one tick of the same jobs, for cron and container schedulers (`Service.tick`).

A `BackgroundScheduler` runs the jobs in worker threads while the main thread waits on a
`threading.Event` (writing the heartbeat each time the wait times out). SIGTERM / SIGINT set the
event; the scheduler then shuts down waiting for the running job to finish, so a cycle is never
cut in half (and if it were, the state transaction rules would read the batch again).

Every job goes through `Service.run_job`: a run record in state, a run id in every log line,
metrics, and an exception that is logged and recorded, never raised into the scheduler, so the
next tick runs again.

`once` runs the collect job and then each of the posture, report and retention jobs whose own
trigger has fired since its last recorded run: the same `Service` methods `run` fires, so the two
cannot drift apart, and a cron deployment gets the posture collection, the monitor_health alerts,
the periodic report and the state pruning the service gives.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from monitor.config import Config, JobSchedule, ScheduleConfig
from monitor.coverage_summary import UNIT_LIST_CAP
from monitor.findings import iso
from monitor.health import HEARTBEAT_SECONDS, check_health, parse_time, write_heartbeat
from monitor.logs import run_id_var, setup_logging
from monitor.redact import redact_text
from monitor.state.base import StateLockedError

if TYPE_CHECKING:
    from monitor.pipeline import CycleResult

log = logging.getLogger("rolewatch.service")

JOB_NAMES = ("collect", "posture", "report", "retention")
MAX_STORED_ERRORS = 100  # error messages kept in a collect run record
# jobs whose run record the job itself writes (run_cycle records its run, with coverage, as "collect")
SELF_RECORDING = frozenset({"collect"})
# In `run` the posture job's detection pass holds the cycle lock in its own thread (a detection over
# the stored events, then delivery, whose own lock wait is 60 s): a collect job firing meanwhile waits
# its turn instead of recording a failed cycle. Bounded, so a cycle lock held by a stuck process still
# fails the job and, repeated, raises monitor_health's failed_cycles.
CYCLE_LOCK_WAIT_SECONDS = 300.0
Clock = Callable[[], datetime]
PostureMode = Literal["auto", "always", "never"]  # `once --posture`


def utc_now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- triggers (pure)


def make_trigger(job: JobSchedule, now: datetime) -> BaseTrigger:
    """cron wins over interval; an interval job fires first at `now` (a fresh service collects at once)."""
    if job.cron:
        return CronTrigger.from_crontab(job.cron, timezone=UTC)  # JobSchedule validated the expression
    assert job.interval_minutes is not None  # JobSchedule validation guarantees one of them
    return IntervalTrigger(seconds=job.interval_minutes * 60, start_date=now, timezone=UTC)


def due_at(job: JobSchedule, last_run: datetime | None, now: datetime) -> datetime | None:
    """When the job falls due after its last run: its trigger's first fire time after `last_run`.

    `now` when it never ran; None when it is disabled. This is how `once`, which has no scheduler
    between runs, times the posture job the way `run` does.
    """
    if not job.enabled:
        return None
    if last_run is None:
        return now
    return make_trigger(job, last_run).get_next_fire_time(last_run, last_run)


def job_triggers(schedule: ScheduleConfig, now: datetime) -> dict[str, BaseTrigger]:
    """The enabled jobs and their triggers, in a fixed order."""
    jobs = {name: getattr(schedule, name) for name in JOB_NAMES}
    return {name: make_trigger(job, now) for name, job in jobs.items() if job.enabled}


def upcoming(trigger: BaseTrigger, now: datetime, count: int) -> list[datetime]:
    """The next `count` fire times of a trigger as seen from `now` (the fake-clock view of the schedule)."""
    out: list[datetime] = []
    prev: datetime | None = None
    while len(out) < count:
        nxt = trigger.get_next_fire_time(prev, prev or now)
        if nxt is None:
            break
        out.append(nxt)
        prev = nxt
    return out


def build_scheduler(config: Config, run_job: Callable[[str], Any], now: datetime,
                    overdue: frozenset[str] = frozenset()) -> BackgroundScheduler:
    """`overdue` jobs run at `now` first, then on their trigger (APScheduler 3 takes `next_run_time`)."""
    sched = BackgroundScheduler(timezone=UTC)
    for name, trigger in job_triggers(config.schedule, now).items():
        first = {"next_run_time": now} if name in overdue else {}
        sched.add_job(run_job, trigger, args=[name], id=name, name=name, coalesce=True, max_instances=1,
                      misfire_grace_time=config.schedule.misfire_grace_seconds, replace_existing=True, **first)
    return sched


def overdue_posture(service: Service, now: datetime) -> frozenset[str]:
    """{"posture"} when its trigger fired since its last run while the service was down (a restart at
    09:00 after a 03:00 that passed unseen), so it runs at start rather than a day late. A posture job
    that never ran keeps its schedule: a first start does not add an unplanned collection."""
    job = service.config.schedule.posture
    last = service.state.runs(job="posture", limit=1) if job.enabled else []
    if not last:
        return frozenset()
    due = due_at(job, parse_time(last[0]["started_at"]), now)  # one run-history read, not two
    return frozenset({"posture"}) if due is not None and due <= now else frozenset()


# --------------------------------------------------------------------------- jobs


@dataclass
class JobOutcome:
    result: str  # ok | partial | failed | skipped
    stats: dict[str, Any]
    cycle: CycleResult | None = field(default=None, repr=False)  # the collect job's cycle, for `once` to print


# the jobs `once` runs after the cycle when their trigger says so, in this order: the report reads
# the events and findings before retention prunes any of them
DUE_JOBS = ("report", "retention")


@dataclass
class Tick:
    """What `Service.tick` ran: the collect job, the posture job when it was due (or forced), and the
    report and retention jobs when due."""

    collect: JobOutcome
    posture: JobOutcome | None
    posture_due_at: datetime | None  # `auto` only; None when `[schedule] posture` is switched off
    # job name -> its outcome, or None when it was not due; the due time (None: switched off)
    jobs: dict[str, JobOutcome | None] = field(default_factory=dict)
    due: dict[str, datetime | None] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """A source, a step, the posture job as a whole, or the report (a destination it could not reach)
        or retention job failed; accounts posture could not reach do not count."""
        if self.collect.result != "ok" or (self.posture is not None and self.posture.result == "failed"):
            return True
        return any(o is not None and o.result in ("failed", "partial") for o in self.jobs.values())


class Service:
    def __init__(self, config: Config, state: Any, *, clock: Clock = utc_now, metrics: Any = None,
                 notify: bool = True, busy_is_failure: bool = True) -> None:
        self.config = config
        self.state = state
        self.clock = clock
        self.metrics = metrics
        self.notify = notify  # False: `once --no-notify` stores findings, monitor_health's too, but alerts nothing
        # The service counts a cycle it could not start (the state locked) as failed. For `once`
        # the lock's holder is another process running this very cycle, nothing failed: the
        # StateLockedError propagates, so the command exits 1 with nothing recorded, as it always has.
        self.busy_is_failure = busy_is_failure
        self.jobs: dict[str, Callable[[], JobOutcome]] = {
            "collect": self.collect, "posture": self.posture, "report": self.report, "retention": self.retention,
        }

    def _busy(self, exc: Exception) -> bool:
        return isinstance(exc, StateLockedError) and not self.busy_is_failure

    def run_job(self, name: str, job: Callable[[], JobOutcome] | None = None) -> JobOutcome:
        """Run one job with its run record, run id and metrics. Never raises (but see `busy_is_failure`):
        the next tick retries. `job` replaces the registered callable, for a job run with arguments."""
        started = self.clock()
        t0 = time.monotonic()
        run_id = None
        token = None
        try:
            if name not in SELF_RECORDING:
                run_id = self.state.start_run(name, started)
                token = run_id_var.set(run_id)
            log.info("job %s started", name, extra={"job": name})
            outcome = (job or self.jobs[name])()
        except Exception as exc:  # noqa: BLE001 - one failed run must not stop the service
            if self._busy(exc):
                raise
            log.exception("job %s failed: %s", name, exc, extra={"job": name})
            outcome = JobOutcome("failed", {"error": redact_text(f"{type(exc).__name__}: {exc}"),
                                            "traceback": redact_text(traceback.format_exc(limit=5))})
        duration = time.monotonic() - t0
        outcome.stats["duration_seconds"] = round(duration, 3)
        try:
            if run_id is not None:
                self.state.finish_run(run_id, self.clock(), outcome.result, outcome.stats)
        except Exception:  # noqa: BLE001
            log.exception("job %s: could not record the run in state", name, extra={"job": name})
        if self.metrics is not None:
            self.metrics.record(name, outcome.result, duration, time.time(), outcome.stats)
        if token is None and outcome.stats.get("run_id"):  # the job recorded its own run
            token = run_id_var.set(outcome.stats["run_id"])
        log.info("job %s finished: %s in %.1fs", name, outcome.result, duration, extra={"job": name})
        if token is not None:
            run_id_var.reset(token)
        return outcome

    def collect(self, *, since: datetime | None = None, until: datetime | None = None) -> JobOutcome:
        from monitor.pipeline import run_cycle

        now = self.clock()
        try:
            # `once` (busy_is_failure off) does not wait: the holder is another `once` running this cycle
            res = run_cycle(self.config, self.state, now=now, since=since, until=until, notify=self.notify,
                            lock_wait=CYCLE_LOCK_WAIT_SECONDS if self.busy_is_failure else 0.0)
        except Exception as exc:
            if self._busy(exc):
                raise
            # a cycle that dies as a whole is a monitor_health fact too: mark its run, check, then fail
            self._mark_cycle_failed(now, f"{type(exc).__name__}: {exc}")
            self.health(now)
            raise
        by_detector: dict[str, int] = {}
        for f in res.findings:
            by_detector[f.detector] = by_detector.get(f.detector, 0) + 1
        errors = list(res.errors)  # redacted by run_cycle
        run = self._run(res.run_id, now)
        result = (run or {}).get("status") or ("partial" if errors else "ok")
        if run is not None:  # keep the messages, not just their count, for `rolewatch status`
            # capped: thousands of failed units must not outgrow a run record (DynamoDB items end at 400 KB)
            kept = errors[:MAX_STORED_ERRORS] + (
                [f"... and {len(errors) - MAX_STORED_ERRORS} more"] if len(errors) > MAX_STORED_ERRORS else [])
            self.state.finish_run(res.run_id, self.clock(), result,
                                  {**run["stats"], "error_messages": kept, "findings_by_detector": by_detector})
        health = self.health(now)
        for f, _, _ in health:
            by_detector[f.detector] = by_detector.get(f.detector, 0) + 1
        return JobOutcome(result, {
            "run_id": res.run_id, "events_new": res.events_new, "skipped": res.skipped,
            "findings": len(res.findings), "suppressed": len(res.suppressed), "findings_by_detector": by_detector,
            "errors": errors, "health_findings": len(health),
        }, cycle=res)

    def _run(self, run_id: str, now: datetime) -> dict[str, Any] | None:
        return next((r for r in self.state.runs(job="collect", limit=10) if r["run_id"] == run_id), None)

    def _mark_cycle_failed(self, now: datetime, error: str) -> None:
        """run_cycle records its run before it can fail; find it by its start (our clock) and say it failed."""
        try:
            runs = [r for r in self.state.runs(job="collect", limit=5) if r["started_at"] == iso(now)]
            if runs:
                self.state.finish_run(runs[0]["run_id"], self.clock(), "failed",
                                      {**runs[0]["stats"], "error": redact_text(error)})
            else:  # it failed before recording anything (the state lock, the state itself)
                rid = self.state.start_run("collect", now)
                self.state.finish_run(rid, self.clock(), "failed", {"error": redact_text(error)})
        except Exception:  # noqa: BLE001 - the original error is what matters
            log.exception("could not record the failed cycle")

    def health(self, now: datetime) -> list[Any]:
        """The monitor_health hook: findings about the monitor itself, stored and notified."""
        found = check_health(self.state, self.config, now, alert=self.notify)
        for f, is_new, _ in found:
            log.warning("monitor_health: %s%s", f.title, "" if is_new else " (still)")
        if found and self.notify:
            from alerts.dispatch import notify

            notify([], self.state, self.config, now)  # queued by check_health, with the findings
        return found

    def posture(self) -> JobOutcome:
        if importlib.util.find_spec("monitor.posture.store") is None:
            log.info("posture job skipped: posture collectors are not part of this build")
            return JobOutcome("skipped", {"reason": "monitor.posture.store not available"})
        from monitor.posture import store

        if not self.config.posture.enabled:
            # collect_posture hands back the last posture unchanged: its errors are not this run's
            return JobOutcome("skipped", {"reason": "[posture] enabled = false"})
        now = self.clock()
        posture = store.collect_posture(self.config, self.state, now=now)
        # an account it could not reach is alerted now, not at the next collection cycle
        health = self.health(now)
        stats = {**posture_stats(posture), **posture_failures(posture), "health_findings": len(health)}
        reached = [a for a in posture.accounts if a not in posture.errors]
        if reached:
            stats["findings"] = self._detect_with_new_inventory(now)
        # accounts it could not reach are monitor_health findings; the run says it is incomplete
        # (partial) without failing `once`, and fails only when it reached no account at all
        result = "ok"
        if posture.errors:
            result = "partial" if reached else "failed"
            if not reached:
                stats["error"] = f"no account could be reached ({len(posture.errors)} tried)"
        return JobOutcome(result, stats)

    def _detect_with_new_inventory(self, now: datetime) -> int | str:
        """What the new inventory shows goes out now, not with the next cycle: the findings new or
        changed, or why there was no detection. The inventory is stored either way, so a detection
        that fails leaves the posture run as it was and the next cycle tries again."""
        from monitor.pipeline import detect_stored

        try:
            detected = detect_stored(self.config, self.state, now=now, notify=self.notify)
        except Exception as exc:  # noqa: BLE001 - see the docstring
            log.error("detection after the posture run failed: %s", exc, exc_info=True)
            return redact_text(f"detection failed: {type(exc).__name__}: {exc}")
        return len(detected.findings) if detected is not None else "deferred: a cycle is running"

    def job_due_at(self, name: str, now: datetime) -> datetime | None:
        """When a job falls due after its last recorded run, whatever its result (as in `run`, a failed
        run waits for the next fire time rather than retrying every tick). `run_job` records the run
        as it starts, so a `once` that dies inside the job does not run it again at the next tick."""
        job: JobSchedule = getattr(self.config.schedule, name)
        if not job.enabled:
            return None  # spares the run-history query, which walks the collect runs on DynamoDB
        last = self.state.runs(job=name, limit=1)
        return due_at(job, parse_time(last[0]["started_at"]) if last else None, now)

    def tick(self, posture: PostureMode = "auto", *, since: datetime | None = None,
             until: datetime | None = None) -> Tick:
        """One tick for `rolewatch once`: the collect job, then the posture job when due (`auto`), or
        always, or never, then the report and the retention job each when due. The collect and posture
        jobs end with the monitor_health check and deliver their findings through the outbox, which
        keeps a finding still open at the next tick from being alerted again.

        The cycle goes first: with `busy_is_failure` off, a cycle lock held by another `once` raises
        StateLockedError here, before this tick could start a second posture collection beside its own.
        Every later job runs in `run_job`, which turns its failure into a `failed` outcome: the cycle's
        results are committed by then and stay.
        """
        collect = self.run_job("collect", partial(self.collect, since=since, until=until))
        now = self.clock()
        due = self.job_due_at("posture", now) if posture == "auto" else None
        run_posture = posture == "always" or (due is not None and due <= now)
        tick = Tick(collect, self.run_job("posture") if run_posture else None, due)
        for name in DUE_JOBS:
            now = self.clock()
            tick.due[name] = when = self.job_due_at(name, now)
            tick.jobs[name] = self.run_job(name) if when is not None and when <= now else None
        return tick

    def report(self) -> JobOutcome:
        if importlib.util.find_spec("monitor.report.delivery") is None:
            log.info("report job skipped: the access-review report is not part of this build")
            return JobOutcome("skipped", {"reason": "monitor.report.delivery not available"})
        from monitor.report.delivery import run_scheduled_report

        res = run_scheduled_report(self.config, self.state, now=self.clock())
        result = "failed" if not res.delivered else "partial" if res.errors else "ok"
        return JobOutcome(result, res.as_stats())

    def retention(self) -> JobOutcome:
        from monitor.retention import run_retention

        return JobOutcome("ok", {"removed": run_retention(self.config, self.state, self.clock())})


def posture_stats(posture: Any) -> dict[str, int]:
    """Counts only: a posture holds trust policies, whose conditions may carry ExternalIds."""
    return {"accounts": len(posture.accounts), "roles": len(posture.roles),
            "analyzer_findings": len(posture.analyzer_findings)}


# accounts a posture run record names with their error; the rest are counted. A run record is one
# DynamoDB item (400 KB at most), and an organisation can lose thousands of accounts at once.
FAILED_ACCOUNTS_KEPT = 100


def posture_failures(posture: Any) -> dict[str, Any]:
    """The accounts not reached and why (the errors are redacted where they are caught)."""
    failed = sorted(posture.errors.items())
    return {"accounts_failed": len(failed),
            "failed_accounts": [{"account": a, "error": e} for a, e in failed[:FAILED_ACCOUNTS_KEPT]]}


def posture_lines(result: str, stats: dict[str, Any], indent: str = "  ") -> list[str]:
    """A posture run's counts and the accounts it did not reach, for `once` and `status`."""
    head = (f"{stats['accounts']} account(s), {stats['roles']} role(s), {stats['analyzer_findings']} analyzer "
            f"finding(s), {stats['accounts_failed']} account(s) not reached")
    lines = [f"{indent}not reached {f['account']}: {f['error']}"
             for f in stats.get("failed_accounts", [])[:UNIT_LIST_CAP]]
    if (more := stats["accounts_failed"] - len(lines)) > 0:  # also those the run record only counts
        lines.append(f"{indent}... and {more} more account(s) not reached")
    return [head if result == "ok" else f"{result}: {head}", *lines]


# --------------------------------------------------------------------------- the process


def next_runs(sched: BackgroundScheduler) -> dict[str, str | None]:
    return {j.id: (j.next_run_time.astimezone(UTC).isoformat() if j.next_run_time else None)
            for j in sched.get_jobs()}


def serve(config: Config, state: Any, stop: threading.Event, *, clock: Clock = utc_now) -> int:
    """Hold the state lock and run the schedule until `stop` is set. Returns the exit code."""
    try:
        lock = state.lock("service")
        lock.__enter__()
    except StateLockedError as exc:
        print(f"rolewatch run: {exc}", file=sys.stderr)
        return 1
    metrics = None
    server = None
    try:
        if config.metrics.enabled:
            from monitor.metrics import ServiceMetrics

            metrics = ServiceMetrics()
            server = metrics.serve(config.metrics.address, config.metrics.port)
            log.info("metrics on http://%s:%d/metrics", config.metrics.address, config.metrics.port)
        service = Service(config, state, clock=clock, metrics=metrics)
        now = clock()
        sched = build_scheduler(config, service.run_job, now, overdue_posture(service, now))
        sched.start()
        log.info("rolewatch service started; jobs: %s", next_runs(sched))
        write_heartbeat(state, clock(), "running", jobs=next_runs(sched))
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                write_heartbeat(state, clock(), "running", jobs=next_runs(sched))
            except Exception:  # noqa: BLE001 - a state hiccup must not stop the service
                log.exception("could not write the heartbeat")
        log.info("stopping: waiting for running jobs to finish")
        sched.shutdown(wait=True)
        write_heartbeat(state, clock(), "stopped")
        log.info("rolewatch service stopped")
        return 0
    finally:
        if server is not None:
            server.shutdown()
        lock.__exit__(None, None, None)


def cmd_run(args: argparse.Namespace) -> int:
    from monitor.commands import config_from_args
    from monitor.state import open_state

    config = config_from_args(args)
    setup_logging(getattr(args, "log_level", None) or config.logging.level, config.logging.format)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    state = open_state(config)
    try:
        return serve(config, state, stop)
    finally:
        state.close()


# --------------------------------------------------------------------------- `rolewatch once`


def format_tick(tick: Tick, mode: PostureMode, health: list[dict[str, Any]]) -> str:
    from monitor.pipeline import format_summary
    from monitor.status import render_monitor_health

    collect = tick.collect
    lines = [format_summary(collect.cycle) if collect.cycle is not None
             else f"cycle {collect.result}: {collect.stats.get('error')}"]
    if tick.posture is not None:
        stats = tick.posture.stats
        if "accounts_failed" in stats:  # it collected, reaching all, some or none of the accounts
            head, *rest = posture_lines(tick.posture.result, stats)
            lines += [f"posture: {head}", *rest]
        else:
            lines.append(f"posture: {tick.posture.result}: {stats.get('error') or stats.get('reason')}")
    elif mode == "never":
        lines.append("posture: not collected (--posture never)")
    elif tick.posture_due_at is None:
        lines.append("posture: not collected ([schedule] posture is switched off)")
    else:
        lines.append(f"posture: not due until {iso(tick.posture_due_at)}")
    lines += [format_job(name, tick.jobs.get(name), tick.due.get(name)) for name in DUE_JOBS]
    return "\n".join(lines + render_monitor_health(health))


def format_job(name: str, outcome: JobOutcome | None, due: datetime | None) -> str:
    if outcome is None:
        return (f"{name}: not run ([schedule] {name} is switched off)" if due is None
                else f"{name}: not due until {iso(due)}")
    stats = outcome.stats
    if outcome.result in ("failed", "skipped"):
        return f"{name}: {outcome.result}: {stats.get('error') or stats.get('reason') or '; '.join(stats.get('errors', []))}"
    if name == "report":
        where = [*stats.get("written", []), *stats.get("s3_objects", []),
                 *(f"slack {n}" for n in stats.get("slack", {}))]
        errors = "".join(f"; error: {e}" for e in stats.get("errors", []))
        return f"report: {outcome.result}: {stats.get('since')} .. {stats.get('until')} to {', '.join(where)}{errors}"
    removed = stats.get("removed", {})
    return f"{name}: {outcome.result}: removed " + ", ".join(f"{n} {k}" for k, n in removed.items())


def run_once(config: Config, args: argparse.Namespace, *, clock: Clock = utc_now) -> int:
    """`rolewatch once`: one tick of the service's jobs, then exit.

    0 ok; 1 another cycle holds the state, a source or step failed, the posture collection
    failed as a whole (accounts it could not reach are monitor_health findings, not a failure), or
    a due report (or one of its destinations) or retention run failed; 2 usage.
    """
    from monitor.pipeline import check_window, parse_time_arg
    from monitor.state import open_state
    from monitor.status import open_monitor_health

    mode: PostureMode = getattr(args, "posture", None) or "auto"
    try:
        since = parse_time_arg(getattr(args, "since", None), "--since")
        until = parse_time_arg(getattr(args, "until", None), "--until")
        check_window(since, until or clock())
    except ValueError as exc:
        print(f"rolewatch once: {exc}", file=sys.stderr)
        return 2
    state = open_state(config)
    try:
        service = Service(config, state, clock=clock, notify=not getattr(args, "no_notify", False),
                          busy_is_failure=False)
        try:
            tick = service.tick(mode, since=since, until=until)
        except StateLockedError as exc:
            print(f"rolewatch once: another cycle is running: {exc}", file=sys.stderr)
            return 1
        health = open_monitor_health(state)
    finally:
        state.close()
    print(format_tick(tick, mode, health))
    return 1 if tick.failed else 0

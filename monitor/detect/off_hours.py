"""`off_hours`: a successful assumption outside business hours, in the team's time zone.

Business hours are `[start, end)` local time (17:59 is inside "08:00-18:00", 18:00 is not) on
`business_days`, except `holidays`. A role matching an override's ARN glob uses that override's
zone, hours and days. `exempt_principals` (globs on the caller's ARN or key) and AWS services are
never flagged. One finding per (role, principal, local day): low, medium for a cross-account
principal. Automation that runs at night belongs in `exempt_principals`.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from monitor.config import OffHoursConfig
from monitor.detect.common import (
    base_details,
    epoch_ns,
    event_finding,
    glob_mask,
    group_key,
    is_service_caller,
    principal_of,
    records_by,
    role_name,
    role_of,
    summarise,
    timed,
    who,
)
from monitor.detect.context import DetectionContext
from monitor.findings import Finding, fingerprint

NAME = "off_hours"
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Schedule:
    timezone: str
    start_s: int  # seconds after local midnight
    end_s: int
    days: frozenset[int]  # Monday = 0

    @classmethod
    def of(cls, timezone: str, hours: str, days: list[str]) -> Schedule:
        start, end = (_seconds(h) for h in hours.split("-"))
        return cls(timezone, start, end, frozenset(_DAYS.index(d.lower()) for d in days))

    def describe(self) -> str:
        def hm(s: int) -> str:
            return f"{s // 3600:02d}:{s % 3600 // 60:02d}"

        days = ",".join(_DAYS[d] for d in sorted(self.days))
        return f"{hm(self.start_s)}-{hm(self.end_s)} {days} {self.timezone}"


def _seconds(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 3600 + int(m) * 60


def _schedules(cfg: OffHoursConfig) -> list[Schedule]:
    """Index 0: the default schedule; index i+1: override i (unset fields fall back to the default)."""
    out = [Schedule.of(cfg.timezone, cfg.business_hours, cfg.business_days)]
    for o in cfg.overrides:
        out.append(
            Schedule.of(o.timezone or cfg.timezone, o.business_hours or cfg.business_hours,
                        o.business_days if o.business_days is not None else cfg.business_days)
        )
    return out


def _schedule_index(roles: pd.Series, cfg: OffHoursConfig) -> pd.Series:
    """Which schedule each row follows: the first override whose glob matches its role, else 0."""
    if not cfg.overrides:
        return pd.Series(0, index=roles.index)
    choice = {}
    for role in roles.unique():
        choice[role] = next(
            (i + 1 for i, o in enumerate(cfg.overrides) if fnmatch.fnmatchcase(role, o.role_arn)), 0
        )
    return roles.map(choice).astype(int)


_DAY_NS = 86_400 * 1_000_000_000
_EPOCH = date(1970, 1, 1)


def _wall_clock(times: pd.Series, timezone: str) -> tuple[np.ndarray, np.ndarray]:
    """Local (day number since 1970-01-01, seconds after midnight) of each time, in whole arrays."""
    local_ns = epoch_ns(times.dt.tz_convert(timezone).dt.tz_localize(None))
    day = local_ns // _DAY_NS
    return day, (local_ns - day * _DAY_NS) // 1_000_000_000


def detect(events: pd.DataFrame, ctx: DetectionContext, cfg: OffHoursConfig) -> list[Finding]:
    df = timed(events)
    df = df[df["success"] & ~is_service_caller(df)]
    if cfg.exempt_principals and not df.empty:
        exempt = glob_mask(df["principal_arn"], cfg.exempt_principals) | glob_mask(
            principal_of(df), cfg.exempt_principals
        ) | glob_mask(df["principal_role_arn"], cfg.exempt_principals)
        df = df[~exempt]
    if df.empty:
        return []
    schedules = _schedules(cfg)
    which = _schedule_index(role_of(df), cfg)
    holidays = np.array([(date.fromisoformat(d) - _EPOCH).days for d in cfg.holidays], dtype=np.int64)
    off = np.zeros(len(df), dtype=bool)
    local_day = np.zeros(len(df), dtype=np.int64)
    for i, sched in enumerate(schedules):
        mask = which.eq(i).to_numpy()
        if not mask.any():
            continue
        day, sod = _wall_clock(df["event_time"][mask], sched.timezone)
        if sched.start_s <= sched.end_s:
            in_hours = (sod >= sched.start_s) & (sod < sched.end_s)
        else:  # an overnight shift such as "22:00-06:00"
            in_hours = (sod >= sched.start_s) | (sod < sched.end_s)
        weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        workday = np.isin(weekday, list(sched.days)) & ~np.isin(day, holidays)
        off[mask] = ~(in_hours & workday)
        local_day[mask] = day
    df = df[off]
    if df.empty:
        return []
    day_text = np.datetime_as_string(local_day[off].astype("datetime64[D]"), unit="D")
    keys = pd.DataFrame({"role": role_of(df), "principal": principal_of(df), "day": day_text}, index=df.index)
    group = group_key(keys)
    firsts = records_by(keys.assign(s=which[off]), group, ["role", "principal", "day", "s"])
    local_times = _local_times(df, which[off], schedules, group)
    described = [s.describe() for s in schedules]  # once per schedule, not per finding
    findings = []
    for row in summarise(df, group):
        k = firsts[row.group]
        i = int(k["s"])
        details = base_details(row)
        details.update(
            local_day=k["day"],
            local_times=local_times[row.group],
            business_hours=described[i],
            timezone=schedules[i].timezone,
        )
        findings.append(
            event_finding(
                NAME,
                "medium" if row.is_cross_account else "low",
                f"{who(row)} assumed {role_name(row.role_arn)} outside business hours on {k['day']}",
                fingerprint(NAME, k["role"], k["principal"], k["day"]),
                row,
                details,
            )
        )
    return findings


def _local_times(df: pd.DataFrame, which: pd.Series, schedules: list[Schedule], group: pd.Series) -> dict[str, list[str]]:
    """Per finding: the local clock times of its events (first 20), so nobody converts zones by hand."""
    text = pd.Series("", index=df.index, dtype=object)
    for i, sched in enumerate(schedules):
        mask = which.eq(i)
        if mask.any():
            text[mask] = df.loc[mask, "event_time"].dt.tz_convert(sched.timezone).dt.strftime("%a %H:%M:%S %Z")
    codes, groups = pd.factorize(group.to_numpy())
    order = np.argsort(codes, kind="stable")  # by group, each group's events in row order
    texts, codes = text.to_numpy()[order].tolist(), codes[order]
    starts = np.searchsorted(codes, np.arange(len(groups) + 1)).tolist()
    return {g: texts[a:min(b, a + 20)] for g, a, b in zip(groups, starts[:-1], starts[1:], strict=True)}

"""Service last accessed per role: which granted services a role actually used, and when.

IAM builds the report asynchronously: GenerateServiceLastAccessedDetails returns a job id, and
GetServiceLastAccessedDetails says IN_PROGRESS until the job is COMPLETED or FAILED. Many
roles' jobs run at once (at most `max_in_flight`); each job is polled with capped exponential
backoff. Time is injected (`clock`, `sleep`) so tests run without waiting.

Reports are cached in state documents (namespace `posture.last_accessed`, key = role ARN) and
a role's report is not regenerated within `cache_hours`: a daily posture job asks IAM once a day.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from monitor.collectors.throttle import backoff_delay, error_code, is_throttling
from monitor.findings import iso
from monitor.posture.model import parse_time

log = logging.getLogger(__name__)
CACHE_NAMESPACE = "posture.last_accessed"


@dataclass
class LastAccessed:
    role_arn: str
    status: str  # COMPLETED | FAILED | TIMEOUT | ERROR
    generated_at: datetime | None = None
    granularity: str = "SERVICE_LEVEL"
    services: dict[str, datetime | None] = field(default_factory=dict)  # namespace -> last authenticated
    actions: dict[str, datetime | None] = field(default_factory=dict)  # "s3:GetObject" -> last accessed
    error: str | None = None
    from_cache: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "role_arn": self.role_arn, "status": self.status, "generated_at": iso(self.generated_at),
            "granularity": self.granularity, "error": self.error,
            "services": {k: iso(v) for k, v in self.services.items()},
            "actions": {k: iso(v) for k, v in self.actions.items()},
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LastAccessed:
        return cls(
            role_arn=d["role_arn"], status=d["status"], generated_at=parse_time(d.get("generated_at")),
            granularity=d.get("granularity", "SERVICE_LEVEL"), error=d.get("error"),
            services={k: parse_time(v) for k, v in d.get("services", {}).items()},
            actions={k: parse_time(v) for k, v in d.get("actions", {}).items()},
            from_cache=True,
        )


@dataclass
class _Job:
    role_arn: str
    job_id: str
    polls: int = 0


class LastAccessedCollector:
    def __init__(self, iam: Any, *, now: datetime, granularity: str = "SERVICE_LEVEL", max_in_flight: int = 5,
                 cache: Any = None, cache_hours: float = 24, sleep: Callable[[float], Any],
                 clock: Callable[[], float], base_delay: float = 1.0, max_delay: float = 30.0,
                 max_polls: int = 40) -> None:
        self.iam = iam
        self.now = now
        self.granularity = granularity
        self.max_in_flight = max_in_flight
        self.cache = cache  # a StateStore (get_json / put_json) or None
        self.cache_hours = cache_hours
        self.sleep = sleep
        self.clock = clock
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_polls = max_polls
        self.api_calls = 0

    # ------------------------------------------------------------------ cache

    def cached(self, role_arn: str) -> LastAccessed | None:
        if self.cache is None or self.cache_hours <= 0:
            return None
        doc = self.cache.get_json(CACHE_NAMESPACE, role_arn)
        if not doc or doc.get("status") != "COMPLETED" or doc.get("granularity") != self.granularity:
            return None
        result = LastAccessed.from_json(doc)
        if result.generated_at is None or self.now - result.generated_at >= timedelta(hours=self.cache_hours):
            return None
        return result

    def _store(self, result: LastAccessed) -> None:
        if self.cache is not None and result.status == "COMPLETED":
            self.cache.put_json(CACHE_NAMESPACE, result.role_arn, result.to_json())

    # ------------------------------------------------------------------ jobs

    def _generate(self, role_arn: str) -> str:
        self.api_calls += 1
        return self.iam.generate_service_last_accessed_details(Arn=role_arn, Granularity=self.granularity)["JobId"]

    def _read(self, job: _Job) -> dict[str, Any]:
        """One poll; a COMPLETED report is read to its last page (Marker / IsTruncated)."""
        self.api_calls += 1
        first = self.iam.get_service_last_accessed_details(JobId=job.job_id)
        if first["JobStatus"] != "COMPLETED":
            return first
        services = list(first.get("ServicesLastAccessed", []))
        page = first
        while page.get("IsTruncated"):
            self.api_calls += 1
            page = self.iam.get_service_last_accessed_details(JobId=job.job_id, Marker=page["Marker"])
            services.extend(page.get("ServicesLastAccessed", []))
        return {**first, "ServicesLastAccessed": services}

    def _result(self, role_arn: str, response: dict[str, Any]) -> LastAccessed:
        status = response["JobStatus"]
        if status == "FAILED":
            err = response.get("Error") or {}
            return LastAccessed(role_arn, "FAILED", granularity=self.granularity,
                                error=f"{err.get('Code', 'unknown')}: {err.get('Message', '')}".strip())
        services: dict[str, datetime | None] = {}
        actions: dict[str, datetime | None] = {}
        for s in response.get("ServicesLastAccessed", []):
            ns = s["ServiceNamespace"]
            services[ns] = parse_time(s.get("LastAuthenticated"))
            for a in s.get("TrackedActionsLastAccessed") or []:
                actions[f"{ns}:{a['ActionName']}"] = parse_time(a.get("LastAccessedTime"))
        return LastAccessed(role_arn, "COMPLETED", generated_at=self.now, granularity=self.granularity,
                            services=services, actions=actions)

    def collect(self, role_arns: list[str]) -> dict[str, LastAccessed]:
        out: dict[str, LastAccessed] = {}
        queue: deque[str] = deque()
        for arn in dict.fromkeys(role_arns):
            hit = self.cached(arn)
            if hit is not None:
                out[arn] = hit
            else:
                queue.append(arn)
        # due time, tie-breaker, job
        polls: list[tuple[float, int, _Job]] = []
        counter = itertools.count()
        generate_attempt = 0
        generate_not_before = 0.0

        while queue or polls:
            # start jobs while there is room and IAM is not pushing back
            while queue and len(polls) < self.max_in_flight and self.clock() >= generate_not_before:
                arn = queue[0]
                try:
                    job_id = self._generate(arn)
                except ClientError as exc:
                    if is_throttling(exc):
                        generate_not_before = self.clock() + backoff_delay(generate_attempt, self.base_delay,
                                                                           self.max_delay)
                        generate_attempt += 1
                        break
                    queue.popleft()
                    out[arn] = LastAccessed(arn, "ERROR", granularity=self.granularity,
                                            error=f"{error_code(exc)}: generate failed")
                    continue
                queue.popleft()
                generate_attempt = 0
                heapq.heappush(polls, (self.clock() + self.base_delay, next(counter), _Job(arn, job_id)))

            next_due = polls[0][0] if polls else generate_not_before
            if queue and len(polls) < self.max_in_flight:
                next_due = min(next_due, generate_not_before)
            wait = next_due - self.clock()
            if wait > 0:
                self.sleep(wait)
            if not polls or polls[0][0] > self.clock():
                continue
            _, _, job = heapq.heappop(polls)
            try:
                response = self._read(job)
            except ClientError as exc:
                if not is_throttling(exc):
                    out[job.role_arn] = LastAccessed(job.role_arn, "ERROR", granularity=self.granularity,
                                                     error=f"{error_code(exc)}: polling failed")
                    continue
                response = {"JobStatus": "IN_PROGRESS"}  # throttled: poll again later, like a running job
            if response["JobStatus"] == "IN_PROGRESS":
                job.polls += 1
                if job.polls >= self.max_polls:
                    out[job.role_arn] = LastAccessed(job.role_arn, "TIMEOUT", granularity=self.granularity,
                                                     error=f"job {job.job_id} still running after {job.polls} polls")
                    continue
                due = self.clock() + backoff_delay(job.polls, self.base_delay, self.max_delay)
                heapq.heappush(polls, (due, next(counter), job))
                continue
            result = self._result(job.role_arn, response)
            self._store(result)
            out[job.role_arn] = result
        for arn, r in out.items():
            if r.status != "COMPLETED":
                log.warning("service last accessed for %s: %s (%s)", arn, r.status, r.error)
        return out

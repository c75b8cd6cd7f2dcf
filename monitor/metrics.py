"""Prometheus text metrics for `rolewatch run` (optional, `[metrics] enabled = true`).

A registry of our own, not the process-global default one, so two services in one test process
(or a library user embedding rolewatch) never collide on metric names.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.runs = Counter("rolewatch_job_runs", "Job runs by job and result", ["job", "result"],
                            registry=self.registry)
        self.cycles = Counter("rolewatch_cycles", "Collection cycles completed", registry=self.registry)
        self.events = Counter("rolewatch_events", "AssumeRole events newly stored", registry=self.registry)
        self.findings = Counter("rolewatch_findings", "Findings new or updated", ["detector"],
                                registry=self.registry)
        self.errors = Counter("rolewatch_errors", "Job failures and per-source errors", ["job"],
                              registry=self.registry)
        self.last_success = Gauge("rolewatch_last_success_timestamp_seconds",
                                  "Unix time of the last successful run of a job", ["job"], registry=self.registry)
        self.duration = Gauge("rolewatch_job_duration_seconds", "Duration of the last run of a job", ["job"],
                              registry=self.registry)

    def record(self, job: str, result: str, duration: float, finished_at: float, stats: dict[str, Any]) -> None:
        self.runs.labels(job, result).inc()
        self.duration.labels(job).set(duration)
        if result in ("ok", "partial"):
            self.last_success.labels(job).set(finished_at)
        errors = len(stats.get("errors") or []) + (1 if result == "failed" else 0)
        if errors:
            self.errors.labels(job).inc(errors)
        if job == "collect" and result != "failed":
            self.cycles.inc()
            self.events.inc(int(stats.get("events_new") or 0))
        for detector, n in (stats.get("findings_by_detector") or {}).items():
            self.findings.labels(detector).inc(n)

    def serve(self, address: str, port: int) -> Any:
        server, thread = start_http_server(port, addr=address, registry=self.registry)
        return server

"""Run a command as a whole process and measure it: wall time and peak RSS of its process tree.

Wall time on a shared machine says as much about the neighbours as about the command, so the
CPU time (user + system, all descendants) is reported beside it. RSS is sampled (every 10 ms) and summed over the process and all its descendants, so a scan
with one worker per core is charged for every worker it runs at once.
"""

from __future__ import annotations

import resource
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

import psutil


@dataclass
class Measured:
    seconds: float
    cpu_seconds: float  # user + system of the process and every descendant it waited for
    peak_rss_mb: float
    returncode: int
    stderr: str


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total


def measure(cmd: Sequence[str] | str, *, shell: bool = False, stdout: int | None = subprocess.DEVNULL,
            interval: float = 0.01) -> Measured:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    popen = subprocess.Popen(cmd, shell=shell, stdout=stdout, stderr=subprocess.PIPE)  # noqa: S603
    proc = psutil.Process(popen.pid)
    peak = 0
    while popen.poll() is None:
        peak = max(peak, _tree_rss(proc))
        time.sleep(interval)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    stderr = popen.stderr.read().decode(errors="replace") if popen.stderr else ""
    return Measured(seconds, cpu, peak / 2**20, popen.returncode, stderr)

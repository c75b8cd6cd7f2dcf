"""Run a command as a whole process and measure it: wall time and peak RSS of its process tree.

Wall time on a shared machine says as much about the neighbours as about the command, so the
CPU time (user + system, all descendants) is reported beside it. RSS is sampled (every 10 ms) and summed over the process and all its descendants, so a scan
with one worker per core is charged for every worker it runs at once, including the pages a
forked worker shares with its parent; PSS (proportional set size) is sampled beside it, which
counts each shared page once.
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
    peak_pss_mb: float = 0.0  # pages shared by forked workers counted once, split between them


def _pss(pid: int) -> int:
    """Proportional set size from smaps_rollup: one short read, unlike psutil's walk of every mapping."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _tree_memory(proc: psutil.Process) -> tuple[int, int]:
    """(RSS, PSS) summed over the process and its descendants; PSS is 0 where the kernel gives none."""
    rss = pss = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0, 0
    for p in procs:
        try:
            rss += p.memory_info().rss
        except psutil.Error:
            continue
        pss += _pss(p.pid)
    return rss, pss


def measure(cmd: Sequence[str] | str, *, shell: bool = False, stdout: int | None = subprocess.DEVNULL,
            interval: float = 0.01) -> Measured:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    popen = subprocess.Popen(cmd, shell=shell, stdout=stdout, stderr=subprocess.PIPE)  # noqa: S603
    proc = psutil.Process(popen.pid)
    peak = peak_pss = 0
    while popen.poll() is None:
        rss, pss = _tree_memory(proc)
        peak, peak_pss = max(peak, rss), max(peak_pss, pss)
        time.sleep(interval)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    stderr = popen.stderr.read().decode(errors="replace") if popen.stderr else ""
    return Measured(seconds, cpu, peak / 2**20, popen.returncode, stderr, peak_pss / 2**20)

"""Measuring one contender as a whole process: wall clock, CPU, peak memory, the server meanwhile."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # no stubs in the venv

from benchmarks.harness.common import MB, REPO, BenchmarkError
from benchmarks.harness.server import Server

SAMPLE_INTERVAL = 0.05
PSS_EVERY = 5


@dataclass
class Run:
    wall: float
    cpu: float
    rss_mb: float  # ru_maxrss of the contender (its largest single process)
    tree_rss_mb: float  # peak of the summed RSS of its process tree, sampled
    server_rss_mb: float  # peak of the summed RSS of every server process, sampled
    server_cpu: float  # CPU seconds the server spent meanwhile (all its processes)
    exit_code: int
    #: share of all the machine's cores busy from launch to exit (/proc/stat): the contender, the
    #: server, the harness's sampler, and whatever else runs on the machine
    machine_busy_pct: float = float("nan")
    extra: dict[str, Any] = field(default_factory=dict)


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of all cores since boot, in clock ticks (/proc/stat's "cpu" line:
    user nice system idle iowait irq softirq steal; idle and iowait are not busy)."""
    with open("/proc/stat", encoding="ascii") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)


def busy_pct(before: tuple[int, int], after: tuple[int, int]) -> float:
    total = after[1] - before[1]
    return 100.0 * (after[0] - before[0]) / total if total > 0 else float("nan")


PAGE = os.sysconf("SC_PAGE_SIZE")


def _children_from_proc(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                out += [int(x) for x in f.read().split()]
    return out


def _children_from_psutil(pid: int) -> list[int]:
    with contextlib.suppress(psutil.Error):
        return [p.pid for p in psutil.Process(pid).children()]
    return []


# The kernel lists each task's children (CONFIG_PROC_CHILDREN): reading a tree that way costs
# ~0.1 ms, where psutil's children() reads the stat file of every process on the machine (~0.8 ms).
# Twice a sample, 20 samples a second, that was ~1 core-second of a 12 s run taken from the
# contenders' two cores.
_children = _children_from_proc if os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children") \
    else _children_from_psutil


def descendants(pid: int) -> list[int]:
    """Every process below pid (children first)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        found = _children(todo.pop())
        out += found
        todo += found
    return out


def _tree_rss(pids: Sequence[int]) -> int:
    """Summed resident set size (/proc/<pid>/statm, in pages) of the processes still there."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{pid}/statm", "rb") as f:
            total += int(f.read().split()[1]) * PAGE
    return total


def _tree_pss(pids: Sequence[int]) -> int:
    """Proportional set size: shared pages (forked workers, shared buffers) split among their users."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, StopIteration), \
                open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            total += int(next(line for line in f if line.startswith(b"Pss:")).split()[1]) * 1024
    return total


class PeakSampler(threading.Thread):
    """Every SAMPLE_INTERVAL: summed RSS of the server's processes and of the contender's tree; every
    PSS_EVERY-th time also the contender tree's summed PSS (reading smaps costs ~1 ms a process)."""

    def __init__(self, server: Server) -> None:
        super().__init__(name="bench-rss-sampler", daemon=True)
        self.server = server
        self.target: int | None = None  # the launcher's PID
        self.server_peak = 0
        self.tree_peak = 0
        self.tree_pss_peak = 0
        self.samples = 0
        self.cpu = 0.0  # CPU seconds of this thread: part of the machine's busy share
        self.halt = threading.Event()

    def sample(self) -> None:
        postmaster = self.server.postmaster_pid
        self.server_peak = max(self.server_peak, _tree_rss([postmaster, *descendants(postmaster)]))
        launcher = self.target
        if launcher is not None:  # the contender's tree: everything below the launcher
            tree = descendants(launcher)
            self.tree_peak = max(self.tree_peak, _tree_rss(tree))
            if self.samples % PSS_EVERY == 0:
                self.tree_pss_peak = max(self.tree_pss_peak, _tree_pss(tree))
        self.samples += 1

    def run(self) -> None:
        started = time.thread_time()
        self.sample()
        while not self.halt.wait(SAMPLE_INTERVAL):
            self.sample()
        self.cpu = time.thread_time() - started

    def stop(self) -> None:
        self.halt.set()
        self.join()


# A tiny launcher between the harness and each contender. The contender is forked from it rather
# than from the harness because Linux folds the RSS high-water mark of the image a process had
# before exec (for fork or vfork: its parent's) into its ru_maxrss; forked from a big harness,
# every contender would report at least the harness's size. The launcher (python -S, a few MB) is
# a child subreaper, so orphans of the contender (multiprocessing's forkserver and its workers)
# are re-parented to it and reaped, and their CPU shows in its RUSAGE_CHILDREN.
LAUNCHER = r"""
import ctypes, json, os, resource, sys, time
result, cmd = sys.argv[1], sys.argv[2:]
try:
    subreaper = ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0
except Exception:
    subreaper = False
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
deadline, left = time.monotonic() + 60, False
while True:
    try:
        if os.waitpid(-1, os.WNOHANG)[0] == 0:
            if time.monotonic() > deadline:
                left = True
                break
            time.sleep(0.005)
    except ChildProcessError:
        break
total = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(result, "w") as f:
    json.dump({"wall": wall, "exit_code": os.waitstatus_to_exitcode(status), "maxrss_kb": usage.ru_maxrss,
               "main_cpu": usage.ru_utime + usage.ru_stime, "cpu": total.ru_utime + total.ru_stime,
               "subreaper": subreaper, "orphans_left": left}, f)
"""


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def measure(cmd: list[str], *, env: dict[str, str], out: Path, server: Server, timeout: float,
            python: str = sys.executable, cwd: Path = REPO) -> Run:
    """Run cmd as a whole process (through the launcher, in a session of its own) and measure it."""
    server_procs, server_before = server.backends(), server.cpu_seconds()
    sampler = PeakSampler(server)
    sampler.start()
    result = out.with_suffix(".rusage.json")
    result.unlink(missing_ok=True)
    with open(out.with_suffix(".out"), "wb") as fo, open(out.with_suffix(".err"), "wb") as fe:
        machine_before = machine_jiffies()
        proc = subprocess.Popen([python, "-S", "-c", LAUNCHER, str(result), *cmd], stdout=fo, stderr=fe, env=env,
                                cwd=cwd, start_new_session=True)
        try:
            sampler.target = proc.pid
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid)
                proc.wait()
                raise BenchmarkError(f"{cmd[:4]}... did not finish in {timeout:.0f}s; killed") from None
            machine_after = machine_jiffies()
        except BaseException:
            _kill_group(proc.pid)
            raise
        finally:
            sampler.stop()
    try:
        usage = json.loads(result.read_text())
    except (OSError, ValueError):
        raise BenchmarkError(f"the launcher of {cmd[:4]}... exited with {proc.returncode} and no result") from None
    server.settle(server_procs)
    run = Run(wall=float(usage["wall"]), cpu=float(usage["cpu"]), rss_mb=usage["maxrss_kb"] / 1024,
              tree_rss_mb=sampler.tree_peak / MB, server_rss_mb=sampler.server_peak / MB,
              server_cpu=server.cpu_seconds() - server_before, exit_code=int(usage["exit_code"]),
              machine_busy_pct=busy_pct(machine_before, machine_after))
    run.extra.update(rss_samples=sampler.samples, tree_pss_mb=sampler.tree_pss_peak / MB, main_cpu=usage["main_cpu"],
                     subreaper=usage["subreaper"], orphans_left=usage["orphans_left"], sampler_cpu=sampler.cpu)
    return run


def check_exit(run: Run, ok: Sequence[int], what: str, out: Path) -> None:
    if run.exit_code not in ok:
        tail = out.with_suffix(".err").read_text(errors="replace")[-2000:]
        raise BenchmarkError(f"{what} exited with {run.exit_code} after {run.wall:.1f}s:\n{tail}")

"""procs.alive: which PIDs count as running loads, workers' parents and handle holders."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from loader import procs


def test_a_running_process_is_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert procs.alive(child.pid)
        assert procs.alive(os.getpid())
    finally:
        child.kill()
        child.wait()


def test_a_killed_process_not_yet_reaped_counts_as_gone() -> None:
    """A SIGKILLed load whose parent (cron's shell) has not reaped it holds no folder or handle."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while procs.alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert os.path.exists(f"/proc/{child.pid}"), "still a zombie: nobody has reaped it"
        assert not procs.alive(child.pid)
    finally:
        child.wait()
    assert not procs.alive(child.pid)

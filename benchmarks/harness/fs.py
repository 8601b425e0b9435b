"""The file system's state around a benchmark: time to settle after the last clean-up, and a probe
of what creating a file costs, recorded with the results.

On ext4 without a journal (as on these machines), the inode allocator skips every inode freed in
the last 5 to 10 minutes (``recently_deleted()``), reading its inode-table block each time; right
after a mass deletion, creating a file or a folder costs several times more system CPU (measured
here: ~100 µs against ~15-25 µs). Of the contenders only pharmload creates files (its image store),
so a run started just after the harness deleted its previous scratch folders charged pharmload for
that clean-up. The harness therefore deletes only at its end, notes when, and the next run waits
until that deletion has aged (``--fs-settle``), then probes and records the cost of a create.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from benchmarks.harness.common import log

MARK = ".last-cleanup"  # in the work dir: its mtime is when the harness last deleted its scratch
PROBE_FILES = 2000


def note_cleanup(work: Path) -> None:
    """Record that a mass deletion just happened in work."""
    (work / MARK).touch()


def settle(work: Path, seconds: float) -> float:
    """Wait until the harness's last clean-up in work is `seconds` old; returns the seconds waited."""
    try:
        age = time.time() - (work / MARK).stat().st_mtime
    except FileNotFoundError:
        return 0.0
    wait = max(0.0, seconds - age)
    if wait > 0:
        log(f"waiting {wait:.0f}s for the file system to settle after the last clean-up {age:.0f}s ago "
            "(ext4 without a journal makes new files slower for up to 10 minutes after mass deletions; "
            "--fs-settle 0 skips this)")
        time.sleep(wait)
    return wait


def create_cost_us(folder: Path, files: int = PROBE_FILES) -> float:
    """µs of wall per empty file created (and closed) in a new folder below `folder`, as the image
    store creates its objects. The files stay until the harness
    cleans up at its end (deleting them now would be the very thing measured)."""
    probe = folder / f"fs-probe-{time.time_ns()}"
    probe.mkdir(parents=True)
    start = time.perf_counter()
    for i in range(files):
        os.close(os.open(probe / f"{i:05d}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return (time.perf_counter() - start) / files * 1e6


def warm_tree(root: Path, passes: int = 2) -> float:
    """Read every file below root, so that a single timed load finds its tree in the page cache as
    the repeated runs of the other sizes do; returns the seconds it took. Twice: the kernel evicts
    pages read once first, and a million-file load writes ~25 GB meanwhile (read once, its tree
    was still read back from disk: 6.9 GB over 161 s; read twice, 0.4-2.9 GB in the lab)."""
    start = time.perf_counter()
    for _ in range(passes):
        for folder, _, names in os.walk(root):
            for name in names:
                with open(os.path.join(folder, name), "rb") as f:
                    while f.read(1 << 20):
                        pass
    return time.perf_counter() - start


VM_COUNTERS = ("pgpgin", "pgpgout", "workingset_refault_file", "pgscan_direct")


def vm_counters() -> dict[str, int]:
    """The kernel's counters of disk traffic (KB) and page-cache pressure (pages) since boot."""
    try:
        with open("/proc/vmstat", encoding="ascii") as f:
            pairs = (line.split() for line in f)
            return {k: int(v) for k, v in pairs if k in VM_COUNTERS}
    except OSError:
        return {}

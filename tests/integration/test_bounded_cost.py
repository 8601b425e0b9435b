"""A load's cost is bounded by its input's size, whatever the licenses per search file (issue 15).

A 3.6 MB search file listing 50,000 licenses once made the loader hold (and write) 50,000 copies of
the whole file. Each row's `raw` is now the document with `licenses` reduced to the row's own
(FORMAT.md), so a file's rows together cost about its size, and so does the load's memory.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import orjson

from loader.run import pipeline
from loader.settings import Settings
from tests.conftest import query
from tests.scrape import Scrape, document, license_

REPO = Path(__file__).resolve().parents[2]
LICENSES = 50_000
PEAK_LIMIT = 1 << 30  # loader and workers together
_RUN = """
import pickle, sys
import orjson
from loader.run import pipeline
report = pipeline.run(pickle.loads(sys.stdin.buffer.read()))
open(sys.argv[1], "wb").write(orjson.dumps(report.as_dict()))
"""


def _many_licenses(name: str) -> dict[str, object]:
    """A search file of ~4 MB: 50,000 short licenses (a results page a board can return)."""
    lics = [{"license_number": f"{name[:2].upper()}{i:06d}", "license_status": "Active",
             "expiration_date": "8/31/2027"} for i in range(LICENSES)]
    return document(name=name, licenses=lics)


def _descendants(pid: int) -> set[int]:
    """pid and every process below it, from /proc (the test needs no psutil)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        out.add(p)
        todo.extend(parents.get(p, []))
    return out


def _peak_kib(pid: int) -> int | None:
    """The process's own peak RSS (VmHWM) so far."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _tree_peak_rss(args: list[str], stdin: bytes, timeout: float) -> tuple[int, int]:
    """(exit code, bytes): the sum over the process and every descendant of each one's own peak RSS,
    sampled every 20 ms; at least the peak of the tree's summed RSS (shared pages count twice)."""
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            cwd=REPO)
    assert proc.stdin is not None
    proc.stdin.write(stdin)
    proc.stdin.close()
    peaks: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        for pid in _descendants(proc.pid):
            kib = _peak_kib(pid)
            if kib is not None:
                peaks[pid] = max(peaks.get(pid, 0), kib)
        time.sleep(0.02)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    return proc.returncode, sum(peaks.values()) * 1024


def test_a_50000_license_file_loads_in_bounded_memory_and_rows(settings: Settings, scrape: Scrape, dsn: str,
                                                               tmp_path: Path) -> None:
    big = [scrape.search(f"2025-08-03/{st}/Chain_01", _many_licenses(f"Chain {st}")) for st in ("PA", "TX")]
    for i in range(5):
        scrape.search(f"2025-08-03/FL/Small_{i:02d}", document(name=f"Small {i}"))
    os.mkfifo(scrape.root / "2025-08-03/FL/Pipe_01_parse.json")  # rejected, never opened: nothing hangs
    size = big[0].stat().st_size
    assert 3_000_000 < size < 5_000_000
    run = settings.replace(max_workers=2, chunk_files=2)  # worker processes too, not only in-process
    out = tmp_path / "report.json"
    code, peak = _tree_peak_rss([sys.executable, "-c", _RUN, str(out)], pickle.dumps(run), timeout=600)
    assert code == 0
    report = orjson.loads(out.read_bytes())
    assert (report["files_found"], report["files_loaded"], report["files_rejected"]) == (8, 7, 1)
    assert report["rejects"] == [{"file": "2025-08-03/FL/Pipe_01_parse.json", "reason": "unreadable",
                                  "detail": "not a regular file (a FIFO); not read"}]
    print(f"loader and workers: {peak / 2**20:.0f} MiB at most")
    assert peak < PEAK_LIMIT, f"loader and workers peaked at {peak / 2**20:.0f} MiB"
    assert query(dsn, "SELECT count(*) FROM search_results") == [(2 * LICENSES + 5,)]
    # Each row holds its own license and no other; the file's rows together cost about its size.
    assert query(dsn, "SELECT count(*) FROM search_results WHERE jsonb_array_length(raw->'search_result'->'licenses')"
                      " <> 1 OR raw->'search_result'->'licenses'->0->>'license_number' <> license_number") == [(0,)]
    [(total,)] = query(dsn, "SELECT sum(octet_length(raw::text)) FROM search_results WHERE search_name = 'Chain PA'")
    assert total < 20 * size, f"raw of one file's rows: {total} bytes for a {size}-byte file"


def test_rows_loaded_before_keep_their_raw_until_a_newer_search(settings: Settings, scrape: Scrape, dsn: str) -> None:
    """Rows an earlier version loaded with the whole file as raw are evidence: a --full re-run of the
    same search leaves them as they are; a newer search of the key writes the new shape."""
    lics = [license_(license_number="A1"), license_(license_number="A2")]
    doc = document(licenses=lics)
    scrape.search("2025-08-03/PA/Belmar_01", doc)
    pipeline.run(settings)
    query(dsn, "UPDATE search_results SET raw = %s::jsonb RETURNING 1", (orjson.dumps(doc).decode(),))
    rep = pipeline.run(settings.replace(full=True))
    assert (rep.rows_inserted, rep.rows_updated, rep.rows_unchanged) == (0, 0, 2)
    assert query(dsn, "SELECT count(*) FROM search_results WHERE jsonb_array_length(raw->'search_result'->'licenses') "
                      "= 2") == [(2,)]
    scrape.search("2025-08-03/PA/Belmar_01", document(licenses=lics, ts="2025-08-04T09:00:00"))
    rep = pipeline.run(settings)
    assert (rep.rows_inserted, rep.rows_updated) == (0, 2)
    assert query(dsn, "SELECT license_number, raw->'search_result'->'licenses' FROM search_results ORDER BY 1") == [
        ("A1", [lics[0]]), ("A2", [lics[1]])]

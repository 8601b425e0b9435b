"""Smoke test of the benchmark harness: every contender, once, on a 20-file corpus (~10 s).

It starts the harness's own embedded PostgreSQL (in /var/tmp, never under a private home folder),
so it is the one test in unit/ that needs the server wheel; the benchmark extras (dlt, psutil,
matplotlib) must be installed, else it is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_sizes_and_contenders_parse() -> None:
    pytest.importorskip("psutil")  # the harness needs the benchmark extras (pip install -e '.[bench]')
    from benchmarks.harness.cli import parse_contenders, parse_sizes

    assert parse_sizes("515:100000, 20_000:20000") == [(515, 100_000), (20_000, 20_000)]
    assert parse_contenders("floor,pharmload,floor") == ["floor", "pharmload"]
    with pytest.raises(argparse.ArgumentTypeError):
        parse_sizes("515:x")
    with pytest.raises(argparse.ArgumentTypeError):
        parse_contenders("pharmload,fastest")



def test_targets_are_judged_against_peers_of_the_same_run() -> None:
    pytest.importorskip("psutil")
    from benchmarks.harness.report import markdown
    from benchmarks.harness.targets import memory_verdict, target_checks

    def row(contender: str, scenario: str, wall: float) -> dict[str, object]:
        return {"contender": contender, "scenario": scenario, "wall_median": wall}

    [check] = target_checks(515, 100_000, [row("pharmload", "first", 0.6), row("dlt", "first", 2.1)])
    assert check["met"]  # dlt / 3.3 = 0.636 s
    [check] = target_checks(515, 100_000, [row("pharmload", "first", 0.5), row("dlt", "first", 1.5)])
    assert check["met"] is False  # faster in seconds, but only 3.0x a dlt that ran fast too
    [check] = target_checks(515, 100_000, [row("pharmload", "first", 0.5)])
    assert check["met"] is None  # no dlt in this run: not judged
    first, rerun = target_checks(20_000, 20_000, [row("pharmload", "first", 3.0), row("pharmload", "rerun", 0.6),
                                                  row("dlt", "first", 15.0)])
    assert first["met"] and rerun["met"] is False  # 5.0x dlt; the re-run has no peer: 0.6 s > 0.5 s
    # 100,000 files: both ≤ 1.4 × the floor's COPY-plus-merge and ≤ dlt / 4
    big = [row("pharmload", "first", 20.0), row("dlt", "first", 100.0), row("floor", "copy", 15.0)]
    [check] = target_checks(100_000, 2_000, big)
    assert check["met"] and [c["met"] for c in check["criteria"]] == [True, True]
    [check] = target_checks(100_000, 2_000, [*big[:2], row("floor", "copy", 13.0)])
    assert check["met"] is False and [c["met"] for c in check["criteria"]] == [False, True]
    assert target_checks(20, 2_000, [row("pharmload", "first", 0.1)]) == []  # no target at this size
    # 1,000,000 files: the whole tree's memory, and the time against the 100,000-file first load
    mem = {"files": 1_000_000, "image_bytes": 2_000, "wall": 250.0, "rss_mb": 700.0, "tree_pss_mb": 900.0,
           "tree_rss_mb": 1500.0, "server_rss_mb": 300.0, "cpu": 300.0, "target_mb": 1024.0}
    assert memory_verdict(mem, 20.0)["met"] is False  # 12.5 x the 100,000-file time
    assert memory_verdict(mem, 25.0)["met"] is True
    assert memory_verdict({**mem, "tree_pss_mb": 1100.0}, 25.0)["met"] is False
    assert memory_verdict(mem, None)["met"] is None

    size = {"files": 20_000, "image_bytes": 20_000, "expected_rows": 24_000, "search_pairs": 18_500,
            "expected_images": 19_300, "profile": "realistic", "rows": [], "targets": [first, rerun]}
    meta = {"date": "d", "cpus": 2, "machine": "m", "server_version": "18", "server_settings": {}, "python": "3",
            "runs": 1, "warmup": 1, "loadavg_start": "0", "profile": "realistic", "loader_commit": "abc1234"}
    text = markdown({"meta": meta, "sizes": [size]})
    assert ("20,000 files @20 KB (realistic profile: 20,000 search files, 24,000 rows, 18,500 pharmacy+state "
            "pairs, 19,300 distinct screenshots)") in text
    assert ("| 20,000 files @20 KB, first load ≤ dlt / 4.5 | 3.00 s; dlt 15.00 s: dlt / pharmload 5.00 (≥ 4.5) "
            "met | met |") in text
    assert "| 20,000 files @20 KB, unchanged re-run ≤ 0.5 s | 0.60 s; ≤ 0.5 s MISSED | MISSED |" in text
    text = markdown({"meta": {**meta, "profile": "repeats"}, "sizes": [{**size, "profile": "repeats"}]})
    assert "(missed: not judged on this profile)" in text


def test_results_file_keeps_the_latest_run_of_each_kind_and_a_history(tmp_path: Path) -> None:
    pytest.importorskip("psutil")
    from benchmarks.harness import results

    def result(date: str, profile: str, wall: float) -> dict[str, Any]:
        rows = [{"contender": "pharmload", "scenario": "first", "files": 515, "runs": 3, "wall_median": wall,
                 "wall_min": wall, "wall_max": wall, "files_per_s": 515 / wall, "cpu_median": 1.0,
                 "server_cpu_median": 0.1, "rss_mb": 90.0, "tree_rss_mb": 120.0, "server_rss_mb": 130.0,
                 "x_pharmload_first": 1.0, "x_floor": None},
                {"contender": "dlt", "scenario": "first", "files": 515, "runs": 3, "wall_median": 2.0,
                 "wall_min": 2.0, "wall_max": 2.0, "files_per_s": 257.5, "cpu_median": 1.8,
                 "server_cpu_median": 0.1, "rss_mb": 130.0, "tree_rss_mb": 130.0, "server_rss_mb": 130.0,
                 "x_pharmload_first": 2.0 / wall, "x_floor": None}]
        from benchmarks.harness.targets import target_checks

        size = {"files": 515, "image_bytes": 100_000, "profile": profile, "expected_rows": 620, "search_pairs": 470,
                "expected_images": 490, "rows": rows, "targets": target_checks(515, 100_000, rows)}
        meta = {"date": date, "cpus": 2, "machine": "m", "server_version": "18", "server_settings": {},
                "python": "3", "runs": 3, "warmup": 1, "loadavg_start": "0", "profile": profile,
                "corpus_version": 2, "git": "abc1234", "loader_commit": "abc1234"}
        return {"meta": meta, "sizes": [size]}

    path = tmp_path / "RESULTS.md"
    results.update(path, result("day 1", "realistic", 0.5), None)
    results.update(path, result("day 2", "repeats", 0.7), None)
    results.update(path, result("day 3", "realistic", 0.9), None)  # replaces day 1's section
    text = path.read_text()
    assert text.count("<!-- latest realistic-515x100000 -->") == 1 and "<!-- latest repeats-515x100000 -->" in text
    assert "## Latest: realistic profile, 515 files @100 KB (day 3)" in text and "(day 1)" not in text
    history = text[text.index("<!-- history -->"):]
    assert [line.split(" | ")[0] for line in history.splitlines()[3:6]] == ["| day 1", "| day 2", "| day 3"]
    assert "515 files @100 KB: 0.50 s (dlt 4.00) | met (1 of 1) |" in history
    assert "not judged (repeats): MISSED 1 of 1" in history  # 2.0 / 0.7 < 3.3, but the repeats profile
    assert "515 files @100 KB: 0.90 s (dlt 2.22) | MISSED 1 of 1: 515 files @100 KB, first load ≤ dlt / 3.3 |" \
        in history


@pytest.mark.slow
def test_harness_runs_every_contender_on_a_tiny_corpus(tmp_path: Path) -> None:
    for module in ("dlt", "psutil", "matplotlib"):
        pytest.importorskip(module)
    work = Path(os.environ.get("PHARMLOAD_BENCH_SMOKE_DIR", f"/var/tmp/pharmload-bench-{os.getuid()}-smoke"))
    cmd = [sys.executable, "-m", "benchmarks.harness", "--sizes", "20:2000", "--runs", "1", "--warmup", "0",
           "--work-dir", str(work), "--corpus-dir", str(work / "corpus"), "--results-dir", str(tmp_path),
           "--no-plot", "--update-results", "--results-file", str(tmp_path / "RESULTS.md"), "--fs-settle", "0",
           "--memory-check", "30:2000"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    [result_file] = tmp_path.glob("bench-*-20x2000.json")
    result = json.loads(result_file.read_text())
    rows = {(r["contender"], r["scenario"]): r for r in result["sizes"][0]["rows"]}
    assert set(rows) == {("pharmload", "first"), ("pharmload", "rerun"), ("pharmload", "incremental"),
                         ("baseline", "first"), ("dlt", "first"), ("floor", "read"), ("floor", "copy"),
                         ("floor", "read+copy")}
    for row in rows.values():
        assert row["wall_median"] > 0 and row["rss_mb"] > 0 and row["files_per_s"] > 0
    assert rows[("pharmload", "first")]["x_pharmload_first"] == 1.0
    assert "| pharmload | first |" in done.stdout
    assert (tmp_path / result_file.with_suffix(".md").name).is_file()
    # the end state of every run matched the generator's expectation (else the harness exits 1), and
    # the result states the corpus's shape and the CPU accounting
    size = result["sizes"][0]
    assert size["profile"] == "realistic" and size["expected_rows"] > size["files"] * 0.9
    assert "realistic profile: 20 search files" in done.stdout and "cores busy %" in done.stdout
    first = rows[("pharmload", "first")]
    assert first["cpu_median"] > 0 and 0 < first["machine_busy_pct_median"] <= 100
    assert "<!-- latest realistic-20x2000_mem30x2000 -->" in (tmp_path / "RESULTS.md").read_text()
    # the file system's state is part of the result: what creating a file cost, before and after
    assert result["meta"]["fs_create_us_start"] > 0 and result["meta"]["fs_create_us_end"] > 0
    assert "Creating an empty file:" in done.stdout and (work / ".last-cleanup").is_file()
    # the memory check's single load finds its tree read beforehand, and says what the disk did meanwhile
    mem = result["memory_check"]
    assert mem["files"] == 30 and mem["pass"] and mem["tree_warm_s"] >= 0 and mem["vm"]["pgpgin"] >= 0
    assert "Its tree was read beforehand" in done.stdout


def test_the_sampler_sees_the_tree_and_memory_psutil_sees() -> None:
    """The sampler reads the kernel's child lists and /proc directly (psutil walked the whole
    machine twice a sample); it must find the same processes and the same memory."""
    psutil = pytest.importorskip("psutil")
    from benchmarks.harness.measure import _tree_pss, _tree_rss, descendants

    grandchild = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', "
                  "'import time; b = bytearray(40 << 20); time.sleep(30)']); time.sleep(30)")
    top = subprocess.Popen([sys.executable, "-c", grandchild])
    try:
        root = psutil.Process(top.pid)
        last = -1
        for _ in range(1000):  # until the grandchild has allocated its 40 MB and both sleep
            tree = root.children(recursive=True)
            now = sum(p.memory_info().rss for p in [root, *tree])
            if tree and now > 40 << 20 and now == last:
                break
            last = now
            time.sleep(0.05)
        expected = [top.pid, *(p.pid for p in tree)]
        assert sorted([top.pid, *descendants(top.pid)]) == sorted(expected) and len(expected) == 2
        procs = [psutil.Process(pid) for pid in expected]
        rss = sum(p.memory_info().rss for p in procs)
        pss = sum(p.memory_full_info().pss for p in procs)
        assert abs(_tree_rss(expected) - rss) < 2 << 20
        assert abs(_tree_pss(expected) - pss) < 2 << 20
        assert _tree_rss(expected) > 40 << 20
    finally:
        for p in psutil.Process(top.pid).children(recursive=True):
            p.kill()
        top.kill()
        top.wait()

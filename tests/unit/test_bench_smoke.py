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
from pathlib import Path

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



def test_targets_are_judged_by_ratio_to_dlt_where_dlt_ran() -> None:
    pytest.importorskip("psutil")
    from benchmarks.harness.report import markdown
    from benchmarks.harness.targets import target_checks

    def row(contender: str, scenario: str, wall: float) -> dict[str, object]:
        return {"contender": contender, "scenario": scenario, "wall_median": wall}

    # 0.7 s misses 0.6 s, but this machine is slower: dlt 2.8 s, 4.0x, beats the reference's 2.0/0.6 = 3.33x.
    [check] = target_checks(515, 100_000, [row("pharmload", "first", 0.7), row("dlt", "first", 2.8)])
    assert check["met"] and check["ratio"] == pytest.approx(4.0) and check["target_ratio"] == pytest.approx(2.0 / 0.6)
    [check] = target_checks(515, 100_000, [row("pharmload", "first", 0.55), row("dlt", "first", 1.5)])
    assert not check["met"]  # under 0.6 s, but only 2.7x a dlt that ran faster than on the reference machine
    [check] = target_checks(515, 100_000, [row("pharmload", "first", 0.55)])
    assert check["met"] and check["ratio"] is None  # no dlt in this run: by seconds
    first, rerun = target_checks(20_000, 20_000, [row("pharmload", "first", 3.0), row("pharmload", "rerun", 0.6),
                                                  row("dlt", "first", 15.0)])
    assert first["met"] and not rerun["met"]  # the re-run has no peer: by seconds
    assert target_checks(20, 2_000, [row("pharmload", "first", 0.1)]) == []  # no target at this size
    size = {"files": 20_000, "image_bytes": 20_000, "expected_rows": 1, "expected_images": 1, "rows": [],
            "targets": [first, rerun]}
    meta = {"date": "d", "cpus": 2, "machine": "m", "server_version": "18", "server_settings": {}, "python": "3",
            "runs": 1, "warmup": 1, "loadavg_start": "0"}
    text = markdown({"meta": meta, "sizes": [size]})
    assert "- target first ≤ 3.50 s where dlt takes 16.0 s, i.e. dlt/pharmload ≥ 4.57: here 3.00 s against dlt's " \
           "15.00 s, 5.00, met" in text
    assert "- target rerun ≤ 0.50 s: 0.60 s, MISSED" in text


@pytest.mark.slow
def test_harness_runs_every_contender_on_a_tiny_corpus(tmp_path: Path) -> None:
    for module in ("dlt", "psutil", "matplotlib"):
        pytest.importorskip(module)
    work = Path(os.environ.get("PHARMLOAD_BENCH_SMOKE_DIR", f"/var/tmp/pharmload-bench-{os.getuid()}-smoke"))
    cmd = [sys.executable, "-m", "benchmarks.harness", "--sizes", "20:2000", "--runs", "1", "--warmup", "0",
           "--work-dir", str(work), "--corpus-dir", str(work / "corpus"), "--results-dir", str(tmp_path),
           "--no-plot"]
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

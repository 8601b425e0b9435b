"""The contenders and their scenarios, each run on a fresh database and checked before its time counts."""

from __future__ import annotations

import argparse
import compileall
import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import floor
from benchmarks.harness.common import DLT_DATASET, REPO, SCENARIOS, TAG, BenchmarkError, log
from benchmarks.harness.corpora import Corpus, ensure_day, hardlink_tree
from benchmarks.harness.endstate import EndState, compare, dlt_state, search_results_state
from benchmarks.harness.measure import Run, check_exit, measure
from benchmarks.harness.server import Server


@dataclass
class Series:
    """Every timed run of one contender and scenario at one corpus size."""

    contender: str
    scenario: str
    files: int  # search files in the tree the runs loaded
    runs: list[Run] = field(default_factory=list)
    warmup: list[Run] = field(default_factory=list)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work: Path = args.work_dir
        self.scratch: Path = self.work / "runs"
        self.server: Server | None = None
        self.python = str(args.python)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PHARMLOAD_", "PG", "DLT_",
                                                                                "DESTINATION__"))}
        self.env.update({"LC_ALL": "C.UTF-8", "PYTHONUNBUFFERED": "1", "RUNTIME__DLTHUB_TELEMETRY": "false"})
        self.env.pop("LANG", None)
        # Every contender runs with its bytecode cached, as an installed package (pip compiles it) or
        # any second run has it. Under PYTHONDONTWRITEBYTECODE=1 (set on some machines) pharmload's
        # and the runners' modules would otherwise be compiled again by every run: ~0.05-0.1 s.
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        for package in ("loader", "sql", "benchmarks"):
            compileall.compile_dir(REPO / package, quiet=1)
        self.series: dict[tuple[int, int], dict[tuple[str, str], Series]] = {}
        self.references: dict[tuple[int, int, str], EndState] = {}
        self.stage_cache: dict[tuple[int, int], Path] = {}
        self.counter = 0
        self.dirs = 0

    # -- plumbing ---------------------------------------------------------------------------------

    @property
    def srv(self) -> Server:
        assert self.server is not None
        return self.server

    def dir(self, *parts: str) -> Path:
        """A new scratch folder, kept until the benchmark ends.

        Nothing is deleted between timed runs: right after a mass delete, ext4 (without a journal,
        as here) skips recently freed inodes one by one when it allocates new ones, which made the
        next run's mkdirs several times slower and charged one run for its predecessor's clean-up.
        """
        self.dirs += 1
        path = self.scratch.joinpath(*parts[:-1], f"{parts[-1]}-{self.dirs:03d}")
        path.mkdir(parents=True)
        return path

    def database(self, contender: str) -> tuple[str, str]:
        self.counter += 1
        name = f"bench_{contender}_{self.counter}"
        return name, self.srv.create(name)

    def record(self, corpus: Corpus, contender: str, scenario: str, files: int, run: Run, warm: bool) -> None:
        per_size = self.series.setdefault((corpus.files, corpus.image_bytes), {})
        s = per_size.setdefault((contender, scenario), Series(contender, scenario, files))
        (s.warmup if warm else s.runs).append(run)
        label = "warm-up" if warm else f"run {len(s.runs)}/{self.args.runs}"
        log(f"{corpus.name} {contender}/{scenario} {label}: {run.wall:.2f}s wall, {run.cpu:.2f}s CPU, "
            f"RSS {run.rss_mb:.0f} MB (tree {run.tree_rss_mb:.0f}), server {run.server_rss_mb:.0f} MB")

    # -- contenders ---------------------------------------------------------------------------------

    def pharmload_cmd(self, dsn: str, tree: Path, images: Path, manifests: Path, report: Path) -> list[str]:
        return [self.python, "-m", "loader", "load", "--backend", "postgresql", "--dsn", dsn, "--states-dir",
                str(tree), "--tag", TAG, "--image-dir", str(images), "--manifest-dir", str(manifests),
                "--report-json", str(report)]

    def run_pharmload(self, corpus: Corpus, i: int, warm: bool, scenarios: Sequence[str]) -> None:
        """first, rerun and incremental, in that order, on one hard-linked copy of the corpus."""
        base = self.dir("pharmload")
        tree, images, manifests = base / "tree", base / "images", base / "manifests"
        wanted = [s for s in SCENARIOS["pharmload"] if s in scenarios]
        if not wanted:
            return
        hardlink_tree(corpus.root, tree)
        name, dsn = self.database("pharmload")
        for scenario in SCENARIOS["pharmload"]:
            if scenario != "first" and scenario not in wanted:
                continue  # the first load is always run: it is what the others start from
            if scenario == "incremental":
                ensure_day(corpus, self.args.corpus_dir)
                assert corpus.day_dir is not None and corpus.day_expected is not None
                for day in corpus.day_dir.iterdir():
                    hardlink_tree(day, tree / day.name)
            expected = corpus.day_expected if scenario == "incremental" else corpus.expected
            assert expected is not None
            report = base / f"{scenario}.report.json"
            out = base / f"{scenario}-{i}"
            run = measure(self.pharmload_cmd(dsn, tree, images, manifests, report), env=self.env, out=out,
                          server=self.srv, timeout=self.args.timeout)
            check_exit(run, (0, 1), f"pharmload {scenario} ({corpus.name})", out)  # 1: some files rejected
            rep = json.loads(report.read_text())
            run.extra.update(phases=rep.get("phases", {}), elapsed=rep.get("elapsed"), report={
                k: rep.get(k) for k in ("files_found", "files_loaded", "files_rejected", "files_skipped",
                                        "rows_staged", "rows_inserted", "rows_updated", "rows_unchanged",
                                        "images_referenced", "images_stored", "images_new_rows")})
            if scenario == "rerun" and (rep.get("rows_inserted", 0), rep.get("rows_updated", 0)) != (0, 0):
                raise BenchmarkError(f"pharmload rerun ({corpus.name}) wrote rows again: {run.extra['report']}")
            state = search_results_state(dsn)
            # a re-run must leave exactly the first load's end state; every run, exactly the first run's
            ref_key = (corpus.files, corpus.image_bytes, "incremental" if scenario == "incremental" else "reference")
            compare(f"pharmload {scenario} ({corpus.name})", state, expected, self.references.get(ref_key),
                    digest="digest", images=True)
            self.references.setdefault(ref_key, state)
            if scenario in wanted:
                self.record(corpus, "pharmload", scenario, expected.json_files, run, warm)
        self.srv.drop(name)

    def reference(self, corpus: Corpus) -> EndState:
        """pharmload's end state after a first load (an untimed load when pharmload is not a contender)."""
        key = (corpus.files, corpus.image_bytes, "reference")
        if key not in self.references:
            log(f"{corpus.name}: untimed pharmload load, as the reference end state")
            base = self.dir("reference")
            name, dsn = self.database("reference")
            out = base / "reference"
            run = measure(self.pharmload_cmd(dsn, corpus.root, base / "images", base / "manifests",
                                             base / "report.json"),
                          env=self.env, out=out, server=self.srv, timeout=self.args.timeout)
            check_exit(run, (0, 1), f"pharmload reference load ({corpus.name})", out)
            state = search_results_state(dsn)
            compare(f"pharmload reference load ({corpus.name})", state, corpus.expected, None, images=True)
            self.references[key] = state
            self.srv.drop(name)
        return self.references[key]

    def run_baseline(self, corpus: Corpus, i: int, warm: bool) -> None:
        reference = self.reference(corpus)
        base = self.dir("baseline")
        name, dsn = self.database("baseline")
        out = base / f"baseline-{i}"
        cmd = [self.python, "-m", "benchmarks.baseline", "--dsn", dsn, "--states-dir", str(corpus.root),
               "--tag", TAG, "--image-dir", str(base / "images")]
        run = measure(cmd, env=self.env, out=out, server=self.srv, timeout=self.args.timeout)
        check_exit(run, (0,), f"baseline ({corpus.name})", out)
        run.extra["summary"] = _last_json_line(out)
        compare(f"baseline ({corpus.name})", search_results_state(dsn), corpus.expected, reference,
                digest="digest", images=True)
        self.record(corpus, "baseline", "first", corpus.expected.json_files, run, warm)
        self.srv.drop(name)

    def run_dlt(self, corpus: Corpus, i: int, warm: bool) -> None:
        reference = self.reference(corpus)
        base = self.dir("dlt")
        name, dsn = self.database("dlt")
        out = base / f"dlt-{i}"
        env = {**self.env, "DLT_DATA_DIR": str(base / "data"), "DLT_PROJECT_DIR": str(base / "project"),
               "DLT_PIPELINE_DIR": str(base / "pipelines")}
        cmd = [self.python, "-m", "benchmarks.dlt_runner", "--dsn", dsn, "--states-dir", str(corpus.root),
               "--tag", TAG, "--dataset-name", DLT_DATASET, "--pipelines-dir", str(base / "pipelines")]
        run = measure(cmd, env=env, out=out, server=self.srv, timeout=self.args.timeout)
        check_exit(run, (0,), f"dlt ({corpus.name})", out)
        run.extra["summary"] = _last_json_line(out)
        compare(f"dlt ({corpus.name})", dlt_state(dsn), corpus.expected, reference)
        self.record(corpus, "dlt", "first", corpus.expected.json_files, run, warm)
        self.srv.drop(name)

    def floor_stage(self, corpus: Corpus) -> Path:
        """The final rows of a first load (pharmload's cleaning) as CSV per staging table, once per size."""
        key = (corpus.files, corpus.image_bytes)
        if key not in self.stage_cache:
            path = self.dir("floor-stage", corpus.name)
            subprocess.run([self.python, "-m", "benchmarks.floor", "stage", "--states-dir", str(corpus.root),
                            "--out-dir", str(path)], check=True, env=self.env, cwd=REPO, stdout=subprocess.DEVNULL)
            self.stage_cache[key] = path
        return self.stage_cache[key]

    def run_floor(self, corpus: Corpus, i: int, warm: bool, scenarios: Sequence[str]) -> None:
        base = self.dir("floor")
        if "read" in scenarios:
            out = base / f"read-{i}"
            cmd = [self.python, "-m", "benchmarks.floor", "read", "--states-dir", str(corpus.root),
                   "--workers", str(self.args.floor_workers)]
            run = measure(cmd, env=self.env, out=out, server=self.srv, timeout=self.args.timeout)
            check_exit(run, (0,), f"floor read ({corpus.name})", out)
            summary = _last_json_line(out)
            if (summary.get("files"), summary.get("screenshots_hashed")) != (corpus.expected.files,
                                                                            corpus.expected.png_files):
                raise BenchmarkError(f"floor read ({corpus.name}) read {summary}, expected "
                                     f"{corpus.expected.files} files and {corpus.expected.png_files} screenshots")
            run.extra["summary"] = summary
            self.record(corpus, "floor", "read", corpus.expected.json_files, run, warm)
        if "copy" in scenarios:
            reference = self.reference(corpus)
            stage = self.floor_stage(corpus)
            name, dsn = self.database("floor")
            dataset_id = floor.prepare_database(dsn, TAG)
            script = floor.write_copy_script(stage, dataset_id, base / "copy.sql")
            out = base / f"copy-{i}"
            run = measure(floor.psql_command(dsn, script), env=self.env, out=out, server=self.srv,
                          timeout=self.args.timeout)
            check_exit(run, (0,), f"floor copy ({corpus.name})", out)
            compare(f"floor copy ({corpus.name})", search_results_state(dsn, images=False), corpus.expected,
                    reference, digest="digest_no_image")
            self.record(corpus, "floor", "copy", corpus.expected.json_files, run, warm)
            self.srv.drop(name)

    # -- driver -------------------------------------------------------------------------------------

    def run_size(self, corpus: Corpus, contenders: Sequence[str], scenarios: Mapping[str, Sequence[str]],
                 runs: int, warmup: int) -> None:
        """Warm-up(s), then the timed runs; contenders interleaved so machine noise hits all alike."""
        for i in range(warmup + runs):
            warm = i < warmup
            for contender in contenders:
                if contender == "pharmload":
                    self.run_pharmload(corpus, i, warm, scenarios["pharmload"])
                elif contender == "baseline":
                    self.run_baseline(corpus, i, warm)
                elif contender == "dlt":
                    self.run_dlt(corpus, i, warm)
                elif contender == "floor":
                    self.run_floor(corpus, i, warm, scenarios["floor"])


def _last_json_line(out: Path) -> dict[str, Any]:
    lines = [ln for ln in out.with_suffix(".out").read_text(errors="replace").splitlines() if ln.startswith("{")]
    try:
        data = json.loads(lines[-1]) if lines else {}
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}

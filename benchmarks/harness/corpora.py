"""The corpora: generated once per profile, size and seed, cached on disk, with what a correct load ends with."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.corpus import CORPUS_VERSION, CorpusSpec, add_day, generate
from benchmarks.harness.common import BenchmarkError, Key, log


@dataclass(frozen=True)
class Expected:
    """What a correct load of a tree ends with, from the generator's own bookkeeping."""

    keys: frozenset[Key]
    images: frozenset[str]  # referenced screenshots (rel paths): one image_assets row each
    json_files: int
    png_files: int

    @property
    def files(self) -> int:
        return self.json_files + self.png_files

    def union(self, other: Expected) -> Expected:
        return Expected(self.keys | other.keys, self.images | other.images, self.json_files + other.json_files,
                        self.png_files + other.png_files)


@dataclass
class Corpus:
    files: int
    image_bytes: int
    seed: int
    profile: str
    root: Path  # the tree (a states folder)
    expected: Expected
    day_dir: Path | None = None  # holds the one extra day folder, for the incremental scenario
    day_expected: Expected | None = None  # expectation for the tree plus that day

    @property
    def name(self) -> str:
        return corpus_name(self.files, self.image_bytes, self.seed, self.profile)

    @property
    def spec(self) -> CorpusSpec:
        return CorpusSpec(files=self.files, seed=self.seed, image_bytes=self.image_bytes, profile=self.profile)


def corpus_name(files: int, image_bytes: int, seed: int, profile: str) -> str:
    """The cache's name for a corpus; the generator's version in it keeps a stale cache from being reused."""
    return f"{profile}-v{CORPUS_VERSION}-{files}-{image_bytes}-{seed}"


def _write_expected(path: Path, stats: Any) -> Expected:
    exp = Expected(frozenset(stats.row_keys), frozenset(stats.image_files), stats.json_files, stats.png_files)
    data = {"summary": stats.summary(), "json_files": exp.json_files, "png_files": exp.png_files,
            "keys": sorted(([s, n, lic] for s, n, lic in exp.keys), key=lambda k: (k[0], k[1], k[2] or "")),
            "images": sorted(exp.images)}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    tmp.replace(path)
    return exp


def _read_expected(path: Path) -> Expected | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Expected(frozenset((s, n, lic) for s, n, lic in data["keys"]), frozenset(data["images"]),
                        int(data["json_files"]), int(data["png_files"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def ensure_corpus(corpus_dir: Path, files: int, image_bytes: int, seed: int, profile: str) -> Corpus:
    """The cached corpus, generated first if missing (into a temporary folder, then renamed)."""
    name = corpus_name(files, image_bytes, seed, profile)
    root, exp_path = corpus_dir / name, corpus_dir / f"{name}.expected.json"
    corpus_dir.mkdir(parents=True, exist_ok=True)
    with open(corpus_dir / f".{name}.lock", "w") as lock:  # another benchmark may be writing it
        fcntl.flock(lock, fcntl.LOCK_EX)
        expected = _read_expected(exp_path) if root.is_dir() else None
        if expected is None:
            expected = _generate_corpus(corpus_dir, name, CorpusSpec(files=files, seed=seed, image_bytes=image_bytes,
                                                                     profile=profile))
    return Corpus(files, image_bytes, seed, profile, root, expected)


def _generate_corpus(corpus_dir: Path, name: str, spec: CorpusSpec) -> Expected:
    root, exp_path = corpus_dir / name, corpus_dir / f"{name}.expected.json"
    shutil.rmtree(root, ignore_errors=True)
    tmp = corpus_dir / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"generating corpus {name} into {corpus_dir} (once; reused by later runs)")
    started = time.perf_counter()
    stats = generate(tmp, spec)
    tmp.rename(root)
    expected = _write_expected(exp_path, stats)
    log(f"corpus {name}: {stats.json_files} JSON + {stats.png_files} PNG in {time.perf_counter() - started:.1f}s")
    return expected


def ensure_day(corpus: Corpus, corpus_dir: Path) -> None:
    """The extra day folder add_day writes after the corpus's last day, cached next to it."""
    if corpus.day_dir is not None:
        return
    day_dir, exp_path = corpus_dir / f"{corpus.name}.day", corpus_dir / f"{corpus.name}.day.expected.json"
    with open(corpus_dir / f".{corpus.name}.lock", "w") as lock:  # another benchmark may be writing it
        fcntl.flock(lock, fcntl.LOCK_EX)
        day_exp = _read_expected(exp_path) if day_dir.is_dir() else None
        if day_exp is None:
            day_exp = _generate_day(corpus, corpus_dir)
    corpus.day_dir = day_dir
    corpus.day_expected = corpus.expected.union(day_exp)


def _generate_day(corpus: Corpus, corpus_dir: Path) -> Expected:
    day_dir, exp_path = corpus_dir / f"{corpus.name}.day", corpus_dir / f"{corpus.name}.day.expected.json"
    shutil.rmtree(day_dir, ignore_errors=True)
    tmp = corpus_dir / f".{corpus.name}.daytmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    hardlink_tree(corpus.root, tmp)
    log(f"adding one day to corpus {corpus.name} (once)")
    stats = add_day(tmp, corpus.spec, corpus.spec.days)
    if len(stats.days) != 1:
        raise BenchmarkError(f"add_day wrote {stats.days}, expected one day folder")
    staging = corpus_dir / f".{corpus.name}.day-{os.getpid()}"
    staging.mkdir()
    (tmp / stats.days[0]).rename(staging / stats.days[0])
    shutil.rmtree(tmp)
    staging.rename(day_dir)
    return _write_expected(exp_path, stats)


def hardlink_tree(src: Path, dst: Path) -> None:
    """A copy of src at dst whose files are hard links (same bytes, same mtimes, no data copied)."""
    shutil.rmtree(dst, ignore_errors=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["cp", "-al", str(src), str(dst)], stderr=subprocess.DEVNULL).returncode != 0:
        shutil.rmtree(dst, ignore_errors=True)  # another file system: a real copy, mtimes kept
        subprocess.run(["cp", "-a", str(src), str(dst)], check=True)

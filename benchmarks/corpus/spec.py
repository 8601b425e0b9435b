"""What to generate (CorpusSpec) and what a generated tree holds (CorpusStats): the package's contract."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date
from typing import Final

#: Reject codes of FORMAT.md, in the order of its table (the first one that applies wins).
REJECT_REASONS: Final[tuple[str, ...]] = (
    "invalid_json",
    "invalid_shape",
    "missing_field",
    "invalid_state",
    "invalid_timestamp",
)

#: Profiles: "realistic" (the default) is shaped like a real day's scrape: every (pharmacy, state)
#: pair is searched about once per tree (REPEAT_SHARE of the searches repeat an earlier one), ~75 %
#: of searches find 1-3 licenses, so a load lands ~1.2 rows per file. "repeats" is the older,
#: repeats-heavy tree: ~40 pharmacies whose searches come back day after day (0.19 rows per file
#: at 20,000 files), which exercises "newest search wins" far more than a real scrape does.
PROFILES: Final[tuple[str, ...]] = ("realistic", "repeats")

#: Bumped whenever the bytes a spec generates change: the benchmark harness names its cached
#: corpora with it, so a cache written by an older generator is never taken for the current one.
CORPUS_VERSION: Final = 3

RowKey = tuple[str, str, str | None]
"""(search_state, search_name, license_number text or None) as the loader should store it."""


@dataclass(frozen=True)
class CorpusSpec:
    """What to generate. ``files`` counts ``*_parse.json`` files over all ``days`` day folders."""

    files: int = 515
    seed: int = 1
    image_bytes: int = 100_000
    days: int = 3
    broken_fraction: float = 0.02
    start_day: str = "2025-08-03"
    profile: str = "realistic"  # one of PROFILES


@dataclass(frozen=True)
class CorpusStats:
    """What one :func:`generate` or :func:`add_day` call wrote.

    The first four fields are the contract; the others tell tests and benchmarks what a correct
    load must produce. ``row_keys`` and ``image_files`` are sets, so the outcome of
    ``generate`` + ``add_day`` is the union of the two calls' sets.
    """

    json_files: int
    png_files: int
    broken_by_reason: dict[str, int]
    valid_files: int
    #: Day folders written, e.g. ("2025-08-03", "2025-08-04").
    days: tuple[str, ...] = ()
    #: Valid "no results" files by shape: "empty" (licenses: []) and "placeholder".
    no_result_files: dict[str, int] = field(default_factory=dict)
    #: PNGs that no JSON file refers to (``<Name>_table.png``).
    orphan_png_files: int = 0
    #: Valid JSON files whose screenshot is another file's (same search, or an earlier day).
    shared_png_refs: int = 0
    #: Valid JSON files without ``source_image_file`` (resolved by the stem fallback).
    stem_fallback_files: int = 0
    #: Impossible dates (e.g. 02/30/2020) written into valid files; each is a NULL + warning.
    impossible_dates: int = 0
    #: Rows in valid files before dedup: licenses, or 1 per "no results" file.
    rows_before_dedup: int = 0
    #: Distinct (search_state, search_name, license_number) keys in valid files.
    row_keys: frozenset[RowKey] = field(default_factory=frozenset, repr=False)
    #: PNG paths (relative to the output directory, "/"-separated) referred to by valid files:
    #: the screenshots a load stores (one image_assets row each, as all PNG bytes are unique).
    image_files: frozenset[str] = field(default_factory=frozenset, repr=False)
    #: (width, height) of every PNG written, by path relative to the output directory.
    png_dimensions: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)

    @property
    def search_pairs(self) -> int:
        """Distinct (pharmacy, state) pairs searched by valid files."""
        return len({(state, name) for state, name, _ in self.row_keys})

    def summary(self) -> dict[str, object]:
        """A small JSON-friendly view (the sets and the dimension map reduced to counts)."""
        no_results = sum(self.no_result_files.values())
        return {
            "days": list(self.days),
            "json_files": self.json_files,
            "png_files": self.png_files,
            "valid_files": self.valid_files,
            "broken_by_reason": self.broken_by_reason,
            "no_result_files": self.no_result_files,
            "orphan_png_files": self.orphan_png_files,
            "shared_png_refs": self.shared_png_refs,
            "stem_fallback_files": self.stem_fallback_files,
            "impossible_dates": self.impossible_dates,
            "rows_before_dedup": self.rows_before_dedup,
            "distinct_row_keys": len(self.row_keys),
            "search_pairs": self.search_pairs,
            "referenced_images": len(self.image_files),
            "rows_per_file": round(len(self.row_keys) / self.json_files, 3) if self.json_files else None,
            "repeat_search_share": round(1 - self.search_pairs / self.valid_files, 3) if self.valid_files else None,
            "no_result_share": round(no_results / self.valid_files, 3) if self.valid_files else None,
        }


def validate(spec: CorpusSpec) -> None:
    """Raise ValueError for a spec no tree can be generated from."""
    if spec.files < 0:
        raise ValueError("files must be >= 0")
    if spec.days < 1:
        raise ValueError("days must be >= 1")
    if spec.image_bytes < 0:
        raise ValueError("image_bytes must be >= 0")
    if not 0.0 <= spec.broken_fraction <= 1.0:
        raise ValueError("broken_fraction must be between 0 and 1")
    if spec.profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}")
    date.fromisoformat(spec.start_day)


def seeded_rng(seed: int, *parts: object) -> random.Random:
    """A generator for one purpose (``parts``) of one corpus: reproducible and independent of the others.

    A str seed is hashed with SHA-512 by random.Random: stable across runs and platforms.
    """
    return random.Random("/".join(["pharmload-corpus", str(seed), *map(str, parts)]))

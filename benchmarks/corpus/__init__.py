"""Deterministic synthetic scrape generator for pharmload tests and benchmarks.

Why this exists: the real scrapes (``<day>/<STATE>/<Name>_<NN>_parse.json`` plus PNG screenshots,
described in FORMAT.md) cannot be checked into the repository, are too small to benchmark with,
and do not contain every oddity the loader has to survive in a known quantity. This module writes
a tree of the same shape, of any size, byte-for-byte reproducible from a seed, and returns a
:class:`CorpusStats` that says what the loader should make of it (how many files are rejected and
why, which row keys and which screenshots a load must end up with).

What a generated tree contains (all of it deterministic from ``CorpusSpec.seed``):

* searches of pharmacies in the 50 states + DC + PR, in one of two profiles (``CorpusSpec.profile``):
  ``realistic`` searches each (pharmacy, state) pair about once (6 % of searches repeat an earlier
  one, on an earlier day or later the same day), with as many pharmacies as the tree needs; 75 %
  of searches find 1-3 licenses (one file each), 25 % none, so a load lands ~1.2 rows per file.
  ``repeats`` (the older benchmark corpus) searches ~40 pharmacies again and again (0.19 rows per
  file at 20,000 files), and a search that finds licenses writes one or more
  ``<Name>_<NN>_parse.json`` files with 1-3 licenses each (license numbers mostly strings
  such as ``NP002169``, sometimes JSON integers; statuses with debris such as ``Clear/`` or
  ``" Active "``; full state names in addresses; dates in every format FORMAT.md lists, null
  tokens and, rarely, impossible dates such as ``02/30/2020``);
* "no results" searches as ``<Name>_no_results_parse.json`` in both shapes (``licenses: []`` and
  the more common single placeholder license), whose screenshot ``<Name>_<NN>.png`` is named
  differently and is only reachable through ``source_image_file``;
* ``source_image_file`` relative to the scraper (``data/<day>/<ST>/x.png``), absolute
  (``/home/scraper/pharmchecker/data/...``) or absent (the stem fallback then finds the PNG);
* the same pharmacy+state searched again on later days (later timestamps, sometimes changed
  license fields) and, in big corpora, several times on the same day, so "newest search wins" is
  exercised; screenshots shared by two JSON files (also across days); orphan ``<Name>_table.png``;
  UTF-8 BOMs; NUL characters inside text fields; lower-case ``metadata.state``; timestamps that
  are naive (UTC wall clock), ``Z`` or ``-05:00``/``-04:00``;
* broken files (``CorpusSpec.broken_fraction`` of all files, every reject code represented once
  there are at least 50 files), each with exactly ONE fault so its expected reason is unambiguous.

Screenshots are real, decodable PNGs (1-bit grayscale, blank) padded with a ``tEXt`` chunk of
filler to about ``image_bytes``; every written PNG has unique bytes (its path is embedded in the
filler). The filler comes from one pre-built buffer, so 20,000 files take a few seconds.

Naive timestamps are UTC wall-clock times, and every search of a given pharmacy+state has a
distinct instant (later days are always later), so "newest wins" has a unique answer under the
loader's default source time zone (UTC).

Modules, in the order of the work: ``spec`` (what to generate, what was written), ``tables``
(reference data), ``universe`` (who is searched where, what each search finds, per profile),
``plan`` (each day's files and their quirks), ``render`` (JSON), ``png`` (screenshots), ``writer``
(``generate``, ``add_day``), ``cli`` (``python -m benchmarks.corpus``).
"""

from __future__ import annotations

from benchmarks.corpus.cli import main
from benchmarks.corpus.spec import CORPUS_VERSION, PROFILES, REJECT_REASONS, CorpusSpec, CorpusStats, RowKey
from benchmarks.corpus.tables import STATES
from benchmarks.corpus.writer import add_day, generate

__all__ = [
    "CORPUS_VERSION",
    "PROFILES",
    "REJECT_REASONS",
    "STATES",
    "CorpusSpec",
    "CorpusStats",
    "RowKey",
    "add_day",
    "generate",
    "main",
]

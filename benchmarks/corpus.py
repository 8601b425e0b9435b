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
"""

from __future__ import annotations

import argparse
import functools
import random
import struct
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Final, Literal

import orjson

__all__ = ["CORPUS_VERSION", "PROFILES", "REJECT_REASONS", "CorpusSpec", "CorpusStats", "add_day", "generate", "main"]

# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------

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
CORPUS_VERSION: Final = 2

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


# --------------------------------------------------------------------------------------------
# Reference data
# --------------------------------------------------------------------------------------------

STATES: Final[dict[str, str]] = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "FL": "Florida", "GA": "Georgia",
    "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois", "IN": "Indiana", "IA": "Iowa",
    "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana", "ME": "Maine", "MD": "Maryland",
    "MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota", "MS": "Mississippi",
    "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada", "NH": "New Hampshire",
    "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York", "NC": "North Carolina",
    "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma", "OR": "Oregon", "PA": "Pennsylvania",
    "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota", "TN": "Tennessee",
    "TX": "Texas", "UT": "Utah", "VT": "Vermont", "VA": "Virginia", "WA": "Washington",
    "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming", "DC": "District of Columbia",
    "PR": "Puerto Rico",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Pharmacy:
    name: str  # what the scraper searched for (metadata.pharmacy_name, file name prefix)
    legal: str  # what the boards list (license.pharmacy_name)
    street: str
    suite: str
    city: str
    state: str  # code of the home state
    zip_code: str


# Synthetic data: names of the kind PharmChecker tracks; streets and zips are made up.
# fmt: off
PHARMACIES: Final[tuple[_Pharmacy, ...]] = tuple(
    _Pharmacy(*row)
    for row in (
        ("Belmar", "BELMAR PHARMACY", "231 VIOLET STREET", "SUITE 140", "GOLDEN", "CO", "80401"),
        ("Beaker", "BEAKER PHARMACY", "7810 ELDORADO PKWY", "STE 200", "MCKINNEY", "TX", "75072"),
        ("Empower", "EMPOWER PHARMACY", "7601 N SAM HOUSTON PKWY W", "STE 100", "HOUSTON", "TX",
         "77064"),
        ("Wells", "WELLS PHARMACY NETWORK", "1210 SW 33RD AVE", "", "OCALA", "FL", "34474"),
        ("Carie Boyd", "CARIE BOYD'S PRESCRIPTION SHOP", "1301 W PIPELINE RD", "", "HURST", "TX",
         "76053"),
        ("Anazao Health", "ANAZAO HEALTH CORPORATION", "5710 HOOVER BLVD", "", "TAMPA", "FL",
         "33634"),
        ("BPI Labs", "BPI LABS LLC", "12393 BELCHER RD S", "SUITE 450", "LARGO", "FL", "33773"),
        ("Aequita", "AEQUITA PHARMACY", "12825 NE 126TH PL", "", "KIRKLAND", "WA", "98034"),
        ("Olympia", "OLYMPIA COMPOUNDING PHARMACY", "6700 CONROY RD", "STE 155", "ORLANDO", "FL",
         "32835"),
        ("Hallandale", "HALLANDALE PHARMACY", "2666 SW 36TH ST", "", "FORT LAUDERDALE", "FL",
         "33312"),
        ("Tailor Made", "TAILOR MADE COMPOUNDING", "200 MOORE DR", "", "NICHOLASVILLE", "KY",
         "40356"),
        ("Strive", "STRIVE PHARMACY", "1355 W BASELINE RD", "STE 110", "GILBERT", "AZ", "85233"),
        ("Red Rock", "RED ROCK COMPOUNDING PHARMACY", "4400 S PECOS RD", "", "LAS VEGAS", "NV",
         "89121"),
        ("Lee Silsby", "LEE SILSBY COMPOUNDING PHARMACY", "3216 BROOKPARK RD", "", "CLEVELAND", "OH",
         "44134"),
        ("Hikma", "HIKMA 503B LLC", "1809 WILSON RD", "", "COLUMBUS", "OH", "43228"),
        ("QuVa", "QUVA PHARMA INC", "3 SUGAR CREEK CENTER BLVD", "STE 250", "SUGAR LAND", "TX",
         "77478"),
        ("Leiters", "LEITERS HEALTH", "13796 COMPARK BLVD", "", "ENGLEWOOD", "CO", "80112"),
        ("Fagron", "FAGRON STERILE SERVICES", "8710 E 34TH ST N", "", "WICHITA", "KS", "67226"),
        ("Nephron", "NEPHRON STERILE COMPOUNDING CENTER", "4500 12TH ST EXT", "", "WEST COLUMBIA",
         "SC", "29172"),
        ("Vios", "VIOS COMPOUNDING PHARMACY", "2109 N 52ND AVE", "", "OMAHA", "NE", "68104"),
        ("Pharmacy Creations", "PHARMACY CREATIONS", "540 ROUTE 10 WEST", "STE 3", "RANDOLPH", "NJ",
         "07869"),
        ("Rightway", "RIGHTWAY PHARMACY", "3900 N MICHIGAN AVE", "", "CHICAGO", "IL", "60613"),
        ("Triad", "TRIAD RX INC", "1040 E 17TH ST", "", "JOPLIN", "MO", "64804"),
        ("Wedgewood", "WEDGEWOOD CONNECT", "405 HERON DR", "STE 200", "SWEDESBORO", "NJ", "08085"),
        ("Northside", "NORTHSIDE COMPOUNDING", "77 WESTPORT PLZ", "", "ST LOUIS", "MO", "63146"),
        ("Olive Tree", "OLIVE TREE PHARMACY LLC", "1550 PALM BAY RD NE", "", "PALM BAY", "FL",
         "32905"),
        ("Apotheca", "APOTHECA INC", "9230 E MAIN ST", "", "PHOENIX", "AZ", "85004"),
        ("Precision", "PRECISION COMPOUNDING PHARMACY", "5150 GOLDLEAF CIR", "STE 10", "LOS ANGELES",
         "CA", "90056"),
        ("Central Drugs", "CENTRAL DRUGS RX", "1140 N CENTRAL AVE", "", "LA HABRA", "CA", "90631"),
        ("Mountain View", "MOUNTAIN VIEW PHARMACY", "200 E MAIN ST", "", "BOZEMAN", "MT", "59715"),
        ("Harbor", "HARBOR COMPOUNDING PHARMACY", "1501 W PACIFIC COAST HWY", "", "LONG BEACH", "CA",
         "90810"),
        ("Medisca", "MEDISCA PHARMACEUTIQUE", "661 ROUTE 3", "UNIT C", "PLATTSBURGH", "NY", "12901"),
        ("Revive", "REVIVE RX", "3831 GOLF DR", "", "HOUSTON", "TX", "77018"),
        ("Edge", "EDGE PHARMACY SERVICES", "856 PRIMOS AVE", "", "FOLCROFT", "PA", "19032"),
        ("ProRx", "PRORX LLC", "300 OAKLAND DR", "", "PITTSBURGH", "PA", "15220"),
        ("Greenpark", "GREENPARK COMPOUNDING PHARMACY", "8731 GLENMONT DR", "", "HOUSTON", "TX",
         "77036"),
        ("Smith Caldwell", "SMITH CALDWELL DRUG STORE", "1007 W JACKSON ST", "", "DOTHAN", "AL",
         "36303"),
        ("Eagle", "EAGLE PHARMACY", "301 MAIN ST", "", "BIRMINGHAM", "AL", "35203"),
        ("Hopewell", "HOPEWELL PHARMACY", "1 W BROAD ST", "", "HOPEWELL", "NJ", "08525"),
        ("Custom Scripts", "CUSTOM SCRIPTS PHARMACY", "3020 W ALABAMA ST", "", "TAMPA", "FL",
         "33607"),
    )
)
# fmt: on

_Search = tuple[_Pharmacy, str]  # a (pharmacy, state) pair searched

_MONTHS: Final[tuple[str, ...]] = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip

#: Null tokens of FORMAT.md as a scraper writes them (None is JSON null).
_NULL_DATE_TOKENS: Final[tuple[str | None, ...]] = (
    None, None, None, "", "Not On File", "NOT ON FILE", "Not Available", "N/A", "n/a", " N/A ",
    "NA", "---", "-", "None", "Unknown", "Unknown.", "null",
)  # fmt: skip
_IMPOSSIBLE_DATES: Final[tuple[str, ...]] = ("02/30/2020", "2021-02-29", "04/31/2019", "February 30, 2018")

_STATUSES: Final[tuple[tuple[str, int], ...]] = (
    ("Active", 60), ("Clear/", 12), ("ACTIVE", 6), ("Active - Renewal Pending", 3),
    ("Inactive", 6), ("Expired", 6), ("Closed", 3), ("Null and Void", 2), ("Probation", 2),
)  # fmt: skip
_LICENSE_TYPES: Final[tuple[str, ...]] = (
    "Nonresident Pharmacy", "Pharmacy Non-Resident", "Non-Resident Pharmacy", "Out-of-State Pharmacy",
    "Pharmacy", "Sterile Compounding Pharmacy", "Pharmacy Outsourcing Facility",
    "Nonresident Sterile Compounding", "Mail Order Pharmacy",
)  # fmt: skip
_SPECIALTIES: Final[tuple[tuple[str, ...], ...]] = (
    (), (), (), (), (), (), ("Non-Resident",), ("Sterile Compounding",), ("Outsourcing Facility",),
    ("Non-Sterile Compounding", "Sterile Compounding"),
)  # fmt: skip
#: License number styles; the first one whose format has no letters gives JSON integers.
_NUMBER_STYLES: Final[tuple[str, ...]] = (
    "NP{:06d}",
    "PH{:05d}",
    "NRP{:05d}",
    "{:d}",
    "PHY{:07d}",
    "RX.{:07d}",
    "NSC{:d}",
    "{:d}-NR",
)

_SCRAPER_ROOT: Final = "/home/scraper/pharmchecker"
_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"

_Shape = Literal["found", "empty", "placeholder_null", "placeholder_scraper"]
_ImageRef = Literal["relative", "absolute", "absent"]
_TsStyle = Literal["naive", "naive_seconds", "Z", "-05:00", "-04:00"]
_PLACEHOLDERS: Final[tuple[_Shape, ...]] = ("placeholder_null", "placeholder_scraper")
_TS_STYLES: Final[tuple[_TsStyle, ...]] = ("naive", "naive_seconds", "Z", "-05:00", "-04:00")
_TS_WEIGHTS: Final[tuple[int, ...]] = (80, 3, 9, 5, 3)

#: (reason, variant) pairs, cycled through in this order so small corpora cover every reason.
_BROKEN_VARIANTS: Final[dict[str, tuple[str, ...]]] = {
    "invalid_json": ("truncated", "empty", "trailing_garbage", "array", "not_utf8", "null"),
    "invalid_shape": ("metadata_string", "licenses_object", "license_not_object", "search_result_list"),
    "missing_field": ("name_null", "state_missing", "name_empty", "name_missing", "state_null",
                      "state_empty"),
    "invalid_state": ("XX", "Florida", "UK"),
    "invalid_timestamp": ("yesterday", "missing", "empty", "null", "us_format", "impossible"),
}  # fmt: skip


# --------------------------------------------------------------------------------------------
# Planning: what each day contains (cheap, no rendering, no I/O)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _License:
    number: str
    as_int: bool  # written as a JSON integer (number is all digits)
    legal_name: str
    status: str
    license_type: str
    issue: date | None
    expiration: date | None
    street: str
    suite: str
    city: str
    addr_state: str
    zip_code: str
    specialties: tuple[str, ...]
    phone: str | None


@dataclass(frozen=True, slots=True)
class _Profile:
    """Stable facts about one (pharmacy, state) search, the same on every day."""

    pharmacy: _Pharmacy
    state: str
    found: bool
    licenses: tuple[_License, ...]


@dataclass(slots=True)
class _FilePlan:
    profile: _Profile
    nn: int
    json_rel: str  # relative to the output directory, "/"-separated
    png_rel: str  # the screenshot this file refers to
    own_png: bool  # this file's own screenshot (written next to it)
    shape: _Shape
    licenses: tuple[_License, ...]
    instant: datetime  # aware, UTC
    broken: tuple[str, str] | None = None  # (reason, variant)
    image_ref: _ImageRef = "relative"
    ts_style: _TsStyle = "naive"
    bom: bool = False
    nul: bool = False
    lower_state: bool = False
    impossible_date: bool = False
    shared_png: bool = False
    omit_result_status: bool = False


@dataclass(frozen=True, slots=True)
class _PngPlan:
    rel: str
    width: int
    height: int
    size: int


@dataclass(slots=True)
class _DayPlan:
    index: int
    day: str
    files: list[_FilePlan]
    pngs: list[_PngPlan]
    orphans: int
    #: (pharmacy name, state) -> screenshot of that day's first "no results" file, for later days.
    no_result_png: dict[tuple[str, str], str]


def _validate(spec: CorpusSpec) -> None:
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


def _broken_total(files: int, fraction: float) -> int:
    if files == 0 or fraction <= 0.0:
        return 0
    count = round(files * fraction)
    if files >= 50:
        count = max(count, len(REJECT_REASONS))
    return min(count, files)


def _day_counts(spec: CorpusSpec, day_index: int) -> tuple[int, int, int]:
    """(files, broken files, index of the day's first broken file in the reason cycle)."""
    total_broken = _broken_total(spec.files, spec.broken_fraction)
    if day_index < spec.days:
        q, r = divmod(spec.files, spec.days)
        bq, br = divmod(total_broken, spec.days)
        files = q + (1 if day_index < r else 0)
        broken = bq + (1 if day_index < br else 0)
        offset = bq * day_index + min(day_index, br)
        return files, broken, offset
    files = max(1, spec.files // spec.days)
    broken = _broken_total(files, spec.broken_fraction)
    return files, broken, total_broken + (day_index - spec.days) * broken


def _rng(seed: int, *parts: object) -> random.Random:
    # A str seed is hashed with SHA-512 by random.Random: stable across runs and platforms.
    return random.Random("/".join(["pharmload-corpus", str(seed), *map(str, parts)]))


@functools.lru_cache(maxsize=8)
def _universe(seed: int) -> tuple[tuple[_Pharmacy, str], ...]:
    pairs = [(p, st) for p in PHARMACIES for st in STATES]
    _rng(seed, "universe").shuffle(pairs)
    return tuple(pairs)


#: Words of synthesized pharmacy names ("Cedar Creek Apothecary"), for realistic trees that search
#: more pharmacies than PHARMACIES lists; two-word names never equal one of PHARMACIES.
_NAME_FIRST: Final[tuple[str, ...]] = (
    "Cedar", "Maple", "Summit", "Lakeside", "Pioneer", "Liberty", "Heritage", "Riverside", "Valley",
    "Coastal", "Prairie", "Granite", "Willow", "Sierra", "Canyon", "Evergreen", "Bayview", "Northgate",
    "Southport", "Westfield", "Eastwood", "Magnolia", "Sunrise", "Silverline", "Goldenrod", "Blue Ridge",
    "Oak Hollow", "Pine Bluff", "Stonebridge", "Fairview", "Brookside", "Highland", "Meadow", "Cypress",
    "Aspen", "Juniper", "Redwood", "Sequoia", "Hillcrest", "Crescent", "Beacon", "Keystone", "Frontier",
    "Lighthouse", "Cornerstone", "Parkway", "Main Street", "Town Square", "Village", "Union",
)  # fmt: skip
_NAME_SECOND: Final[tuple[str, ...]] = (
    "Compounding", "Apothecary", "Pharmacy", "Rx", "Drug", "Health", "Specialty Rx", "Wellness",
    "Pharma", "Scripts", "Infusion", "Care", "Medical", "Chemists", "Labs", "Drugstore",
)  # fmt: skip
_NAME_THIRD: Final[tuple[str, ...]] = (
    "North", "South", "East", "West", "Central", "Plaza", "Park", "Point", "Square", "Heights",
    "Commons", "Crossing", "Station", "Junction", "Gardens", "Terrace", "Landing", "Harbor", "Ridge", "Grove",
)  # fmt: skip
_STREETS: Final[tuple[str, ...]] = (
    "MAIN ST", "OAK AVE", "COMMERCE DR", "INDUSTRIAL BLVD", "MARKET ST", "PARK AVE", "CENTER DR",
    "TECHNOLOGY WAY", "HIGHWAY 50", "RESEARCH PKWY", "WASHINGTON ST", "LINCOLN AVE",
)  # fmt: skip


@functools.lru_cache(maxsize=8)
def _synthetic_names(seed: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Two-word and three-word names, each list in a seeded order."""
    rng = _rng(seed, "names")
    two = [f"{a} {b}" for a in _NAME_FIRST for b in _NAME_SECOND]
    three = [f"{a} {b} {c}" for c in _NAME_THIRD for a in _NAME_FIRST for b in _NAME_SECOND]
    rng.shuffle(two)
    rng.shuffle(three)
    return tuple(two), tuple(three)


@functools.lru_cache(maxsize=4096)
def _pharmacy(seed: int, index: int) -> _Pharmacy:
    """Pharmacy number ``index`` of the realistic profile: PHARMACIES first, then synthesized ones."""
    if index < len(PHARMACIES):
        return PHARMACIES[index]
    two, three = _synthetic_names(seed)
    j = index - len(PHARMACIES)
    if j < len(two):
        name = two[j]
    elif j < len(two) + len(three):
        name = three[j - len(two)]
    else:  # beyond ~17,000 pharmacies: numbered branches
        j -= len(two) + len(three)
        name = f"{three[j % len(three)]} {2 + j // len(three)}"
    rng = _rng(seed, "pharmacy", index)
    home = PHARMACIES[rng.randrange(len(PHARMACIES))]  # a real city, state and zip code
    legal = name.upper() + rng.choice(("", "", " LLC", " INC", " PHARMACY"))
    suite = f"STE {rng.randrange(1, 500)}" if rng.random() < 0.3 else ""
    street = f"{rng.randrange(1, 20_000)} {rng.choice(_STREETS)}"
    return _Pharmacy(name, legal, street, suite, home.city, home.state, home.zip_code)


@functools.lru_cache(maxsize=8)
def _state_order(seed: int) -> tuple[str, ...]:
    codes = list(STATES)
    _rng(seed, "states").shuffle(codes)
    return tuple(codes)


def _realistic_pair(seed: int, k: int) -> _Search:
    """Pair number ``k`` of the realistic profile's endless list: each pharmacy in every state."""
    pharmacy, nth = divmod(k, len(STATES))
    states = _state_order(seed)
    return _pharmacy(seed, pharmacy), states[(nth + 7 * pharmacy) % len(states)]


def _random_date(rng: random.Random, first: date, last: date) -> date:
    return first + timedelta(days=rng.randrange((last - first).days + 1))


@dataclass(frozen=True, slots=True)
class _Odds:
    """What a search of one (pharmacy, state) pair finds, by corpus profile."""

    found: float  # share of pairs whose search finds licenses
    licenses: tuple[int, ...]  # weights of 1, 2, 3, ... licenses found
    shared_png: float  # share of a search's later files that point at its first file's screenshot


_ODDS: Final[dict[str, _Odds]] = {
    # mean 1.40 licenses: with REPEAT_SHARE and 2 % broken files, ~1.2 rows per file
    "realistic": _Odds(found=0.75, licenses=(68, 24, 8), shared_png=0.5),
    "repeats": _Odds(found=0.72, licenses=(40, 30, 15, 10, 5), shared_png=0.15),
}

#: Realistic profile: share of a day's searches that repeat a pair searched before (on an earlier
#: day, or the same day: a retried search), and of those, the share from earlier days.
REPEAT_SHARE: Final = 0.06
_EARLIER_DAY_SHARE: Final = 0.7


@functools.lru_cache(maxsize=8192)
def _profile(seed: int, pharmacy: _Pharmacy, state: str, kind: str = "repeats") -> _Profile:
    odds = _ODDS[kind]
    rng = _rng(seed, "profile", pharmacy.name, state)
    found = rng.random() < odds.found
    if not found:
        return _Profile(pharmacy, state, False, ())
    count = rng.choices(range(1, len(odds.licenses) + 1), weights=odds.licenses)[0]
    state_style = list(STATES).index(state) % len(_NUMBER_STYLES)
    numbers: set[str] = set()
    licenses: list[_License] = []
    while len(licenses) < count:
        style = _NUMBER_STYLES[state_style if rng.random() < 0.85 else rng.randrange(len(_NUMBER_STYLES))]
        number = style.format(rng.randrange(100, 2_000_000) if "{:d}" in style else rng.randrange(1, 99_999))
        if number in numbers:
            continue
        numbers.add(number)
        legal = rng.choice((pharmacy.legal, pharmacy.legal, pharmacy.legal + " LLC", pharmacy.legal.title()))
        street, suite, city = pharmacy.street, pharmacy.suite, pharmacy.city
        if suite and rng.random() < 0.4:  # boards that put the suite into the city column
            suite, city = "", f"{suite} {city}"
        home = pharmacy.state
        issue = None if rng.random() < 0.15 else _random_date(rng, date(1990, 1, 1), date(2024, 12, 31))
        expiration = None
        if rng.random() >= 0.08:
            expiration = _random_date(rng, date(2025, 1, 1), date(2028, 12, 31))
            if rng.random() < 0.6:  # most licenses expire at a month end
                nxt = date(expiration.year + expiration.month // 12, expiration.month % 12 + 1, 1)
                expiration = nxt - timedelta(days=1)
        licenses.append(
            _License(
                number=number,
                as_int=number.isdigit() and rng.random() < 0.7,
                legal_name=legal,
                status=rng.choices([s for s, _ in _STATUSES], weights=[w for _, w in _STATUSES])[0],
                license_type=rng.choice(_LICENSE_TYPES),
                issue=issue,
                expiration=expiration,
                street=street,
                suite=suite,
                city=city,
                addr_state=STATES[home] if rng.random() < 0.6 else home,
                zip_code=pharmacy.zip_code,
                specialties=rng.choice(_SPECIALTIES),
                phone=_fake_phone(rng) if rng.random() < 0.1 else None,
            )
        )
    return _Profile(pharmacy, state, True, tuple(licenses))


def _fake_phone(rng: random.Random) -> str:
    return f"({rng.randrange(201, 989)}) 555-01{rng.randrange(100):02d}"  # 555-01xx: fictional


def _choose(rng: random.Random, candidates: Sequence[int], fraction: float) -> list[int]:
    """A deterministic sample of about ``fraction`` of ``candidates``, at least one if any."""
    if not candidates:
        return []
    return rng.sample(list(candidates), max(1, min(len(candidates), round(len(candidates) * fraction))))


def _repeats_searches(spec: CorpusSpec, index: int) -> Iterator[_Search]:
    """Repeats profile: a window of the shuffled ~2,000 (pharmacy, state) pairs that moves ~60 % per
    day, so ~40 % of a day's searches repeat the previous day's; wraps around for big corpora."""
    universe = _universe(spec.seed)
    nominal = max(1, spec.files // spec.days)
    stride = max(1, round(nominal / 1.2 * 0.6))
    start = (index * stride) % len(universe)
    step = 0
    while True:
        yield universe[(start + step) % len(universe)]
        step += 1


def _realistic_searches(spec: CorpusSpec, index: int, rng: random.Random, n_files: int) -> list[_Search]:
    """Realistic profile: the day searches pairs no earlier day searched (the pair list is endless:
    pharmacies are synthesized as needed), plus REPEAT_SHARE of repeats: pairs of earlier days, and
    pairs searched again later the same day. Each search is one file."""
    offset = sum(_fresh_count(spec, d) for d in range(index))
    n_repeat = n_files - _fresh_count(spec, index)
    fresh = n_files - n_repeat
    n_earlier = min(n_repeat, round(n_repeat * _EARLIER_DAY_SHARE)) if offset else 0
    # (position in the day, pair index): a same-day repeat comes after its first search
    order = [(float(j), offset + j) for j in range(fresh)]
    order += [(rng.uniform(0, fresh), rng.randrange(offset)) for _ in range(n_earlier)]
    if fresh:
        for j in (rng.randrange(fresh) for _ in range(n_repeat - n_earlier)):
            order.append((rng.uniform(j + 0.5, fresh), offset + j))
    order.sort()
    return [_realistic_pair(spec.seed, k) for _, k in order]


def _fresh_count(spec: CorpusSpec, index: int) -> int:
    """Realistic profile: searches of new pairs on day ``index``."""
    n_files = _day_counts(spec, index)[0]
    return n_files - round(n_files * REPEAT_SHARE)


def _plan_day(spec: CorpusSpec, index: int, prev: _DayPlan | None, exists: Callable[[str], bool]) -> _DayPlan:
    n_files, n_broken, broken_offset = _day_counts(spec, index)
    rng = _rng(spec.seed, "plan", index)
    day = (date.fromisoformat(spec.start_day) + timedelta(days=index)).isoformat()
    odds = _ODDS[spec.profile]
    searches: Iterable[_Search] = (
        _repeats_searches(spec, index) if spec.profile == "repeats"
        else _realistic_searches(spec, index, rng, n_files)
    )  # fmt: skip

    mean_gap_us = 43_200_000_000 // max(1, n_files)
    instant = datetime.fromisoformat(day).replace(hour=8, tzinfo=UTC) + timedelta(
        microseconds=rng.randrange(600_000_000)
    )
    files: list[_FilePlan] = []
    #: the file whose screenshot a file may share: the first file of its search (repeats profile)
    #: or of the same pair's first search that day (realistic); None for those first files
    source: list[int | None] = []
    first_file: dict[tuple[str, str], int] = {}
    nn_next: dict[tuple[str, str], int] = {}
    for pharmacy, state in searches:
        if len(files) == n_files:
            break
        profile = _profile(spec.seed, pharmacy, state, spec.profile)
        instant += timedelta(microseconds=rng.randint(mean_gap_us // 5, mean_gap_us * 9 // 5))
        chunks: list[tuple[_License, ...]] = [()]
        if profile.found and spec.profile == "realistic":
            chunks = [profile.licenses]
        elif profile.found:
            chunks = []
            pool = profile.licenses
            while pool:
                size = rng.choice((1, 1, 2, 3))
                chunks.append(pool[:size])
                pool = pool[size:]
        key = (pharmacy.name, state)
        for i, chunk in enumerate(chunks):
            nn = nn_next.get(key, 1)
            nn_next[key] = nn + 1
            png_rel = f"{day}/{state}/{pharmacy.name}_{nn:02d}.png"
            if profile.found:
                json_rel = f"{day}/{state}/{pharmacy.name}_{nn:02d}_parse.json"
            elif nn == 1:
                json_rel = f"{day}/{state}/{pharmacy.name}_no_results_parse.json"
            else:
                json_rel = f"{day}/{state}/{pharmacy.name}_no_results_{nn:02d}_parse.json"
            if i:
                instant += timedelta(microseconds=rng.randint(1_500, 4_000))
            shape: _Shape = "found" if profile.found else "placeholder_null"
            if spec.profile == "repeats":
                source.append(len(files) - i if i else None)
            else:
                source.append(first_file.get(key))
                first_file.setdefault(key, len(files))
            files.append(_FilePlan(profile, nn, json_rel, png_rel, True, shape, chunk, instant))
            if len(files) == n_files:
                break

    # Broken files: exactly one fault each, reasons cycled in table order across the corpus.
    for j, fi in enumerate(sorted(rng.sample(range(n_files), n_broken))):
        b = broken_offset + j
        reason = REJECT_REASONS[b % len(REJECT_REASONS)]
        variants = _BROKEN_VARIANTS[reason]
        files[fi].broken = (reason, variants[(b // len(REJECT_REASONS)) % len(variants)])
    valid = [i for i, f in enumerate(files) if f.broken is None]
    valid_found = [i for i in valid if files[i].profile.found]
    valid_none = [i for i in valid if not files[i].profile.found]

    # Shared screenshots: a search's later result files, or a retried search, point at the first
    # file's PNG (repeats profile: found searches only, as before).
    sharers = valid_found if spec.profile == "repeats" else valid
    for i in _choose(rng, [i for i in sharers if source[i] is not None], odds.shared_png):
        first = source[i]
        assert first is not None
        files[i].png_rel, files[i].own_png, files[i].shared_png = files[first].png_rel, False, True
    # "No results" again: sometimes the scraper points at the previous day's screenshot.
    if prev is not None:
        cands = [
            i for i in valid_none
            if files[i].own_png and exists(prev.no_result_png.get(_key(files[i]), "\0"))
        ]  # fmt: skip
        for i in _choose(rng, cands, 0.3):
            files[i].png_rel, files[i].own_png, files[i].shared_png = (
                prev.no_result_png[_key(files[i])], False, True,
            )  # fmt: skip
    # No-result shapes: licenses [] (less often) or one placeholder license (two flavours).
    empty = set(_choose(rng, valid_none, 0.25))
    for i in valid_none:
        files[i].shape = "empty" if i in empty else rng.choice(_PLACEHOLDERS)
    for i in _choose(rng, [i for i in valid_found if files[i].own_png], 0.08):
        files[i].image_ref = "absent"
    for i in _choose(rng, valid, 0.02):
        files[i].bom = True
    for i in _choose(rng, valid_found, 0.01):
        files[i].nul = True
    for i in _choose(rng, valid, 0.02):
        files[i].lower_state = True
    for i in _choose(rng, [i for i in valid_found if files[i].licenses], 0.01):
        files[i].impossible_date = True
    for f in files:
        if f.image_ref != "absent":
            f.image_ref = "relative" if rng.random() < 0.65 else "absolute"
        f.ts_style = rng.choices(_TS_STYLES, _TS_WEIGHTS)[0]
        f.omit_result_status = rng.random() < (0.3 if f.shape == "empty" else 0.03)

    # Screenshots: each file's own one, plus orphans ("<Name>_table.png") in folders of the day.
    pngs: list[_PngPlan] = []

    def add_png(rel: str) -> None:
        size = round(spec.image_bytes * rng.uniform(0.85, 1.15))
        width = 1280 if rng.random() < 0.8 else 1920
        pngs.append(_PngPlan(rel, width, rng.randint(800, 2400), size))

    for f in files:
        if f.own_png:
            add_png(f.png_rel)
    folders = sorted({(f.profile.pharmacy.name, f.profile.state) for f in files})
    n_orphans = min(len(folders), max(1, n_files // 80)) if n_files >= 10 else 0
    for name, state in rng.sample(folders, n_orphans):
        add_png(f"{day}/{state}/{name}_table.png")

    no_result_png: dict[tuple[str, str], str] = {}
    for f in files:
        if not f.profile.found:
            no_result_png.setdefault(_key(f), f.png_rel)
    return _DayPlan(index, day, files, pngs, n_orphans, no_result_png)


def _key(f: _FilePlan) -> tuple[str, str]:
    return (f.profile.pharmacy.name, f.profile.state)


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------

JsonObject = dict[str, object]


def _fmt_date(rng: random.Random, value: date | None) -> str | None:
    if value is None:
        return rng.choice(_NULL_DATE_TOKENS)
    y, m, d = value.year, value.month, value.day
    style = rng.choices(range(7), weights=(35, 20, 15, 10, 8, 7, 5))[0]
    if style == 0:
        return f"{m:02d}/{d:02d}/{y}"
    if style == 1:
        return f"{m}/{d}/{y}"
    if style == 2:
        return f"{y}-{m:02d}-{d:02d}"
    if style == 3:
        return f"{m:02d}-{d:02d}-{y}"
    if style == 4:
        return f"{_MONTHS[m - 1]} {d}, {y}"
    if style == 5:
        return f"{_MONTHS[m - 1][:3]} {d}, {y}"
    return f"{d:02d}-{_MONTHS[m - 1][:3]}-{y}"


def _wall(instant: datetime, style: _TsStyle) -> datetime:
    """The scraper's wall-clock time (naive) for ``instant`` in the zone ``style`` implies."""
    wall = instant.astimezone(UTC).replace(tzinfo=None)
    return wall - timedelta(hours=int(style[1:3])) if style in ("-05:00", "-04:00") else wall


def _fmt_ts(instant: datetime, style: _TsStyle) -> str:
    wall = _wall(instant, style)
    text = wall.strftime("%Y-%m-%dT%H:%M:%S")
    if style == "naive_seconds":
        return text
    text += f".{wall.microsecond:06d}"
    return text + ("" if style == "naive" else style)


def _with_nul(text: str, rng: random.Random) -> str:
    cut = rng.randrange(1, max(2, len(text)))
    return text[:cut] + "\u0000" + text[cut:]


class _Renderer:
    def __init__(self, seed: int, day_index: int) -> None:
        self.rng = _rng(seed, "render", day_index)

    def license(self, lic: _License) -> JsonObject:
        rng = self.rng
        status = lic.status
        if rng.random() < 0.05:  # the board changed the status since an earlier search
            status = rng.choice([s for s, _ in _STATUSES if s != status])
        if rng.random() < 0.08:
            status = rng.choice((f" {status} ", f"{status}  ", f"  {status}"))
        expiration = lic.expiration
        if expiration is not None and rng.random() < 0.06:  # renewed
            try:
                expiration = expiration.replace(year=expiration.year + 2)
            except ValueError:  # February 29
                expiration = expiration.replace(year=expiration.year + 2, day=28)
        zip_code = lic.zip_code if rng.random() >= 0.05 else f"{lic.zip_code}-{rng.randrange(10000):04d}"
        return {
            "pharmacy_name": lic.legal_name,
            "license_number": int(lic.number) if lic.as_int else lic.number,
            "license_status": status,
            "license_type": lic.license_type,
            "issue_date": _fmt_date(rng, lic.issue),
            "expiration_date": _fmt_date(rng, expiration),
            "address": {
                "street": lic.street,
                "suite": lic.suite,
                "city": lic.city,
                "state": lic.addr_state,
                "zip_code": zip_code,
            },
            "contact": {"phone": lic.phone, "email": None},
            "additional_info": {"specialties": list(lic.specialties)},
        }

    def document(self, f: _FilePlan, day: str) -> tuple[JsonObject, int]:
        """The parsed JSON of a file before any fault, and the impossible dates it contains."""
        rng = self.rng
        p = f.profile
        name, state = p.pharmacy.name, p.state
        folder = f"{day}/{state}"
        stem = f"{name}_{f.nn:02d}"
        ts = _fmt_ts(f.instant, f.ts_style)
        generated = _wall(f.instant + timedelta(microseconds=rng.randint(3, 40)), f.ts_style).isoformat(
            timespec="microseconds"
        )
        metadata: JsonObject = {
            "pharmacy_name": name,
            "search_timestamp": ts,
            "state": state.lower() if f.lower_state else state,
            "scraper_version": "1.0.0" if rng.random() < 0.9 else "1.1.0",
            "json_generated_timestamp": generated,
            "source_html_file": f"{_SCRAPER_ROOT}/data/{folder}/{stem}.html",
        }
        if f.image_ref == "relative":
            metadata["source_image_file"] = f"data/{f.png_rel}"
        elif f.image_ref == "absolute":
            metadata["source_image_file"] = f"{_SCRAPER_ROOT}/data/{f.png_rel}"
        if rng.random() < 0.3:
            metadata["source_excel_file"] = None
        metadata["search_result_type"] = "pharmacy_data" if p.found else "no_results_found"
        metadata["output_directory"] = f"{_SCRAPER_ROOT}/data/{folder}"

        impossible = 0
        licenses: list[JsonObject] = []
        warnings: list[str] = []
        if f.shape == "found":
            licenses = [self.license(lic) for lic in f.licenses]
            if f.impossible_date and licenses:
                target = licenses[rng.randrange(len(licenses))]
                target[rng.choice(("issue_date", "expiration_date"))] = rng.choice(_IMPOSSIBLE_DATES)
                impossible = 1
            if f.nul:
                where = rng.randrange(3)
                if where == 0:
                    licenses[0]["pharmacy_name"] = _with_nul(str(licenses[0]["pharmacy_name"]), rng)
                elif where == 1:
                    address = licenses[0]["address"]
                    assert isinstance(address, dict)
                    address["street"] = _with_nul(str(address["street"]), rng)
                else:
                    metadata["source_html_file"] = _with_nul(str(metadata["source_html_file"]), rng)
            debug: JsonObject = {
                "parser_class": f"{state}Parser",
                "state_processor": state,
                "processing_timestamp": generated,
                "raw_license_data": dict(licenses[0]) if licenses else {},
                "parser_strategy": rng.choice(
                    ("BeautifulSoup HTML parsing", "Regex-based parsing", "Table extraction")
                ),
            }
        else:
            null_address: JsonObject = dict.fromkeys(("street", "suite", "city", "state", "zip_code"))
            if f.shape == "placeholder_null":
                licenses = [
                    {
                        "pharmacy_name": None, "license_number": None, "license_status": None,
                        "license_type": None, "issue_date": None, "expiration_date": None,
                        "address": null_address, "contact": {"phone": None, "email": None},
                        "additional_info": {"specialties": []},
                    }
                ]  # fmt: skip
            elif f.shape == "placeholder_scraper":  # as the real scraper writes it
                licenses = [
                    {
                        "pharmacy_name": name, "license_number": None, "license_status": None,
                        "license_type": "Pharmacy", "issue_date": None, "expiration_date": None,
                        "address": {**null_address, "suite": "", "state": state},
                        "contact": {"phone": None, "email": None},
                        "additional_info": {"specialties": []},
                    }
                ]  # fmt: skip
            debug = {"parser_strategy": f"No results found in {state} database"}
            warnings = [f"No pharmacy records found for '{name}' in {state} database"]
        search_result: JsonObject = {"licenses": licenses}
        if not f.omit_result_status:
            search_result["result_status"] = "found" if p.found else "no_results_found"
        search_result["search_query"] = name
        doc: JsonObject = {
            "metadata": metadata,
            "search_result": search_result,
            "debug_info": debug,
            "errors": [],
            "warnings": warnings,
        }
        return doc, impossible

    def broken_bytes(self, doc: JsonObject, reason: str, variant: str) -> bytes:
        """Serialize ``doc`` with exactly one fault of kind ``reason``."""
        metadata = doc["metadata"]
        search_result = doc["search_result"]
        assert isinstance(metadata, dict) and isinstance(search_result, dict)
        if reason == "invalid_json":
            raw = _dumps(doc)
            if variant == "empty":
                return b""
            if variant == "truncated":
                return raw[: len(raw) // 2]
            if variant == "trailing_garbage":
                return raw + b"\n<!-- parser crashed: KeyError('licenses') -->\n"
            if variant == "array":
                return b"[" + raw + b"]"
            if variant == "null":
                return b"null"
            # not_utf8: one Latin-1 encoded character in an otherwise valid document
            debug = doc["debug_info"]
            assert isinstance(debug, dict)
            debug["note"] = "Pharmacie M\u00e9dicale"
            return _dumps(doc).replace("M\u00e9dicale".encode(), "M\u00e9dicale".encode("latin-1"))
        if reason == "invalid_shape":
            licenses = search_result["licenses"]
            assert isinstance(licenses, list)
            if variant == "metadata_string":
                doc["metadata"] = f"{metadata['pharmacy_name']} / {metadata['state']}"
            elif variant == "licenses_object":
                search_result["licenses"] = licenses[0] if licenses else {}
            elif variant == "license_not_object":
                search_result["licenses"] = [*licenses[:1], "see screenshot"] if licenses else [None]
            else:  # search_result_list
                doc["search_result"] = [search_result]
        elif reason == "missing_field":
            target = "pharmacy_name" if variant.startswith("name") else "state"
            if variant.endswith("missing"):
                del metadata[target]
            else:
                metadata[target] = None if variant.endswith("null") else ""
        elif reason == "invalid_state":
            metadata["state"] = variant
        else:  # invalid_timestamp
            if variant == "missing":
                del metadata["search_timestamp"]
            else:
                metadata["search_timestamp"] = {
                    "yesterday": "yesterday",
                    "empty": "",
                    "null": None,
                    "us_format": "08/03/2025 2:03 PM",
                    "impossible": "2025-13-45T25:61:00",
                }[variant]
        return _dumps(doc)


def _dumps(doc: object) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)


# --------------------------------------------------------------------------------------------
# PNG screenshots
# --------------------------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


_ADLER_BASE: Final = 65521


@functools.lru_cache(maxsize=64)
def _adler32_rows(row: bytes, count: int) -> int:
    return zlib.adler32(row * count)


def _adler32_append_row(adler: int, row: bytes, count: int) -> int:
    """Adler-32 of (data whose checksum is ``adler``) + ``row * count``, like adler32_combine()."""
    length = len(row) * count
    other = _adler32_rows(row, count)
    rem = length % _ADLER_BASE
    s1 = adler & 0xFFFF
    s2 = rem * s1 % _ADLER_BASE
    s1 += (other & 0xFFFF) + _ADLER_BASE - 1
    s2 += (adler >> 16) + (other >> 16) + _ADLER_BASE - rem
    return (s2 % _ADLER_BASE) << 16 | s1 % _ADLER_BASE


class _PngFactory:
    """Valid 1-bit grayscale PNGs (a blank page) padded with a ``tEXt`` chunk of filler."""

    _KEYWORD: Final = b"Comment\x00"

    def __init__(self, seed: int, image_bytes: int) -> None:
        rng = _rng(seed, "png-filler")
        length = max(1024, int(image_bytes * 1.2) + 1024)
        printable = bytes(0x20 + i % 95 for i in range(256))
        self._filler = memoryview(rng.randbytes(2 * length).translate(printable))
        self._max_len = length
        self._idat: dict[tuple[int, int], bytes] = {}
        self._segments: dict[int, list[bytes]] = {}
        self._iend = _chunk(b"IEND", b"")

    def _idat_chunk(self, width: int, height: int) -> bytes:
        """IDAT of a white ``width`` x ``height`` image (cached).

        Compressing a whole image for every distinct size would dominate the run time, so the
        zlib stream is assembled from per-width deflate segments of 1, 2, 4, ... 2048 rows, each
        ended by a full flush (which resets the compressor: segments are independent and
        byte-aligned), plus a final empty block and the Adler-32 of the raw rows.
        """
        key = (width, height)
        chunk = self._idat.get(key)
        if chunk is None:
            row = b"\x00" + b"\xff" * ((width + 7) // 8)
            segments = self._segments.get(width)
            if segments is None:
                co = zlib.compressobj(9, zlib.DEFLATED, -15)
                segments = [co.compress(row * (1 << i)) + co.flush(zlib.Z_FULL_FLUSH) for i in range(12)]
                self._segments[width] = segments
            parts = [b"\x78\xda"]  # zlib header: deflate, 32 KiB window, level 9
            adler, rows = 1, height
            for i in range(11, -1, -1):
                while rows >= 1 << i:
                    parts.append(segments[i])
                    adler = _adler32_append_row(adler, row, 1 << i)
                    rows -= 1 << i
            parts.append(b"\x03\x00")  # final, empty fixed-Huffman block
            parts.append(struct.pack(">I", adler))
            chunk = self._idat[key] = _chunk(b"IDAT", b"".join(parts))
        return chunk

    def render(self, ident: str, width: int, height: int, size: int) -> list[bytes | memoryview]:
        ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
        idat = self._idat_chunk(width, height)
        head = self._KEYWORD + ident.encode() + b"\n"
        fixed = len(_PNG_SIGNATURE) + len(ihdr) + 12 + len(head) + len(idat) + len(self._iend)
        n = min(self._max_len, max(0, size - fixed))
        start = zlib.crc32(head) % (len(self._filler) - n + 1)  # varies per image, no shared state
        filler = self._filler[start : start + n]
        crc = zlib.crc32(filler, zlib.crc32(head, zlib.crc32(b"tEXt")))
        text_len = struct.pack(">I", len(head) + n)
        crc_bytes = struct.pack(">I", crc)
        return [_PNG_SIGNATURE, ihdr, text_len, b"tEXt", head, filler, crc_bytes, idat, self._iend]


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


@dataclass
class _Totals:
    days: list[str] = field(default_factory=list)
    json_files: int = 0
    png_files: int = 0
    broken: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REJECT_REASONS, 0))
    no_result: dict[str, int] = field(default_factory=lambda: {"empty": 0, "placeholder": 0})
    orphans: int = 0
    shared: int = 0
    stem_fallback: int = 0
    impossible: int = 0
    rows: int = 0
    keys: set[RowKey] = field(default_factory=set)
    images: set[str] = field(default_factory=set)
    dims: dict[str, tuple[int, int]] = field(default_factory=dict)

    def stats(self) -> CorpusStats:
        broken = sum(self.broken.values())
        return CorpusStats(
            json_files=self.json_files,
            png_files=self.png_files,
            broken_by_reason=dict(self.broken),
            valid_files=self.json_files - broken,
            days=tuple(self.days),
            no_result_files=dict(self.no_result),
            orphan_png_files=self.orphans,
            shared_png_refs=self.shared,
            stem_fallback_files=self.stem_fallback,
            impossible_dates=self.impossible,
            rows_before_dedup=self.rows,
            row_keys=frozenset(self.keys),
            image_files=frozenset(self.images),
            png_dimensions=dict(self.dims),
        )


def _write_day(out_dir: Path, spec: CorpusSpec, plan: _DayPlan, pngs: _PngFactory, totals: _Totals) -> None:
    renderer = _Renderer(spec.seed, plan.index)
    root = str(out_dir)
    folders = {rel.rsplit("/", 1)[0] for rel in [f.json_rel for f in plan.files] + [p.rel for p in plan.pngs]}
    (out_dir / plan.day).mkdir(parents=True)
    for folder in sorted(folders):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    totals.days.append(plan.day)

    for f in plan.files:
        doc, impossible = renderer.document(f, plan.day)
        if f.broken is not None:
            data = renderer.broken_bytes(doc, *f.broken)
            totals.broken[f.broken[0]] += 1
        else:
            data = (b"\xef\xbb\xbf" if f.bom else b"") + _dumps(doc)
            totals.impossible += impossible
            totals.shared += f.shared_png
            totals.stem_fallback += f.image_ref == "absent"
            totals.images.add(f.png_rel)
            state, name = f.profile.state, f.profile.pharmacy.name
            if f.shape == "found":
                totals.rows += len(f.licenses)
                totals.keys.update((state, name, lic.number) for lic in f.licenses)
            else:
                totals.rows += 1
                totals.keys.add((state, name, None))
                totals.no_result["empty" if f.shape == "empty" else "placeholder"] += 1
        with open(f"{root}/{f.json_rel}", "wb") as fh:
            fh.write(data)
        totals.json_files += 1

    for p in plan.pngs:
        parts = pngs.render(f"pharmload-corpus seed={spec.seed} {p.rel}", p.width, p.height, p.size)
        with open(f"{root}/{p.rel}", "wb") as fh:
            fh.writelines(parts)
        totals.dims[p.rel] = (p.width, p.height)
    totals.png_files += len(plan.pngs)
    totals.orphans += plan.orphans


def _exists_in(out_dir: Path) -> Callable[[str], bool]:
    return lambda rel: rel != "\0" and (out_dir / rel).is_file()


def generate(out_dir: Path, spec: CorpusSpec) -> CorpusStats:
    """Write ``spec.days`` day folders under ``out_dir`` (created if needed).

    Raises FileExistsError if one of the day folders already exists: the tree is only
    reproducible when written into a directory that does not already hold those days.
    """
    _validate(spec)
    out_dir = Path(out_dir)
    plans_days = [(date.fromisoformat(spec.start_day) + timedelta(days=d)).isoformat() for d in range(spec.days)]
    for day in plans_days:
        if (out_dir / day).exists():
            raise FileExistsError(f"{out_dir / day} already exists")
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = _PngFactory(spec.seed, spec.image_bytes)
    totals = _Totals()
    prev: _DayPlan | None = None
    exists = _exists_in(out_dir)
    for d in range(spec.days):
        prev = _plan_day(spec, d, prev, exists)
        _write_day(out_dir, spec, prev, pngs, totals)
    return totals.stats()


def add_day(out_dir: Path, spec: CorpusSpec, day_index: int) -> CorpusStats:
    """Write one more day folder, ``start_day + day_index`` (deterministic), and nothing else.

    For ``day_index >= spec.days`` the day holds ``spec.files // spec.days`` files (broken ones
    at ``broken_fraction``); for a smaller index it is the day :func:`generate` would write.
    The day repeats many of the previous day's searches with later timestamps. The returned
    stats describe the new day only.
    """
    _validate(spec)
    if day_index < 0:
        raise ValueError("day_index must be >= 0")
    out_dir = Path(out_dir)
    day = (date.fromisoformat(spec.start_day) + timedelta(days=day_index)).isoformat()
    if (out_dir / day).exists():
        raise FileExistsError(f"{out_dir / day} already exists")
    out_dir.mkdir(parents=True, exist_ok=True)
    exists = _exists_in(out_dir)
    prev: _DayPlan | None = None
    for d in range(day_index):  # earlier days' plans (no I/O): screenshots a new day may reuse
        prev = _plan_day(spec, d, prev, exists)
    plan = _plan_day(spec, day_index, prev, exists)
    totals = _Totals()
    _write_day(out_dir, spec, plan, _PngFactory(spec.seed, spec.image_bytes), totals)
    return totals.stats()


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    defaults = CorpusSpec()
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.corpus",
        description="Write a deterministic synthetic pharmacy scrape (see FORMAT.md).",
    )
    parser.add_argument("out", type=Path, help="output directory (the loader's --states-dir)")
    parser.add_argument("--files", type=int, default=defaults.files, help="number of *_parse.json files")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--image-bytes", type=int, default=defaults.image_bytes, help="approx. PNG size")
    parser.add_argument("--days", type=int, default=defaults.days, help="number of day folders")
    parser.add_argument("--broken-fraction", type=float, default=defaults.broken_fraction)
    parser.add_argument("--start-day", default=defaults.start_day)
    parser.add_argument(
        "--profile", choices=PROFILES, default=defaults.profile,
        help="realistic: each pharmacy+state searched about once, ~1.2 rows per file; "
        "repeats: ~40 pharmacies searched again and again (the older benchmark corpus)",
    )  # fmt: skip
    parser.add_argument(
        "--add-day", type=int, metavar="K", help="only add day folder number K (0-based) to an existing tree"
    )
    args = parser.parse_args(argv)
    spec = CorpusSpec(
        files=args.files,
        seed=args.seed,
        image_bytes=args.image_bytes,
        days=args.days,
        broken_fraction=args.broken_fraction,
        start_day=args.start_day,
        profile=args.profile,
    )
    started = time.perf_counter()
    try:
        stats = generate(args.out, spec) if args.add_day is None else add_day(args.out, spec, args.add_day)
    except (FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    summary = stats.summary()
    summary["seconds"] = round(time.perf_counter() - started, 3)
    sys.stdout.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

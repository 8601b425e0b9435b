"""Who is searched where, and what each search finds, per corpus profile.

The realistic profile's list of (pharmacy, state) pairs is endless: PHARMACIES first, then
pharmacies with synthesized names, each searched in every state. The repeats profile draws from
the ~2,000 pairs of PHARMACIES only. What a search of a pair finds is fixed per pair (seeded by its
names), so a pair searched again finds the same licenses.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

from benchmarks.corpus.spec import seeded_rng
from benchmarks.corpus.tables import (
    LICENSE_TYPES,
    NUMBER_STYLES,
    PHARMACIES,
    SPECIALTIES,
    STATES,
    STATUSES,
    Pharmacy,
    Search,
)


@dataclass(frozen=True, slots=True)
class License:
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
class Outcome:
    """Stable facts about one (pharmacy, state) search, the same on every day."""

    pharmacy: Pharmacy
    state: str
    found: bool
    licenses: tuple[License, ...]


@dataclass(frozen=True, slots=True)
class Odds:
    """What a search of one (pharmacy, state) pair finds, by corpus profile."""

    found: float  # share of pairs whose search finds licenses
    licenses: tuple[int, ...]  # weights of 1, 2, 3, ... licenses found
    shared_png: float  # share of a search's later files that point at its first file's screenshot


ODDS: Final[dict[str, Odds]] = {
    # mean 1.40 licenses: with REPEAT_SHARE and 2 % broken files, ~1.2 rows per file
    "realistic": Odds(found=0.75, licenses=(68, 24, 8), shared_png=0.5),
    "repeats": Odds(found=0.72, licenses=(40, 30, 15, 10, 5), shared_png=0.15),
}

#: Realistic profile: share of a day's searches that repeat a pair searched before (on an earlier
#: day, or the same day: a retried search), and of those, the share from earlier days.
REPEAT_SHARE: Final = 0.06
EARLIER_DAY_SHARE: Final = 0.7


@functools.lru_cache(maxsize=8192)
def search_outcome(seed: int, pharmacy: Pharmacy, state: str, kind: str = "repeats") -> Outcome:
    odds = ODDS[kind]
    rng = seeded_rng(seed, "profile", pharmacy.name, state)
    found = rng.random() < odds.found
    if not found:
        return Outcome(pharmacy, state, False, ())
    count = rng.choices(range(1, len(odds.licenses) + 1), weights=odds.licenses)[0]
    state_style = list(STATES).index(state) % len(NUMBER_STYLES)
    numbers: set[str] = set()
    licenses: list[License] = []
    while len(licenses) < count:
        style = NUMBER_STYLES[state_style if rng.random() < 0.85 else rng.randrange(len(NUMBER_STYLES))]
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
            License(
                number=number,
                as_int=number.isdigit() and rng.random() < 0.7,
                legal_name=legal,
                status=rng.choices([s for s, _ in STATUSES], weights=[w for _, w in STATUSES])[0],
                license_type=rng.choice(LICENSE_TYPES),
                issue=issue,
                expiration=expiration,
                street=street,
                suite=suite,
                city=city,
                addr_state=STATES[home] if rng.random() < 0.6 else home,
                zip_code=pharmacy.zip_code,
                specialties=rng.choice(SPECIALTIES),
                phone=_fake_phone(rng) if rng.random() < 0.1 else None,
            )
        )
    return Outcome(pharmacy, state, True, tuple(licenses))


def _fake_phone(rng: random.Random) -> str:
    return f"({rng.randrange(201, 989)}) 555-01{rng.randrange(100):02d}"  # 555-01xx: fictional


@functools.lru_cache(maxsize=8)
def repeats_universe(seed: int) -> tuple[tuple[Pharmacy, str], ...]:
    pairs = [(p, st) for p in PHARMACIES for st in STATES]
    seeded_rng(seed, "universe").shuffle(pairs)
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
    rng = seeded_rng(seed, "names")
    two = [f"{a} {b}" for a in _NAME_FIRST for b in _NAME_SECOND]
    three = [f"{a} {b} {c}" for c in _NAME_THIRD for a in _NAME_FIRST for b in _NAME_SECOND]
    rng.shuffle(two)
    rng.shuffle(three)
    return tuple(two), tuple(three)


@functools.lru_cache(maxsize=4096)
def nth_pharmacy(seed: int, index: int) -> Pharmacy:
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
    rng = seeded_rng(seed, "pharmacy", index)
    home = PHARMACIES[rng.randrange(len(PHARMACIES))]  # a real city, state and zip code
    legal = name.upper() + rng.choice(("", "", " LLC", " INC", " PHARMACY"))
    suite = f"STE {rng.randrange(1, 500)}" if rng.random() < 0.3 else ""
    street = f"{rng.randrange(1, 20_000)} {rng.choice(_STREETS)}"
    return Pharmacy(name, legal, street, suite, home.city, home.state, home.zip_code)


@functools.lru_cache(maxsize=8)
def _state_order(seed: int) -> tuple[str, ...]:
    codes = list(STATES)
    seeded_rng(seed, "states").shuffle(codes)
    return tuple(codes)


def realistic_pair(seed: int, k: int) -> Search:
    """Pair number ``k`` of the realistic profile's endless list: each pharmacy in every state."""
    pharmacy, nth = divmod(k, len(STATES))
    states = _state_order(seed)
    return nth_pharmacy(seed, pharmacy), states[(nth + 7 * pharmacy) % len(states)]


def _random_date(rng: random.Random, first: date, last: date) -> date:
    return first + timedelta(days=rng.randrange((last - first).days + 1))

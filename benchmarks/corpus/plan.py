"""Planning: which files and screenshots each day holds, with every quirk decided (no I/O)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from benchmarks.corpus.spec import REJECT_REASONS, CorpusSpec, seeded_rng
from benchmarks.corpus.tables import (
    BROKEN_VARIANTS,
    PLACEHOLDERS,
    TS_STYLES,
    TS_WEIGHTS,
    ImageRef,
    Search,
    Shape,
    TsStyle,
)
from benchmarks.corpus.universe import (
    EARLIER_DAY_SHARE,
    ODDS,
    REPEAT_SHARE,
    License,
    Outcome,
    realistic_pair,
    repeats_universe,
    search_outcome,
)


@dataclass(slots=True)
class FilePlan:
    outcome: Outcome
    nn: int
    json_rel: str  # relative to the output directory, "/"-separated
    png_rel: str  # the screenshot this file refers to
    own_png: bool  # this file's own screenshot (written next to it)
    shape: Shape
    licenses: tuple[License, ...]
    instant: datetime  # aware, UTC
    broken: tuple[str, str] | None = None  # (reason, variant)
    image_ref: ImageRef = "relative"
    ts_style: TsStyle = "naive"
    bom: bool = False
    nul: bool = False
    lower_state: bool = False
    impossible_date: bool = False
    shared_png: bool = False
    omit_result_status: bool = False


@dataclass(frozen=True, slots=True)
class PngPlan:
    rel: str
    width: int
    height: int
    size: int


@dataclass(slots=True)
class DayPlan:
    index: int
    day: str
    files: list[FilePlan]
    pngs: list[PngPlan]
    orphans: int
    #: (pharmacy name, state) -> screenshot of that day's first "no results" file, for later days.
    no_result_png: dict[tuple[str, str], str]


def _broken_total(files: int, fraction: float) -> int:
    if files == 0 or fraction <= 0.0:
        return 0
    count = round(files * fraction)
    if files >= 50:
        count = max(count, len(REJECT_REASONS))
    return min(count, files)


def day_counts(spec: CorpusSpec, day_index: int) -> tuple[int, int, int]:
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


def _choose(rng: random.Random, candidates: Sequence[int], fraction: float) -> list[int]:
    """A deterministic sample of about ``fraction`` of ``candidates``, at least one if any."""
    if not candidates:
        return []
    return rng.sample(list(candidates), max(1, min(len(candidates), round(len(candidates) * fraction))))


def _repeats_searches(spec: CorpusSpec, index: int) -> Iterator[Search]:
    """Repeats profile: a window of the shuffled ~2,000 (pharmacy, state) pairs that moves ~60 % per
    day, so ~40 % of a day's searches repeat the previous day's; wraps around for big corpora."""
    universe = repeats_universe(spec.seed)
    nominal = max(1, spec.files // spec.days)
    stride = max(1, round(nominal / 1.2 * 0.6))
    start = (index * stride) % len(universe)
    step = 0
    while True:
        yield universe[(start + step) % len(universe)]
        step += 1


def _realistic_searches(spec: CorpusSpec, index: int, rng: random.Random, n_files: int) -> list[Search]:
    """Realistic profile: the day searches pairs no earlier day searched (the pair list is endless:
    pharmacies are synthesized as needed), plus REPEAT_SHARE of repeats: pairs of earlier days, and
    pairs searched again later the same day. Each search is one file."""
    offset = sum(_fresh_count(spec, d) for d in range(index))
    n_repeat = n_files - _fresh_count(spec, index)
    fresh = n_files - n_repeat
    n_earlier = min(n_repeat, round(n_repeat * EARLIER_DAY_SHARE)) if offset else 0
    # (position in the day, pair index): a same-day repeat comes after its first search
    order = [(float(j), offset + j) for j in range(fresh)]
    order += [(rng.uniform(0, fresh), rng.randrange(offset)) for _ in range(n_earlier)]
    if fresh:
        for j in (rng.randrange(fresh) for _ in range(n_repeat - n_earlier)):
            order.append((rng.uniform(j + 0.5, fresh), offset + j))
    order.sort()
    return [realistic_pair(spec.seed, k) for _, k in order]


def _fresh_count(spec: CorpusSpec, index: int) -> int:
    """Realistic profile: searches of new pairs on day ``index``."""
    n_files = day_counts(spec, index)[0]
    return n_files - round(n_files * REPEAT_SHARE)


def plan_day(spec: CorpusSpec, index: int, prev: DayPlan | None, exists: Callable[[str], bool]) -> DayPlan:
    """Day ``index``: ``prev`` is the day before (its "no results" screenshots may be pointed at again,
    if ``exists`` says they are on disk). One generator draws every choice, in a fixed order."""
    n_files, n_broken, broken_offset = day_counts(spec, index)
    rng = seeded_rng(spec.seed, "plan", index)
    day = (date.fromisoformat(spec.start_day) + timedelta(days=index)).isoformat()
    searches: Iterable[Search] = (
        _repeats_searches(spec, index) if spec.profile == "repeats"
        else _realistic_searches(spec, index, rng, n_files)
    )  # fmt: skip
    files, source = _day_files(spec, day, rng, n_files, searches)
    _break_some(files, rng, n_broken, broken_offset)
    _add_quirks(spec, files, source, rng, prev, exists)
    pngs, n_orphans = _day_screenshots(spec, day, files, rng)
    no_result_png: dict[tuple[str, str], str] = {}
    for f in files:
        if not f.outcome.found:
            no_result_png.setdefault(_key(f), f.png_rel)
    return DayPlan(index, day, files, pngs, n_orphans, no_result_png)


def _day_files(
    spec: CorpusSpec, day: str, rng: random.Random, n_files: int, searches: Iterable[Search]
) -> tuple[list[FilePlan], list[int | None]]:
    """The day's files in time order, and for each the file whose screenshot it may share: the
    first file of its search (repeats profile) or of the same pair's first search that day
    (realistic), None for those first files."""
    mean_gap_us = 43_200_000_000 // max(1, n_files)
    instant = datetime.fromisoformat(day).replace(hour=8, tzinfo=UTC) + timedelta(
        microseconds=rng.randrange(600_000_000)
    )
    files: list[FilePlan] = []
    source: list[int | None] = []
    first_file: dict[tuple[str, str], int] = {}
    nn_next: dict[tuple[str, str], int] = {}
    for pharmacy, state in searches:
        if len(files) == n_files:
            break
        outcome = search_outcome(spec.seed, pharmacy, state, spec.profile)
        instant += timedelta(microseconds=rng.randint(mean_gap_us // 5, mean_gap_us * 9 // 5))
        chunks: list[tuple[License, ...]] = [()]
        if outcome.found and spec.profile == "realistic":
            chunks = [outcome.licenses]
        elif outcome.found:
            chunks = []
            pool = outcome.licenses
            while pool:
                size = rng.choice((1, 1, 2, 3))
                chunks.append(pool[:size])
                pool = pool[size:]
        key = (pharmacy.name, state)
        for i, chunk in enumerate(chunks):
            nn = nn_next.get(key, 1)
            nn_next[key] = nn + 1
            png_rel = f"{day}/{state}/{pharmacy.name}_{nn:02d}.png"
            if outcome.found:
                json_rel = f"{day}/{state}/{pharmacy.name}_{nn:02d}_parse.json"
            elif nn == 1:
                json_rel = f"{day}/{state}/{pharmacy.name}_no_results_parse.json"
            else:
                json_rel = f"{day}/{state}/{pharmacy.name}_no_results_{nn:02d}_parse.json"
            if i:
                instant += timedelta(microseconds=rng.randint(1_500, 4_000))
            shape: Shape = "found" if outcome.found else "placeholder_null"
            if spec.profile == "repeats":
                source.append(len(files) - i if i else None)
            else:
                source.append(first_file.get(key))
                first_file.setdefault(key, len(files))
            files.append(FilePlan(outcome, nn, json_rel, png_rel, True, shape, chunk, instant))
            if len(files) == n_files:
                break
    return files, source


def _break_some(files: list[FilePlan], rng: random.Random, n_broken: int, broken_offset: int) -> None:
    """Broken files: exactly one fault each, reasons cycled in table order across the corpus."""
    for j, fi in enumerate(sorted(rng.sample(range(len(files)), n_broken))):
        b = broken_offset + j
        reason = REJECT_REASONS[b % len(REJECT_REASONS)]
        variants = BROKEN_VARIANTS[reason]
        files[fi].broken = (reason, variants[(b // len(REJECT_REASONS)) % len(variants)])


def _add_quirks(
    spec: CorpusSpec,
    files: list[FilePlan],
    source: list[int | None],
    rng: random.Random,
    prev: DayPlan | None,
    exists: Callable[[str], bool],
) -> None:
    """Shared screenshots, no-result shapes and the other quirks of FORMAT.md, in valid files."""
    valid = [i for i, f in enumerate(files) if f.broken is None]
    valid_found = [i for i in valid if files[i].outcome.found]
    valid_none = [i for i in valid if not files[i].outcome.found]

    # Shared screenshots: a search's later result files, or a retried search, point at the first
    # file's PNG (repeats profile: found searches only, as before).
    sharers = valid_found if spec.profile == "repeats" else valid
    shared_from: set[int] = set()  # files whose own screenshot another file points at: it must be written
    for i in _choose(rng, [i for i in sharers if source[i] is not None], ODDS[spec.profile].shared_png):
        first = source[i]
        assert first is not None
        files[i].png_rel, files[i].own_png, files[i].shared_png = files[first].png_rel, False, True
        shared_from.add(first)
    # "No results" again: sometimes the scraper points at the previous day's screenshot.
    if prev is not None:
        cands = [
            i for i in valid_none
            if files[i].own_png and i not in shared_from
            and exists(prev.no_result_png.get(_key(files[i]), "\0"))
        ]  # fmt: skip
        for i in _choose(rng, cands, 0.3):
            files[i].png_rel, files[i].own_png, files[i].shared_png = (
                prev.no_result_png[_key(files[i])], False, True,
            )  # fmt: skip
    # No-result shapes: licenses [] (less often) or one placeholder license (two flavours).
    empty = set(_choose(rng, valid_none, 0.25))
    for i in valid_none:
        files[i].shape = "empty" if i in empty else rng.choice(PLACEHOLDERS)
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
        f.ts_style = rng.choices(TS_STYLES, TS_WEIGHTS)[0]
        f.omit_result_status = rng.random() < (0.3 if f.shape == "empty" else 0.03)


def _day_screenshots(
    spec: CorpusSpec, day: str, files: list[FilePlan], rng: random.Random
) -> tuple[list[PngPlan], int]:
    """Each file's own screenshot, plus orphans ("<Name>_table.png") in folders of the day; and
    the number of orphans."""
    pngs: list[PngPlan] = []
    n_files = len(files)

    def add_png(rel: str) -> None:
        size = round(spec.image_bytes * rng.uniform(0.85, 1.15))
        width = 1280 if rng.random() < 0.8 else 1920
        pngs.append(PngPlan(rel, width, rng.randint(800, 2400), size))

    for f in files:
        if f.own_png:
            add_png(f.png_rel)
    folders = sorted({(f.outcome.pharmacy.name, f.outcome.state) for f in files})
    n_orphans = min(len(folders), max(1, n_files // 80)) if n_files >= 10 else 0
    for name, state in rng.sample(folders, n_orphans):
        add_png(f"{day}/{state}/{name}_table.png")
    return pngs, n_orphans


def _key(f: FilePlan) -> tuple[str, str]:
    return (f.outcome.pharmacy.name, f.outcome.state)

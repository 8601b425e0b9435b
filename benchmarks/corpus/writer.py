"""Writing a tree: each planned day's files and screenshots, counted as they are written."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from benchmarks.corpus.plan import DayPlan, plan_day
from benchmarks.corpus.png import PngFactory
from benchmarks.corpus.render import Renderer, dumps
from benchmarks.corpus.spec import REJECT_REASONS, CorpusSpec, CorpusStats, RowKey, validate


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


def _write_day(out_dir: Path, spec: CorpusSpec, plan: DayPlan, pngs: PngFactory, totals: _Totals) -> None:
    renderer = Renderer(spec.seed, plan.index)
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
            data = (b"\xef\xbb\xbf" if f.bom else b"") + dumps(doc)
            totals.impossible += impossible
            totals.shared += f.shared_png
            totals.stem_fallback += f.image_ref == "absent"
            totals.images.add(f.png_rel)
            state, name = f.outcome.state, f.outcome.pharmacy.name
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
    validate(spec)
    out_dir = Path(out_dir)
    plans_days = [(date.fromisoformat(spec.start_day) + timedelta(days=d)).isoformat() for d in range(spec.days)]
    for day in plans_days:
        if (out_dir / day).exists():
            raise FileExistsError(f"{out_dir / day} already exists")
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = PngFactory(spec.seed, spec.image_bytes)
    totals = _Totals()
    prev: DayPlan | None = None
    exists = _exists_in(out_dir)
    for d in range(spec.days):
        prev = plan_day(spec, d, prev, exists)
        _write_day(out_dir, spec, prev, pngs, totals)
    return totals.stats()


def add_day(out_dir: Path, spec: CorpusSpec, day_index: int) -> CorpusStats:
    """Write one more day folder, ``start_day + day_index`` (deterministic), and nothing else.

    For ``day_index >= spec.days`` the day holds ``spec.files // spec.days`` files (broken ones
    at ``broken_fraction``); for a smaller index it is the day :func:`generate` would write.
    The day repeats many of the previous day's searches with later timestamps. The returned
    stats describe the new day only.
    """
    validate(spec)
    if day_index < 0:
        raise ValueError("day_index must be >= 0")
    out_dir = Path(out_dir)
    day = (date.fromisoformat(spec.start_day) + timedelta(days=day_index)).isoformat()
    if (out_dir / day).exists():
        raise FileExistsError(f"{out_dir / day} already exists")
    out_dir.mkdir(parents=True, exist_ok=True)
    exists = _exists_in(out_dir)
    prev: DayPlan | None = None
    for d in range(day_index):  # earlier days' plans (no I/O): screenshots a new day may reuse
        prev = plan_day(spec, d, prev, exists)
    plan = plan_day(spec, day_index, prev, exists)
    totals = _Totals()
    _write_day(out_dir, spec, plan, PngFactory(spec.seed, spec.image_bytes), totals)
    return totals.stats()

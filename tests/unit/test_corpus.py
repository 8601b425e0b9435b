"""Tests of the synthetic scrape generator (benchmarks/corpus/), both profiles.

The generated tree is read back with a small, independent reader that follows FORMAT.md, so the
counts the generator reports (rejects by reason, row keys, referenced screenshots) and the shape of
each profile (rows per file, repeated searches, searches without results) are checked against what
a correct loader would see, not against the generator's own bookkeeping. That a real load ends
exactly as the generator expects is tests/integration/test_corpus_load.py's job.
"""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from benchmarks.corpus import (
    CORPUS_VERSION,
    PROFILES,
    REJECT_REASONS,
    STATES,
    CorpusSpec,
    CorpusStats,
    add_day,
    generate,
    main,
)
from benchmarks.corpus.png import PngFactory

#: Per profile, a tree small enough to read back quickly: the realistic one searches each
#: pharmacy in every state, so it needs a few hundred files to reach a Florida pharmacy.
SPECS = {
    "realistic": CorpusSpec(files=420, seed=11, image_bytes=3_000, days=3, profile="realistic"),
    "repeats": CorpusSpec(files=150, seed=11, image_bytes=3_000, days=3, profile="repeats"),
}
CODES = set(STATES) | {"VI", "GU", "AS", "MP"}
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Corpus:
    root: Path
    stats: CorpusStats
    spec: CorpusSpec


@pytest.fixture(scope="module", params=PROFILES)
def corpus(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    spec = SPECS[request.param]
    root = tmp_path_factory.mktemp(f"corpus-{request.param}")
    return Corpus(root, generate(root, spec), spec)


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def docs(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*_parse.json"))}


def load(data: bytes) -> object:
    return orjson.loads(data.removeprefix(BOM))


# A reference reader, straight from FORMAT.md ------------------------------------------------


def reject_reason(data: bytes) -> str | None:
    try:
        doc = load(data)
    except orjson.JSONDecodeError:
        return "invalid_json"
    if not isinstance(doc, dict):
        return "invalid_json"
    meta, result = doc.get("metadata"), doc.get("search_result")
    if not isinstance(meta, dict) or not isinstance(result, dict):
        return "invalid_shape"
    licenses = result.get("licenses")
    if not isinstance(licenses, list) or not all(isinstance(lic, dict) for lic in licenses):
        return "invalid_shape"
    for key in ("pharmacy_name", "state"):
        value = meta.get(key)
        if not isinstance(value, str) or not value.strip():
            return "missing_field"
    if meta["state"].strip().upper() not in CODES:
        return "invalid_state"
    ts = meta.get("search_timestamp")
    if not isinstance(ts, str) or not ts:
        return "invalid_timestamp"
    try:
        datetime.fromisoformat(ts)
    except ValueError:
        return "invalid_timestamp"
    return None


def valid_docs(root: Path) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for rel, data in docs(root).items():
        if reject_reason(data) is None:
            doc = load(data)
            assert isinstance(doc, dict)
            out[rel] = doc
    return out


def meta_of(doc: dict[str, object]) -> dict[str, object]:
    meta = doc["metadata"]
    assert isinstance(meta, dict)
    return meta


def licenses_of(doc: dict[str, object]) -> list[dict[str, object]]:
    result = doc["search_result"]
    assert isinstance(result, dict)
    licenses = result["licenses"]
    assert isinstance(licenses, list)
    return licenses


def instant(doc: dict[str, object]) -> datetime:
    ts = datetime.fromisoformat(str(meta_of(doc)["search_timestamp"]))
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts


def resolve_image(root: Path, rel: str, doc: dict[str, object]) -> str | None:
    source = meta_of(doc).get("source_image_file")
    if source is None:
        stem = rel.removesuffix("_parse.json") + ".png"
        return stem if (root / stem).is_file() else None
    parts = str(source).split("/")
    for i in range(len(parts)):  # longest trailing part first
        candidate = "/".join(parts[i:])
        if candidate and (root / candidate).is_file():
            return candidate
    return None


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# Tests ----------------------------------------------------------------------------------------


def test_deterministic_byte_identical(tmp_path: Path) -> None:
    spec = CorpusSpec(files=60, seed=5, image_bytes=1_500, days=2)
    a = generate(tmp_path / "a", spec)
    b = generate(tmp_path / "b", spec)
    assert a == b
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    c = generate(tmp_path / "c", CorpusSpec(files=60, seed=6, image_bytes=1_500, days=2))
    assert tree(tmp_path / "a") != tree(tmp_path / "c")
    assert c.json_files == 60


def test_counts_match_files_on_disk(corpus: Corpus) -> None:
    stats, root = corpus.stats, corpus.root
    jsons = sorted(root.rglob("*_parse.json"))
    pngs = sorted(root.rglob("*.png"))
    assert stats.json_files == len(jsons) == corpus.spec.files
    assert stats.png_files == len(pngs)
    assert {p.relative_to(root).as_posix() for p in pngs} == set(stats.png_dimensions)
    assert sorted(p.name for p in root.iterdir()) == list(stats.days) == ["2025-08-03", "2025-08-04", "2025-08-05"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d/[A-Z]{2}/[^/]+", p.relative_to(root).as_posix()) for p in jsons)
    assert stats.valid_files + sum(stats.broken_by_reason.values()) == stats.json_files
    # 2 % of the files (at least one file per reject code)
    assert sum(stats.broken_by_reason.values()) == max(len(REJECT_REASONS), round(corpus.spec.files * 0.02))


def test_every_reject_code_present_and_each_file_has_the_expected_reason(corpus: Corpus) -> None:
    found: dict[str, int] = {}
    for data in docs(corpus.root).values():
        reason = reject_reason(data)
        if reason is not None:
            found[reason] = found.get(reason, 0) + 1
    assert set(found) == set(REJECT_REASONS)
    assert found == {k: v for k, v in corpus.stats.broken_by_reason.items() if v}


def test_row_keys_images_and_no_ties(corpus: Corpus) -> None:
    root, stats = corpus.root, corpus.stats
    newest: dict[tuple[str, str, str | None], datetime] = {}
    images: set[str] = set()
    rows = 0
    for rel, doc in valid_docs(root).items():
        meta = meta_of(doc)
        image = resolve_image(root, rel, doc)
        assert image is not None, rel
        images.add(image)
        real = [lic for lic in licenses_of(doc) if lic.get("license_number") is not None]
        state, name = str(meta["state"]).upper(), str(meta["pharmacy_name"])
        keys: list[tuple[str, str, str | None]] = [(state, name, str(lic["license_number"])) for lic in real]
        keys = keys or [(state, name, None)]
        rows += len(keys)
        for key in keys:
            # "newest wins" must have a unique answer: no two searches of a key at the same instant
            assert newest.get(key) != instant(doc), key
            newest[key] = max(newest.get(key, instant(doc)), instant(doc))
    assert set(newest) == stats.row_keys
    assert images == stats.image_files
    assert rows == stats.rows_before_dedup > len(stats.row_keys)  # some keys searched again
    orphans = {p for p in stats.png_dimensions if p.endswith("_table.png")}
    assert len(orphans) == stats.orphan_png_files > 0
    assert not orphans & images


def test_both_no_result_shapes(corpus: Corpus) -> None:
    shapes: dict[str, int] = {"empty": 0, "placeholder": 0}
    renamed = 0
    for rel, doc in valid_docs(corpus.root).items():
        licenses = licenses_of(doc)
        if licenses and any(lic.get("license_number") is not None for lic in licenses):
            continue
        shapes["empty" if not licenses else "placeholder"] += 1
        assert len(licenses) <= 1
        if rel.endswith("_no_results_parse.json"):
            image = resolve_image(corpus.root, rel, doc)
            assert image is not None and re.search(r"_\d\d\.png$", image), (rel, image)
            renamed += 1
    assert shapes == corpus.stats.no_result_files
    assert shapes["empty"] > 0 and shapes["placeholder"] > shapes["empty"]
    assert renamed > 0


def test_realistic_quirks_present(corpus: Corpus) -> None:
    all_docs = docs(corpus.root)
    valid = valid_docs(corpus.root)
    raw = b"\n".join(all_docs.values())
    assert any(data.startswith(BOM) for data in all_docs.values())
    assert b"\\u0000" in raw
    states = [str(meta_of(d)["state"]) for d in valid.values()]
    assert any(s.islower() for s in states)
    stamps = [str(meta_of(d)["search_timestamp"]) for d in valid.values()]
    assert any(s.endswith("Z") for s in stamps)
    assert any(s.endswith(("-05:00", "-04:00")) for s in stamps)
    assert sum(datetime.fromisoformat(s).tzinfo is None for s in stamps) > len(stamps) // 2
    sources = [meta_of(d).get("source_image_file") for d in valid.values()]
    assert any(isinstance(s, str) and s.startswith("data/") for s in sources)
    assert any(isinstance(s, str) and s.startswith("/home/scraper/") for s in sources)
    assert sources.count(None) == corpus.stats.stem_fallback_files > 0
    licenses = [lic for d in valid.values() for lic in licenses_of(d)]
    numbers = [lic["license_number"] for lic in licenses]
    assert any(isinstance(n, int) for n in numbers) and any(isinstance(n, str) for n in numbers)
    statuses = [lic["license_status"] for lic in licenses if isinstance(lic["license_status"], str)]
    assert "Clear/" in statuses and any(s != s.strip() for s in statuses)
    dates = [lic[k] for lic in licenses for k in ("issue_date", "expiration_date")]
    patterns = {
        r"\d\d/\d\d/\d{4}",
        r"\d{1,2}/\d{1,2}/\d{4}",
        r"\d{4}-\d\d-\d\d",
        r"\d\d-\d\d-\d{4}",
        r"[A-Z][a-z]{3,} \d{1,2}, \d{4}",
        r"[A-Z][a-z]{2} \d{1,2}, \d{4}",
        r"\d\d-[A-Z][a-z]{2}-\d{4}",
    }
    for pattern in patterns:
        assert any(isinstance(d, str) and re.fullmatch(pattern, d) for d in dates), pattern
    assert None in dates and any(d in ("Not On File", "N/A", "---", "Unknown.", "") for d in dates)
    impossible = ("02/30/2020", "2021-02-29", "04/31/2019", "February 30, 2018")
    assert sum(d in impossible for d in dates) == corpus.stats.impossible_dates > 0
    assert any(isinstance(lic["address"], dict) and lic["address"].get("state") == "Florida" for lic in licenses)


def test_repeated_searches_and_shared_screenshots(corpus: Corpus) -> None:
    root = corpus.root
    by_search: dict[tuple[str, str], list[tuple[str, datetime]]] = {}
    refs: dict[str, int] = {}
    for rel, doc in valid_docs(root).items():
        meta = meta_of(doc)
        key = (str(meta["pharmacy_name"]), str(meta["state"]).upper())
        by_search.setdefault(key, []).append((rel[:10], instant(doc)))
        image = resolve_image(root, rel, doc)
        assert image is not None
        refs[image] = refs.get(image, 0) + 1
    repeated = [v for v in by_search.values() if len({day for day, _ in v}) > 1]
    assert repeated
    for searches in repeated:  # a later day folder always holds a later search
        ordered = sorted(searches)
        assert [ts for _, ts in ordered] == sorted(ts for _, ts in ordered)
    assert any(n > 1 for n in refs.values())
    assert corpus.stats.shared_png_refs > 0


@dataclass(frozen=True)
class Shape:
    """A tree's shape as a reader sees it (valid files only)."""

    files: int  # every *_parse.json
    valid: int
    rows: int  # distinct (state, name, license number) keys: the rows a load ends with
    pairs: int  # distinct (pharmacy, state) pairs searched
    pharmacies: int
    no_result: int  # valid files without a license number
    licenses_per_found_file: dict[int, int]
    new_pairs_by_day: list[float]  # share of each day's pairs that no earlier day searched

    @property
    def repeat_share(self) -> float:
        return 1 - self.pairs / self.valid


def read_shape(root: Path) -> Shape:
    keys: set[tuple[str, str, str | None]] = set()
    pairs_by_day: dict[str, set[tuple[str, str]]] = {}
    per_file: dict[int, int] = {}
    no_result = 0
    valid = valid_docs(root)
    for rel, doc in valid.items():
        meta = meta_of(doc)
        state, name = str(meta["state"]).upper(), str(meta["pharmacy_name"])
        numbers: list[str | None] = [
            str(lic["license_number"]) for lic in licenses_of(doc) if lic.get("license_number") is not None
        ]
        if numbers:
            per_file[len(numbers)] = per_file.get(len(numbers), 0) + 1
        else:
            no_result += 1
        keys.update((state, name, n) for n in numbers or [None])
        pairs_by_day.setdefault(rel[:10], set()).add((state, name))
    seen: set[tuple[str, str]] = set()
    new_by_day = []
    for day in sorted(pairs_by_day):
        new_by_day.append(len(pairs_by_day[day] - seen) / len(pairs_by_day[day]))
        seen |= pairs_by_day[day]
    return Shape(files=len(docs(root)), valid=len(valid), rows=len(keys), pairs=len(seen),
                 pharmacies=len({name for _, name in seen}), no_result=no_result,
                 licenses_per_found_file=dict(sorted(per_file.items())), new_pairs_by_day=new_by_day)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Shape, CorpusStats]]:
    out = {}
    for profile in PROFILES:
        root = tmp_path_factory.mktemp(f"shape-{profile}")
        # seed 6: a pair searched twice on a day, whose first search there points at the day before's
        # screenshot, and whose second at the first's (its screenshot must be written all the same)
        stats = generate(root, CorpusSpec(files=3_000, seed=6, image_bytes=0, days=3, profile=profile))
        for rel, doc in valid_docs(root).items():
            assert resolve_image(root, rel, doc) is not None, rel
        assert {p for p in stats.image_files if not (root / p).is_file()} == set()
        out[profile] = (read_shape(root), stats)
    return out


def test_realistic_profile_is_shaped_like_a_real_scrape(shapes: dict[str, tuple[Shape, CorpusStats]]) -> None:
    shape, stats = shapes["realistic"]
    # each (pharmacy, state) searched about once: at most ~10 % of searches repeat one
    assert 0.02 <= shape.repeat_share <= 0.10
    # ~25 % of searches find nothing; the others find 1-3 licenses, in one file
    assert 0.20 <= shape.no_result / shape.valid <= 0.30
    assert set(shape.licenses_per_found_file) == {1, 2, 3}
    # so a load lands ~1.2 rows per file
    assert 1.15 <= shape.rows / shape.files <= 1.25
    # the pharmacies grow with the tree (3,000 files: more than the 40 named ones), each searched in
    # about every state; every day searches mostly pairs no earlier day did
    assert shape.pharmacies > 50 and shape.pairs / shape.pharmacies > 40
    assert all(share > 0.9 for share in shape.new_pairs_by_day)
    # the generator's own summary says the same
    summary = stats.summary()
    assert summary["distinct_row_keys"] == shape.rows and summary["search_pairs"] == shape.pairs
    assert summary["rows_per_file"] == round(shape.rows / shape.files, 3)
    assert summary["repeat_search_share"] == round(shape.repeat_share, 3)
    assert summary["no_result_share"] == round(shape.no_result / shape.valid, 3)


def test_repeats_profile_searches_the_same_pairs_again(shapes: dict[str, tuple[Shape, CorpusStats]]) -> None:
    shape, _ = shapes["repeats"]
    realistic, _ = shapes["realistic"]
    assert shape.pharmacies <= 40  # the named pharmacies only
    assert shape.repeat_share > 0.3 and shape.repeat_share > 3 * realistic.repeat_share
    assert shape.rows / shape.files < realistic.rows / realistic.files
    assert max(shape.licenses_per_found_file) == 3 and min(shape.new_pairs_by_day[1:]) < 0.7


#: Digest of the JSON files and of every PNG's path and size, of one small tree per profile. The
#: benchmark harness caches corpora under CORPUS_VERSION: whatever changes what a spec generates
#: must bump the version, and these digests with it.
PINNED = {
    "realistic": "6a5b5275bbb55d42aa8a24d8e459b7c13a425ef90645d6eb4c3ed0ea04257b41",
    "repeats": "0218e97df7a7fad2ae2122a2650a648c6b1d5c496122d93eab94e3de074767a2",
}


def test_generated_bytes_are_pinned_to_the_corpus_version(tmp_path: Path) -> None:
    assert CORPUS_VERSION == 3
    for profile, digest in PINNED.items():
        root = tmp_path / profile
        generate(root, CorpusSpec(files=120, seed=3, image_bytes=500, days=2, profile=profile))
        h = hashlib.sha256()
        for rel, data in tree(root).items():
            h.update(f"{rel}\0{len(data)}\0".encode())
            h.update(data if rel.endswith(".json") else b"")
        assert h.hexdigest() == digest, profile


def test_png_headers_sizes_and_uniqueness(corpus: Corpus) -> None:
    hashes = set()
    for rel, (width, height) in corpus.stats.png_dimensions.items():
        data = (corpus.root / rel).read_bytes()
        assert png_size(data) == (width, height)
        assert width in (1280, 1920) and 800 <= height <= 2400
        assert 0.8 * corpus.spec.image_bytes <= len(data) <= 1.2 * corpus.spec.image_bytes
        hashes.add(hashlib.sha256(data).hexdigest())
    assert len(hashes) == len(corpus.stats.png_dimensions)


def test_png_is_decodable() -> None:
    data = b"".join(PngFactory(1, 4_000).render("x", 1280, 937, 4_000))
    pos, chunks, idat = 8, [], b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(kind + body)
        chunks.append(kind)
        idat += body if kind == b"IDAT" else b""
        pos += 12 + length
    assert chunks == [b"IHDR", b"tEXt", b"IDAT", b"IEND"]
    assert zlib.decompress(idat) == (b"\x00" + b"\xff" * 160) * 937
    assert len(data) == 4_000


def test_add_day_adds_one_folder_and_touches_nothing_else(tmp_path: Path) -> None:
    spec = CorpusSpec(files=90, seed=3, image_bytes=1_000, days=2)
    first = generate(tmp_path, spec)
    before = tree(tmp_path)
    added = add_day(tmp_path, spec, 2)
    after = tree(tmp_path)
    assert added.days == ("2025-08-05",)
    assert {k: v for k, v in after.items() if not k.startswith("2025-08-05/")} == before
    new = {k for k in after if k.startswith("2025-08-05/")}
    assert sum(k.endswith("_parse.json") for k in new) == added.json_files == spec.files // spec.days
    assert sum(k.endswith(".png") for k in new) == added.png_files
    # the new day searches some of the same pharmacies again (newer searches of known keys)
    assert added.row_keys & first.row_keys
    with pytest.raises(FileExistsError):
        add_day(tmp_path, spec, 2)
    with pytest.raises(FileExistsError):
        generate(tmp_path, spec)
    # deterministic: the same day added to a copy of the same tree is byte-identical
    other = tmp_path.parent / f"{tmp_path.name}-other"
    generate(other, spec)
    add_day(other, spec, 2)
    assert tree(other) == after


def test_small_corpora_and_validation(tmp_path: Path) -> None:
    tiny = generate(tmp_path / "tiny", CorpusSpec(files=4, image_bytes=0, days=3))
    assert tiny.json_files == 4 and len(tiny.days) == 3
    assert sum(tiny.broken_by_reason.values()) == 0  # round(4 * 0.02) == 0
    fifty = generate(tmp_path / "fifty", CorpusSpec(files=50, image_bytes=200, days=1))
    assert all(fifty.broken_by_reason[r] == 1 for r in REJECT_REASONS)
    with pytest.raises(ValueError):
        generate(tmp_path / "bad", CorpusSpec(days=0))


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert main([str(out), "--files", "30", "--seed", "2", "--image-bytes", "500", "--days", "2"]) == 0
    summary = orjson.loads(capsys.readouterr().out)
    assert summary["json_files"] == 30
    assert (
        main([str(out), "--files", "30", "--seed", "2", "--image-bytes", "500", "--days", "2", "--add-day", "2"]) == 0
    )
    assert orjson.loads(capsys.readouterr().out)["days"] == ["2025-08-05"]
    assert main([str(out), "--files", "30", "--days", "2"]) == 1  # days exist already

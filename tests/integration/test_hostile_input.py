"""A scrape folder is untrusted input: symlinks and paths leading out of it, sizes, screenshots that are no
PNG, SQL and COPY control text in every field, odd tags, and arbitrary files, loaded into a real PostgreSQL."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import threading
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from loader.report import Report
from loader.run import pipeline
from loader.settings import Settings
from tests.conftest import query
from tests.scrape import Scrape, document, license_, png

REASONS = frozenset({"invalid_json", "invalid_shape", "missing_field", "invalid_state", "invalid_timestamp",
                     "too_large", "unreadable", "outside_root"})
REPO = Path(__file__).resolve().parents[2]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def store_files(image_dir: Path) -> list[Path]:
    return sorted(p for p in image_dir.rglob("*") if p.is_file()) if image_dir.exists() else []


def rejects_of(rep: Report) -> dict[str, str]:
    return {rel: code for rel, code, _ in rep.rejects}


def rejects_file(path: Path | None) -> dict[str, str]:
    assert path is not None
    return {line["file"]: line["reason"] for line in map(orjson.loads, path.read_bytes().splitlines())}


@pytest.fixture
def rsettings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.replace(rejects=tmp_path / "out" / "rejects.jsonl")


class Trap:
    """A named pipe that notices being opened for reading: put where nothing may ever be read.

    Opening a FIFO for reading blocks until a writer comes. A watcher thread keeps trying to open it for
    writing without blocking, which only succeeds while someone has it open for reading; it then records
    the intrusion and feeds PNG bytes, so a loader that does read it is caught instead of left hanging.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.opened = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno not in (errno.ENXIO, errno.ENOENT):
                    raise
                self._stop.wait(0.005)
                continue
            self.opened = True
            try:
                os.set_blocking(fd, True)
                os.write(fd, png(filler=b"read through the trap"))
            except OSError:
                pass
            finally:
                os.close(fd)
            self._stop.wait(0.1)  # let the reader see the end of the file before feeding it again

    def __enter__(self) -> Trap:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(self.path)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.path.unlink(missing_ok=True)


def test_trap_notices_a_reader(tmp_path: Path) -> None:
    """The detector itself: reading the pipe is noticed (and fed), merely looking at it is not."""
    with Trap(tmp_path / "trap.png") as trap:
        assert trap.path.is_fifo() and not trap.path.is_file() and trap.path.stat().st_size == 0
        assert not trap.opened
        assert trap.path.read_bytes().startswith(b"\x89PNG")
        assert trap.opened


# -- paths and symlinks ---------------------------------------------------------------------------


def test_json_symlink_leading_outside_is_rejected_and_never_read(rsettings: Settings, scrape: Scrape,
                                                                 tmp_path: Path, dsn: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "Secret_parse.json"
    secret.write_bytes(orjson.dumps(document(name="Secret Pharmacy", licenses=[license_(license_number="SECRET1")])))
    scrape.search("2025-08-03/PA/Good_01", document(name="Good"))
    folder = scrape.root / "2025-08-03" / "PA"
    (folder / "Secret_parse.json").symlink_to(secret)
    (folder / "Relative_parse.json").symlink_to(Path("../../../outside/Secret_parse.json"))
    (folder / "hop").symlink_to(secret)  # a link inside the tree that itself leads out
    (folder / "Chain_parse.json").symlink_to(folder / "hop")
    with Trap(outside / "Trap_parse.json") as trap:
        (folder / "Trap_parse.json").symlink_to(trap.path)
        rep = pipeline.run(rsettings)
    assert rep.status == "ok"
    expected = {f"2025-08-03/PA/{n}_parse.json": "outside_root" for n in ("Secret", "Relative", "Chain", "Trap")}
    assert rejects_of(rep) == expected
    assert rejects_file(rsettings.rejects) == expected
    assert (rep.files_found, rep.files_loaded, rep.files_rejected) == (5, 1, 4)
    assert not trap.opened, "a JSON symlink leading outside the states folder was opened"
    assert query(dsn, "SELECT search_name, license_number FROM search_results") == [("Good", "NP002169")]
    assert query(dsn, "SELECT count(*) FROM search_results WHERE raw::text LIKE '%SECRET%'") == [(0,)]


def test_png_symlink_leading_outside_is_never_hashed_or_stored(settings: Settings, scrape: Scrape, tmp_path: Path,
                                                               dsn: str) -> None:
    secret = tmp_path / "outside" / "secret.png"
    secret.parent.mkdir()
    secret.write_bytes(png(filler=b"secret screenshot"))
    folder = scrape.root / "2025-08-03" / "PA"
    folder.mkdir(parents=True)
    (folder / "Belmar_01.png").symlink_to(secret)
    (folder / "Relative_01.png").symlink_to(Path("../../../outside/secret.png"))
    with Trap(tmp_path / "outside" / "trap.png") as trap:
        (folder / "Trap_01.png").symlink_to(trap.path)
        # The JSON names each link exactly, as a path relative to the states folder, as the scraper's path,
        # as an absolute path inside the tree, or not at all (the stem rule).
        sources: dict[str, str | None] = {
            "Exact": "2025-08-03/PA/Belmar_01.png",
            "Scraper": "data/2025-08-03/PA/Belmar_01.png",
            "InTree": str(folder / "Belmar_01.png"),
            "Relative": "2025-08-03/PA/Relative_01.png",
            "TrapExact": "2025-08-03/PA/Trap_01.png",
            "TrapAbsolute": str(trap.path),
        }
        for name, source in sources.items():
            scrape.json(f"2025-08-03/PA/{name}_parse.json", document(name=name, source_image_file=source))
        for stem in ("Belmar_01", "Trap_01"):
            scrape.json(f"2025-08-03/PA/{stem}_parse.json", document(name=stem))
        rep = pipeline.run(settings)
    assert not trap.opened, "a screenshot symlink leading outside the states folder was opened"
    assert rep.status == "ok"
    assert (rep.files_loaded, rep.files_rejected) == (len(sources) + 2, 0)
    assert query(dsn, "SELECT DISTINCT image_hash FROM search_results") == [(None,)]
    assert query(dsn, "SELECT count(*) FROM image_assets") == [(0,)]
    assert store_files(settings.image_dir) == []
    assert rep.warnings_by_kind.get("missing_image") == len(sources) + 2


HOSTILE_SOURCES = [
    "../../etc/passwd",
    "/etc/passwd",
    "../x.png",
    "../../x.png",
    "....//....//x.png",
    "..\\..\\x.png",
    "C:\\Windows\\x.png",
    "\\\\server\\share\\x.png",
    "https://evil.example/x.png",
    "file:///etc/passwd",
    "%2e%2e/%2e%2e/etc/passwd",
    "~/x.png",
    "/",
    "..",
    "/etc/passwd\x00.png",
    "x.png\x00/../../../etc/passwd",
    "/" + "a" * 100_000 + ".png",
    "/" + "a/" * 2_000 + "x.png",
]


def test_hostile_source_image_file_values_mean_no_image(settings: Settings, scrape: Scrape, tmp_path: Path,
                                                        dsn: str) -> None:
    (tmp_path / "x.png").write_bytes(png(filler=b"just outside the states folder"))
    with Trap(tmp_path / "outside" / "trap.png") as trap:
        sources = [*HOSTILE_SOURCES, str(trap.path), "../outside/trap.png", "../../../../outside/trap.png"]
        for i, source in enumerate(sources):
            # The stem screenshot is there too: a source that names nothing must not fall back to it.
            scrape.search(f"2025-08-03/PA/H{i:02d}", document(name=f"H{i:02d}", source_image_file=source))
        rep = pipeline.run(settings)
    assert not trap.opened, "a screenshot path from a JSON file was opened outside the states folder"
    assert rep.status == "ok"
    assert (rep.files_loaded, rep.files_rejected) == (len(sources), 0)
    assert query(dsn, "SELECT count(*), count(image_hash) FROM search_results") == [(len(sources), 0)]
    assert query(dsn, "SELECT count(*) FROM image_assets") == [(0,)]
    assert store_files(settings.image_dir) == []
    assert rep.warnings_by_kind.get("missing_image") == len(sources)


_RUN_LIMITED = """
import pickle, resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from loader.run import pipeline
pipeline.run(pickle.loads(sys.stdin.buffer.read()))
"""


def _run_limited(settings: Settings, memory: int, seconds: float) -> subprocess.CompletedProcess[bytes]:
    """pipeline.run in a child process with an address-space limit and a time limit."""
    return subprocess.run([sys.executable, "-c", _RUN_LIMITED, str(memory)], input=pickle.dumps(settings),
                          cwd=REPO, capture_output=True, timeout=seconds, check=False)


@pytest.mark.parametrize("components", [50, 40_000], ids=["shallow", "deep"])
def test_deep_source_image_path_costs_no_more_than_a_short_one(settings: Settings, scrape: Scrape, tmp_path: Path,
                                                               dsn: str, components: int) -> None:
    """A 80 KB source_image_file of 40,000 path parts (well under the JSON size limit) is just a missing
    screenshot: the load finishes in seconds within 3 GiB. Run in a child process so that a loader that
    does blow up is stopped by the limits instead of taking the machine down."""
    scrape.search("2025-08-03/PA/Good_01", document(name="Good"))
    scrape.search("2025-08-03/PA/Deep_01", document(name="Deep", source_image_file="a/" * components + "x.png"))
    report = tmp_path / "report.json"
    try:
        done = _run_limited(settings.replace(report_json=report), 3 << 30, 60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"loading a {components}-part source_image_file took more than 60 s")
    err = done.stderr.decode(errors="replace")
    assert done.returncode == 0, f"the load failed (exit {done.returncode}) within 3 GiB: {err[:300]} … {err[-300:]}"
    rep = orjson.loads(report.read_bytes())
    assert (rep["status"], rep["files_loaded"], rep["files_rejected"]) == ("ok", 2, 0)
    assert rep["warnings_by_kind"].get("missing_image") == 1
    assert dict(query(dsn, "SELECT search_name, image_hash IS NOT NULL FROM search_results")) == {
        "Good": True, "Deep": False}


def test_symlinked_folder_is_not_followed(settings: Settings, scrape: Scrape, tmp_path: Path, dsn: str) -> None:
    outside = Scrape(tmp_path / "outside")
    outside.search("PA/Outside_01", document(name="Outside", licenses=[license_(license_number="OUT1")]))
    scrape.search("2025-08-03/PA/Good_01", document(name="Good"))
    (scrape.root / "2025-08-03" / "linked").symlink_to(outside.root, target_is_directory=True)
    (scrape.root / "2025-08-04").symlink_to(Path("../outside"), target_is_directory=True)
    (scrape.root / "2025-08-03" / "PA" / "loop").symlink_to(scrape.root, target_is_directory=True)
    # A JSON inside the tree naming the screenshot through the linked folder gets no image either.
    scrape.json("2025-08-03/PA/Via_01_parse.json", document(name="Via",
                                                            source_image_file="data/2025-08-03/linked/PA/Outside_01.png"))
    rep = pipeline.run(settings)
    assert rep.status == "ok"
    assert (rep.files_found, rep.files_loaded, rep.files_rejected) == (2, 2, 0)
    assert dict(query(dsn, "SELECT search_name, image_hash FROM search_results")) == {
        "Good": sha256((scrape.root / "2025-08-03/PA/Good_01.png").read_bytes()), "Via": None}
    assert query(dsn, "SELECT count(*) FROM image_assets") == [(1,)]
    assert len(store_files(settings.image_dir)) == 1


def test_special_files_inside_the_tree_are_never_opened(settings: Settings, scrape: Scrape, dsn: str) -> None:
    scrape.search("2025-08-03/PA/Good_01", document(name="Good"))
    scrape.json("2025-08-03/PA/Fifo_01_parse.json", document(name="Fifo"))
    with Trap(scrape.root / "2025-08-03/PA/Pipe_parse.json") as json_trap, \
            Trap(scrape.root / "2025-08-03/PA/Fifo_01.png") as png_trap:
        rep = pipeline.run(settings)
    assert not json_trap.opened and not png_trap.opened, "a named pipe in the scrape was opened"
    assert rep.status == "ok"
    assert rep.files_loaded == 2
    assert dict(query(dsn, "SELECT search_name, image_hash IS NOT NULL FROM search_results")) == {
        "Good": True, "Fifo": False}


ODD_NAMES = ["New\nLine", "Tab\tand \"quotes\" 'single'", "back\\slash", "x\n\\.\ny", "-leading dash", " spaced ",
             "Ünïcödé 💊", "semi;colon,comma", "$$dollar$$", "%s%(x)s"]


def test_odd_file_names_load_with_their_screenshots(settings: Settings, scrape: Scrape, dsn: str) -> None:
    shots = {}
    for i, name in enumerate(ODD_NAMES):
        scrape.search(f"2025-08-03/PA/{name}", document(name=f"Odd{i:02d}"))
        shots[f"Odd{i:02d}"] = sha256((scrape.root / f"2025-08-03/PA/{name}.png").read_bytes())
    rep = pipeline.run(settings)
    assert rep.status == "ok"
    assert (rep.files_loaded, rep.files_rejected) == (len(ODD_NAMES), 0)
    assert dict(query(dsn, "SELECT search_name, image_hash FROM search_results")) == shots
    assert len(store_files(settings.image_dir)) == len(ODD_NAMES)


@pytest.mark.parametrize("which", ["json", "screenshot"])
def test_file_name_that_is_not_utf8_costs_only_its_file(rsettings: Settings, scrape: Scrape, dsn: str,
                                                        which: str) -> None:
    """Linux file names are bytes: one that is not UTF-8 (a Latin-1 'é') is loaded or rejected like any
    other file, and never fails the load of the rest."""
    scrape.search("2025-08-03/PA/Good_01", document(name="Good"))
    folder = os.fsencode(scrape.root / "2025-08-03" / "PA")
    if which == "json":
        with open(folder + b"/Caf\xe9_parse.json", "wb") as f:
            f.write(orjson.dumps(document(name="Cafe")))
    with open(folder + b"/Caf\xe9.png", "wb") as f:  # for the JSON, by the stem rule; else an orphan
        f.write(png(filler=b"cafe"))
    rep = pipeline.run(rsettings)
    assert rep.status == "ok"
    names = [r[0] for r in query(dsn, "SELECT search_name FROM search_results")]
    assert "Good" in names
    found = 2 if which == "json" else 1
    assert rep.files_found == rep.files_loaded + rep.files_rejected == found
    assert set(rejects_file(rsettings.rejects).values()) <= REASONS


EDGE_TIMESTAMPS = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00-01:00"]


@pytest.mark.parametrize("ts", EDGE_TIMESTAMPS)
def test_search_timestamp_at_the_edge_of_the_calendar_costs_only_its_file(rsettings: Settings, scrape: Scrape,
                                                                          dsn: str, ts: str) -> None:
    """Valid ISO 8601 whose instant (UTC) falls in year 0 or 10000: the file is loaded at that instant or
    rejected as invalid_timestamp; the load itself goes on."""
    scrape.search("2025-08-03/PA/Good_01", document(name="Good"))
    scrape.search("2025-08-03/PA/Edge_01", document(name="Edge", ts=ts))
    rep = pipeline.run(rsettings)
    assert rep.status == "ok"
    assert ("Good",) in query(dsn, "SELECT search_name FROM search_results")
    if rep.rejects:
        assert rejects_of(rep) == {"2025-08-03/PA/Edge_01_parse.json": "invalid_timestamp"}
    else:
        given_ = datetime.fromisoformat(ts)
        offset = given_.utcoffset()
        assert offset is not None
        epoch = (given_.replace(tzinfo=None) - datetime(1970, 1, 1) - offset).total_seconds()
        assert query(dsn, "SELECT extract(epoch FROM search_ts)::float8 FROM search_results "
                          "WHERE search_name = 'Edge'") == [(epoch,)]


def test_dates_in_year_zero_or_before_are_null_with_a_warning(settings: Settings, scrape: Scrape, dsn: str) -> None:
    """'01/15/0000' or '-0001-01-01' is no license date (there is no year 0): NULL and an invalid_date
    warning, like any other impossible date; the file and the load go on."""
    bad = ["0000-06-15", "01/15/0000", "15-Jan-0000", "January 15, 0000", "-0001-01-01"]
    licenses = [license_(license_number=f"Y{i}", issue_date=text, expiration_date="01/15/2030")
                for i, text in enumerate(bad)]
    scrape.search("2025-08-03/PA/Belmar_01", document(licenses=licenses))
    scrape.search("2025-08-03/PA/Good_01", document(name="Good"))
    rep = pipeline.run(settings)
    assert rep.status == "ok"
    assert (rep.files_loaded, rep.files_rejected) == (2, 0)
    rows = query(dsn, "SELECT license_number, issue_date::text, expiration_date::text FROM search_results "
                      "WHERE search_name = 'Belmar'")
    assert sorted(rows) == [(f"Y{i}", None, "2030-01-15") for i in range(len(bad))]
    assert rep.warnings_by_kind.get("invalid_date") == len(bad)


# -- size limits ---------------------------------------------------------------------------------------


def _padded(doc: dict[str, Any], size: int) -> bytes:
    data = orjson.dumps(doc)
    assert len(data) <= size
    return data + b" " * (size - len(data))


def test_json_over_the_size_limit_is_rejected_unread(rsettings: Settings, scrape: Scrape, dsn: str) -> None:
    limited = rsettings.replace(max_json_bytes=2000)
    scrape.search("2025-08-03/PA/Good_01", document(name="Good"))
    scrape.raw("2025-08-03/PA/Exact_01_parse.json", _padded(document(name="Exact"), 2000))
    scrape.raw("2025-08-03/PA/Over_01_parse.json", _padded(document(name="Over"), 2001))
    huge = scrape.raw("2025-08-03/PA/Huge_01_parse.json", orjson.dumps(document(name="Huge")))
    with huge.open("r+b") as f:  # 4 GiB, sparse: reading it whole would show in the peak memory
        f.truncate(4 << 30)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rep = pipeline.run(limited)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert rep.status == "ok"
    expected = {"2025-08-03/PA/Over_01_parse.json": "too_large", "2025-08-03/PA/Huge_01_parse.json": "too_large"}
    assert rejects_of(rep) == expected
    assert rejects_file(limited.rejects) == expected
    assert all("2000" in detail for _, _, detail in rep.rejects), rep.rejects
    assert sorted(r[0] for r in query(dsn, "SELECT search_name FROM search_results")) == ["Exact", "Good"]
    assert grown_mib < 512, f"peak memory grew by {grown_mib:.0f} MiB: the 4 GiB file was read"


def test_screenshot_over_the_size_limit_is_not_stored(settings: Settings, scrape: Scrape, dsn: str) -> None:
    limited = settings.replace(max_image_bytes=5000)
    exact = scrape.raw("2025-08-03/PA/Exact_01.png", png(filler=b"e" * (5000 - len(png()))))
    over = scrape.raw("2025-08-03/PA/Over_01.png", png(filler=b"o" * (5001 - len(png()))))
    assert (len(exact.read_bytes()), len(over.read_bytes())) == (5000, 5001)
    scrape.json("2025-08-03/PA/Exact_01_parse.json", document(name="Exact"))
    scrape.json("2025-08-03/PA/Over_01_parse.json", document(name="Over"))
    scrape.json("2025-08-04/PA/Over_01_parse.json", document(name="OverAgain", ts="2025-08-04T10:00:00",
                                                             source_image_file="data/2025-08-03/PA/Over_01.png"))
    rep = pipeline.run(limited)
    assert rep.status == "ok"
    assert (rep.files_loaded, rep.files_rejected) == (3, 0)
    assert dict(query(dsn, "SELECT search_name, image_hash FROM search_results")) == {
        "Exact": sha256(exact.read_bytes()), "Over": None, "OverAgain": None}
    assert query(dsn, "SELECT content_hash FROM image_assets") == [(sha256(exact.read_bytes()),)]
    assert [p.name for p in store_files(settings.image_dir)] == [sha256(exact.read_bytes()) + ".png"]
    assert rep.warnings_by_kind.get("unreadable_image") == 1
    assert rep.warnings_by_kind.get("missing_image", 0) == 0


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"jpeg body" * 20 + b"\xff\xd9"
GIF = b"GIF89a" + (640).to_bytes(2, "little") + (480).to_bytes(2, "little") + b"\x00\x00\x00" + b"gif body;"
NOT_AN_IMAGE = b"<html><body>Access denied</body></html>\n"


def test_screenshots_that_are_no_png_are_stored_with_their_real_type(settings: Settings, scrape: Scrape,
                                                                      dsn: str) -> None:
    shots = {"Jpeg": JPEG, "Gif": GIF, "Html": NOT_AN_IMAGE, "Png": png(filler=b"a real one")}
    for name, data in shots.items():
        scrape.raw(f"2025-08-03/PA/{name}_01.png", data)
        scrape.json(f"2025-08-03/PA/{name}_01_parse.json", document(name=name))
    rep = pipeline.run(settings)
    assert rep.status == "ok"
    assert dict(query(dsn, "SELECT search_name, image_hash FROM search_results")) == {
        name: sha256(data) for name, data in shots.items()}
    rows = {r[0]: r[1:] for r in query(dsn, "SELECT content_hash, content_type, width, height, file_size "
                                            "FROM image_assets")}
    assert rows == {
        sha256(JPEG): ("image/jpeg", None, None, len(JPEG)),
        sha256(GIF): ("image/gif", 640, 480, len(GIF)),
        sha256(NOT_AN_IMAGE): (None, None, None, len(NOT_AN_IMAGE)),
        sha256(shots["Png"]): ("image/png", 1280, 900, len(shots["Png"])),
    }
    for data in shots.values():
        digest = sha256(data)
        assert (settings.image_dir / f"sha256/{digest[:2]}/{digest[2:4]}/{digest}.png").read_bytes() == data
    assert rep.warnings_by_kind.get("not_a_png") == 3
    flagged = {w["file"] for w in rep.warning_examples if w["kind"] == "not_a_png"}
    assert flagged == {"2025-08-03/PA/Jpeg_01.png", "2025-08-03/PA/Gif_01.png", "2025-08-03/PA/Html_01.png"}


# -- SQL, COPY and JSON in the data ---------------------------------------------------------------------

PAYLOADS = [
    "'); DROP TABLE search_results; --",
    "Robert'); DROP TABLE datasets;--",
    "x' OR '1'='1",
    "$$; DROP TABLE image_assets; $$",
    "$tag$ $$ $1 %s %(name)s {0} :name ?",
    "\\.",
    "before\n\\.\nafter",
    "\\.\r\nafter",
    "\\N",
    "NULL",
    "tab\tinside",
    "line\nbreak\r\nand\rreturn",
    'double " quote "" and \'single\'',
    "back\\slash \\\\ \\x00 \\u0000",
    "comma, \"quoted, field\",",
    "E'\\\\x41' || chr(0)",
    "; COMMIT; DROP TABLE load_runs; BEGIN;",
    "a\u2028b\u2029c\u0085d separators",
    "\U0001f48a pill ß İ",
]
TEXT_FIELDS = {  # column: where it is in the file
    "search_name": ("metadata", "pharmacy_name"),
    "license_number": ("license", "license_number"),
    "license_status": ("license", "license_status"),
    "license_name": ("license", "pharmacy_name"),
    "license_type": ("license", "license_type"),
    "address": ("address", "street"),
    "city": ("address", "city"),
    "state": ("address", "state"),
    "zip": ("address", "zip_code"),
    "result_status": ("search_result", "result_status"),
}


def _tables_intact(dsn: str) -> None:
    names = ("datasets", "search_results", "image_assets", "load_runs")
    assert query(dsn, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = ANY(%s)",
                 (list(names),)) == [(len(names),)]


def test_sql_and_copy_control_text_in_every_field_is_stored_verbatim(settings: Settings, scrape: Scrape,
                                                                     dsn: str) -> None:
    for i, payload in enumerate(PAYLOADS):
        lic = license_(license_number=payload, license_status=payload, pharmacy_name=payload, license_type=payload,
                       issue_date=payload, expiration_date="01/15/2030")
        lic["address"] = {"street": payload, "suite": payload, "city": payload, "state": payload, "zip_code": payload}
        doc = document(name=payload, licenses=[lic], result_status=payload, source_image_file=payload,
                       **{"scraper_version": payload, payload: payload})
        doc["debug_info"] = {payload: [payload]}
        scrape.raw(f"2025-08-03/PA/P{i:02d}_parse.json", orjson.dumps(doc))
    rep = pipeline.run(settings)
    _tables_intact(dsn)
    assert rep.status == "ok"
    assert (rep.files_loaded, rep.files_rejected) == (len(PAYLOADS), 0)
    columns = ", ".join(TEXT_FIELDS)
    rows = query(dsn, f"SELECT {columns}, meta->>'scraper_version', meta->>(meta->>'pharmacy_name'), "  # noqa: S608
                      "raw->'debug_info'->(meta->>'pharmacy_name')->>0, issue_date, expiration_date::text, "
                      "search_state FROM search_results")
    got = sorted(rows, key=lambda r: str(r[0]))
    want = sorted(((*[p] * (len(TEXT_FIELDS) + 3), None, "2030-01-15", "PA") for p in PAYLOADS),
                  key=lambda r: str(r[0]))
    assert got == want
    assert query(dsn, "SELECT count(*) FROM datasets") == [(1,)]
    assert rep.warnings_by_kind.get("invalid_date") == len([p for p in PAYLOADS if p.lower() != "null"])


@pytest.mark.parametrize("tag", [
    "Aug-04'; DROP TABLE datasets; --",
    'tag "with" $$quotes$$ and \\ backslash; semicolon',
    "\\.\nnew line",
    "../../../etc/cron.d/x",
])
def test_tag_with_quotes_and_semicolons(settings: Settings, scrape: Scrape, tmp_path: Path, dsn: str,
                                        tag: str) -> None:
    scrape.search("2025-08-03/PA/Belmar_01", document())
    first = pipeline.run(settings.replace(tag=tag))
    scrape.search("2025-08-04/PA/Belmar_01", document(ts="2025-08-04T10:00:00",
                                                      licenses=[license_(license_status="Renewed")]))
    second = pipeline.run(settings.replace(tag=tag))
    _tables_intact(dsn)
    assert (first.status, second.status) == ("ok", "ok")
    assert first.dataset_id == second.dataset_id
    assert query(dsn, "SELECT kind, tag FROM datasets") == [("states", tag)]
    assert query(dsn, "SELECT license_status FROM search_results") == [("Renewed",)]
    assert query(dsn, "SELECT count(*) FROM load_runs") == [(2,)]
    assert all(p.parent == settings.manifest_dir for p in settings.manifest_dir.rglob("*") if p.is_file())


@pytest.mark.parametrize("number", ["1e-16384", "1e-999999", "0." + "0" * 17_000 + "1"],
                         ids=["1e-16384", "1e-999999", "17000-decimals"])
def test_json_number_postgres_cannot_hold_costs_only_its_file(rsettings: Settings, scrape: Scrape, dsn: str,
                                                             number: str) -> None:
    """orjson reads these numbers (as 0.0) but PostgreSQL's jsonb cannot store them: the file must be loaded
    (its raw JSON made storable) or rejected, never fail the whole load."""
    scrape.search("2025-08-03/PA/Good_01", document(name="Good"))
    body = orjson.dumps(document(name="Tiny")).replace(b'"debug_info":{', b'"debug_info":{"tiny":' + number.encode()
                                                       + b",")
    assert orjson.loads(body)["debug_info"]["tiny"] == 0.0
    scrape.png("2025-08-03/PA/Tiny_01.png")
    scrape.raw("2025-08-03/PA/Tiny_01_parse.json", body)
    rep = pipeline.run(rsettings)
    assert rep.status == "ok"
    assert set(rejects_of(rep).values()) <= REASONS
    assert ("Good",) in query(dsn, "SELECT search_name FROM search_results")
    assert rep.files_loaded + rep.files_rejected == 2


# -- arbitrary files, loaded ------------------------------------------------------------------------------

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10**40), max_value=10**40),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20)),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(st.text(max_size=6), children,
                                                                               max_size=3)),
    max_leaves=8,
)
FIELDS = [("metadata", "pharmacy_name"), ("metadata", "state"), ("metadata", "search_timestamp"),
          ("metadata", "source_image_file"), ("metadata", "extra"), ("search_result", "licenses"),
          ("search_result", "result_status"), ("license", "license_number"), ("license", "license_status"),
          ("license", "pharmacy_name"), ("license", "issue_date"), ("license", "expiration_date"),
          ("license", "address"), ("address", "street"), ("address", "zip_code"), ("address", "state")]


@st.composite
def spliced(draw: st.DrawFn) -> bytes:
    doc = document(name="Arbitrary", licenses=[license_(license_number="ARB1")])
    lic = doc["search_result"]["licenses"][0]
    for part, key in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3)):
        value = draw(st.one_of(json_values, st.text()))
        target = {"metadata": doc["metadata"], "search_result": doc["search_result"], "license": lic,
                  "address": lic.get("address")}[part]
        if isinstance(target, dict):
            target[key] = value
    return json.dumps(doc, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


arbitrary_files = st.one_of(st.binary(max_size=200), st.builds(lambda v: json.dumps(v).encode(), json_values),
                            spliced())


@hsettings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(data=arbitrary_files)
def test_an_arbitrary_file_never_costs_the_valid_ones(settings: Settings, tmp_path: Path, dsn: str,
                                                      data: bytes) -> None:
    run = uuid.uuid4().hex[:12]
    scrape = Scrape(Path(tempfile.mkdtemp(dir=tmp_path, prefix="scrape-")))
    valid = {f"2025-08-03/{state}/Valid_{state}": f"Valid {state} {run}" for state in ("PA", "FL", "NY")}
    for stem, name in valid.items():
        scrape.search(stem, document(name=name, state=stem.split("/")[1],
                                     licenses=[license_(license_number=f"V-{run}")]))
    scrape.raw("2025-08-03/PA/Arbitrary_01_parse.json", data)
    rep = pipeline.run(settings.replace(tag=f"prop-{run}", states_dir=scrape.root, full=True,
                                        manifest_dir=tmp_path / f"manifests-{run}"))
    assert rep.status == "ok"
    assert rep.files_found == 4
    rows = query(dsn, "SELECT s.search_name, s.license_number, s.image_hash IS NOT NULL FROM search_results s "
                      "JOIN datasets d ON d.id = s.dataset_id WHERE d.tag = %s", (f"prop-{run}",))
    assert {r for r in rows if r[0] in valid.values()} == {(name, f"V-{run}", True) for name in valid.values()}
    if rep.files_rejected:
        assert [(rel, code in REASONS) for rel, code, _ in rep.rejects] == [
            ("2025-08-03/PA/Arbitrary_01_parse.json", True)]
        assert len(rows) == len(valid)
    else:
        assert rep.files_loaded == 4
        assert len(rows) > len(valid)

"""Evidence integrity (issue 15): the local store holds its own bytes, a screenshot changed behind an
unchanged search file is reported and never loaded, and a search file that is not a regular file
is rejected without hanging the load."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from loader.report import Report
from loader.run import pipeline, unchanged
from loader.scan import parse
from loader.settings import Settings
from tests.conftest import query
from tests.scrape import Scrape, document, png


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load(settings: Settings) -> Report:
    """As the command does it: the unchanged re-run when it applies, else the pipeline."""
    return unchanged.rerun(settings) or pipeline.run(settings)


def stored_objects(image_dir: Path) -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in image_dir.rglob("*.png")}


def _one_search(scrape: Scrape) -> tuple[Path, bytes]:
    shot = scrape.png("2025-08-03/FL/Belmar_01.png")
    scrape.json("2025-08-03/FL/Belmar_01_parse.json", document(state="FL"))
    return shot, shot.read_bytes()


def test_default_store_keeps_its_bytes_when_the_scraper_appends_to_the_png(settings: Settings, scrape: Scrape,
                                                                           dsn: str) -> None:
    shot, original = _one_search(scrape)
    rep = pipeline.run(settings)  # the default: --image-link copy
    assert "sync" in rep.phases and list(rep.phases).index("sync") < list(rep.phases).index("commit")
    with shot.open("ab") as f:  # the scraper writes to the same file again
        f.write(b"appended by a later scrape")
    [(path,)] = query(dsn, "SELECT storage_path FROM image_assets")
    stored = settings.image_dir / path
    assert stored.stat().st_ino != shot.stat().st_ino
    assert sha256(stored.read_bytes()) == stored.stem == sha256(original)
    assert not [p for p in stored.parent.iterdir() if p.name.startswith(".")]  # no temporary left


def test_screenshot_changed_behind_its_search_file_is_reported_and_not_loaded(settings: Settings, scrape: Scrape,
                                                                              dsn: str) -> None:
    shot, original = _one_search(scrape)
    scrape.png("2025-08-03/PA/Other_01.png")
    scrape.json("2025-08-03/PA/Other_01_parse.json", document(name="Other"))
    load(settings)
    with shot.open("r+b") as f:  # rewritten in place, as Playwright's page.screenshot(path=...) does
        f.write(png(filler=b"a later scrape's screenshot, longer than the first one"))
    now = sha256(shot.read_bytes())
    before = sha256(original)
    rows = "SELECT search_state, image_hash, search_ts FROM search_results ORDER BY 1"
    loaded_rows = query(dsn, rows)
    message = (f"screenshot 2025-08-03/FL/Belmar_01.png has changed since it was loaded (sha256 {before[:12]}…, "
               f"now {now[:12]}…) but its search file has not; the stored screenshot and rows keep what was loaded")
    for full in (False, True, False):  # incremental, --full, and incremental again: reported each time
        rep = load(settings.replace(full=full))
        assert rep.warnings_by_kind == {"screenshot_changed": 1}, full
        assert rep.warning_examples == [{"file": "2025-08-03/FL/Belmar_01.png", "kind": "screenshot_changed",
                                         "detail": message}]
        assert "screenshot_changed 1" in rep.render()
        assert (rep.rows_updated, rep.files_skipped) == (0, 0 if full else 2)
        assert query(dsn, rows) == loaded_rows  # an equal search_ts changes nothing
        assert query(dsn, "SELECT count(*) FROM image_assets WHERE content_hash = %s", (now,)) == [(0,)]
        objects = stored_objects(settings.image_dir)
        assert now not in objects and sha256(objects[before]) == before
    shot.write_bytes(original)  # the scrape agrees with the load again: no warning
    assert load(settings).warnings_by_kind == {}


def test_touched_but_identical_screenshot_is_not_reported(settings: Settings, scrape: Scrape) -> None:
    shot, _ = _one_search(scrape)
    load(settings)
    os.utime(shot, ns=(1, 1))
    rep = load(settings)
    assert rep.warnings_by_kind == {} and rep.files_skipped == 1


def test_a_fifo_named_like_a_search_file_is_rejected_without_hanging(settings: Settings, scrape: Scrape,
                                                                     dsn: str) -> None:
    _one_search(scrape)
    os.mkfifo(scrape.root / "2025-08-03/FL/Stuck_parse.json")
    done: list[Report] = []
    runner = threading.Thread(target=lambda: done.append(pipeline.run(settings)), daemon=True)
    runner.start()
    runner.join(timeout=60)
    assert done, "the load hung on the FIFO"
    rep = done[0]
    assert (rep.files_found, rep.files_loaded, rep.files_rejected) == (2, 1, 1)
    assert rep.rejects == [("2025-08-03/FL/Stuck_parse.json", "unreadable", "not a regular file (a FIFO); not read")]
    assert query(dsn, "SELECT count(*) FROM search_results") == [(1,)]


def test_a_search_file_swapped_for_a_fifo_after_the_plan_is_not_waited_for(tmp_path: Path) -> None:
    fifo = tmp_path / "Swapped_parse.json"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            parse.read_whole(str(fifo), 1024)
        except parse.Rejected as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=30)
    assert [(e.code, e.detail) for e in outcome if isinstance(e, parse.Rejected)] == [
        ("unreadable", "not a regular file (a FIFO); not read")]


def test_a_screenshot_removed_from_the_scrape_keeps_the_unchanged_rerun(settings: Settings, scrape: Scrape) -> None:
    shot, _ = _one_search(scrape)
    load(settings)
    shot.unlink()
    rep = load(settings)
    assert rep.note is not None and "nothing was parsed" in rep.note  # the fast re-run, not the pipeline
    assert rep.warnings_by_kind == {}

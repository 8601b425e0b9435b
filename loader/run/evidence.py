"""Screenshots changed behind unchanged search files: noticed, reported, and never loaded.

A scraper re-run that rewrites a PNG in place (Playwright's `page.screenshot(path=...)` truncates and
rewrites the same file) but leaves its `*_parse.json` as it was makes the scrape disagree with what
was loaded. The rows and the stored screenshot are the evidence of the search that was made, so they
keep what was loaded (the row's image_hash, the store's object); the run says so with a
`screenshot_changed` warning, on every run until the scrape and the load agree again.

The manifest knows, for each loaded search file, its screenshot (`screenshot`) and the size, mtime
and hash that screenshot was loaded with: a stat per screenshot of an unchanged file finds the
candidates, and only those whose size or mtime moved are read again.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import polars as pl

from loader.run.manifest import Manifest

KIND = "screenshot_changed"


@dataclass(frozen=True)
class Changed:
    """A screenshot whose bytes are no longer the ones loaded."""

    image_rel: str
    loaded: str   # sha256 of what was loaded (the stored object's name)
    now: str      # sha256 of the scrape's file now

    def warning(self) -> tuple[str, str, str]:
        return (self.image_rel, KIND,
                f"screenshot {self.image_rel} has changed since it was loaded (sha256 {self.loaded[:12]}…, "
                f"now {self.now[:12]}…) but its search file has not; the stored screenshot and rows keep "
                "what was loaded")


def loaded_shots(man: Manifest, jsons: pl.DataFrame, states: tuple[str, ...] = ("loaded",)) -> pl.DataFrame:
    """The screenshots of the search files of jsons that the manifest records, in one of states, as
    they are now (same rel, size, mtime): image_rel, path, size, mtime_ns, content_hash as loaded."""
    files = (man.files.filter(pl.col("state").is_in(states) & pl.col("screenshot").is_not_null())
             .join(jsons.select("rel", "size", "mtime_ns"), on=["rel", "size", "mtime_ns"], how="semi")
             .select(pl.col("screenshot").alias("image_rel")).unique())
    return (man.all_images().filter(pl.col("error").is_null())
            .unique(subset="image_rel", keep="last")
            .join(files, on="image_rel", how="semi")
            .select("image_rel", "path", "size", "mtime_ns", "content_hash")
            .sort("image_rel"))


def changed(man: Manifest, jsons: pl.DataFrame) -> list[Changed]:
    """The screenshots of unchanged, loaded search files whose bytes are not the ones loaded."""
    if not man.files.height:
        return []
    found = []
    for rel, path, size, mtime_ns, loaded in loaded_shots(man, jsons).iter_rows():
        try:
            st = os.stat(path)
        except OSError:
            continue  # gone: the pipeline's store repair and a re-parse deal with a missing screenshot
        if (st.st_size, st.st_mtime_ns) == (size, mtime_ns):
            continue
        try:
            with open(path, "rb") as f:
                now = hashlib.file_digest(f, "sha256").hexdigest()
        except OSError:
            continue
        if now != loaded:
            found.append(Changed(rel, loaded, now))
    return found

"""Plan a load: every `*_parse.json` below the states folder, fingerprinted, in path order.

A scrape folder is untrusted input: a search file whose symlink leads outside the states folder
(and configured image roots) is refused unread. Screenshots are not indexed here: the workers
resolve each one with a few stat calls (images.resolve), so a million screenshots cost the plan
nothing but the depth of the deepest one, which bounds how many trailing parts are tried.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from loader.scan.walk import Found, walk


@dataclass(frozen=True)
class Plan:
    """The files of one load.

    `jsons` has one row per search file, in the order that breaks ties (path order): columns
    file_id, rel, link (a symlink's target, else null), size, mtime_ns; `paths()` gives the files
    to open (kept out of the frame: a million full paths would cost ~100 MB for nothing).
    `refused` holds search files rejected without being read, as (rel, reason, detail): symlinks
    leading outside the allowed roots, and names that are not UTF-8 (PostgreSQL and the reports
    could not hold them). `roots` are the folders screenshots may be found in (the states folder
    first), `depth` the most path parts any file below them has, and `other_files` how many files
    besides search files there are.
    """

    root: Path
    jsons: pl.DataFrame
    refused: tuple[tuple[str, str, str], ...]
    roots: tuple[str, ...]
    depth: int
    other_files: int

    def paths(self, part: pl.DataFrame) -> list[str]:
        """The path to open for each search file of part (a slice of jsons)."""
        prefix = str(self.root) + os.sep
        return [link or prefix + rel for rel, link in zip(part["rel"], part["link"], strict=True)]


SCHEMA = {"rel": pl.String, "link": pl.String, "size": pl.Int64, "mtime_ns": pl.Int64}


def _frame(found: Found) -> pl.DataFrame:
    return pl.DataFrame(dict(zip(SCHEMA, found.take(), strict=True)), schema=SCHEMA)


def plan(states_dir: Path, image_roots: tuple[Path, ...] = (), single_file: Path | None = None) -> Plan:
    """Walk the states folder (and image roots) once; sort search files by path."""
    root = states_dir.resolve()
    roots = (str(root), *(str(r.resolve()) for r in image_roots))
    parts: list[pl.DataFrame] = []
    found, refused = walk(root, roots, flush=lambda full: parts.append(_frame(full)))
    depth, others = found.depth, found.others
    jsons = pl.concat([*parts, _frame(found)]).sort("rel")
    del found
    parts.clear()
    for extra in roots[1:]:
        more, _ = walk(Path(extra), roots, flush=Found.take)  # only their depth counts
        depth, others = max(depth, more.depth), others + more.others
    if single_file is not None:
        wanted = str(single_file.resolve())
        paths = pl.coalesce("link", pl.lit(str(root) + os.sep) + pl.col("rel"))
        jsons = jsons.filter(paths.map_elements(os.path.realpath, return_dtype=pl.String) == wanted)
        refused = []
    json_frame = jsons.with_row_index("file_id").with_columns(pl.col("file_id").cast(pl.Int64))
    return Plan(root=root, jsons=json_frame, refused=tuple(sorted(refused)), roots=roots, depth=depth,
                other_files=others)

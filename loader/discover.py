"""Plan a load: every `*_parse.json` below the states folder, and every file a screenshot may be.

A scrape folder is untrusted input, so the plan is also where the "never read outside the allowed
roots" rule is enforced: a symlink is only followed when its target lies inside the states folder
or a configured image root, and screenshots are later resolved only against this index, never by
joining a path taken from a JSON file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl

JSON_SUFFIX = "_parse.json"


@dataclass(frozen=True)
class Plan:
    """The files of one load.

    `jsons` has one row per search file, in the order that breaks ties (path order): columns
    file_id, rel, path, size, mtime_ns. `images` has one row per other file that may be referred
    to as a screenshot: rel (relative to its root), path, size, mtime_ns. `refused` holds search
    files rejected without being read, as (rel, reason, detail): symlinks leading outside the allowed
    roots, and names that are not UTF-8 (PostgreSQL and the reports could not hold them).
    """

    root: Path
    jsons: pl.DataFrame
    images: pl.DataFrame
    refused: tuple[tuple[str, str, str], ...]


def _inside(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r + os.sep) for r in roots)


class _Columns:
    """What the walk finds, kept as columns: a million files must not cost a million tuples."""

    def __init__(self) -> None:
        self.rel: list[str] = []
        self.link: list[str | None] = []  # the resolved target of a symlink, else None
        self.size: list[int] = []
        self.mtime_ns: list[int] = []

    def frame(self, root: str, keep: list[bool] | None = None) -> pl.DataFrame:
        cols = {"rel": self.rel, "link": self.link, "size": self.size, "mtime_ns": self.mtime_ns}
        schema = {"rel": pl.String, "link": pl.String, "size": pl.Int64, "mtime_ns": pl.Int64}
        df = pl.DataFrame(cols, schema=schema)
        if keep is not None:
            df = df.filter(pl.Series(keep))
        return df.select("rel", pl.coalesce("link", pl.lit(root + os.sep) + pl.col("rel")).alias("path"),
                         "size", "mtime_ns")


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.scandir hands undecodable bytes back as surrogate escapes
        return False
    return True


def _walk(root: Path, roots: tuple[str, ...]) -> tuple[_Columns, list[tuple[str, str, str]]]:
    """Every regular file below root (symlinks only when they stay inside the roots), and the
    search files refused unread."""
    found = _Columns()
    refused: list[tuple[str, str, str]] = []
    stack = [(str(root), "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            rel = prefix + entry.name
            if not _utf8(rel):
                shown = rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                if shown.endswith(JSON_SUFFIX):
                    refused.append((shown, "unreadable", "file name is not UTF-8; not read"))
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append((entry.path, rel + "/"))
                continue
            link = None
            if entry.is_symlink():
                link = os.path.realpath(entry.path)
                if not _inside(link, roots):
                    if rel.endswith(JSON_SUFFIX):
                        refused.append((rel, "outside_root", "symlink points outside the states folder; not read"))
                    continue
            try:
                if not entry.is_file():
                    continue
                st = entry.stat()
            except OSError:
                continue
            found.rel.append(rel)
            found.link.append(link)
            found.size.append(st.st_size)
            found.mtime_ns.append(st.st_mtime_ns)
    return found, refused


def plan(states_dir: Path, image_roots: tuple[Path, ...] = (), single_file: Path | None = None) -> Plan:
    """Walk the states folder (and image roots) once; sort search files by path."""
    root = states_dir.resolve()
    roots = (str(root), *(str(r.resolve()) for r in image_roots))
    found, refused = _walk(root, roots)
    is_json = [r.endswith(JSON_SUFFIX) for r in found.rel]
    jsons = found.frame(str(root), is_json).sort("rel")
    others = [found.frame(str(root), [not j for j in is_json])]
    del found, is_json
    for extra in image_roots:
        more, _ = _walk(extra.resolve(), roots)
        others.append(more.frame(str(extra.resolve()), [not r.endswith(JSON_SUFFIX) for r in more.rel]))
    if single_file is not None:
        wanted = str(single_file.resolve())
        jsons = jsons.filter(pl.col("path").map_elements(os.path.realpath, return_dtype=pl.String) == wanted)
        refused = []
    json_frame = jsons.with_row_index("file_id").with_columns(pl.col("file_id").cast(pl.Int64))
    # The states folder wins over an image root holding the same relative path.
    image_frame = pl.concat(others).unique(subset="rel", keep="first", maintain_order=True)
    return Plan(root=root, jsons=json_frame, images=image_frame, refused=tuple(sorted(refused)))


def resolve_images(files: pl.DataFrame, images: pl.DataFrame) -> pl.DataFrame:
    """Map each search file to its screenshot's index row, as FORMAT.md says.

    `files` has file_id, rel (the JSON's path relative to the states folder) and source_image
    (metadata.source_image_file, or null when absent). The screenshot is the indexed file whose
    relative path is the longest trailing part of source_image; when the field is absent, the
    JSON's own stem with `.png`. Returns file_id, image_rel (null when nothing resolves), and
    image_missing (true when a screenshot was expected but not found).
    """
    parts = (
        pl.col("source_image").str.replace_all("\\", "/", literal=True).str.split("/")
        .list.eval(pl.element().filter((pl.element() != "") & (pl.element() != ".")))
    )
    # No indexed path is deeper than this, so longer trailing parts can never match: a hostile
    # path of 40,000 parts costs no more than a short one.
    deepest = images["rel"].str.count_matches("/").max() if images.height else 0
    depth = int(deepest) + 1 if isinstance(deepest, int) else 1
    cands = files.select(
        "file_id",
        pl.when(pl.col("source_image").is_null())
        .then(pl.concat_list(pl.col("rel").str.slice(0, pl.col("rel").str.len_chars() - len(JSON_SUFFIX))
                             + ".png"))
        .otherwise(parts.list.tail(depth)).alias("parts"),
        pl.col("source_image").is_null().alias("from_stem"),
    )
    # Every trailing part of the path, longest first: a/b/c -> a/b/c, b/c, c.
    exploded = (
        cands.with_columns(pl.col("parts").list.len().alias("n"))
        .with_columns(pl.int_ranges(0, pl.col("n")).alias("start"))
        .explode("start")
        .filter(pl.col("start").is_not_null())
        .with_columns(
            pl.when(pl.col("from_stem")).then(pl.col("parts").list.first())
            .otherwise(pl.col("parts").list.slice(pl.col("start")).list.join("/")).alias("cand")
        )
        .filter(~pl.col("cand").str.contains(r"(^|/)\.\.(/|$)"))
    )
    matched = (
        exploded.join(images.select(pl.col("rel").alias("cand")), on="cand", how="inner")
        .sort(["file_id", "start"])
        .group_by("file_id", maintain_order=True)
        .agg(pl.col("cand").first().alias("image_rel"))
    )
    return files.select("file_id").join(matched, on="file_id", how="left").with_columns(
        pl.col("image_rel").is_null().alias("image_missing")
    )

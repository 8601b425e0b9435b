"""Per-row digests of a scrape: what `pharmload verify` and `load --verify-writes` compare with the
database.

A digest is the md5 of a row's canonical text (frame.content_canon: fields joined by U+001F, NULL
as \\N, instants as epoch microseconds, dates as epoch days) followed by its screenshot's hash.
sql/verify_outcome.sql builds the same text from the stored row, so equal digests mean equal values
in every column the load writes. Workers compute them with the load's own parse and clean code, so
the scrape is read exactly as a load reads it; only digests (not values) cross to the parent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from loader.scan import frame, images, parse

DIGEST_SCHEMA: dict[str, Any] = {
    "search_state": pl.String, "search_name": pl.String, "license_number": pl.String,
    "search_ts_us": pl.Int64, "file_order": pl.Int64, "lic_idx": pl.Int32, "content_md5": pl.String,
    "image_hash": pl.String,
}
DIGEST_COLUMNS = tuple(DIGEST_SCHEMA)
# The fields of the canonical text, in order, then the screenshot's hash: names the differing columns.
CANON_FIELDS = (*frame.CONTENT_COLUMNS, *frame.DATE_COLUMNS, "search_ts", "image_hash")


def md5s(texts: list[str]) -> list[str]:
    """The md5 (hex) of each text, as PostgreSQL's md5() of the same text."""
    return [hashlib.md5(t.encode(), usedforsecurity=False).hexdigest() for t in texts]


def full_text(canon: pl.DataFrame) -> pl.Series:
    """A row's canonical text with its screenshot's hash (\\N when it has none) appended."""
    return canon.select(pl.concat_str([pl.col("canon"), pl.col("image_hash").fill_null(pl.lit("\\N"))],
                                      separator="\x1f")).to_series()


def row_digests(canon: pl.DataFrame, file_images: pl.DataFrame) -> pl.DataFrame:
    """Every row of canon (frame.content_canon) with its digest; file_images maps file_order to the
    hash of the file's screenshot (image_hash; files without a readable one are absent)."""
    joined = canon.join(file_images.select("file_order", "image_hash"), on="file_order", how="left")
    digests = md5s(full_text(joined).to_list())
    return joined.with_columns(pl.Series("content_md5", digests, dtype=pl.String)).select(
        [pl.col(c).cast(t) for c, t in DIGEST_SCHEMA.items()])


def empty() -> pl.DataFrame:
    return pl.DataFrame(schema=DIGEST_SCHEMA)


@dataclass
class Digested:
    """A chunk's digests, how many files it read, and (want_canon) the canonical texts."""

    digests: pl.DataFrame
    files: int
    rejected: int
    canon: pl.DataFrame | None = None
    warnings: list[tuple[str, str, str]] = field(default_factory=list)


def file_images(shots: pl.DataFrame) -> pl.DataFrame:
    """file_order -> image_hash of each file whose screenshot was read (images.IMAGE_SCHEMA in)."""
    return shots.filter(pl.col("error").is_null() & pl.col("content_hash").is_not_null()).select(
        "file_order", pl.col("content_hash").alias("image_hash"))


def digest_chunk(task: parse.ParseTask) -> Digested:
    """Worker: parse and clean a chunk as a load does, hash its screenshots, digest every row."""
    chunk = parse.parse_chunk(task)
    rows = chunk.rows.drop("raw", strict=False)
    cleaned, _ = frame.clean(rows)
    canon = frame.content_canon(cleaned.rename({"file_id": "file_order"}))
    shots = pl.DataFrame(schema=images.IMAGE_SCHEMA)
    if task.roots is not None and chunk.files.height:
        ids = chunk.files["file_id"].to_list()
        rels = dict(zip(task.file_ids, task.rels, strict=True))
        shots, _ = images.describe_files(ids, chunk.files["source_image"].to_list(), [rels[i] for i in ids],
                                         task.roots, task.hash_threads)
    shot_hashes = file_images(shots)
    digests = row_digests(canon, shot_hashes)
    kept = None
    if task.want_canon:
        kept = canon.join(shot_hashes, on="file_order", how="left")
    return Digested(digests, chunk.files.height, len(chunk.rejects), kept)

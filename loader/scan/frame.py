"""Clean and deduplicate parsed rows as whole columns.

Per-value Python is what made the old importer slow, so every rule here is a polars expression
over a column; python-dateutil only sees the distinct date strings no known format matched, which
in a real scrape is a handful.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime

import polars as pl
from dateutil import parser as dateparser

TEXT_COLUMNS = ("license_number", "license_status", "license_name", "license_type",
                "address", "city", "state", "zip", "result_status")
DATE_COLUMNS = ("issue_date", "expiration_date")
DATE_FORMATS = ("%m/%d/%Y", "%Y-%m-%d", "%m-%d-%Y", "%B %d, %Y", "%b %d, %Y", "%d-%b-%Y")
NULL_TOKENS = ("", "not on file", "not available", "n/a", "na", "---", "-", "none", "unknown", "null")
KEY = ("search_state", "search_name", "license_number")
# Columns of the staging tables as COPY fills them (sql/create_stage_*.sql): each row already typed
# and whole (raw, image_hash; the server takes meta from raw), so the merge takes the winners as they are.
ROW_COLUMNS = ("file_order", "lic_idx", "search_name", "search_state", "search_ts", "license_number",
               "license_status", "license_name", "license_type", "address", "city", "state", "zip",
               "issue_date", "expiration_date", "result_status", "raw", "image_hash")
SUPERSEDED_COLUMNS = ("file_order", "lic_idx")
# What the loader keeps of each staged row to pick the winner per key across chunks.
WINNER_COLUMNS = (*KEY, "search_ts", "file_order", "lic_idx")
IMAGE_COLUMNS = ("image_rel", "content_hash", "storage_path", "storage_type", "file_size", "content_type", "width",
                 "height")
WARNING_SCHEMA = {"file_id": pl.Int64, "kind": pl.String, "detail": pl.String}


def _clean_text(col: str) -> pl.Expr:
    """Trim, drop NUL characters, and make an empty string NULL."""
    text = pl.col(col).str.replace_all("\x00", "", literal=True).str.strip_chars()
    return pl.when(text.str.len_bytes() == 0).then(None).otherwise(text).alias(col)


def _null_token(col: str) -> pl.Expr:
    token = pl.col(col).str.to_lowercase().str.strip_chars_end(".").str.strip_chars()
    return pl.col(col).is_null() | token.is_in(list(NULL_TOKENS))


def _plausible(d: pl.Expr) -> pl.Expr:
    """Four-digit years only: polars' %Y also takes `20` or `0000`, which PostgreSQL cannot store
    or which mean something else (a two-digit year goes on to dateutil, which reads it as 20xx)."""
    return pl.when(d.dt.year().is_between(1000, 9999)).then(d)


def _known_formats(col: str) -> pl.Expr:
    return pl.coalesce([_plausible(pl.col(col).str.strptime(pl.Date, f, strict=False)) for f in DATE_FORMATS])


def _dateutil(text: str) -> date | None:
    """A date dateutil reads the same whatever the default: no missing day, month or year filled in."""
    try:
        a = dateparser.parse(text, default=datetime(2000, 1, 1))
        b = dateparser.parse(text, default=datetime(2001, 2, 2))
    except (ValueError, OverflowError, TypeError):
        return None
    if a != b or a.time() != datetime.min.time() or not 1000 <= a.year <= 9999:
        return None
    written = re.findall(r"(?<!\d)\d{4}(?!\d)", text)
    if written and f"{a.year:04d}" not in written:  # dateutil reads a written 0000 as 2000
        return None
    return date(a.year, a.month, a.day)


def _parse_dates(rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Dates to pl.Date; returns the frame and a warning per unparseable value."""
    rows = rows.with_columns(
        [pl.when(_null_token(c)).then(None).otherwise(pl.col(c)).alias(c) for c in DATE_COLUMNS]
    ).with_columns([_known_formats(c).alias(c + "_parsed") for c in DATE_COLUMNS])
    warnings = []
    for c in DATE_COLUMNS:
        left = rows.filter(pl.col(c).is_not_null() & pl.col(c + "_parsed").is_null())
        if left.height:
            mapping = {v: _dateutil(v) for v in left[c].unique().to_list()}
            fixed = pl.DataFrame({c: list(mapping), c + "_late": list(mapping.values())},
                                 schema={c: pl.String, c + "_late": pl.Date})
            rows = rows.join(fixed, on=c, how="left", maintain_order="left").with_columns(
                pl.coalesce(c + "_parsed", c + "_late").alias(c + "_parsed")
            ).drop(c + "_late")
            bad = rows.filter(pl.col(c).is_not_null() & pl.col(c + "_parsed").is_null())
            # A few values: plain Python (map_elements would first inspect repr's bytecode, ~10 ms).
            details = [f"{c} {v[:40]!r} is not a date; stored as NULL" for v in bad[c].to_list()]
            warnings.append(bad.select("file_id", pl.lit("invalid_date").alias("kind"),
                                       pl.Series("detail", details, dtype=pl.String)))
    rows = rows.drop(DATE_COLUMNS).rename({c + "_parsed": c for c in DATE_COLUMNS})
    warn = pl.concat(warnings) if warnings else pl.DataFrame(schema=WARNING_SCHEMA)
    return rows, warn


def clean(rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Normalise text and dates; search_ts becomes a UTC instant. Returns rows and warnings."""
    rows = rows.with_columns(
        [_clean_text(c) for c in TEXT_COLUMNS + DATE_COLUMNS]
        + [pl.from_epoch(pl.col("search_ts_us"), time_unit="us").dt.replace_time_zone("UTC").alias("search_ts")]
    ).drop("search_ts_us")
    return _parse_dates(rows)


def newest_per_key(rows: pl.DataFrame) -> pl.DataFrame:
    """One row per key: the newest search wins; on a tie, the first file in path order."""
    return (
        rows.sort(["search_ts", "file_id", "lic_idx"], descending=[True, False, False])
        .unique(subset=list(KEY), keep="first", maintain_order=True)
        .sort(["file_id", "lic_idx"])
    )


CONTENT_COLUMNS = ("search_state", "search_name", "license_number", "license_status", "license_name",
                   "license_type", "address", "city", "state", "zip", "result_status")


def content_canon(rows: pl.DataFrame) -> pl.DataFrame:
    """Key, search_ts and the canonical text of a row's values, to hash once its screenshot is known.

    sql/verify_canon.sql builds the same text from the stored row: fields joined by U+001F, NULL as
    \\N, instants as epoch microseconds, dates as days since 1970-01-01. Comparing the two hashes
    checks every value, not just that a row exists.
    """
    null = pl.lit("\\N")
    parts = [pl.col(c).fill_null(null) for c in CONTENT_COLUMNS]
    parts += [pl.col(c).cast(pl.Int32).cast(pl.String).fill_null(null) for c in DATE_COLUMNS]
    parts.append(pl.col("search_ts").dt.epoch("us").cast(pl.String))
    return rows.select(
        *KEY, pl.col("search_ts").dt.epoch("us").alias("search_ts_us"), "file_order", "lic_idx",
        pl.concat_str(parts, separator="\x1f").alias("canon"),
    )


def to_csv(frame: pl.DataFrame, columns: tuple[str, ...]) -> bytes:
    """CSV as COPY (FORMAT csv) reads it: an empty unquoted field is NULL, instants carry their offset."""
    buf = io.BytesIO()
    frame.select(columns).write_csv(buf, include_header=False, datetime_format="%Y-%m-%dT%H:%M:%S%.6f%:z",
                                    date_format="%Y-%m-%d")
    return buf.getvalue()


def with_raw(rows: pl.DataFrame, files: pl.DataFrame) -> pl.DataFrame:
    """Each row with its raw: the file's document around the row's own license (parse.FILE_SCHEMA).
    Done after the chunk's dedup, so only rows that are staged pay for it."""
    docs = files.select(pl.col("file_id").alias("file_order"), "raw_head", "raw_tail")
    return rows.join(docs, on="file_order", how="left", maintain_order="left").with_columns(
        pl.concat_str(["raw_head", "licenses_json", "raw_tail"]).alias("raw")
    ).drop("raw_head", "raw_tail", "licenses_json")


def superseded(keys: pl.DataFrame) -> pl.DataFrame:
    """The staged rows that lose to another of the load's rows with the same key (WINNER_COLUMNS in;
    file_order, lic_idx out): the newest search wins; on a tie, the first file in path order."""
    # Only rows whose key hashes like another row's can lose (equal keys hash alike; a collision
    # only adds a row the exact pass below lets win): most keys of a realistic scrape are searched
    # once, so the sort and the exact pass see a few percent of the rows. Sorting and deduplicating
    # every key held ~450 MB at a million files.
    repeated = keys.filter(pl.struct(KEY).hash().is_duplicated())
    ranked = repeated.sort(["search_ts", "file_order", "lic_idx"], descending=[True, False, False])
    return ranked.filter(~pl.struct(KEY).is_first_distinct()).select(SUPERSEDED_COLUMNS)


@dataclass
class Prepared:
    """A chunk ready to stage: CSV for COPY, made in the worker so the parent only forwards bytes."""

    files: pl.DataFrame                    # file_id, source_image of each loaded file
    rows_csv: bytes
    rows: int                              # rows staged: one per key within the chunk
    parsed: int                            # rows parsed, before the chunk's dedup
    keys: pl.DataFrame                     # WINNER_COLUMNS of each staged row
    canon: pl.DataFrame | None             # for --verify-writes (run/digests.py)
    images: pl.DataFrame | None = None     # each file's screenshot (images.IMAGE_SCHEMA)
    rejects: list[tuple[str, str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str, str]] = field(default_factory=list)


def prepare(rows: pl.DataFrame, files: pl.DataFrame, rels: dict[int, str], want_canon: bool,
            shots: pl.DataFrame | None = None) -> Prepared:
    """Clean, keep the newest row per key within the chunk, and serialise the rows for COPY with
    their meta, raw and screenshot hash (shots: images.IMAGE_SCHEMA of the chunk's files)."""
    cleaned, warned = clean(rows)
    best = newest_per_key(cleaned).rename({"file_id": "file_order"})
    staged = with_raw(best, files)
    if shots is not None:
        hashes = shots.filter(pl.col("error").is_null()).select("file_order",
                                                                pl.col("content_hash").alias("image_hash"))
        staged = staged.join(hashes, on="file_order", how="left", maintain_order="left")
    else:
        staged = staged.with_columns(pl.lit(None, dtype=pl.String).alias("image_hash"))
    warnings = [(rels[i], k, d) for i, k, d in zip(warned["file_id"], warned["kind"], warned["detail"], strict=True)]
    return Prepared(files=files.select("file_id", "source_image"), rows_csv=to_csv(staged, ROW_COLUMNS),
                    rows=best.height, parsed=rows.height, keys=best.select(WINNER_COLUMNS), warnings=warnings,
                    # every row, not only the chunk's newest per key: verification keeps each file's rows
                    canon=content_canon(cleaned.rename({"file_id": "file_order"})) if want_canon else None)

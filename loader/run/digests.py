"""The scrape's side of verification: each row's digest, from the workers or from the sidecar.

`pharmload verify --states-dir` parses the whole scrape (scan/digest.py, in the workers) and
streams the digests to the database a chunk at a time. `load --verify-writes` covers every file the
load stands for, without parsing the unchanged ones again: each file's row digests are kept beside
the manifest in `<manifest>.digests.parquet`, keyed by the file's path, size and mtime, and written
atomically after the load. A file the sidecar does not know (the first --verify-writes after plain
loads) is parsed once. A screenshot whose bytes changed under an unchanged JSON keeps the digest
of what was loaded, as the stored row keeps its hash.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from loader.progress import Progress
from loader.report import write_atomically
from loader.run import workers
from loader.scan import digest, discover, images, parse
from loader.settings import Settings

log = logging.getLogger("pharmload")
FILE_KEY = ("rel", "size", "mtime_ns")
SIDECAR_SCHEMA: dict[str, Any] = {"rel": pl.String, "size": pl.Int64, "mtime_ns": pl.Int64,
                                  **{c: t for c, t in digest.DIGEST_SCHEMA.items() if c != "file_order"}}
Key = tuple[str, str, str | None]


def tasks(settings: Settings, plan: discover.Plan, files: pl.DataFrame, want_canon: bool = False,
          hash_threads: int = 1) -> Iterator[parse.ParseTask]:
    """One task per chunk of files (a slice of plan.jsons); each finds and hashes its screenshots."""
    roots = images.Roots(plan.roots, plan.depth, settings.max_image_bytes)
    for start in range(0, files.height, settings.chunk_files):
        part = files.slice(start, settings.chunk_files)
        yield parse.ParseTask(file_ids=part["file_id"].to_list(), paths=plan.paths(part), rels=part["rel"].to_list(),
                              source_timezone=settings.source_timezone, max_json_bytes=settings.max_json_bytes,
                              want_canon=want_canon, roots=roots, hash_threads=hash_threads)


def scrape(settings: Settings, plan: discover.Plan, files: pl.DataFrame, pool: workers.Pool,
           progress: Progress, seen: dict[str, int]) -> Iterator[pl.DataFrame]:
    """The digests of files' rows, a chunk at a time, in file order; counts files read and rejected."""
    threads = settings.workers if pool.size == 1 else 1
    for done in pool.ordered(digest.digest_chunk, tasks(settings, plan, files, hash_threads=threads),
                             window=2 * pool.size):
        seen["files"] = seen.get("files", 0) + done.files
        seen["rejected"] = seen.get("rejected", 0) + done.rejected
        progress.advance(done.files + done.rejected, f"{seen['files']} files digested")
        yield done.digests


def fields_of(settings: Settings, plan: discover.Plan) -> Callable[[list[tuple[Key, int]]], dict[Key, list[str]]]:
    """For the listed 'values differ' keys: the scrape's canonical fields of each, parsed again from
    the one file its newest search is in (at most MAX_LISTED files)."""
    def fields(wanted: list[tuple[Key, int]]) -> dict[Key, list[str]]:
        orders = sorted({order for _, order in wanted})
        files = plan.jsons.filter(pl.col("file_id").is_in(orders))
        found: dict[Key, list[str]] = {}
        for task in tasks(settings, plan, files, want_canon=True):
            canon = digest.digest_chunk(task).canon
            if canon is None:
                continue
            for row in canon.sort("lic_idx", descending=True).iter_rows(named=True):
                key = (row["search_state"], row["search_name"], row["license_number"])
                if (key, row["file_order"]) in wanted:
                    found[key] = [*row["canon"].split("\x1f"), row["image_hash"] or "\\N"]
        return found

    return fields


def sidecar_path(manifest_file: Path) -> Path:
    return manifest_file.with_suffix(".digests.parquet")


def read_sidecar(path: Path, header: dict[str, str]) -> pl.DataFrame:
    """The sidecar's digests when it belongs to this manifest (same states folder, tag, target)."""
    try:
        meta = orjson.loads(pl.read_parquet_metadata(path)["pharmload-digests"])
        if meta == header:
            return pl.read_parquet(path).cast(pl.Schema(SIDECAR_SCHEMA))
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError, pl.exceptions.PolarsError) as exc:
        log.warning("%s: cannot use it (%s); the files it covered are parsed again", path, exc)
    return pl.DataFrame(schema=SIDECAR_SCHEMA)


def write_sidecar(path: Path, header: dict[str, str], table: pl.DataFrame) -> None:
    buf = io.BytesIO()
    table.select(list(SIDECAR_SCHEMA)).write_parquet(
        buf, compression="zstd", metadata={"pharmload-digests": orjson.dumps(header).decode()})
    write_atomically(path, buf.getvalue())


def parsed(canon: list[pl.DataFrame], hashes: list[pl.DataFrame]) -> pl.DataFrame:
    """Digests of the rows this load parsed: its chunks' canonical texts (with each file's
    screenshot path) and the screenshots' hashes."""
    if not canon:
        return digest.empty()
    schema = pl.Schema({"image_rel": pl.String, "content_hash": pl.String})
    known = (pl.concat([h.cast(schema) for h in hashes]) if hashes else pl.DataFrame(schema=schema)).unique("image_rel")
    rows = pl.concat(canon)
    shots = rows.select("file_order", "image_rel").unique("file_order").join(known, on="image_rel", how="inner")
    return digest.row_digests(rows.drop("image_rel"), shots.select("file_order", pl.col("content_hash")
                                                                   .alias("image_hash")))


def covered(settings: Settings, plan: discover.Plan, loaded: pl.DataFrame, fresh: pl.DataFrame,
            pool: workers.Pool, progress: Progress, sidecar: Path, header: dict[str, str]) -> pl.DataFrame:
    """The digests of every file the load covers (loaded: plan.jsons rows of the files the manifest
    holds as loaded), and the sidecar rewritten to hold exactly these files.

    A file whose JSON the sidecar knows as it is keeps the sidecar's digests, even when this run
    parsed it again (--full): its screenshot may have changed since, and the stored row keeps the
    hash that was loaded (an equal search_ts changes nothing). Other files take this run's digests
    (fresh), and a loaded file that has neither is parsed here, once."""
    old = read_sidecar(sidecar, header) if sidecar.exists() else pl.DataFrame(schema=SIDECAR_SCHEMA)
    kept = loaded.join(old, on=list(FILE_KEY), how="inner").rename({"file_id": "file_order"})
    kept_ids = kept.select(pl.col("file_order").unique())
    parts = [kept.select(digest.DIGEST_COLUMNS), fresh.join(kept_ids, on="file_order", how="anti")]
    have = pl.concat([kept_ids, fresh.select(pl.col("file_order").unique())]).rename({"file_order": "file_id"})
    lacking = loaded.join(have, on="file_id", how="anti")
    if lacking.height:
        progress.note("verify: %d files the load skipped have no digests yet; parsing them once", lacking.height)
        progress.begin("digest", lacking.height)
        parts += list(scrape(settings, plan, lacking.sort("file_id"), pool, progress, {}))
    table = pl.concat([p.cast(pl.Schema(digest.DIGEST_SCHEMA)) for p in parts])
    if not settings.dry_run:
        keyed = table.join(plan.jsons.select(pl.col("file_id").alias("file_order"), *FILE_KEY), on="file_order")
        try:
            write_sidecar(sidecar, header, keyed)
        except OSError as exc:  # the next --verify-writes parses these files again
            log.warning("%s: cannot write it (%s)", sidecar, exc.strerror or exc)
    return table

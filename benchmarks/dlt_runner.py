"""dlt as a benchmark contender: the same rows, handed to a general-purpose loading library.

Rows come from pharmload's own plan, parse (orjson) and clean (polars), chunk by chunk
(:func:`benchmarks.floor.iter_clean_chunks`), with each screenshot resolved and hashed in this
process; a dlt resource then yields one dict per row with ``write_disposition="merge"`` and
``primary_key=(dataset_tag, search_state, search_name, license_number)``, newest ``search_ts``
first (``dedup_sort``). dlt creates its own tables in its own schema (``--dataset-name``), so the
harness checks the end state by row count and key set against pharmload's ``search_results``.

dlt's primary-key columns are NOT NULL, so a "no results" row (NULL license number, which
pharmload's key treats as equal to other NULLs) is given the license number ``""`` — a value
pharmload never stores (empty text is NULL) — and the harness maps it back before comparing.

What is timed is the whole process: imports, parse, clean, hash, dlt's extract, normalize and load.
Run it with ``RUNTIME__DLTHUB_TELEMETRY=false`` and ``DLT_DATA_DIR`` under a temporary folder (the
harness does); ``--pipelines-dir`` keeps dlt's working files there too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

NULL_LICENSE = ""  # stands for NULL in dlt's NOT NULL key column; see the module docstring
KEY = ("dataset_tag", "search_state", "search_name", "license_number")
TEXT = ("license_status", "license_name", "license_type", "address", "city", "state", "zip", "result_status")


def rows(states_dir: Path, tag: str, stats: dict[str, int]) -> Iterator[dict[str, Any]]:
    """One dict per row (pharmload's cleaning), with the screenshot's SHA-256."""
    import orjson
    import polars as pl

    from benchmarks.floor import iter_clean_chunks
    from loader.scan import images
    for plan, chunk in iter_clean_chunks(states_dir):
        stats["files"] = plan.jsons.height
        stats["rejected"] = stats.get("rejected", 0) + chunk.rejects
        roots = images.Roots(plan.roots, plan.depth)
        shots, _missing = images.describe_files(chunk.files["file_id"].to_list(),
                                                chunk.files["source_image"].to_list(),
                                                chunk.files["rel"].to_list(), roots)
        frame = chunk.rows.join(shots.select(pl.col("file_order").alias("file_id"), "content_hash"),
                                on="file_id", how="left")
        for r in frame.iter_rows(named=True):
            stats["rows"] = stats.get("rows", 0) + 1
            doc = orjson.loads(r["raw"])
            yield {
                "dataset_tag": tag,
                "search_state": r["search_state"],
                "search_name": r["search_name"],
                "license_number": NULL_LICENSE if r["license_number"] is None else r["license_number"],
                "search_ts": r["search_ts"],
                **{c: r[c] for c in TEXT},
                "issue_date": r["issue_date"],
                "expiration_date": r["expiration_date"],
                "meta": doc["metadata"],
                "raw": doc,
                "image_hash": r["content_hash"],
            }


def credentials(dsn: str) -> Any:
    """dlt's credentials for a libpq DSN. dlt insists on a host and a password: a Unix-socket DSN
    (the embedded server's) gets host "localhost" overridden by the socket folder as a query
    parameter, and a placeholder password the server never asks for (trust auth on the socket)."""
    from dlt.destinations.impl.postgres.configuration import PostgresCredentials
    from psycopg.conninfo import conninfo_to_dict

    info = {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}
    creds = PostgresCredentials()
    creds.database = info.pop("dbname", "postgres")
    creds.username = info.pop("user", "postgres")
    creds.password = info.pop("password", "unused")
    host = info.pop("host", "localhost")
    creds.port = int(info.pop("port", "5432"))
    if host.startswith("/"):
        creds.host, info["host"] = "localhost", host
    else:
        creds.host = host
    creds.query = info
    return creds


def run(dsn: str, states_dir: Path, tag: str, dataset_name: str, pipelines_dir: Path) -> dict[str, Any]:
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt

    stats: dict[str, int] = {}
    columns: dict[str, Any] = {
        "search_ts": {"data_type": "timestamp", "timezone": True, "dedup_sort": "desc"},
        "issue_date": {"data_type": "date"},
        "expiration_date": {"data_type": "date"},
        "meta": {"data_type": "json"},
        "raw": {"data_type": "json"},
        "image_hash": {"data_type": "text", "nullable": True},
        **{c: {"data_type": "text", "nullable": True} for c in TEXT},
    }
    resource = dlt.resource(rows(states_dir, tag, stats), name="search_results", table_name="search_results",
                            write_disposition="merge", primary_key=list(KEY), columns=columns,
                            max_table_nesting=0)
    destination = dlt.destinations.postgres(credentials=credentials(dsn))
    pipeline = dlt.pipeline(pipeline_name="pharmload_bench", pipelines_dir=str(pipelines_dir),
                            destination=destination, dataset_name=dataset_name)
    info = pipeline.run(resource)
    info.raise_on_failed_jobs()
    return {**stats, "loads": len(info.loads_ids)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.dlt_runner", description=__doc__.split("\n\n")[0])
    p.add_argument("--dsn", required=True)
    p.add_argument("--states-dir", type=Path, required=True)
    p.add_argument("--tag", required=True)
    p.add_argument("--dataset-name", default="pharmload_dlt", help="the schema dlt creates its tables in")
    p.add_argument("--pipelines-dir", type=Path, required=True, help="dlt's working folder (use a temp folder)")
    args = p.parse_args(argv)
    started = time.perf_counter()
    summary = run(args.dsn, args.states_dir, args.tag, args.dataset_name, args.pipelines_dir)
    summary["elapsed"] = round(time.perf_counter() - started, 3)
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

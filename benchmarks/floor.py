"""The hardware floor: what no loader can beat on this machine, in two separately timed parts.

(a) ``read`` — read every byte of every file of the scrape and SHA-256 every screenshot (one
    process, or a pool of ``--workers`` processes), with nothing else: no parsing, no database.
(b) ``copy`` — ``psql \\copy`` of the final rows (CSV that pharmload's own cleaning produced,
    prepared before timing) into the staging tables, then the very merge statement pharmload runs
    (``sql/merge_search_results.sql``). The staging tables are ``sql/create_stage_*.sql`` made
    regular tables; the screenshot ones (``stage_image_assets`` …) are left empty, so the merged
    rows have a NULL ``image_hash``; the harness compares them to pharmload's without that column.

(a) is ``python -m benchmarks.floor read --states-dir DIR``; (b) is a ``/usr/bin/psql`` process
running the script :func:`write_copy_script` wrote. The preparation helpers (:func:`write_stage_csvs`,
:func:`prepare_database`) run in the harness, untimed.

:func:`iter_clean_chunks` is also the row source of ``benchmarks/dlt_runner.py``: pharmload's plan,
parse and clean, chunk by chunk, so that dlt is handed exactly the rows pharmload would stage.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # polars is only imported where rows are prepared, never by `read`
    import polars as pl

BLOCK = 1 << 20
JSON_SUFFIX = "_parse.json"
PSQL = "/usr/bin/psql"


# --------------------------------------------------------------------------------------------
# (a) read every byte, hash every screenshot
# --------------------------------------------------------------------------------------------


def list_files(root: Path) -> list[str]:
    """Every regular file below root (no symlinks followed), in a stable order."""
    out: list[str] = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        out.extend(os.path.join(folder, f) for f in sorted(files))
    return out


def _read_part(paths: list[str]) -> tuple[int, int, int]:
    """(files, bytes, screenshots hashed) for one share of the files."""
    total = hashed = 0
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    for path in paths:
        is_png = path.endswith(".png")
        h = hashlib.sha256() if is_png else None
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                total += n
                if h is not None:
                    h.update(view[:n])
        if h is not None:
            h.hexdigest()
            hashed += 1
    return len(paths), total, hashed


def read_all(root: Path, workers: int = 2) -> dict[str, int]:
    paths = list_files(root)
    if workers <= 1:
        parts = [_read_part(paths)]
    else:
        shares = [paths[i::workers] for i in range(workers)]
        with get_context("fork").Pool(workers) as pool:
            parts = pool.map(_read_part, shares)
    return {"files": sum(p[0] for p in parts), "bytes": sum(p[1] for p in parts),
            "screenshots_hashed": sum(p[2] for p in parts)}


# --------------------------------------------------------------------------------------------
# (b) psql \copy + the merge; preparation (untimed)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CleanChunk:
    """One chunk of search files after pharmload's parse and clean (before newest-per-key)."""

    rows: pl.DataFrame  # frame.clean() output with meta and raw (frame.with_raw): file_id, lic_idx, key, ...
    files: pl.DataFrame  # file_id, rel, source_image of the files that loaded
    rejects: int


def iter_clean_chunks(states_dir: Path, chunk_files: int = 2000) -> Iterator[tuple[Any, CleanChunk]]:
    """(plan, chunk) for each chunk of pharmload's plan, parsed and cleaned in this process."""
    from loader.scan import discover, frame, parse
    plan = discover.plan(states_dir)
    rels = plan.jsons.select("file_id", "rel")
    for start in range(0, plan.jsons.height, chunk_files):
        part = plan.jsons.slice(start, chunk_files)
        parsed = parse.parse_chunk(parse.ParseTask(file_ids=part["file_id"].to_list(), paths=plan.paths(part),
                                                   rels=part["rel"].to_list()))
        rows, _warnings = frame.clean(parsed.rows)
        rows = frame.with_raw(rows.rename({"file_id": "file_order"}), parsed.files).rename({"file_order": "file_id"})
        files = parsed.files.join(rels, on="file_id", how="left")
        yield plan, CleanChunk(rows=rows, files=files, rejects=len(parsed.rejects))


def stage_sql() -> dict[str, str]:
    """The staging tables a load creates: file name -> CREATE TEMP TABLE text (sql/create_stage_*.sql)."""
    from importlib import resources

    files = sorted((e for e in resources.files("loader.sql").iterdir()
                    if e.name.startswith("create_stage_") and e.name.endswith(".sql")), key=lambda e: e.name)
    return {e.name: e.read_text(encoding="utf-8") for e in files}


def table_columns(create: str) -> tuple[str, list[str]]:
    """(table, columns in order) of a CREATE TABLE statement (one column per line, as sql/ writes them)."""
    m = re.search(r"CREATE\s+(?:TEMP(?:ORARY)?\s+)?TABLE\s+(\w+)\s*\((.*)\)", create, flags=re.S | re.I)
    if m is None:
        raise RuntimeError(f"not a CREATE TABLE statement: {create[:80]!r}")
    columns = []
    for line in m.group(2).splitlines():
        line = line.split("--", 1)[0].strip().rstrip(",")
        word = line.split()[0] if line else ""
        generated = re.search(r"\bGENERATED\b", line, flags=re.I)  # the server fills it, COPY must not
        if word and not generated and word.upper() not in ("CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN",
                                                           "EXCLUDE"):
            columns.append(word)
    return m.group(1), columns


def write_stage_csvs(states_dir: Path, out_dir: Path) -> dict[str, Any]:
    """The final rows of a first load of states_dir, as CSV for each staging table the merge reads.

    Rows are pharmload's parse + clean + newest-per-key, typed and whole (meta, raw) as a load stages
    them; the table with ``lic_idx`` gets them; the others (superseded rows, screenshots) stay empty
    (the merged rows then have a NULL image_hash). Returns (and writes as stage.json) the plan:
    table -> columns and CSV file (None = left empty).
    """
    import polars as pl

    from loader.scan import frame
    parts = [chunk.rows for _plan, chunk in iter_clean_chunks(states_dir)]
    if not parts:
        raise RuntimeError(f"no search files below {states_dir}")
    rows = frame.newest_per_key(pl.concat(parts)).rename({"file_id": "file_order"}).with_columns(
        pl.lit(None, dtype=pl.String).alias("image_hash"))
    out_dir.mkdir(parents=True, exist_ok=True)
    plan: dict[str, Any] = {"rows": rows.height, "tables": {}}
    for name, create in stage_sql().items():
        table, columns = table_columns(create)
        if "lic_idx" in columns and "search_name" in columns:
            source = rows
        else:
            plan["tables"][table] = {"file": name, "columns": columns, "csv": None, "rows": 0}
            continue
        missing = [c for c in columns if c not in source.columns]
        if missing:
            raise RuntimeError(f"{name}: pharmload's cleaned rows have no column(s) {missing}")
        csv = out_dir / f"{table}.csv"
        csv.write_bytes(frame.to_csv(source, tuple(columns)))
        plan["tables"][table] = {"file": name, "columns": columns, "csv": str(csv), "rows": source.height}
    (out_dir / "stage.json").write_text(json.dumps(plan, indent=1), encoding="utf-8")
    return plan


def _regular_table(create_temp: str) -> str:
    """sql/create_stage_*.sql turned into a regular table (psql runs the copy and merge in its own session)."""
    text = re.sub(r"\bCREATE\s+TEMP(ORARY)?\s+TABLE\b", "CREATE TABLE", create_temp, count=1, flags=re.I)
    text = re.sub(r"\bON\s+COMMIT\s+DROP\b", "", text, flags=re.I)
    if text == create_temp or re.search(r"\bTEMP(ORARY)?\b", text, flags=re.I):
        raise RuntimeError("sql/create_stage_*.sql changed shape: cannot make a regular staging table of it")
    return text


def prepare_database(dsn: str, tag: str) -> int:
    """Schema, the tag's dataset and every staging table, empty and regular; returns the dataset id."""
    import psycopg

    from loader.db import pg
    with psycopg.connect(dsn) as conn:
        conn.execute(pg.statement("schema"))
        row = conn.execute(pg.statement("ensure_dataset"),
                           {"tag": tag, "description": "floor", "created_by": "benchmarks.floor"}).fetchone()
        assert row is not None
        for create in stage_sql().values():
            conn.execute(_regular_table(create).encode())
        conn.commit()
    return int(row[0])


def write_copy_script(stage_dir: Path, dataset_id: int, out: Path) -> Path:
    """A psql script: \\copy each staging CSV in, then pharmload's merge for dataset_id."""
    from loader.db import pg
    plan = json.loads((stage_dir / "stage.json").read_text(encoding="utf-8"))
    merge = pg.sql_text("merge_search_results")
    if merge.count("%(dataset_id)s") != 1:
        raise RuntimeError("sql/merge_search_results.sql no longer has exactly one %(dataset_id)s")
    merge = merge.replace("%(dataset_id)s", str(int(dataset_id))).rstrip().rstrip(";")
    lines = []
    for table, info in plan["tables"].items():
        if info["csv"] is None:
            continue
        if "'" in info["csv"]:
            raise ValueError(f"cannot quote {info['csv']} for \\copy")
        lines.append(f"\\copy {table} ({', '.join(info['columns'])}) FROM '{info['csv']}' WITH (FORMAT csv)")
    out.write_text("\n".join(lines) + f"\n{merge};\n", encoding="utf-8")
    return out


def psql_command(dsn: str, script: Path) -> list[str]:
    """One transaction (-1), stop at the first error, no ~/.psqlrc."""
    return [PSQL, "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", str(script)]


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.floor", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    read = sub.add_parser("read", help="read every file and SHA-256 every screenshot")
    read.add_argument("--states-dir", type=Path, required=True)
    read.add_argument("--workers", type=int, default=2)
    stage = sub.add_parser("stage", help="write the final rows of a first load as CSV for the staging tables")
    stage.add_argument("--states-dir", type=Path, required=True)
    stage.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.command == "read":
        summary: dict[str, Any] = read_all(args.states_dir, args.workers)
    else:
        plan = write_stage_csvs(args.states_dir, args.out_dir)
        summary = {"rows": plan["rows"], "tables": {t: i["rows"] for t, i in plan["tables"].items()}}
    summary["seconds"] = round(time.perf_counter() - started, 3)
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""End states: what a contender left in the database, checked before its time counts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from benchmarks.harness.common import DLT_DATASET, TAG, BenchmarkError, Key
from benchmarks.harness.corpora import Expected

ROW_DIGEST = """
SELECT md5(string_agg(md5(row({cols})::text), '' ORDER BY search_state, search_name, license_number NULLS FIRST))
FROM {table} WHERE {where}
"""
ALL_COLUMNS = ("search_state", "search_name", "license_number", "search_ts", "license_status", "license_name",
               "license_type", "address", "city", "state", "zip", "issue_date", "expiration_date", "result_status",
               "meta", "raw", "image_hash")
IMAGE_DIGEST = ("SELECT count(*), md5(string_agg(md5(row(content_hash, storage_path, storage_type, file_size, "
                "content_type, width, height)::text), '' ORDER BY content_hash)) FROM image_assets")


@dataclass
class EndState:
    rows: int
    keys: frozenset[Key]
    digest: str | None = None  # every column but id, dataset_id and the two timestamps of the row itself
    digest_no_image: str | None = None  # the same without image_hash (the floor stages no images)
    images: int | None = None
    image_digest: str | None = None


def _digest(conn: psycopg.Connection[Any], table: sql.Composable, where: sql.Composable,
            columns: Sequence[str], params: Sequence[Any]) -> str | None:
    query = sql.SQL(ROW_DIGEST).format(cols=sql.SQL(", ").join(map(sql.Identifier, columns)), table=table,
                                       where=where)
    row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def search_results_state(dsn: str, images: bool = True) -> EndState:
    """pharmload's tables (also written by the baseline and the floor's merge)."""
    with psycopg.connect(dsn) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        found = conn.execute("SELECT id FROM datasets WHERE kind = 'states' AND tag = %s", (TAG,)).fetchone()
        if found is None:
            raise BenchmarkError(f"no dataset {TAG!r} in {dsn}")
        where, params = sql.SQL("dataset_id = %s"), (found[0],)
        keys = conn.execute("SELECT search_state, search_name, license_number FROM search_results "
                            "WHERE dataset_id = %s", params).fetchall()
        table = sql.Identifier("search_results")
        state = EndState(rows=len(keys), keys=frozenset((s, n, lic) for s, n, lic in keys),
                         digest=_digest(conn, table, where, ALL_COLUMNS, params),
                         digest_no_image=_digest(conn, table, where, ALL_COLUMNS[:-1], params))
        if images:
            count, digest = conn.execute(IMAGE_DIGEST).fetchone() or (0, None)
            state.images, state.image_digest = int(count), digest
    return state


def dlt_state(dsn: str) -> EndState:
    """dlt's own table: the key set (its "" license number stands for NULL) and the row count."""
    with psycopg.connect(dsn) as conn:
        query = sql.SQL("SELECT search_state, search_name, license_number FROM {} WHERE dataset_tag = %s").format(
            sql.Identifier(DLT_DATASET, "search_results"))
        keys = conn.execute(query, (TAG,)).fetchall()
    return EndState(rows=len(keys), keys=frozenset((s, n, lic if lic != "" else None) for s, n, lic in keys))


def _show(keys: Iterator[Key] | frozenset[Key], limit: int = 5) -> str:
    return ", ".join(repr(k) for k in sorted(keys, key=lambda k: (k[0], k[1], k[2] or ""))[:limit])


def compare(what: str, got: EndState, expected: Expected, reference: EndState | None, *,
            digest: str | None = None, images: bool = False) -> None:
    """Raise BenchmarkError unless got is the expected end state (and the reference's, when given)."""
    problems = []
    if got.rows != len(got.keys):
        problems.append(f"{got.rows} rows but {len(got.keys)} distinct keys (duplicates)")
    for name, keys in (("the corpus's expectation", expected.keys),
                       ("pharmload's end state", reference.keys if reference else None)):
        if keys is None:
            continue
        if got.keys != keys or got.rows != len(keys):
            problems.append(f"key set differs from {name}: {got.rows} rows vs {len(keys)}; missing "
                            f"[{_show(keys - got.keys)}], extra [{_show(got.keys - keys)}]")
    if reference is not None and digest is not None:
        mine, theirs = getattr(got, digest), getattr(reference, digest)
        if mine != theirs:
            problems.append(f"row contents differ from pharmload's ({digest} {mine} != {theirs})")
    if images:
        if got.images != len(expected.images):
            problems.append(f"{got.images} image_assets rows, expected {len(expected.images)}")
        if reference is not None and got.image_digest != reference.image_digest:
            problems.append("image_assets rows differ from pharmload's")
    if problems:
        raise BenchmarkError(f"{what}: end state is wrong:\n  " + "\n  ".join(problems))

"""`pharmload verify --tag T [--states-dir DIR] [--deep]`: check a whole dataset, not one load.

With --states-dir, every key's newest search in the scrape must match the stored row field by
field (the same digests as `load --verify-writes`); always, every screenshot the rows refer to must
have its image_assets row and a store object of the recorded size, and with --deep bytes that hash
to their name. Read-only: nothing is written to the database, the store or the manifests.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import orjson

from loader.db import verify as db_verify
from loader.db.target import database
from loader.errors import VerifyMismatch
from loader.progress import Progress
from loader.report import write_atomically
from loader.run import digests, workers
from loader.scan import discover
from loader.settings import Settings
from loader.stores import image_store

PROBLEM_ORDER = ("missing", "values differ", "older than the scrape", "screenshots")


def run(settings: Settings) -> dict[str, Any]:
    """The verify section (as in a load's report); written to --report-json too."""
    t0 = time.perf_counter()
    progress = Progress(settings.progress == "on" or (settings.progress == "auto" and sys.stderr.isatty()))
    store = image_store(settings)
    threads = settings.max_concurrent_uploads if settings.backend == "supabase" else settings.workers
    how: dict[str, Any] = {"deep": settings.deep, "threads": threads, "timeout_ms": settings.statement_timeout_ms}
    section: dict[str, Any] = {}
    try:
        with database(settings) as dsn:
            if settings.states_dir is None:
                progress.note("verify: screenshots of tag %s (no --states-dir: rows are not compared)", settings.tag)
                section = db_verify.check(dsn, settings.secrets, settings.tag or "", store, **how)
                return section
            plan = discover.plan(settings.states_dir, settings.image_roots)
            if not plan.jsons.height:
                raise VerifyMismatch(f"verify: {settings.states_dir} holds no *_parse.json; nothing to compare "
                                     "the dataset with")
            progress.note("plan: %d search files below %s", plan.jsons.height, plan.root)
            seen: dict[str, int] = {}
            with workers.pool(settings.workers if plan.jsons.height > settings.chunk_files else 1) as pool:
                progress.begin("digest", plan.jsons.height)
                section = db_verify.check(
                    dsn, settings.secrets, settings.tag or "", store,
                    digests=digests.scrape(settings, plan, plan.jsons, pool, progress, seen),
                    fields=digests.fields_of(settings, plan), **how)
            progress.note("verify: %d search files read (%d rejected), %d rows and %d screenshots checked",
                          seen.get("files", 0), seen.get("rejected", 0), section["checked"], section["images_checked"])
            section["files_read"] = seen.get("files", 0)
            section["files_rejected"] = seen.get("rejected", 0)
            return section
    finally:
        if settings.report_json is not None:
            _write(settings.report_json, settings, section, time.perf_counter() - t0)


def _write(path: Path, settings: Settings, section: dict[str, Any], elapsed: float) -> None:
    body = {"command": "verify", "tag": settings.tag, "backend": settings.backend,
            "status": section.get("result", "failed"), "elapsed": round(elapsed, 3), "verify": section}
    write_atomically(path, orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n")


def describe(item: dict[str, Any]) -> str:
    """One problem as a line: `TX / Acme / license TX9: values differ (license_status)`."""
    if "key" in item:
        return f"{db_verify.key_text(item['key'])}: {item['problem']}"
    if "image" in item:
        return f"screenshot {item['image']}: {item['problem']}"
    return str(item.get("problem", item))


def summary(section: dict[str, Any]) -> str:
    """`verify: ok (23999 rows, 18449 screenshots checked)`, or what failed, how often."""
    checked = f"{section.get('checked', 0)} rows, {section.get('images_checked', 0)} screenshots checked"
    info = section.get("info_count") or {}
    extra = ("; information: " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in info.items())) if info else ""
    if section.get("result") == "ok":
        return f"verify: ok ({checked}){extra}"
    problems = section.get("problems") or {}
    parts = ", ".join(f"{problems[p]} {p}" for p in PROBLEM_ORDER if problems.get(p))
    parts = parts or "; ".join(describe(m) for m in section.get("mismatches", []))
    return f"verify: mismatch ({section.get('mismatch_count', 0)} problems: {parts}; {checked}){extra}"


def lines(section: dict[str, Any], info: bool = True) -> list[str]:
    """Every listed problem, then (info) the listed information, as `pharmload: verify:` lines. A
    load leaves the information out: a load of part of a scrape would list the rest as not in it."""
    out = [f"pharmload: verify: {describe(m)}" for m in section.get("mismatches", [])]
    if info:
        out += [f"pharmload: verify: {describe(m)} (information)" for m in section.get("info", [])]
    return out

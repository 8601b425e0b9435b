"""Build small scrape trees for tests, file by file, shaped like FORMAT.md."""

from __future__ import annotations

import copy
import struct
from pathlib import Path
from typing import Any

import orjson

LICENSE: dict[str, Any] = {
    "pharmacy_name": "BELMAR PHARMACY",
    "license_number": "NP002169",
    "license_status": "Active",
    "license_type": "Nonresident Pharmacy",
    "issue_date": None,
    "expiration_date": "8/31/2027",
    "address": {"street": "2500 LAKEPOINTE PARKWAY", "suite": "", "city": "ODESSA", "state": "Florida",
                "zip_code": "33556"},
    "contact": {"phone": None, "email": None},
    "additional_info": {"specialties": []},
}
PLACEHOLDER = {k: None for k in ("pharmacy_name", "license_number", "license_status", "license_type",
                                 "issue_date", "expiration_date")} | {
    "address": {"street": None, "suite": None, "city": None, "state": None, "zip_code": None}}


def png(width: int = 1280, height: int = 900, filler: bytes = b"") -> bytes:
    """A PNG signature and IHDR header with the given size, then filler bytes to make it unique."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0\0\0\0" + filler


def document(name: str = "Belmar", state: str = "PA", ts: str = "2025-08-03T14:03:15.401850",
             licenses: list[dict[str, Any]] | None = None, result_status: str | None = "found",
             source_image_file: str | None = None, **meta: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"pharmacy_name": name, "search_timestamp": ts, "state": state,
                                "scraper_version": "1.0.0", "search_result_type": "pharmacy_data", **meta}
    if source_image_file is not None:
        metadata["source_image_file"] = source_image_file
    return {
        "metadata": metadata,
        "search_result": {"licenses": [copy.deepcopy(LICENSE)] if licenses is None else licenses,
                          "result_status": result_status, "search_query": name},
        "debug_info": {"parser_strategy": "Regex-based parsing"},
        "errors": [],
        "warnings": [],
    }


def without(doc: dict[str, Any], *path: str) -> dict[str, Any]:
    """A copy of doc with the key at path (e.g. "metadata", "state") removed."""
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return doc


def with_metadata(**changes: Any) -> dict[str, Any]:
    """A valid document whose metadata has these changes."""
    doc = document()
    doc["metadata"].update(changes)
    return doc


def with_result(**changes: Any) -> dict[str, Any]:
    """A valid document whose search_result has these changes."""
    doc = document()
    doc["search_result"].update(changes)
    return doc


def license_(**changes: Any) -> dict[str, Any]:
    lic = copy.deepcopy(LICENSE)
    lic.update(changes)
    return lic


class Scrape:
    """A scrape folder under construction."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def json(self, rel: str, doc: Any) -> Path:
        return self.raw(rel, orjson.dumps(doc))

    def raw(self, rel: str, data: bytes) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def png(self, rel: str, filler: bytes | None = None, width: int = 1280, height: int = 900) -> Path:
        return self.raw(rel, png(width, height, filler if filler is not None else rel.encode()))

    def search(self, rel_stem: str, doc: dict[str, Any] | None = None, image: bool = True) -> Path:
        """`<rel_stem>_parse.json` plus its screenshot `<rel_stem>.png` (found by the stem rule)."""
        if image:
            self.png(rel_stem + ".png")
        return self.json(rel_stem + "_parse.json", doc if doc is not None else document())

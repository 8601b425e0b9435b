"""The old importer's cleaning, per value (its _clean_date_field and friends), with FORMAT.md's rules.

Part of the baseline contender (benchmarks/baseline.py): what pharmload does vectorially with
polars, done here value by value as the old importer did, so that both end in the same rows.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from dateutil import parser as dateparser
from psycopg.types.json import Jsonb

STATES = frozenset(
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY "
    "NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC PR VI GU AS MP".split()
)
NULL_TOKENS = frozenset(("", "not on file", "not available", "n/a", "na", "---", "-", "none", "unknown", "null"))


class Rejected(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


# --------------------------------------------------------------------------------------------
# Per-value cleaning (the old importer's _clean_date_field and friends), FORMAT.md's rules
# --------------------------------------------------------------------------------------------


def as_text(value: Any) -> str | None:
    """A scalar as text (license numbers are sometimes JSON numbers); objects and lists are NULL."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return None


def clean_text(value: Any) -> str | None:
    text = as_text(value)
    if text is None:
        return None
    text = text.replace("\x00", "").strip()
    return text or None


def clean_date(value: Any) -> date | None:
    """Null tokens and anything that is not a real date become NULL; python-dateutil parses the rest."""
    text = clean_text(value)
    if text is None or text.lower().rstrip(".").strip() in NULL_TOKENS:
        return None
    try:  # a date dateutil reads the same whatever the default: no missing part filled in
        a = dateparser.parse(text, default=datetime(2000, 1, 1))
        b = dateparser.parse(text, default=datetime(2001, 2, 2))
    except (ValueError, OverflowError, TypeError):
        return None
    if a != b or a.time() != datetime.min.time():
        return None
    return date(a.year, a.month, a.day)


def required(meta: dict[str, Any], key: str) -> str:
    value = meta.get(key)
    text = as_text(value) if not isinstance(value, dict | list) else None
    text = text.replace("\x00", "").strip() if text is not None else ""
    if not text:
        raise Rejected("missing_field", f"metadata.{key} is absent, null or empty")
    return text


def timestamp(value: Any, tz: ZoneInfo) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise Rejected("invalid_timestamp", "metadata.search_timestamp is absent, null or empty")
    try:
        ts = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Rejected("invalid_timestamp", "metadata.search_timestamp is not ISO 8601") from None
    return ts.replace(tzinfo=tz) if ts.tzinfo is None else ts.astimezone(UTC)


def _is_placeholder(lic: dict[str, Any]) -> bool:
    def empty(v: Any) -> bool:
        return not v.strip() if isinstance(v, str) else v is None or v == [] or v == {}
    return all(empty(lic.get(k)) for k in ("license_number", "license_status", "issue_date", "expiration_date"))


def validate(doc: Any) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """FORMAT.md's reject rules, first applicable code wins."""
    if not isinstance(doc, dict):
        raise Rejected("invalid_json", "top level is not an object")
    meta, result = doc.get("metadata"), doc.get("search_result")
    if not isinstance(meta, dict) or not isinstance(result, dict):
        raise Rejected("invalid_shape", "metadata or search_result is not an object")
    licenses = result.get("licenses", [])
    if licenses is None:
        licenses = []
    if not isinstance(licenses, list) or not all(isinstance(lic, dict) for lic in licenses):
        raise Rejected("invalid_shape", "licenses is not a list of objects")
    return meta, result, licenses


def record_rows(doc: dict[str, Any], dataset_id: int, image_hash: str | None, tz: ZoneInfo) -> list[tuple[Any, ...]]:
    """The search_results rows of one (valid, NUL-free) document, value by value."""
    meta, result, licenses = validate(doc)
    name = required(meta, "pharmacy_name")
    state = required(meta, "state").upper()
    ts = timestamp(meta.get("search_timestamp"), tz)
    status = as_text(result.get("result_status")) if not isinstance(result.get("result_status"), dict | list) else None
    common = (dataset_id, name, state, ts)
    real = [lic for lic in licenses if not _is_placeholder(lic)]
    if not real:  # FORMAT.md: a "no results" row keeps the document as it is
        return [(*common, None, None, None, None, None, None, None, None, None, None,
                 clean_text(status or "not_found"), Jsonb(meta), Jsonb(doc), image_hash)]
    rows = []
    for lic in real:
        addr = lic.get("address")
        if not isinstance(addr, dict):
            addr = {}
        rows.append((*common, clean_text(lic.get("license_number")), clean_text(lic.get("license_status")),
                     clean_text(lic.get("pharmacy_name")), clean_text(lic.get("license_type")),
                     clean_text(addr.get("street")), clean_text(addr.get("city")), clean_text(addr.get("state")),
                     clean_text(addr.get("zip_code")), clean_date(lic.get("issue_date")),
                     clean_date(lic.get("expiration_date")), clean_text(status or "found"), Jsonb(meta),
                     # FORMAT.md: raw is the document with licenses reduced to the row's own one
                     Jsonb({**doc, "search_result": {**result, "licenses": [lic]}}), image_hash))
    return rows

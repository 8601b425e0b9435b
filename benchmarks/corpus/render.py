"""Rendering a planned file: its JSON document, or its bytes with exactly one fault."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import orjson

from benchmarks.corpus.plan import FilePlan
from benchmarks.corpus.spec import seeded_rng
from benchmarks.corpus.tables import IMPOSSIBLE_DATES, MONTHS, NULL_DATE_TOKENS, SCRAPER_ROOT, STATUSES, TsStyle
from benchmarks.corpus.universe import License

JsonObject = dict[str, object]


def _fmt_date(rng: random.Random, value: date | None) -> str | None:
    if value is None:
        return rng.choice(NULL_DATE_TOKENS)
    y, m, d = value.year, value.month, value.day
    style = rng.choices(range(7), weights=(35, 20, 15, 10, 8, 7, 5))[0]
    if style == 0:
        return f"{m:02d}/{d:02d}/{y}"
    if style == 1:
        return f"{m}/{d}/{y}"
    if style == 2:
        return f"{y}-{m:02d}-{d:02d}"
    if style == 3:
        return f"{m:02d}-{d:02d}-{y}"
    if style == 4:
        return f"{MONTHS[m - 1]} {d}, {y}"
    if style == 5:
        return f"{MONTHS[m - 1][:3]} {d}, {y}"
    return f"{d:02d}-{MONTHS[m - 1][:3]}-{y}"


def _wall(instant: datetime, style: TsStyle) -> datetime:
    """The scraper's wall-clock time (naive) for ``instant`` in the zone ``style`` implies."""
    wall = instant.astimezone(UTC).replace(tzinfo=None)
    return wall - timedelta(hours=int(style[1:3])) if style in ("-05:00", "-04:00") else wall


def _fmt_ts(instant: datetime, style: TsStyle) -> str:
    wall = _wall(instant, style)
    text = wall.strftime("%Y-%m-%dT%H:%M:%S")
    if style == "naive_seconds":
        return text
    text += f".{wall.microsecond:06d}"
    return text + ("" if style == "naive" else style)


def _with_nul(text: str, rng: random.Random) -> str:
    cut = rng.randrange(1, max(2, len(text)))
    return text[:cut] + "\u0000" + text[cut:]


class Renderer:
    def __init__(self, seed: int, day_index: int) -> None:
        self.rng = seeded_rng(seed, "render", day_index)

    def license(self, lic: License) -> JsonObject:
        rng = self.rng
        status = lic.status
        if rng.random() < 0.05:  # the board changed the status since an earlier search
            status = rng.choice([s for s, _ in STATUSES if s != status])
        if rng.random() < 0.08:
            status = rng.choice((f" {status} ", f"{status}  ", f"  {status}"))
        expiration = lic.expiration
        if expiration is not None and rng.random() < 0.06:  # renewed
            try:
                expiration = expiration.replace(year=expiration.year + 2)
            except ValueError:  # February 29
                expiration = expiration.replace(year=expiration.year + 2, day=28)
        zip_code = lic.zip_code if rng.random() >= 0.05 else f"{lic.zip_code}-{rng.randrange(10000):04d}"
        return {
            "pharmacy_name": lic.legal_name,
            "license_number": int(lic.number) if lic.as_int else lic.number,
            "license_status": status,
            "license_type": lic.license_type,
            "issue_date": _fmt_date(rng, lic.issue),
            "expiration_date": _fmt_date(rng, expiration),
            "address": {
                "street": lic.street,
                "suite": lic.suite,
                "city": lic.city,
                "state": lic.addr_state,
                "zip_code": zip_code,
            },
            "contact": {"phone": lic.phone, "email": None},
            "additional_info": {"specialties": list(lic.specialties)},
        }

    def document(self, f: FilePlan, day: str) -> tuple[JsonObject, int]:
        """The parsed JSON of a file before any fault, and the impossible dates it contains."""
        rng = self.rng
        p = f.outcome
        name, state = p.pharmacy.name, p.state
        folder = f"{day}/{state}"
        stem = f"{name}_{f.nn:02d}"
        ts = _fmt_ts(f.instant, f.ts_style)
        generated = _wall(f.instant + timedelta(microseconds=rng.randint(3, 40)), f.ts_style).isoformat(
            timespec="microseconds"
        )
        metadata: JsonObject = {
            "pharmacy_name": name,
            "search_timestamp": ts,
            "state": state.lower() if f.lower_state else state,
            "scraper_version": "1.0.0" if rng.random() < 0.9 else "1.1.0",
            "json_generated_timestamp": generated,
            "source_html_file": f"{SCRAPER_ROOT}/data/{folder}/{stem}.html",
        }
        if f.image_ref == "relative":
            metadata["source_image_file"] = f"data/{f.png_rel}"
        elif f.image_ref == "absolute":
            metadata["source_image_file"] = f"{SCRAPER_ROOT}/data/{f.png_rel}"
        if rng.random() < 0.3:
            metadata["source_excel_file"] = None
        metadata["search_result_type"] = "pharmacy_data" if p.found else "no_results_found"
        metadata["output_directory"] = f"{SCRAPER_ROOT}/data/{folder}"

        impossible = 0
        licenses: list[JsonObject] = []
        warnings: list[str] = []
        if f.shape == "found":
            licenses = [self.license(lic) for lic in f.licenses]
            if f.impossible_date and licenses:
                target = licenses[rng.randrange(len(licenses))]
                target[rng.choice(("issue_date", "expiration_date"))] = rng.choice(IMPOSSIBLE_DATES)
                impossible = 1
            if f.nul:
                where = rng.randrange(3)
                if where == 0:
                    licenses[0]["pharmacy_name"] = _with_nul(str(licenses[0]["pharmacy_name"]), rng)
                elif where == 1:
                    address = licenses[0]["address"]
                    assert isinstance(address, dict)
                    address["street"] = _with_nul(str(address["street"]), rng)
                else:
                    metadata["source_html_file"] = _with_nul(str(metadata["source_html_file"]), rng)
            debug: JsonObject = {
                "parser_class": f"{state}Parser",
                "state_processor": state,
                "processing_timestamp": generated,
                "raw_license_data": dict(licenses[0]) if licenses else {},
                "parser_strategy": rng.choice(
                    ("BeautifulSoup HTML parsing", "Regex-based parsing", "Table extraction")
                ),
            }
        else:
            null_address: JsonObject = dict.fromkeys(("street", "suite", "city", "state", "zip_code"))
            if f.shape == "placeholder_null":
                licenses = [
                    {
                        "pharmacy_name": None, "license_number": None, "license_status": None,
                        "license_type": None, "issue_date": None, "expiration_date": None,
                        "address": null_address, "contact": {"phone": None, "email": None},
                        "additional_info": {"specialties": []},
                    }
                ]  # fmt: skip
            elif f.shape == "placeholder_scraper":  # as the real scraper writes it
                licenses = [
                    {
                        "pharmacy_name": name, "license_number": None, "license_status": None,
                        "license_type": "Pharmacy", "issue_date": None, "expiration_date": None,
                        "address": {**null_address, "suite": "", "state": state},
                        "contact": {"phone": None, "email": None},
                        "additional_info": {"specialties": []},
                    }
                ]  # fmt: skip
            debug = {"parser_strategy": f"No results found in {state} database"}
            warnings = [f"No pharmacy records found for '{name}' in {state} database"]
        search_result: JsonObject = {"licenses": licenses}
        if not f.omit_result_status:
            search_result["result_status"] = "found" if p.found else "no_results_found"
        search_result["search_query"] = name
        doc: JsonObject = {
            "metadata": metadata,
            "search_result": search_result,
            "debug_info": debug,
            "errors": [],
            "warnings": warnings,
        }
        return doc, impossible

    def broken_bytes(self, doc: JsonObject, reason: str, variant: str) -> bytes:
        """Serialize ``doc`` with exactly one fault of kind ``reason``."""
        metadata = doc["metadata"]
        search_result = doc["search_result"]
        assert isinstance(metadata, dict) and isinstance(search_result, dict)
        if reason == "invalid_json":
            raw = dumps(doc)
            if variant == "empty":
                return b""
            if variant == "truncated":
                return raw[: len(raw) // 2]
            if variant == "trailing_garbage":
                return raw + b"\n<!-- parser crashed: KeyError('licenses') -->\n"
            if variant == "array":
                return b"[" + raw + b"]"
            if variant == "null":
                return b"null"
            # not_utf8: one Latin-1 encoded character in an otherwise valid document
            debug = doc["debug_info"]
            assert isinstance(debug, dict)
            debug["note"] = "Pharmacie M\u00e9dicale"
            return dumps(doc).replace("M\u00e9dicale".encode(), "M\u00e9dicale".encode("latin-1"))
        if reason == "invalid_shape":
            licenses = search_result["licenses"]
            assert isinstance(licenses, list)
            if variant == "metadata_string":
                doc["metadata"] = f"{metadata['pharmacy_name']} / {metadata['state']}"
            elif variant == "licenses_object":
                search_result["licenses"] = licenses[0] if licenses else {}
            elif variant == "license_not_object":
                search_result["licenses"] = [*licenses[:1], "see screenshot"] if licenses else [None]
            else:  # search_result_list
                doc["search_result"] = [search_result]
        elif reason == "missing_field":
            target = "pharmacy_name" if variant.startswith("name") else "state"
            if variant.endswith("missing"):
                del metadata[target]
            else:
                metadata[target] = None if variant.endswith("null") else ""
        elif reason == "invalid_state":
            metadata["state"] = variant
        else:  # invalid_timestamp
            if variant == "missing":
                del metadata["search_timestamp"]
            else:
                metadata["search_timestamp"] = {
                    "yesterday": "yesterday",
                    "empty": "",
                    "null": None,
                    "us_format": "08/03/2025 2:03 PM",
                    "impossible": "2025-13-45T25:61:00",
                }[variant]
        return dumps(doc)


def dumps(doc: object) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)

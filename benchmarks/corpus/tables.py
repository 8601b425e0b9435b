"""Reference data: states, pharmacies, and the value pools a scraper's output is drawn from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

STATES: Final[dict[str, str]] = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "FL": "Florida", "GA": "Georgia",
    "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois", "IN": "Indiana", "IA": "Iowa",
    "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana", "ME": "Maine", "MD": "Maryland",
    "MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota", "MS": "Mississippi",
    "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada", "NH": "New Hampshire",
    "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York", "NC": "North Carolina",
    "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma", "OR": "Oregon", "PA": "Pennsylvania",
    "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota", "TN": "Tennessee",
    "TX": "Texas", "UT": "Utah", "VT": "Vermont", "VA": "Virginia", "WA": "Washington",
    "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming", "DC": "District of Columbia",
    "PR": "Puerto Rico",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Pharmacy:
    name: str  # what the scraper searched for (metadata.pharmacy_name, file name prefix)
    legal: str  # what the boards list (license.pharmacy_name)
    street: str
    suite: str
    city: str
    state: str  # code of the home state
    zip_code: str


# Synthetic data: names of the kind PharmChecker tracks; streets and zips are made up.
# fmt: off
PHARMACIES: Final[tuple[Pharmacy, ...]] = tuple(
    Pharmacy(*row)
    for row in (
        ("Belmar", "BELMAR PHARMACY", "231 VIOLET STREET", "SUITE 140", "GOLDEN", "CO", "80401"),
        ("Beaker", "BEAKER PHARMACY", "7810 ELDORADO PKWY", "STE 200", "MCKINNEY", "TX", "75072"),
        ("Empower", "EMPOWER PHARMACY", "7601 N SAM HOUSTON PKWY W", "STE 100", "HOUSTON", "TX",
         "77064"),
        ("Wells", "WELLS PHARMACY NETWORK", "1210 SW 33RD AVE", "", "OCALA", "FL", "34474"),
        ("Carie Boyd", "CARIE BOYD'S PRESCRIPTION SHOP", "1301 W PIPELINE RD", "", "HURST", "TX",
         "76053"),
        ("Anazao Health", "ANAZAO HEALTH CORPORATION", "5710 HOOVER BLVD", "", "TAMPA", "FL",
         "33634"),
        ("BPI Labs", "BPI LABS LLC", "12393 BELCHER RD S", "SUITE 450", "LARGO", "FL", "33773"),
        ("Aequita", "AEQUITA PHARMACY", "12825 NE 126TH PL", "", "KIRKLAND", "WA", "98034"),
        ("Olympia", "OLYMPIA COMPOUNDING PHARMACY", "6700 CONROY RD", "STE 155", "ORLANDO", "FL",
         "32835"),
        ("Hallandale", "HALLANDALE PHARMACY", "2666 SW 36TH ST", "", "FORT LAUDERDALE", "FL",
         "33312"),
        ("Tailor Made", "TAILOR MADE COMPOUNDING", "200 MOORE DR", "", "NICHOLASVILLE", "KY",
         "40356"),
        ("Strive", "STRIVE PHARMACY", "1355 W BASELINE RD", "STE 110", "GILBERT", "AZ", "85233"),
        ("Red Rock", "RED ROCK COMPOUNDING PHARMACY", "4400 S PECOS RD", "", "LAS VEGAS", "NV",
         "89121"),
        ("Lee Silsby", "LEE SILSBY COMPOUNDING PHARMACY", "3216 BROOKPARK RD", "", "CLEVELAND", "OH",
         "44134"),
        ("Hikma", "HIKMA 503B LLC", "1809 WILSON RD", "", "COLUMBUS", "OH", "43228"),
        ("QuVa", "QUVA PHARMA INC", "3 SUGAR CREEK CENTER BLVD", "STE 250", "SUGAR LAND", "TX",
         "77478"),
        ("Leiters", "LEITERS HEALTH", "13796 COMPARK BLVD", "", "ENGLEWOOD", "CO", "80112"),
        ("Fagron", "FAGRON STERILE SERVICES", "8710 E 34TH ST N", "", "WICHITA", "KS", "67226"),
        ("Nephron", "NEPHRON STERILE COMPOUNDING CENTER", "4500 12TH ST EXT", "", "WEST COLUMBIA",
         "SC", "29172"),
        ("Vios", "VIOS COMPOUNDING PHARMACY", "2109 N 52ND AVE", "", "OMAHA", "NE", "68104"),
        ("Pharmacy Creations", "PHARMACY CREATIONS", "540 ROUTE 10 WEST", "STE 3", "RANDOLPH", "NJ",
         "07869"),
        ("Rightway", "RIGHTWAY PHARMACY", "3900 N MICHIGAN AVE", "", "CHICAGO", "IL", "60613"),
        ("Triad", "TRIAD RX INC", "1040 E 17TH ST", "", "JOPLIN", "MO", "64804"),
        ("Wedgewood", "WEDGEWOOD CONNECT", "405 HERON DR", "STE 200", "SWEDESBORO", "NJ", "08085"),
        ("Northside", "NORTHSIDE COMPOUNDING", "77 WESTPORT PLZ", "", "ST LOUIS", "MO", "63146"),
        ("Olive Tree", "OLIVE TREE PHARMACY LLC", "1550 PALM BAY RD NE", "", "PALM BAY", "FL",
         "32905"),
        ("Apotheca", "APOTHECA INC", "9230 E MAIN ST", "", "PHOENIX", "AZ", "85004"),
        ("Precision", "PRECISION COMPOUNDING PHARMACY", "5150 GOLDLEAF CIR", "STE 10", "LOS ANGELES",
         "CA", "90056"),
        ("Central Drugs", "CENTRAL DRUGS RX", "1140 N CENTRAL AVE", "", "LA HABRA", "CA", "90631"),
        ("Mountain View", "MOUNTAIN VIEW PHARMACY", "200 E MAIN ST", "", "BOZEMAN", "MT", "59715"),
        ("Harbor", "HARBOR COMPOUNDING PHARMACY", "1501 W PACIFIC COAST HWY", "", "LONG BEACH", "CA",
         "90810"),
        ("Medisca", "MEDISCA PHARMACEUTIQUE", "661 ROUTE 3", "UNIT C", "PLATTSBURGH", "NY", "12901"),
        ("Revive", "REVIVE RX", "3831 GOLF DR", "", "HOUSTON", "TX", "77018"),
        ("Edge", "EDGE PHARMACY SERVICES", "856 PRIMOS AVE", "", "FOLCROFT", "PA", "19032"),
        ("ProRx", "PRORX LLC", "300 OAKLAND DR", "", "PITTSBURGH", "PA", "15220"),
        ("Greenpark", "GREENPARK COMPOUNDING PHARMACY", "8731 GLENMONT DR", "", "HOUSTON", "TX",
         "77036"),
        ("Smith Caldwell", "SMITH CALDWELL DRUG STORE", "1007 W JACKSON ST", "", "DOTHAN", "AL",
         "36303"),
        ("Eagle", "EAGLE PHARMACY", "301 MAIN ST", "", "BIRMINGHAM", "AL", "35203"),
        ("Hopewell", "HOPEWELL PHARMACY", "1 W BROAD ST", "", "HOPEWELL", "NJ", "08525"),
        ("Custom Scripts", "CUSTOM SCRIPTS PHARMACY", "3020 W ALABAMA ST", "", "TAMPA", "FL",
         "33607"),
    )
)
# fmt: on

Search = tuple[Pharmacy, str]  # a (pharmacy, state) pair searched

MONTHS: Final[tuple[str, ...]] = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip

#: Null tokens of FORMAT.md as a scraper writes them (None is JSON null).
NULL_DATE_TOKENS: Final[tuple[str | None, ...]] = (
    None, None, None, "", "Not On File", "NOT ON FILE", "Not Available", "N/A", "n/a", " N/A ",
    "NA", "---", "-", "None", "Unknown", "Unknown.", "null",
)  # fmt: skip
IMPOSSIBLE_DATES: Final[tuple[str, ...]] = ("02/30/2020", "2021-02-29", "04/31/2019", "February 30, 2018")

STATUSES: Final[tuple[tuple[str, int], ...]] = (
    ("Active", 60), ("Clear/", 12), ("ACTIVE", 6), ("Active - Renewal Pending", 3),
    ("Inactive", 6), ("Expired", 6), ("Closed", 3), ("Null and Void", 2), ("Probation", 2),
)  # fmt: skip
LICENSE_TYPES: Final[tuple[str, ...]] = (
    "Nonresident Pharmacy", "Pharmacy Non-Resident", "Non-Resident Pharmacy", "Out-of-State Pharmacy",
    "Pharmacy", "Sterile Compounding Pharmacy", "Pharmacy Outsourcing Facility",
    "Nonresident Sterile Compounding", "Mail Order Pharmacy",
)  # fmt: skip
SPECIALTIES: Final[tuple[tuple[str, ...], ...]] = (
    (), (), (), (), (), (), ("Non-Resident",), ("Sterile Compounding",), ("Outsourcing Facility",),
    ("Non-Sterile Compounding", "Sterile Compounding"),
)  # fmt: skip
#: License number styles; the first one whose format has no letters gives JSON integers.
NUMBER_STYLES: Final[tuple[str, ...]] = (
    "NP{:06d}",
    "PH{:05d}",
    "NRP{:05d}",
    "{:d}",
    "PHY{:07d}",
    "RX.{:07d}",
    "NSC{:d}",
    "{:d}-NR",
)

SCRAPER_ROOT: Final = "/home/scraper/pharmchecker"
Shape = Literal["found", "empty", "placeholder_null", "placeholder_scraper"]
ImageRef = Literal["relative", "absolute", "absent"]
TsStyle = Literal["naive", "naive_seconds", "Z", "-05:00", "-04:00"]
PLACEHOLDERS: Final[tuple[Shape, ...]] = ("placeholder_null", "placeholder_scraper")
TS_STYLES: Final[tuple[TsStyle, ...]] = ("naive", "naive_seconds", "Z", "-05:00", "-04:00")
TS_WEIGHTS: Final[tuple[int, ...]] = (80, 3, 9, 5, 3)

#: (reason, variant) pairs, cycled through in this order so small corpora cover every reason.
BROKEN_VARIANTS: Final[dict[str, tuple[str, ...]]] = {
    "invalid_json": ("truncated", "empty", "trailing_garbage", "array", "not_utf8", "null"),
    "invalid_shape": ("metadata_string", "licenses_object", "license_not_object", "search_result_list"),
    "missing_field": ("name_null", "state_missing", "name_empty", "name_missing", "state_null",
                      "state_empty"),
    "invalid_state": ("XX", "Florida", "UK"),
    "invalid_timestamp": ("yesterday", "missing", "empty", "null", "us_format", "impossible"),
}  # fmt: skip

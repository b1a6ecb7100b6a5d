"""Birth places as INSEE codes (Code officiel géographique): a commune of birth, or ``99`` + a country code.

The bundled list (``patients/data/insee_places.csv``) is a subset of the COG with real codes; a site can point
``DPI_INSEE_PLACES_FILE`` at the full COG export (same three columns: code, kind, label).
"""

from __future__ import annotations

import csv
import re
from functools import cache
from pathlib import Path

from django.conf import settings

BUNDLED = Path(__file__).resolve().parent / "data" / "insee_places.csv"
_CODE_RE = re.compile(r"^(?:\d{2}|2A|2B)\d{3}$")


@cache
def _places(path: str) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    with open(path, encoding="utf-8", newline="") as fh:
        rows = (line for line in fh if not line.startswith("#"))
        for row in csv.DictReader(rows):
            out[row["code"].strip().upper()] = (row["kind"].strip(), row["label"].strip())
    return out


def places() -> dict[str, tuple[str, str]]:
    return _places(str(getattr(settings, "DPI_INSEE_PLACES_FILE", "") or BUNDLED))


def well_formed(code: str) -> bool:
    return bool(_CODE_RE.match(code))


def label(code: str) -> str:
    found = places().get(code.upper())
    return found[1] if found else ""


def is_known(code: str) -> bool:
    return code.upper() in places()


def is_country(code: str) -> bool:
    return code.startswith("99")

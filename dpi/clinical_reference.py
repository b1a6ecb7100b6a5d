"""Reference data for structured entry: vital signs (LOINC, units, plausible ranges), an extract of the CIM-10
(ICD-10 as published by the ATIH) bundled with dpi, and how a result's value is written.

The CIM-10 list bundled here (``dpi/data/cim10_extrait.tsv``) is an extract of common codes for the demo and the
tests; an establishment loads the ATIH's full list (same tab-separated format: code, label) with
``DPI_CIM10_FILE``. Any code of the CIM-10's shape is accepted; the list only offers search and labels.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path

from django.conf import settings

CIM10_SYSTEM = "https://smt.esante.gouv.fr/terminologie-cim-10/"
CIM10_CODE = re.compile(r"^[A-Z][0-9]{2}(\.[0-9A-Z]{1,2})?$")


@dataclass(frozen=True)
class VitalSign:
    key: str
    loinc: str
    label: str  # French, as charted
    unit: str  # UCUM
    low: Decimal  # plausible range: outside it the value is refused as a typing error
    high: Decimal
    decimals: int
    normal_low: Decimal | None = None
    normal_high: Decimal | None = None


VITALS: dict[str, VitalSign] = {v.key: v for v in (
    VitalSign("systolic", "8480-6", "Pression artérielle systolique", "mm[Hg]", Decimal(40), Decimal(300), 0,
              Decimal(90), Decimal(140)),
    VitalSign("diastolic", "8462-4", "Pression artérielle diastolique", "mm[Hg]", Decimal(20), Decimal(200), 0,
              Decimal(50), Decimal(90)),
    VitalSign("pulse", "8867-4", "Fréquence cardiaque", "/min", Decimal(20), Decimal(300), 0,
              Decimal(50), Decimal(100)),
    VitalSign("temperature", "8310-5", "Température", "Cel", Decimal("30"), Decimal("45"), 1,
              Decimal("36"), Decimal("38")),
    VitalSign("spo2", "59408-5", "Saturation en oxygène (SpO2)", "%", Decimal(40), Decimal(100), 0,
              Decimal(94), Decimal(100)),
    VitalSign("respiratory_rate", "9279-1", "Fréquence respiratoire", "/min", Decimal(4), Decimal(80), 0,
              Decimal(12), Decimal(20)),
    VitalSign("weight", "29463-7", "Poids", "kg", Decimal("0.3"), Decimal(400), 1),
    VitalSign("height", "8302-2", "Taille", "cm", Decimal(20), Decimal(260), 0),
    VitalSign("pain", "72514-3", "Douleur (EVA/EN 0-10)", "{score}", Decimal(0), Decimal(10), 0,
              Decimal(0), Decimal(3)),
)}
VITALS_BY_LOINC = {v.loinc: v for v in VITALS.values()}
# FHIR vital-signs profile: the panel the blood pressure components belong to.
BLOOD_PRESSURE_PANEL = "85354-9"


@cache
def cim10() -> dict[str, str]:
    path = Path(settings.DPI_CIM10_FILE or Path(__file__).parent / "data" / "cim10_extrait.tsv")
    codes = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        code, _, label = line.partition("\t")
        if code.strip() and label.strip():
            codes[code.strip().upper()] = label.strip()
    return codes


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text.lower()) if unicodedata.category(c) != "Mn")


def cim10_search(query: str, *, limit: int = 20) -> list[tuple[str, str]]:
    """Codes whose code starts with, or whose label contains every word of, the query (accents ignored)."""
    q = _fold(query.strip())
    if not q:
        return []
    words = q.split()
    hits = [(c, label) for c, label in cim10().items()
            if c.lower().startswith(q) or all(w in _fold(label) for w in words)]
    return sorted(hits)[:limit]


def format_decimal(value: Decimal | None, decimals: int | None = None) -> str:
    """A value as a French clinician writes it: decimal comma, no trailing zeros ("3,9", "140", "0,25")."""
    if value is None:
        return ""
    if decimals is not None:
        value = value.quantize(Decimal(1).scaleb(-decimals)) if decimals else value.quantize(Decimal(1))
    else:
        value = value.normalize()
        if value == value.to_integral():
            value = value.quantize(Decimal(1))
    text = format(value, "f")
    return text.replace(".", ",")


def format_result(obs) -> str:
    """The value of an observation with its unit, to its significant digits."""
    spec = VITALS_BY_LOINC.get(obs.loinc)
    if obs.value is None:
        return obs.value_text
    value = format_decimal(obs.value, spec.decimals if spec else None)
    unit = {"Cel": "°C", "mm[Hg]": "mmHg", "{score}": "/10"}.get(obs.unit, obs.unit)
    return f"{value} {unit}".strip()


_LOINC = re.compile(r"^(\d{1,7})-(\d)$")


def is_loinc(code: str) -> bool:
    """A LOINC code's shape and check digit: digits, a dash, and the mod 10 check digit of the digits before it
    (LOINC User's Guide, "Calculating Mod 10 check digits": Luhn's algorithm, e.g. ``2345-7``)."""
    match = _LOINC.match(code)
    if match is None:
        return False
    total = 0
    for position, char in enumerate(reversed(match.group(1))):
        digit = int(char) * (2 if position % 2 == 0 else 1)  # double every other digit, from the rightmost
        total += digit - 9 if digit > 9 else digit
    return (10 - total % 10) % 10 == int(match.group(2))

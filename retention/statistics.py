"""Anonymisation for statistics: what a disposed record leaves behind is a few counters, never a row per patient.

Pseudonymised data (a record with its name removed but still one row per person) is not anonymous (CNIL,
GDPR recital 26). A disposed record adds 1 to one-dimensional counters per year: patients by sex and by age
band, stays and consultations by care unit, problems by ICD-10 chapter. Counters are never cross-tabulated,
so no cell combines enough traits to single someone out; the counters are shown only where they reach
``MIN_CELL`` (small counts are suppressed at display).
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from typing import Any

from django.db import connection

from retention.models import StatisticsAggregate

MIN_CELL = 5
AGE_BANDS = ((0, 14), (15, 29), (30, 44), (45, 59), (60, 74), (75, 200))

# ICD-10 chapters (WHO 2019): first and last three-character category of each.
ICD10_CHAPTERS = (
    ("I", "A00", "B99"), ("II", "C00", "D48"), ("III", "D50", "D89"), ("IV", "E00", "E90"), ("V", "F00", "F99"),
    ("VI", "G00", "G99"), ("VII", "H00", "H59"), ("VIII", "H60", "H95"), ("IX", "I00", "I99"),
    ("X", "J00", "J99"), ("XI", "K00", "K93"), ("XII", "L00", "L99"), ("XIII", "M00", "M99"),
    ("XIV", "N00", "N99"), ("XV", "O00", "O99"), ("XVI", "P00", "P96"), ("XVII", "Q00", "Q99"),
    ("XVIII", "R00", "R99"), ("XIX", "S00", "T98"), ("XX", "V01", "Y98"), ("XXI", "Z00", "Z99"),
    ("XXII", "U00", "U99"),
)


def icd10_chapter(code: str) -> str:
    head = (code or "").strip().upper()[:3]
    if len(head) < 3 or not head[0].isalpha() or not head[1:].isdigit():
        return "unknown"
    for chapter, first, last in ICD10_CHAPTERS:
        if first <= head <= last:
            return chapter
    return "unknown"


def age_band(birth: date, on: date) -> str:
    age = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    for low, high in AGE_BANDS:
        if low <= age <= high:
            return f"{low}+" if high >= 200 else f"{low}-{high}"
    return "unknown"


def _date(value: Any) -> date | None:
    if not value:
        return None
    if isinstance(value, str):
        if "T" in value:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
        return date.fromisoformat(value)
    return value.date() if isinstance(value, datetime) else value


def contributions(payload: dict[str, Any]) -> Counter:
    """The counters one archived record adds: {(metric, year, dimension, value): n}."""
    from patients.models import CareUnit

    tables = payload["tables"]
    patient = tables["patients.patient"][0]
    last = _date(patient.get("last_activity_at")) or _date(patient["created_at"])
    year = last.year
    out: Counter = Counter()
    out[("patients", year, "sex", patient["sex"])] += 1
    out[("patients", year, "age_band", age_band(_date(patient["birth_date"]), last))] += 1
    encounters = tables.get("patients.encounter", [])
    units = dict(CareUnit.objects.filter(pk__in={e["unit_id"] for e in encounters}).values_list("pk", "code"))
    for enc in encounters:
        out[("encounters", _date(enc["start"]).year, "unit", units.get(enc["unit_id"], "unknown"))] += 1
    for problem in tables.get("dpi.problem", []):
        out[("problems", year, "icd10_chapter", icd10_chapter(problem["icd10"]))] += 1
    return out


def aggregates_add(payload: dict[str, Any]) -> None:
    """Add a record's counters in one statement (in the caller's transaction)."""
    cells = contributions(payload)
    if not cells:
        return
    values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(cells))
    params: list[Any] = []
    for (metric, year, dimension, value), n in cells.items():
        params += [metric, year, dimension, value, n]
    table = StatisticsAggregate._meta.db_table
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {table} (metric, year, dimension, value, count) VALUES {values} "  # noqa: S608 - names are constants
            f"ON CONFLICT (metric, year, dimension, value) DO UPDATE SET count = {table}.count + EXCLUDED.count",
            params,
        )


def aggregates_report(*, min_cell: int = MIN_CELL) -> list[dict[str, Any]]:
    """The counters for display, small cells suppressed."""
    return [
        {"metric": a.metric, "year": a.year, "dimension": a.dimension, "value": a.value,
         "count": a.count if a.count >= min_cell else None}
        for a in StatisticsAggregate.objects.all()
    ]

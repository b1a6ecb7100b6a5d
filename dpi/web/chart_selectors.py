"""Reads for the chart's banner, results over time and the unit census (bounded, a fixed number of queries).

Callers have passed the gate for the patient (banner, results) or list only patients of the user's own
units' current stays (census), which the gate's care relationships cover.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Exists, Max, OuterRef, QuerySet
from django.utils import formats
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from dpi.clinical_reference import VITALS, VITALS_BY_LOINC, format_decimal, format_result
from dpi.models import Allergy, Observation, Problem
from patients.models import CareUnit, Encounter, Patient

RESULTS_PAGE = 50
TREND_POINTS = 200
BANNER_PROBLEMS = 5


@dataclass
class Banner:
    allergies: list[Allergy]
    allergy_state: str  # "recorded" | "none_known" | "not_recorded"
    problems: list[Problem]
    more_problems: bool
    stay: Encounter | None


BANNER_ALLERGIES = 20
_NOT_SHOWN = (Allergy.Verification.REFUTED, Allergy.Verification.ERROR)


def _banner(allergies: list[Allergy], problems: list[Problem], stay: Encounter | None) -> Banner:
    real = [a for a in allergies if not a.is_no_known_allergy]
    state = "recorded" if real else ("none_known" if allergies else "not_recorded")
    return Banner(real, state, problems[:BANNER_PROBLEMS], len(problems) > BANNER_PROBLEMS, stay)


def banner(patient_id: int) -> Banner:
    allergies = list(Allergy.objects.filter(patient_id=patient_id, clinical_status=Allergy.Status.ACTIVE)
                     .exclude(verification__in=_NOT_SHOWN).order_by("-created_at")[:BANNER_ALLERGIES])
    problems = list(Problem.objects.filter(patient_id=patient_id, status=Problem.Status.ACTIVE)
                    .order_by("-created_at")[: BANNER_PROBLEMS + 1])
    stay = (Encounter.objects.filter(patient_id=patient_id, end__isnull=True).select_related("unit")
            .order_by("-start").first())
    return _banner(allergies, problems, stay)


def banner_from_chart(data) -> Banner | None:
    """The banner drawn from the chart's own sections (``dpi.web.selectors.ChartData``) when they hold the
    whole of the allergies, problems and encounters, as ``banner()`` reads them; None when one was cut at
    its limit (then ``banner()`` asks the database)."""
    if data.allergies.more or data.problems.more or data.encounters.more:
        return None
    # Same rows, same order as banner()'s queries: the sections are ordered by creation (problems by status
    # first, which keeps the active ones in creation order) and by start for the encounters.
    allergies = [a for a in data.allergies if a.clinical_status == Allergy.Status.ACTIVE
                 and a.verification not in _NOT_SHOWN][:BANNER_ALLERGIES]
    problems = [p for p in data.problems if p.status == Problem.Status.ACTIVE][: BANNER_PROBLEMS + 1]
    return _banner(allergies, problems, data.open_encounter)


def results_queryset(patient_id: int) -> QuerySet:
    return Observation.objects.filter(patient_id=patient_id).order_by("-effective_at", "-pk")


def analyte_key(obs: Observation) -> str:
    return obs.loinc or f"label:{obs.label}"


def analytes(patient_id: int) -> list[dict[str, Any]]:
    """Every analyte of the patient with its count and last date. Labels are encrypted at rest: coded results
    are grouped by LOINC in SQL (one query), uncoded ones by their decrypted label here."""
    coded = (Observation.objects.filter(patient_id=patient_id).exclude(loinc="").values("loinc")
             .annotate(n=Count("id"), last=Max("effective_at"), last_id=Max("id")))
    labels = dict(Observation.objects.filter(pk__in=[r["last_id"] for r in coded]).values_list("pk", "label"))
    seen: dict[str, dict[str, Any]] = {
        r["loinc"]: {"code": r["loinc"], "label": labels.get(r["last_id"], r["loinc"]), "n": r["n"],
                     "last": r["last"]}
        for r in coded
    }
    for label, at in Observation.objects.filter(patient_id=patient_id, loinc="").values_list("label", "effective_at"):
        entry = seen.setdefault(f"label:{label}", {"code": f"label:{label}", "label": label, "n": 0, "last": at})
        entry["n"] += 1
        entry["last"] = max(entry["last"], at)
    return sorted(seen.values(), key=lambda e: str(e["label"]).lower())


@dataclass
class Trend:
    code: str
    label: str
    unit: str
    points: list[Observation]
    low: Decimal | None
    high: Decimal | None
    svg: dict[str, Any] = field(default_factory=dict)


def trend(patient_id: int, code: str) -> Trend | None:
    qs = Observation.objects.filter(patient_id=patient_id).order_by("-effective_at", "-pk")
    if code.startswith("label:"):  # an uncoded result: its label is encrypted, compared once decrypted
        points = [o for o in qs.filter(loinc="") if o.label == code[6:]][:TREND_POINTS]
    else:
        points = list(qs.filter(loinc=code)[:TREND_POINTS])
    if not points:
        return None
    points.reverse()
    last = points[-1]
    t = Trend(code, last.label, last.unit, points, last.reference_low, last.reference_high)
    t.svg = _trend_svg(t)
    return t


def _trend_svg(t: Trend, width: int = 640, height: int = 200, pad: int = 30) -> dict[str, Any]:
    """Coordinates of a small line chart (drawn inline: no script, no external library)."""
    values = [p.value for p in t.points if p.value is not None]
    if not values:
        return {}
    lows = [v for v in (t.low, t.high) if v is not None]
    vmin, vmax = min(values + lows), max(values + lows)
    if vmin == vmax:
        vmin, vmax = vmin - 1, vmax + 1
    n = len(t.points)

    def x(i: int) -> float:
        return pad + (width - 2 * pad) * (i / (n - 1) if n > 1 else 0.5)

    def y(v: Decimal) -> float:
        return height - pad - (height - 2 * pad) * float((v - vmin) / (vmax - vmin))

    pts = [(round(x(i), 1), round(y(p.value), 1), p) for i, p in enumerate(t.points) if p.value is not None]
    band = None
    if t.low is not None and t.high is not None:
        band = {"y": round(y(t.high), 1), "h": round(y(t.low) - y(t.high), 1)}
    spec = VITALS_BY_LOINC.get(t.code)
    return {
        "width": width, "height": height, "pad": pad, "band": band,
        "polyline": " ".join(f"{px},{py}" for px, py, _ in pts),
        "points": [{"x": px, "y": py, "abnormal": p.abnormal, "text": format_result(p), "at": p.effective_at}
                   for px, py, p in pts],
        "min": format_decimal(vmin, spec.decimals if spec else None),
        "max": format_decimal(vmax, spec.decimals if spec else None),
    }


# --- census -----------------------------------------------------------------------------------------------
def units_of(user) -> list[CareUnit]:
    profile = getattr(user, "staff", None)
    return list(profile.units.order_by("name")) if profile is not None else []


@dataclass
class CensusRow:
    patient: Patient
    encounter: Encounter
    days: int
    new_results: bool


def census(user, unit: CareUnit, *, now: datetime, new_since: timedelta) -> list[CensusRow]:
    """Current inpatients of the unit (open stays), with bed, days since admission and a new-results flag;
    restricted patients shown only to their care team, as everywhere (access.gate.visible_patients)."""
    from access import gate

    stays = Encounter.objects.filter(unit=unit, end__isnull=True, start__lte=now)
    visible = gate.visible_patients(user, Patient.objects.filter(encounters__in=stays).distinct(),
                                    query=f"census:{unit.code}")
    recent = Observation.objects.filter(patient_id=OuterRef("patient_id"), effective_at__gte=now - new_since)
    rows = (stays.filter(patient__in=visible).select_related("patient")
            .annotate(new_results=Exists(recent)).order_by("bed", "patient__birth_name", "pk"))
    return [CensusRow(e.patient, e, (now - e.start).days, e.new_results) for e in rows]


def vitals_latest(patient_id: int, observations=None) -> list[tuple[str, str, Any]]:
    """The latest value of each vital sign (label, formatted value, time). ``observations``: the chart's
    results section (``dpi.web.selectors.Section``, newest first); used instead of a query when it holds
    every result of the patient."""
    codes = [v.loinc for v in VITALS.values()]
    if getattr(observations, "more", None) is False:
        by_code: dict[str, Observation] = {}
        for o in observations:
            if o.loinc in codes:
                by_code.setdefault(o.loinc, o)
    else:
        rows = (Observation.objects.filter(patient_id=patient_id, loinc__in=codes)
                .order_by("loinc", "-effective_at").distinct("loinc"))
        by_code = {o.loinc: o for o in rows}
    return [(v.label, format_result(by_code[v.loinc]), by_code[v.loinc].effective_at)
            for v in VITALS.values() if v.loinc in by_code]


__all__ = ["banner", "banner_from_chart", "census", "results_queryset", "trend", "units_of", "vitals_latest"]


def encounter_title(encounter: Encounter) -> str:
    """"Hospitalisation — Cardiologie", "Consultation — Pédiatrie", and "Passage aux urgences" for an emergency
    visit (the unit named only when its name does not already say it)."""
    if encounter.kind == Encounter.Kind.EMERGENCY:
        unit = encounter.unit.name
        return _("Emergency visit") + ("" if "urgence" in unit.lower() else f" — {unit}")
    return f"{encounter.get_kind_display().capitalize()} — {encounter.unit.name}"


def born_on(patient: Patient) -> str:
    """"né le 03/09/1950", "née le …", and "né(e) le …" only when the sex is unknown."""
    born = formats.date_format(patient.birth_date, "SHORT_DATE_FORMAT")
    if patient.sex == Patient.Sex.MALE:
        text = pgettext("male", "born on %(date)s")
    elif patient.sex == Patient.Sex.FEMALE:
        text = pgettext("female", "born on %(date)s")
    else:
        text = pgettext("unknown sex", "born on %(date)s")
    return text % {"date": born}

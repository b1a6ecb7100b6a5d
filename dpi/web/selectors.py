"""Reads behind the clinicians' pages. Callers have passed the gate for the category they read.

Every list is bounded (``limit`` rows, plus one to know whether more exist) and loads its related rows in
the same query, so a chart costs the same number of queries whatever the size of the record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Coalesce, NullIf, Upper
from django.utils import timezone

from access import gate
from access.models import CareGrant
from dpi.compiled import CompiledQuery
from dpi.models import Allergy, ClinicalNote, Document, Observation, Prescription, Problem
from patients import ins as ins_rules
from patients.models import Encounter, Patient
from patients.services import ins_blind_index

SEARCH_LIMIT = 50
SECTION_LIMIT = 50
OBSERVATION_LIMIT = 100

_IPP_RE = re.compile(r"^P\d{9}$", re.IGNORECASE)
_DATE_RE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")


@dataclass
class Section:
    """A bounded list: ``rows`` and whether the record holds more than were shown."""

    rows: list[Any]
    more: bool = False

    @classmethod
    def of(cls, queryset: QuerySet, limit: int) -> Section:
        rows = list(queryset[: limit + 1])
        return cls(rows[:limit], len(rows) > limit)

    def __bool__(self) -> bool:
        return bool(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class ChartData:
    encounters: Section
    notes: Section
    observations: Section
    prescriptions: Section
    documents: Section
    allergies: Section
    problems: Section
    open_encounter: Encounter | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _valid_grants(user_id: int, now: datetime) -> QuerySet:
    return CareGrant.objects.filter(user_id=user_id, valid_from__lte=now).filter(
        Q(valid_until__isnull=True) | Q(valid_until__gt=now)
    )


# Lists show the used name when there is one (Patient.display_name) and sort by it, not by the birth name they
# hide: WAGNER Adrienne, born ALVES, is among the W's.
SHOWN_NAME = Upper(Coalesce(NullIf("used_name", Value("")), "birth_name"))


def patient_filter(patients: QuerySet, query: str) -> QuerySet:
    """Patients matching ``query``: an IPP (P000000123), an INS (15 digits, exact match on its blind index),
    a birth date (dd/mm/yyyy), or names (each word starts a birth, used or first name)."""
    query = " ".join(query.split())
    compact = ins_rules.normalise(query)
    if _IPP_RE.match(query):
        return patients.filter(ipp=query.upper())
    if compact.isdigit() and len(compact) == 15:
        return patients.filter(ins_bidx=ins_blind_index(compact))
    if match := _DATE_RE.match(query):
        day, month, year = (int(g) for g in match.groups())
        try:
            born = date(year, month, day)
        except ValueError:
            return patients.none()
        return patients.filter(birth_date=born)
    for word in query.split()[:4]:
        patients = patients.filter(
            Q(birth_name__istartswith=word) | Q(used_name__istartswith=word) | Q(first_name__istartswith=word)
        )
    return patients


def patient_search(user: Any, query: str) -> Section:
    """Patients matching ``query`` that the user may find (the gate masks restricted ones and records the
    search), flagged when in the user's care team. An empty query lists the user's care team."""
    now = timezone.now()
    in_team = _valid_grants(user.pk, now).filter(content_object_id=OuterRef("pk"))
    patients = patient_filter(Patient.objects.all(), query) if query else Patient.objects.filter(Exists(in_team))
    visible = gate.visible_patients(user, patients, query=query)
    visible = visible.annotate(in_care_team=Exists(in_team)).order_by(SHOWN_NAME, "first_name", "birth_date", "pk")
    return Section.of(visible, SEARCH_LIMIT)


def _notes(pid, *, sensitive: bool) -> QuerySet:
    notes = ClinicalNote.objects.filter(patient_id=pid).select_related("author", "encounter__unit")
    return (notes if sensitive else notes.filter(sensitive=False)).order_by("-created_at")[: SECTION_LIMIT + 1]


# The chart's sections, compiled once per worker (dpi.compiled): the same querysets as the ORM would run.
_CHART_SECTIONS = {
    "encounters": CompiledQuery(lambda pid: Encounter.objects.filter(patient_id=pid)
                                .select_related("unit", "transferred_from__unit")
                                .order_by("-start")[: SECTION_LIMIT + 1]),
    "notes": CompiledQuery(lambda pid: _notes(pid, sensitive=False)),
    "notes_with_sensitive": CompiledQuery(lambda pid: _notes(pid, sensitive=True)),
    "observations": CompiledQuery(lambda pid: Observation.objects.filter(patient_id=pid)
                                  .order_by("-effective_at")[: OBSERVATION_LIMIT + 1]),
    "prescriptions": CompiledQuery(lambda pid: Prescription.objects.filter(patient_id=pid).select_related("author")
                                   .order_by("-start", "-pk")[: SECTION_LIMIT + 1]),
    "documents": CompiledQuery(lambda pid: Document.objects.filter(patient_id=pid).defer("content")
                               .select_related("author").order_by("-created_at")[: SECTION_LIMIT + 1]),
    "allergies": CompiledQuery(lambda pid: Allergy.objects.filter(patient_id=pid).order_by("-created_at")
                               [: SECTION_LIMIT + 1]),
    "problems": CompiledQuery(lambda pid: Problem.objects.filter(patient_id=pid).order_by("status", "-created_at")
                              [: SECTION_LIMIT + 1]),
}


def chart_data(patient: Patient, *, include_sensitive: bool) -> ChartData:
    """One query per section, each bounded; authors loaded with their rows."""
    pid = patient.pk

    def section(name: str, limit: int = SECTION_LIMIT) -> Section:
        rows = _CHART_SECTIONS[name](pid)
        return Section(rows[:limit], len(rows) > limit)

    encounters = section("encounters")
    open_encounter = next((e for e in encounters if e.end is None), None)
    return ChartData(
        encounters=encounters,
        notes=section("notes_with_sensitive" if include_sensitive else "notes"),
        observations=section("observations", OBSERVATION_LIMIT),
        prescriptions=section("prescriptions"),
        documents=section("documents"),
        allergies=section("allergies"),
        problems=section("problems"),
        open_encounter=open_encounter,
    )


_A_SENSITIVE_NOTE = CompiledQuery(lambda pid: ClinicalNote.objects.filter(patient_id=pid, sensitive=True)
                                  .only("pk")[:1])


def has_sensitive_notes(patient_id: int) -> bool:
    return bool(_A_SENSITIVE_NOTE(patient_id))


def note_history(note: ClinicalNote) -> list[dict[str, Any]]:
    """Previous versions of a note, newest first, with the names of who amended them (one extra query)."""
    from dpi.services import item_history

    history = item_history(note)
    users = get_user_model().objects.in_bulk({h["amended_by"] for h in history})
    for h in history:
        h["amended_by_user"] = users.get(h["amended_by"])
    return list(reversed(history))

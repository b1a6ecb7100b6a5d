"""The chart's French agrees with the patient: "Né le" / "Née le" (and "né(e)" only when the sex is unknown),
"née IMBERT" in the search, allergies "non renseignées", an emergency visit is a "Passage aux urgences"."""

from __future__ import annotations

import pytest

from dpi.web.chart_selectors import encounter_title
from patients import services as patient_services
from patients.models import CareUnit, Encounter
from tests.personas import make_patient
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db


def _chart(cast, patient) -> str:
    return verified_client(cast.physician).get(f"/patients/{patient.pk}/").content.decode()


def test_born_agrees_with_the_sex(cast):
    html = _chart(cast, cast.patient)  # a man
    assert "<dt>Né le</dt>" in html and "Né(e)" not in html
    woman = make_patient(birth_name="IMBERT", first_name="Léa", sex="F")
    patient_services.encounter_admit(patient=woman, unit=cast.encounter.unit)
    assert "<dt>Née le</dt>" in _chart(cast, woman)
    unknown = make_patient(birth_name="INCONNU", first_name="X", sex="U", identity_status="PROV")
    patient_services.encounter_admit(patient=unknown, unit=cast.encounter.unit)
    assert "<dt>Né(e) le</dt>" in _chart(cast, unknown)


def test_the_search_says_nee_before_a_womans_birth_name(cast):
    make_patient(birth_name="IMBERT", used_name="WAGNER", first_name="Adrienne", sex="F")
    html = verified_client(cast.physician).get("/patients/", {"q": "wagner"}).content.decode()
    assert "(née IMBERT)" in html and "né(e)" not in html


def test_allergies_not_recorded_agrees_with_allergies(cast):
    html = _chart(cast, cast.patient)
    assert "non renseignées" in html.split('class="banner-allergies"')[1].split("</p>")[0]


def test_an_emergency_visit_is_a_passage_aux_urgences(cast):
    urgences = CareUnit.objects.create(code="urg-t", name="Urgences")
    visitor = make_patient(birth_name="RAPIDE", first_name="Paul")
    patient_services.encounter_admit(patient=visitor, unit=cast.encounter.unit, kind=Encounter.Kind.EMERGENCY)
    html = _chart(cast, visitor)
    assert f"Passage aux urgences — {cast.encounter.unit.name}" in html
    assert "Urgences — " not in html and "Hospitalisation — Urgences" not in html
    assert encounter_title(Encounter(unit=urgences, kind=Encounter.Kind.EMERGENCY)) == "Passage aux urgences"

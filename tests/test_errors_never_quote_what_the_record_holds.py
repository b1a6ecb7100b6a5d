"""A refusal tells the sender what is wrong with what it sent, never what the record holds: an HL7 feed or an API
client that sends a wrong birth date, sex or stay start for a patient must not learn the birth year and month in
the stored INS, the sex digit, the stored birth date or the unit of the stay in progress (an attacker reading the
acknowledgement learnt a restricted patient's INS birth year and month, then got past the coherence check)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.utils import timezone

from dpi.api.testing import bearer, make_api_client, patch_json, post_json
from dpi.hl7 import receiver
from dpi.hl7.testing import ack_fields, adt
from patients import services as patient_services
from patients.models import CareUnit, Encounter, Patient
from tests.personas import make_patient

pytestmark = pytest.mark.django_db

BORN = date(1986, 12, 7)  # stored: INS digits 2-5 are "8612"


def _texts(ack: str) -> str:
    """MSA-3 and ERR-8: the human-readable parts of an acknowledgement."""
    out = []
    for segment in ack.split("\r"):
        f = segment.split("|")
        if f[0] == "MSA" and len(f) > 3:
            out.append(f[3])
        elif f[0] == "ERR" and len(f) > 8:
            out.append(f[8])
    return " ".join(out)


def _assert_quotes_nothing_stored(text: str, patient: Patient) -> None:
    stored = {patient.ins[1:3], patient.ins[3:5], BORN.strftime("%d/%m/%Y"), BORN.isoformat(), "1986"}
    assert not [value for value in stored if value in text], text


def _qualified(**fields) -> Patient:
    return make_patient(ipp="QUOTEIPP01", birth_name="QUOTE", first_name="Anne", sex="F", birth_date=BORN, **fields)


def test_an_hl7_admission_with_a_wrong_birth_date_does_not_learn_the_ins_birth_year_and_month():
    patient = _qualified(confidentiality="restricted", restriction_reason="vip")
    assert patient.ins[1:5] == "8612"
    CareUnit.objects.create(code="cardio-q", name="Cardio Q")
    when = timezone.localtime().strftime("%Y%m%d%H%M%S")
    ack = receiver.receive(adt("A01", "QUOTEIPP01", visit="QUOTEV1", unit="cardio-q", when=when, family="QUOTE",
                               given="Anne", birth="19530305", sex="F"))
    assert ack_fields(ack)["code"] in {"AE", "AR"}, ack
    assert "INS" in _texts(ack)
    _assert_quotes_nothing_stored(_texts(ack), patient)


def test_an_api_update_with_a_wrong_birth_date_or_sex_does_not_learn_the_ins(client):
    patient = _qualified()
    _, token = make_api_client()
    url = f"/api/patients/{patient.pk}/"
    for change in ({"birth_date": "1953-03-05"}, {"sex": "M"}):
        etag = client.get(url, headers=bearer(token))["ETag"]
        response = patch_json(client, url, change, **bearer(token, **{"If-Match": etag}))
        assert response.status_code == 400, response.content
        body = response.content.decode()
        _assert_quotes_nothing_stored(body, patient)
        assert f"premier chiffre est {patient.ins[0]}" not in body and f"first digit is {patient.ins[0]}" not in body
    assert Patient.objects.get(pk=patient.pk).birth_date == BORN


def test_an_api_admission_does_not_learn_the_birth_date_nor_the_stay_in_progress(client):
    patient = _qualified()
    _, token = make_api_client()
    unit = CareUnit.objects.create(code="secret-unit", name="Unité ZQSECRETE")
    before_birth = post_json(client, "/api/encounters/", {"patient": patient.pk, "unit": unit.code,
                                                          "start": "1950-01-01T10:00:00+01:00"}, **bearer(token))
    assert before_birth.status_code == 400, before_birth.content
    _assert_quotes_nothing_stored(before_birth.content.decode(), patient)
    patient_services.encounter_admit(patient=patient, unit=unit, start=timezone.now() - timedelta(days=3))
    other = CareUnit.objects.create(code="other-unit", name="Autre")
    second = post_json(client, "/api/encounters/", {"patient": patient.pk, "unit": other.code}, **bearer(token))
    assert second.status_code == 400, second.content
    assert "ZQSECRETE" not in second.content.decode()
    assert Encounter.objects.filter(patient=patient).count() == 1

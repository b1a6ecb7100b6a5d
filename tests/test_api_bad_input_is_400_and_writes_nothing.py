"""Bad input gets 400 with the offending fields named, and nothing is written."""

import pytest

from dpi.api.models import IdempotencyRecord
from dpi.api.testing import bearer, make_api_client, post_json
from dpi.models import Observation
from patients.ins import with_key
from patients.models import Encounter, Patient

pytestmark = pytest.mark.django_db

IDENTITY = {"birth_name": "MARTIN", "first_name": "Zoé", "sex": "F", "birth_date": "1990-05-17"}


def test_a_wrong_ins_key_is_400_on_ins_and_nothing_is_saved(client, cast):
    _, token = make_api_client()
    good = with_key("2900575123456")
    bad = good[:13] + f"{(int(good[13:]) + 3) % 100:02d}"
    response = post_json(
        client, "/api/patients/", {**IDENTITY, "ins": bad}, **bearer(token, **{"Idempotency-Key": "p-1"})
    )
    assert response.status_code == 400
    assert "ins" in response.json()
    assert not Patient.objects.filter(birth_name="MARTIN").exists()
    assert not IdempotencyRecord.objects.exists()


def test_several_bad_fields_are_all_named(client, cast):
    _, token = make_api_client()
    response = post_json(
        client,
        "/api/patients/",
        {**IDENTITY, "birth_date": "1990-02-30", "sex": "X", "email": "not-an-address"},
        **bearer(token),
    )
    assert response.status_code == 400
    assert {"birth_date", "sex", "email"} <= set(response.json())
    assert not Patient.objects.filter(birth_name="MARTIN").exists()


def test_a_rule_checked_by_the_service_is_a_400_too(client, cast):
    _, token = make_api_client()
    response = post_json(
        client, "/api/encounters/", {"patient": cast.patient.pk, "unit": "no-such-unit"}, **bearer(token)
    )
    assert response.status_code == 400
    assert "unit" in response.json()
    assert Encounter.objects.filter(patient=cast.patient).count() == 1


def test_an_observation_naming_another_patients_encounter_is_refused(client, cast):
    from tests.personas import make_patient

    other = make_patient()
    _, token = make_api_client()
    body = {
        "patient": other.pk,
        "encounter": cast.encounter.pk,
        "label": "CRP",
        "value": "3",
        "effective_at": "2025-03-01T08:00:00Z",
    }
    response = post_json(client, "/api/observations/", body, **bearer(token))
    assert response.status_code == 400
    assert "encounter" in response.json()
    assert not Observation.objects.exists()


def test_a_create_naming_an_unknown_patient_is_400_on_patient(client, cast):
    _, token = make_api_client()
    body = {"patient": 987654321, "label": "CRP", "value": "3", "effective_at": "2025-03-01T08:00:00Z"}
    response = post_json(client, "/api/observations/", body, **bearer(token))
    assert response.status_code == 400
    assert "patient" in response.json()

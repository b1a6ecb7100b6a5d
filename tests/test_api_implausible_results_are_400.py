"""A lab result is checked for what every channel shares (dpi.models.Observation.clean): reference bounds in order,
a LOINC code with its check digit, a date within the patient's life and not ahead. Each is a 400 naming the field,
and nothing is written."""

import datetime as dt

import pytest
from django.utils import timezone

from dpi import services as clinical_services
from dpi.api.testing import bearer, make_api_client, patch_json, post_json
from dpi.clinical_reference import is_loinc
from dpi.models import Observation

pytestmark = pytest.mark.django_db


def _body(cast, **changes):
    return {"patient": cast.patient.pk, "label": "Potassium", "loinc": "2823-3", "value": "4.2", "unit": "mmol/L",
            "reference_low": "3.5", "reference_high": "5.0", "effective_at": "2024-03-05T08:00:00Z", **changes}


def _post(client, cast, **changes):
    _, token = make_api_client()
    before = Observation.objects.count()
    response = post_json(client, "/api/observations/", _body(cast, **changes), **bearer(token))
    if response.status_code == 400:
        assert Observation.objects.count() == before
    return response


def test_a_valid_result_is_recorded(client, cast):
    assert _post(client, cast).status_code == 201


def test_a_reference_range_upside_down_is_400_on_reference_high(client, cast):
    response = _post(client, cast, value="4", reference_low="5", reference_high="3")
    assert response.status_code == 400
    assert "reference_high" in response.json()


def test_a_reference_range_of_one_value_is_accepted(client, cast):
    assert _post(client, cast, reference_low="5", reference_high="5").status_code == 201


@pytest.mark.parametrize("code", ["not-a-loinc", "2823-4", "2823", "-3", "2823-33", "28 23-3"])
def test_a_code_that_is_not_loinc_is_400_on_loinc(client, cast, code):
    response = _post(client, cast, loinc=code)
    assert response.status_code == 400
    assert "loinc" in response.json()


def test_the_loinc_check_digit_is_luhns_mod_10():
    for code in ("2345-7", "718-7", "2160-0", "2823-3", "1988-5", "8480-6", "59408-5", "85354-9", "11490-0"):
        assert is_loinc(code), code
    assert not any(is_loinc(c) for c in ("2345-6", "718-0", "11490-1", "85354-8"))


def test_a_result_before_the_patients_birth_is_400_on_effective_at(client, cast):
    born = cast.patient.birth_date
    response = _post(client, cast, effective_at=f"{born.year - 1}-06-01T08:00:00Z")
    assert response.status_code == 400
    assert "effective_at" in response.json()


def test_a_result_far_in_the_future_is_400_on_effective_at(client, cast):
    response = _post(client, cast, effective_at="2099-01-01T08:00:00Z")
    assert response.status_code == 400
    assert "effective_at" in response.json()


def test_a_correction_is_held_to_the_same_rules(client, cast):
    obs = clinical_services.observation_record(
        patient=cast.patient, author=cast.physician, label="Potassium", loinc="2823-3", value=4,
        reference_low=3.5, reference_high=5, effective_at=timezone.now() - dt.timedelta(hours=1))
    _, token = make_api_client()
    url = f"/api/observations/{obs.pk}/"
    etag = client.get(url, headers=bearer(token))["ETag"]
    response = patch_json(client, url, {"reason": "typo", "reference_low": "6"}, **bearer(token, **{"If-Match": etag}))
    assert response.status_code == 400
    assert "reference_high" in response.json()
    assert Observation.objects.get(pk=obs.pk).reference_low == 3.5


def test_fhir_sends_only_a_real_loinc_code_under_the_loinc_system(client, cast):
    # The HL7 feed may still store a laboratory's local code sent as LN (or an older row may hold one).
    local = clinical_services.observation_record(
        patient=cast.patient, author=cast.physician, label="Aspect", loinc="X1", value_text="clair",
        effective_at=timezone.now() - dt.timedelta(hours=1))
    real = clinical_services.observation_record(
        patient=cast.patient, author=cast.physician, label="Glucose", loinc="2345-7", value=5,
        effective_at=timezone.now() - dt.timedelta(hours=1))
    _, token = make_api_client()
    local_code = client.get(f"/fhir/Observation/{local.pk}", headers=bearer(token)).json()["code"]
    assert local_code == {"text": "Aspect"}
    real_code = client.get(f"/fhir/Observation/{real.pk}", headers=bearer(token)).json()["code"]
    assert real_code["coding"][0] == {"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}

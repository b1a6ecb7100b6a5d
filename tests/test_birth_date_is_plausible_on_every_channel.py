"""A birth date before 1900-01-01 (or with an impossible time) is refused over HL7 (AE on PID-7) and over
REST (400 on birth_date), by the same rule."""

from __future__ import annotations

import pytest

from dpi.api.testing import bearer, make_api_client, post_json
from dpi.hl7 import testing as t
from dpi.hl7.receiver import receive
from patients.models import Patient

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("birth", ["18000101", "18991231", "1970031525", "197003152561"])
def test_an_implausible_birth_date_is_refused_over_hl7(birth):
    answer = receive(t.adt("A28", "8106", birth=birth))
    assert t.ack_fields(answer)["code"] == "AE" and t.ack_fields(answer)["err_location"] == "PID^1^7"
    assert not Patient.objects.filter(ipp="8106").exists()
    assert t.ack_fields(receive(t.adt("A28", "8106", birth="19000101")))["code"] == "AA"


def test_an_implausible_birth_date_is_refused_over_rest(client):
    _, token = make_api_client()
    identity = {"birth_name": "ANCIEN", "first_name": "Jules", "sex": "M", "birth_date": "1800-01-01"}
    response = post_json(client, "/api/patients/", identity, **bearer(token))
    assert response.status_code == 400
    assert "birth_date" in response.json()
    assert not Patient.objects.filter(birth_name="ANCIEN").exists()

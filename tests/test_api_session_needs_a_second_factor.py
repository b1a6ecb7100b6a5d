"""People may use the API from their browser session only once their second factor is verified."""

import pytest

from dpi.api.testing import verified_login

pytestmark = pytest.mark.django_db


def test_a_session_without_a_verified_second_factor_is_refused(cast, client):
    client.force_login(cast.physician)
    response = client.get(f"/api/patients/{cast.patient.pk}/")
    assert response.status_code == 403
    assert client.get(f"/fhir/Patient/{cast.patient.pk}").status_code == 403


def test_a_verified_session_reaches_the_api_with_the_users_rights(cast, client):
    verified_login(client, cast.physician)
    assert client.get(f"/api/patients/{cast.patient.pk}/").status_code == 200
    assert client.get(f"/api/observations/?patient={cast.patient.pk}").status_code == 200
    verified_login(client, cast.other_physician)
    assert client.get(f"/api/observations/?patient={cast.patient.pk}").status_code == 403


def test_a_session_write_needs_the_csrf_token(cast, client):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    verified_login(strict, cast.physician)
    response = strict.post("/api/observations/", data={"patient": cast.patient.pk}, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]

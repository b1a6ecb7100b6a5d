"""Refusals made before a view decides still name the file sought, every decision is recorded, and bad input
in a header or an id is a 4xx (an insider review: wrong-token calls recorded without their patient, an
anonymous 401 with the id only in its path, a break-the-glass post leaving no event, two 500s)."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from dpi.api.testing import make_api_client, request_id
from tests.helpers import audit_events
from tests.personas import Cast
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/fhir/Patient/{pk}", "/api/patients/{pk}/", "/api/observations/?patient={pk}",
                                  "/fhir/Observation?subject=Patient/{pk}"])
def test_a_call_with_a_wrong_token_names_the_patient_it_asked_for(client, cast: Cast, path):
    rid = request_id()
    pk = cast.patient.pk
    response = client.get(path.format(pk=pk), HTTP_AUTHORIZATION="Bearer dpi_zz_wrong.secret", HTTP_X_REQUEST_ID=rid)
    assert response.status_code == 401
    [event] = audit_events(request_id=rid, outcome="denied")
    asked = path.format(pk=pk).split("?")[0]
    assert (event.basis, event.patient_id, event.details["path"]) == ("deny:bad_token", pk, asked)


@pytest.mark.parametrize("path, resource", [("/fhir/Patient/{pk}", ("Patient", "{pk}")),
                                            ("/api/patients/{pk}/", ("patient", "{pk}"))])
def test_an_unauthenticated_read_by_id_names_the_resource_and_the_patient(client, cast: Cast, path, resource):
    rid = request_id()
    pk = cast.patient.pk
    assert client.get(path.format(pk=pk), HTTP_X_REQUEST_ID=rid).status_code == 401
    [event] = audit_events(request_id=rid, outcome="denied")
    assert (event.basis, event.patient_id) == ("deny:anonymous", pk)
    assert (event.resource_type.lower(), event.resource_id) == (resource[0].lower(), resource[1].format(pk=pk))


def test_a_break_glass_post_when_access_is_already_allowed_is_recorded(cast: Cast):
    rid = request_id()
    response = verified_client(cast.physician).post(f"/patients/{cast.patient.pk}/break-glass/", {},
                                                    HTTP_X_REQUEST_ID=rid)
    assert response.status_code == 302
    assert [(e.outcome, e.patient_id, e.details.get("break_glass")) for e in audit_events(request_id=rid)] == [
        ("allowed", cast.patient.pk, "not_needed")]


@pytest.mark.parametrize("who", ["dpo", "physician"])
@pytest.mark.parametrize("path", ["/retention/restore-requests", "/retention/legal-holds"])
@pytest.mark.parametrize("value", [10**20, 0, -5])
def test_retention_patient_id_out_of_range_is_a_400_and_recorded(cast: Cast, who, path, value):
    rid = request_id()
    response = verified_client(getattr(cast, who)).post(
        path, data=json.dumps({"patient_id": value, "reason": "x"}), content_type="application/json",
        HTTP_X_REQUEST_ID=rid)
    assert response.status_code in (400, 403), response.status_code
    if response.status_code == 400:
        assert "patient_id" in response.json()["errors"]
    assert audit_events(request_id=rid, outcome="denied")


@pytest.mark.parametrize("value", ["dr.house\x00", "\x00", "x" * 151, "a\tb"])
def test_an_unprintable_or_overlong_on_behalf_of_is_refused_not_a_500(cast: Cast, value):
    _, token = make_api_client(name="obo", on_behalf=True)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}", raise_request_exception=False)
    rid = request_id()
    response = api.get(f"/api/patients/{cast.patient.pk}/", HTTP_X_ON_BEHALF_OF=value, HTTP_X_REQUEST_ID=rid)
    assert response.status_code == 403, response.status_code
    [event] = audit_events(request_id=rid, outcome="denied")
    assert event.basis == "deny:on_behalf_of" and "\x00" not in json.dumps(event.details)

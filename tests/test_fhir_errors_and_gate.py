"""FHIR answers go through the gate (and the audit trace); errors are OperationOutcomes in FHIR JSON."""

import pytest
from django.utils import timezone

from dpi import services as clinical_services
from dpi.api.testing import bearer, make_api_client, request_id, verified_login
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


def _issue(response):
    assert response["Content-Type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"][0]


def test_a_read_is_recorded_with_its_channel_and_resource(cast, client):
    api, token = make_api_client()
    rid = request_id()
    assert (
        client.get(f"/fhir/Patient/{cast.patient.pk}", headers=bearer(token, **{"X-Request-ID": rid})).status_code
        == 200
    )
    [event] = audit_events(request_id=rid)
    assert (event.channel, event.resource_type, event.action, event.patient_id) == (
        "api",
        "patient",
        "view",
        cast.patient.pk,
    )
    assert event.details["api_client"] == api.name


def test_a_clinician_outside_the_care_team_gets_403(cast, client):
    obs = clinical_services.observation_record(
        patient=cast.patient, author=cast.physician, label="CRP", value="3", effective_at=timezone.now()
    )
    verified_login(client, cast.other_physician)
    assert _issue(client.get(f"/fhir/Observation/{obs.pk}"))["code"] == "forbidden"
    verified_login(client, cast.physician)
    assert client.get(f"/fhir/Observation/{obs.pk}").status_code == 200


def test_errors(cast, client):
    _, token = make_api_client()
    h = bearer(token)
    missing = client.get("/fhir/Patient/999999999", headers=h)
    assert missing.status_code == 404 and _issue(missing)["code"] == "not-found"
    unknown_type = client.get("/fhir/Medication/1", headers=h)
    assert unknown_type.status_code == 404
    no_patient = client.get("/fhir/Observation", headers=h)
    assert no_patient.status_code == 400
    assert _issue(no_patient)["expression"] == ["patient"]
    bad_count = client.get(f"/fhir/Encounter?patient={cast.patient.pk}&_count=-1", headers=h)
    assert bad_count.status_code == 400
    anonymous = client.get(f"/fhir/Patient/{cast.patient.pk}")
    assert anonymous.status_code == 401 and _issue(anonymous)["code"] == "login"
    writes = client.post("/fhir/Patient", data="{}", content_type="application/fhir+json", headers=h)
    assert writes.status_code == 405 and _issue(writes)["code"] == "not-supported"

"""Finding 1 of issue 13: a restricted (VIP) patient is visible only to its care team, an active
break-the-glass, or a purpose the policy names; by id on every channel it answers exactly as a missing
patient (404), and the refusal is recorded naming the resource asked for. Confidentiality is never lowered
through a general update."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.utils import timezone

from access import services as access_services
from access.models import EmergencyAccess
from access.policy import Role
from dpi import services as dpi_services
from dpi.api.testing import bearer, make_api_client, patch_json, post_json, request_id, verified_login
from patients import services as patient_services
from patients.models import Patient
from tests.helpers import audit_events
from tests.personas import make_patient, make_user

pytestmark = pytest.mark.django_db

VIP_NAME = "CELEBRISSIME"


@pytest.fixture
def vip(cast):
    patient = make_patient(birth_name=VIP_NAME, first_name="Star", confidentiality="restricted",
                           restriction_reason="vip")
    encounter = patient_services.encounter_admit(patient=patient, unit=cast.cardio)
    note = dpi_services.note_create(patient=patient, author=cast.physician, encounter=encounter,
                                    body="Bilan", title="Entrée", kind="progress", sensitive=False)
    return patient, encounter, note


def _client(user) -> Client:
    client = Client()
    verified_login(client, user)
    return client


def _hidden(response, rid, *, resource_type: str | None = None) -> None:
    body = response.content.decode(errors="replace")
    assert response.status_code == 404, (response.status_code, body[:200])
    assert VIP_NAME not in body
    denied = [e for e in audit_events(request_id=rid) if e.outcome == "denied"]
    assert denied, "the refusal is recorded"
    if resource_type:
        assert any(e.resource_type == resource_type for e in denied)


@pytest.mark.parametrize("role", [Role.PHARMACIST, Role.RECEPTION, Role.DIM, Role.MEDICAL_SECRETARY])
def test_by_id_reads_of_a_vip_answer_as_missing(cast, vip, role):
    patient, encounter, _ = vip
    client = _client(make_user(f"walker.{role.value}", role))
    paths = [
        (f"/api/patients/{patient.pk}/", "patient"),
        (f"/fhir/Patient/{patient.pk}", "patient"),
        (f"/api/encounters/?patient={patient.pk}", "encounter"),
        (f"/fhir/Encounter?patient={patient.pk}", "encounter"),
        (f"/api/encounters/{encounter.pk}/", "encounter"),
        (f"/fhir/Encounter/{encounter.pk}", "encounter"),
    ]
    for path, resource_type in paths:
        rid = request_id()
        _hidden(client.get(path, HTTP_X_REQUEST_ID=rid), rid, resource_type=resource_type)
    # the same answer as for a patient that does not exist
    missing = client.get("/api/patients/999999999/")
    assert missing.status_code == 404
    assert missing.json() == client.get(f"/api/patients/{patient.pk}/").json()


def test_dim_cannot_open_the_vip_chart_or_notes_by_id(cast, vip):
    patient, _, note = vip
    client = _client(cast.dim)
    for path in (f"/patients/{patient.pk}/", f"/patients/{patient.pk}/notes/{note.pk}/"):
        rid = request_id()
        _hidden(client.get(path, HTTP_X_REQUEST_ID=rid), rid)


def test_care_team_and_break_glass_see_the_vip(cast, vip):
    patient, _, _ = vip
    assert _client(cast.physician).get(f"/api/patients/{patient.pk}/").status_code == 200
    assert _client(cast.other_physician).get(f"/api/patients/{patient.pk}/").status_code == 404
    now = timezone.now()
    EmergencyAccess.objects.create(user=cast.other_physician, patient=patient, reason_category="emergency",
                                   reason_text="arrêt cardiaque", started_at=now, expires_at=now + timedelta(hours=1))
    assert _client(cast.other_physician).get(f"/api/patients/{patient.pk}/").status_code == 200


def test_reception_cannot_unmask_a_vip_with_a_patch(cast, vip):
    patient, _, _ = vip
    client = _client(cast.reception)
    normal = cast.patient
    etag = client.get(f"/api/patients/{normal.pk}/").headers["ETag"]
    response = patch_json(client, f"/api/patients/{normal.pk}/", {"confidentiality": "restricted"},
                          **{"If-Match": etag})
    assert response.status_code == 400 and "confidentiality" in response.json()
    rid = request_id()
    response = patch_json(client, f"/api/patients/{patient.pk}/", {"city": "Paris"},
                          **{"If-Match": "*", "X-Request-ID": rid})
    _hidden(response, rid, resource_type="patient")
    assert Patient.objects.get(pk=patient.pk).is_restricted
    with pytest.raises(ValidationError) as exc:
        patient_services.patient_update(patient=patient, confidentiality="normal")
    assert "confidentiality" in exc.value.message_dict


def test_only_the_dpo_lowers_confidentiality_and_it_is_recorded(cast, vip):
    patient, _, _ = vip
    with pytest.raises(PermissionDenied):
        access_services.patient_confidentiality_lower(actor=cast.reception, patient=patient,
                                                      reason="plus connu du tout")
    assert audit_events(actor_id=cast.reception.pk, outcome="denied", patient_id=patient.pk)
    lowered = access_services.patient_confidentiality_lower(actor=cast.dpo, patient=patient,
                                                            reason="fin de la restriction demandée")
    assert not lowered.is_restricted
    assert audit_events(actor_id=cast.dpo.pk, basis="confidentiality_lower", patient_id=patient.pk)


def _arriving_vip():
    return make_patient(birth_name=VIP_NAME, first_name="Star", confidentiality="restricted",
                        restriction_reason="vip")


def test_reception_finds_a_vip_by_exact_ipp_and_registers_the_arrival_flagged(cast):
    patient = _arriving_vip()
    client = _client(cast.reception)
    assert client.get(f"/api/patients/?family={VIP_NAME[:5]}").json()["results"] == []
    found = client.get(f"/api/patients/?ipp={patient.ipp}").json()["results"]
    assert [p["id"] for p in found] == [patient.pk]
    lookup = audit_events(actor_id=cast.reception.pk, patient_id=patient.pk, basis="purpose:exact_lookup")
    assert lookup and "restricted_exact_lookup" in lookup[0].details["flags"]
    rid = request_id()
    response = post_json(client, "/api/encounters/", {"patient": patient.pk, "unit": cast.other_unit.code},
                         **{"X-Request-ID": rid})
    assert response.status_code == 201
    event = next(e for e in audit_events(request_id=rid) if e.action == "create")
    assert {"restricted_patient", "restricted_purpose"} <= set(event.details["flags"])
    # ... and still cannot read the identity by id afterwards
    assert client.get(f"/api/patients/{patient.pk}/").status_code == 404


def test_the_admin_site_records_a_masked_object_opened_by_id(cast, vip):
    patient, encounter, _ = vip
    client = _client(cast.reception)
    for path, resource_type in ((f"/admin/patients/patient/{patient.pk}/change/", "patient"),
                                (f"/admin/patients/patient/{patient.pk}/history/", "patient"),
                                (f"/admin/patients/patient/{patient.pk}/change/?_popup=1", "patient"),
                                (f"/admin/patients/encounter/{encounter.pk}/change/", "encounter")):
        rid = request_id()
        response = client.get(path, HTTP_X_REQUEST_ID=rid)
        assert response.status_code in (302, 404)
        assert VIP_NAME not in response.content.decode()
        events = [e for e in audit_events(request_id=rid) if e.outcome == "denied"]
        assert events and events[0].resource_type == resource_type and events[0].basis == "deny:not_visible"
    auto = client.get(f"/admin/autocomplete/?app_label=patients&model_name=encounter&field_name=patient"
                      f"&term={VIP_NAME[:5]}")
    assert auto.status_code == 200 and VIP_NAME not in auto.content.decode()


def test_integration_feed_may_admit_but_not_read_a_vip(cast):
    patient = _arriving_vip()
    client = Client()
    _, token = make_api_client()
    assert client.get(f"/api/patients/{patient.pk}/", headers=bearer(token)).status_code == 404
    response = post_json(client, "/api/encounters/", {"patient": patient.pk, "unit": cast.other_unit.code},
                         Authorization=f"Bearer {token}")
    assert response.status_code == 201

"""Finding 6 of issue 13: every refusal is an access event naming what was asked for: break-the-glass refused
by the form or by role, API calls of a session owing its second factor, role refusals on compliance and
retention pages, unauthenticated API and FHIR calls, anonymous requests for patient pages, and a note of one
patient asked for under another."""

from __future__ import annotations

import pytest
from django.test import Client

from dpi import services as dpi_services
from dpi.api.testing import request_id
from tests.helpers import audit_events
from tests.personas import make_patient
from tests.ui_support import _model_backend, totp_device, verified_client

pytestmark = pytest.mark.django_db


def _denied(rid):
    return [e for e in audit_events(request_id=rid) if e.outcome == "denied"]


def test_break_the_glass_refused_by_the_form_or_by_role(cast):
    rid = request_id()
    response = verified_client(cast.other_physician).post(
        f"/patients/{cast.patient.pk}/break-glass/", {"reason_category": "", "reason_text": ""}, HTTP_X_REQUEST_ID=rid)
    assert response.status_code == 403
    assert [(e.action, e.basis, e.patient_id) for e in _denied(rid)] == [
        ("break_glass", "deny:invalid_request", cast.patient.pk)]
    from access.policy import Role
    from tests.personas import make_user

    pharmacist = make_user("pharma.x", Role.PHARMACIST)
    rid = request_id()
    response = verified_client(pharmacist).post(f"/patients/{cast.patient.pk}/break-glass/",
                                                {"reason_category": "emergency"}, HTTP_X_REQUEST_ID=rid)
    assert response.status_code == 403
    assert [(e.action, e.basis) for e in _denied(rid)] == [("break_glass", "deny:role")]


def test_api_call_of_a_session_owing_its_second_factor(cast):
    client = Client()
    totp_device(cast.physician)
    client.force_login(cast.physician, backend=_model_backend())
    rid = request_id()
    assert client.get(f"/api/patients/{cast.patient.pk}/", HTTP_X_REQUEST_ID=rid).status_code == 403
    assert [e.basis for e in _denied(rid)] == ["deny:second_factor"]


@pytest.mark.parametrize("path", ["/compliance/breaches", "/compliance/rights", "/compliance/maintenance/log",
                                  "/retention/status"])
def test_role_refusals_on_compliance_and_retention_pages(cast, path):
    rid = request_id()
    assert verified_client(cast.nurse).get(path, HTTP_X_REQUEST_ID=rid).status_code == 403
    assert [e.basis for e in _denied(rid)] == ["deny:role"]


@pytest.mark.parametrize("path", ["/api/patients/{pk}/", "/fhir/Patient/{pk}", "/api/encounters/?patient={pk}"])
def test_unauthenticated_api_calls(cast, path):
    rid = request_id()
    response = Client().get(path.format(pk=cast.patient.pk), HTTP_X_REQUEST_ID=rid)
    assert response.status_code == 401
    assert [e.basis for e in _denied(rid)] == ["deny:anonymous"]


def test_anonymous_request_for_a_patient_page(cast):
    rid = request_id()
    response = Client().get(f"/patients/{cast.patient.pk}/", HTTP_X_REQUEST_ID=rid)
    assert response.status_code == 302
    assert [(e.basis, e.patient_id) for e in _denied(rid)] == [("deny:anonymous", cast.patient.pk)]


def test_a_note_of_patient_a_asked_under_patient_b(cast):
    other = make_patient()
    from patients import services as patient_services

    patient_services.encounter_admit(patient=other, unit=cast.cardio)
    note = dpi_services.note_create(patient=other, author=cast.physician, encounter=None, body="secret",
                                    title="Note A", kind="progress", sensitive=False)
    rid = request_id()
    response = verified_client(cast.physician).get(f"/patients/{cast.patient.pk}/notes/{note.pk}/",
                                                   HTTP_X_REQUEST_ID=rid)
    assert response.status_code == 404
    events = audit_events(request_id=rid)
    assert not [e for e in events if e.outcome == "allowed"]
    assert [(e.resource_type, e.resource_id, e.patient_id, e.basis) for e in events] == [
        ("clinicalnote", str(note.pk), other.pk, "deny:not_found")]


def test_the_admin_sites_view_on_site_is_a_recorded_not_found(cast):
    """/admin/r/<content type>/<id>/ loaded any object by id outside the gate and answered 404 unrecorded."""
    from datetime import timedelta

    from django.contrib.contenttypes.models import ContentType
    from django.utils import timezone

    from patients import services as patient_services
    from patients.models import Appointment, Encounter, Patient

    vip = make_patient(birth_name="VUESURSITE", confidentiality="restricted", restriction_reason="vip")
    encounter = patient_services.encounter_admit(patient=vip, unit=cast.cardio)
    start = timezone.now() + timedelta(days=2)
    appointment = patient_services.appointment_book(patient=vip, unit=cast.cardio, practitioner=cast.physician,
                                                    start=start, end=start + timedelta(hours=1))
    client = verified_client(cast.reception)
    for model, pk, basis in ((Patient, vip.pk, "deny:not_visible"), (Encounter, encounter.pk, "deny:not_visible"),
                             (Appointment, appointment.pk, "deny:not_visible"), (Patient, 987654321, "deny:not_found")):
        content_type = ContentType.objects.get_for_model(model).pk
        rid = request_id()
        response = client.get(f"/admin/r/{content_type}/{pk}/", HTTP_X_REQUEST_ID=rid)
        assert response.status_code == 404 and "VUESURSITE" not in response.content.decode()
        assert [(e.outcome, e.resource_type, e.resource_id, e.basis) for e in audit_events(request_id=rid)] == [
            ("denied", model._meta.model_name, str(pk), basis)]


def test_a_refusal_no_view_recorded_is_recorded_by_the_middleware(cast):
    """401s and 403s answered outside the gate and the decorators (retention JSON views, the API schema,
    detection pages, the session ping, the passkey ceremony) each leave one denied event naming the path."""
    nurse = verified_client(cast.nurse)
    for client, method, path in ((Client(), "get", "/retention/status"), (Client(), "post", "/retention/legal-holds"),
                                 (Client(), "post", "/retention/restore-requests/1/approve"),
                                 (Client(), "get", "/api/schema/"), (Client(), "get", "/dpo/alerts/"),
                                 (Client(), "post", "/session/ping/"),
                                 (Client(), "post", "/accounts/passkeys/registration/begin/"),
                                 (nurse, "get", "/retention/status")):  # recorded once, by its decorator
        rid = request_id()
        response = getattr(client, method)(path, HTTP_X_REQUEST_ID=rid)
        assert response.status_code in (401, 403), (path, response.status_code)
        events = _denied(rid)
        assert len(events) == 1 and path.startswith("/" + events[0].resource_id.lstrip("/")[:10]), (path, events)

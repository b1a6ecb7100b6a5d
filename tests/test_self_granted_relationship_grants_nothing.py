"""Finding 2 of issue 13: a care relationship created by the very person it would let in grants them no
medical access until another person confirms it; only clinicians can be the practitioner of an appointment;
every relationship records who created it and how."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.utils import timezone

from access import gate
from access import services as access_services
from access.models import CareGrant
from access.policy import Action, Category, Role
from dpi.api.testing import bearer, make_api_client, post_json, request_id, verified_login
from patients import services as patient_services
from patients.models import Appointment, Encounter
from tests.helpers import audit_events
from tests.personas import make_patient, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def secretary(cast):
    return make_user("sec.cardio", Role.MEDICAL_SECRETARY, [cast.cardio])


def _client(user) -> Client:
    client = Client()
    verified_login(client, user)
    return client


def _reads_chart(user, patient) -> bool:
    return gate.decide(user, patient_id=patient.pk, category=Category.MEDICAL, action=Action.VIEW).allowed


def test_secretary_cannot_book_herself_as_practitioner_in_the_admin_site(cast, secretary):
    patient = make_patient()
    client = _client(secretary)
    now = timezone.localtime() + timedelta(days=1)
    response = client.post("/admin/patients/appointment/add/", {
        "patient": patient.pk, "unit": cast.cardio.pk, "practitioner": secretary.pk,
        "start_0": now.strftime("%Y-%m-%d"), "start_1": now.strftime("%H:%M"),
        "end_0": now.strftime("%Y-%m-%d"), "end_1": (now + timedelta(hours=1)).strftime("%H:%M"), "reason": "",
    })
    assert response.status_code == 200  # the form again, with the error on the practitioner
    assert not Appointment.objects.filter(patient=patient).exists()
    assert not _reads_chart(secretary, patient)
    with pytest.raises(ValidationError) as exc:
        patient_services.appointment_book(patient=patient, unit=cast.cardio, practitioner=secretary,
                                          start=now, end=now + timedelta(hours=1), actor=secretary, source="staff")
    assert "practitioner" in exc.value.message_dict


def test_secretary_admitting_into_her_own_unit_does_not_read_the_chart(cast, secretary):
    patient = make_patient()
    client = _client(secretary)
    response = post_json(client, "/api/encounters/", {"patient": patient.pk, "unit": cast.cardio.code})
    assert response.status_code == 201
    encounter = Encounter.objects.get(pk=response.json()["id"])
    assert (encounter.created_by_id, encounter.source) == (secretary.pk, "staff")
    assert not _reads_chart(secretary, patient)
    assert client.get(f"/api/observations/?patient={patient.pk}").status_code == 403
    # the unit's other staff are let in by an act of another person, with its provenance
    grant = CareGrant.objects.get(user=cast.nurse, content_object=patient)
    assert (grant.provenance, grant.fact_created_by_id) == ("staff", secretary.pk)
    assert audit_events(actor_id=secretary.pk, basis="deny:self_declared", patient_id=patient.pk)
    # she cannot confirm her own admission; a colleague of the unit can
    with pytest.raises(PermissionDenied):
        access_services.care_fact_confirm(actor=secretary, fact=encounter)
    access_services.care_fact_confirm(actor=cast.nurse, fact=encounter)
    assert _reads_chart(secretary, patient)
    assert CareGrant.objects.get(user=secretary, content_object=patient).provenance == "confirmed"


def test_a_confirmation_must_come_from_the_unit_or_the_care_team(cast, secretary):
    patient = make_patient()
    encounter = patient_services.encounter_admit(patient=patient, unit=cast.cardio, actor=secretary, source="staff")
    with pytest.raises(PermissionDenied):
        access_services.care_fact_confirm(actor=cast.other_physician, fact=encounter)
    assert not _reads_chart(secretary, patient)


def test_the_feed_and_other_people_create_relationships_at_once(cast):
    patient = make_patient()
    _, token = make_api_client()
    response = post_json(Client(), "/api/encounters/", {"patient": patient.pk, "unit": cast.cardio.code},
                         **bearer(token))
    assert response.status_code == 201
    assert Encounter.objects.get(pk=response.json()["id"]).source == "feed"
    assert CareGrant.objects.get(user=cast.physician, content_object=patient).provenance == "feed"
    assert _reads_chart(cast.physician, patient)


def test_a_physician_booking_their_own_appointment_needs_a_confirmation(cast):
    patient = make_patient()
    start = timezone.now() + timedelta(days=1)
    appt = patient_services.appointment_book(patient=patient, unit=cast.other_unit, practitioner=cast.other_physician,
                                             start=start, end=start + timedelta(hours=1),
                                             actor=cast.other_physician, source="staff")
    assert not _reads_chart(cast.other_physician, patient)
    booked_by_other = patient_services.appointment_book(
        patient=patient, unit=cast.other_unit, practitioner=cast.other_physician, start=start + timedelta(days=1),
        end=start + timedelta(days=1, hours=1), actor=cast.reception, source="staff")
    assert booked_by_other.created_by_id == cast.reception.pk
    assert _reads_chart(cast.other_physician, patient)
    assert appt.created_by_id == cast.other_physician.pk


def test_a_self_added_membership_grants_nothing(cast):
    patient = cast.patient
    membership = access_services.membership_add(actor=cast.physician, patient=patient, user=cast.physician,
                                                end=timezone.now() + timedelta(days=3), reason="suivi")
    grant = CareGrant.objects.get(user=cast.physician, content_object=patient)
    assert grant.basis == "encounter"  # the membership he gave himself adds nothing
    assert membership.granted_by_id == cast.physician.pk


def test_nobody_changes_their_own_role(cast):
    admin = make_user("it.admin", Role.IT_ADMIN)
    with pytest.raises(PermissionDenied):
        access_services.staff_role_set(actor=admin, user=admin, role=Role.PHYSICIAN, units=[cast.cardio])
    assert gate.role_of(admin) == Role.IT_ADMIN


def test_a_professional_treated_in_her_own_unit_does_not_open_her_own_file(cast):
    """Staff as patient: her unit's encounter (entered by reception) puts her in her own care team, but a
    professional account never opens its holder's own file, on any channel; her colleagues treating her do."""
    from access.models import StaffProfile
    from dpi import services as dpi_services

    patient = make_patient(confidentiality="restricted", restriction_reason="staff")
    StaffProfile.objects.filter(user=cast.nurse).update(patient=patient)
    patient_services.encounter_admit(patient=patient, unit=cast.cardio, actor=cast.reception, source="staff")
    note = dpi_services.note_create(patient=patient, author=cast.physician, encounter=None, body="bilan",
                                    title="Entrée", kind="progress", sensitive=False)
    client = _client(cast.nurse)
    for path in (f"/patients/{patient.pk}/", f"/patients/{patient.pk}/notes/{note.pk}/",
                 f"/api/observations/?patient={patient.pk}", f"/api/patients/{patient.pk}/",
                 f"/fhir/Patient/{patient.pk}", f"/fhir/Observation?patient={patient.pk}"):
        rid = request_id()
        response = client.get(path, HTTP_X_REQUEST_ID=rid)
        assert response.status_code in (403, 404), (path, response.status_code)
        assert "deny:own_record" in [e.basis for e in audit_events(request_id=rid, outcome="denied")], path
    assert _reads_chart(cast.physician, patient)

"""Reception's admin-only view: identities, encounters (admit, transfer, discharge) and appointments,
through the gate and the services; no clinical model anywhere on the site."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.utils import timezone

from access.models import CareGrant
from dpi.web.admin_site import ReceptionAdminSite
from patients.models import Appointment, Encounter, Patient
from tests.helpers import audit_events
from tests.personas import make_patient
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db


def test_the_admin_site_holds_only_administrative_models():
    assert isinstance(admin.site._wrapped if hasattr(admin.site, "_wrapped") else admin.site, ReceptionAdminSite)
    assert {m._meta.label for m in admin.site._registry} == {"patients.Patient", "patients.Encounter",
                                                             "patients.Appointment"}


def test_reception_lists_and_searches_patients_through_the_gate(cast):
    client = verified_client(cast.reception)
    html = client.get("/admin/patients/patient/", {"q": cast.patient.birth_name}).content.decode()
    assert cast.patient.ipp in html
    search = audit_events(actor_id=cast.reception.pk, action="search")
    assert search and search[-1].outcome == "allowed"


def test_restricted_patients_are_masked_on_the_admin_site_too(cast):
    vip = make_patient(birth_name="CELEBRE", confidentiality="restricted", restriction_reason="vip")
    client = verified_client(cast.reception)
    assert "CELEBRE" not in client.get("/admin/patients/patient/").content.decode()
    response = client.get(f"/admin/patients/patient/{vip.pk}/change/", follow=True)
    assert "CELEBRE" not in response.content.decode()


def test_opening_a_patient_records_an_administrative_view(cast):
    client = verified_client(cast.reception)
    assert client.get(f"/admin/patients/patient/{cast.patient.pk}/change/").status_code == 200
    [event] = audit_events(actor_id=cast.reception.pk, patient_id=cast.patient.pk, action="view")
    assert (event.category, event.resource_type, event.channel) == ("administrative", "patient", "admin")


def test_reception_registers_a_patient_through_the_service(cast):
    client = verified_client(cast.reception)
    response = client.post("/admin/patients/patient/add/", {
        "birth_name": "MARTIN", "first_name": "Léa", "sex": "F", "birth_date": "1990-04-02",
        "identity_status": "PROV", "confidentiality": "normal", "ins": "", "social_security_number": "",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    patient = Patient.objects.get(birth_name="MARTIN")
    assert patient.ipp.startswith("P")
    [event] = audit_events(actor_id=cast.reception.pk, patient_id=patient.pk, action="create")
    assert event.outcome == "allowed"
    assert not LogEntry.objects.exists()  # no copy of identities outside the audited trace


def test_a_bad_ins_is_refused_with_the_field_named(cast):
    response = verified_client(cast.reception).post("/admin/patients/patient/add/", {
        "birth_name": "MARTIN", "first_name": "Léa", "sex": "F", "birth_date": "1990-04-02",
        "identity_status": "QUAL", "confidentiality": "normal", "ins": "123", "social_security_number": "",
    })
    assert response.status_code == 200
    assert "errors field-ins" in response.content.decode()
    assert not Patient.objects.filter(birth_name="MARTIN").exists()


def test_reception_admits_transfers_and_discharges(cast):
    client = verified_client(cast.reception)
    patient = make_patient(birth_name="ADMIS")
    start = timezone.localtime() - timedelta(hours=1)
    response = client.post("/admin/patients/encounter/add/", {
        "patient": patient.pk, "unit": cast.cardio.pk, "kind": "stay",
        "start_0": start.strftime("%Y-%m-%d"), "start_1": start.strftime("%H:%M:%S"),
    })
    assert response.status_code == 302
    encounter = Encounter.objects.get(patient=patient)
    assert CareGrant.objects.filter(user=cast.nurse, content_object=patient).exists()  # the unit's team is in

    page = client.post("/admin/patients/encounter/", {"action": "transfer", "_selected_action": [encounter.pk]})
    assert page.status_code == 200 and 'name="unit"' in page.content.decode()
    client.post("/admin/patients/encounter/", {"action": "transfer", "_selected_action": [encounter.pk],
                                               "unit": cast.other_unit.pk, "apply": "1"})
    encounter.refresh_from_db()
    assert encounter.end is not None
    new = Encounter.objects.get(patient=patient, end__isnull=True)
    assert (new.unit, new.transferred_from) == (cast.other_unit, encounter)

    client.post("/admin/patients/encounter/", {"action": "discharge", "_selected_action": [new.pk]})
    new.refresh_from_db()
    assert new.end is not None
    amends = audit_events(actor_id=cast.reception.pk, patient_id=patient.pk, action="amend")
    assert {e.resource_type for e in amends} == {"encounter"} and len(amends) == 2


def test_reception_books_and_cancels_an_appointment(cast):
    client = verified_client(cast.reception)
    start = timezone.localtime() + timedelta(days=3)
    end = start + timedelta(minutes=30)
    response = client.post("/admin/patients/appointment/add/", {
        "patient": cast.patient.pk, "unit": cast.cardio.pk, "practitioner": cast.physician.pk,
        "start_0": start.strftime("%Y-%m-%d"), "start_1": start.strftime("%H:%M:%S"),
        "end_0": end.strftime("%Y-%m-%d"), "end_1": end.strftime("%H:%M:%S"), "reason": "Contrôle",
    })
    assert response.status_code == 302, response.content.decode()[:3000]
    appointment = Appointment.objects.get()
    client.post("/admin/patients/appointment/", {"action": "cancel", "_selected_action": [appointment.pk]})
    appointment.refresh_from_db()
    assert appointment.status == "cancelled"


def test_nothing_can_be_deleted_from_the_admin_site(cast):
    client = verified_client(cast.reception)
    response = client.get(f"/admin/patients/patient/{cast.patient.pk}/delete/", follow=True)
    assert response.status_code == 403
    assert Patient.objects.filter(pk=cast.patient.pk).exists()


def test_reception_corrects_a_contact_detail_through_the_service(cast):
    client = verified_client(cast.reception)
    url = f"/admin/patients/patient/{cast.patient.pk}/change/"
    p = cast.patient
    response = client.post(url, {
        "birth_name": p.birth_name, "first_name": p.first_name, "first_names": p.first_names, "sex": p.sex,
        "birth_date": p.birth_date.isoformat(), "birthplace_insee": p.birthplace_insee,
        "validation_mode": p.validation_mode, "validation_date": p.validation_date.isoformat(),
        "confidentiality": "normal", "social_security_number": "", "phone": "01 23 45 67 89",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    p.refresh_from_db()
    assert (p.phone, p.identity_status) == ("01 23 45 67 89", "QUAL")  # a contact detail keeps the status
    assert audit_events(actor_id=cast.reception.pk, patient_id=p.pk, action="amend", resource_type="patient")

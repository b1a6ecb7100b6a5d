"""Inside its window, a maintenance account reaches its tools but never patient data in clear: not through the
gate, not through the admin site, the chart or the FHIR API, even with Django's superuser flags."""

from datetime import timedelta

import pytest
from django.utils import timezone

from access import gate
from access.policy import Action, Category, Role
from dpi.compliance.services import maintenance_window_approve
from dpi.services import document_add, note_create
from patients.models import Patient
from tests.personas import make_user
from tests.test_compliance_support import verified_login

pytestmark = pytest.mark.django_db

SECRET = "Rechute alcoolique, sevrage en cours"


@pytest.fixture
def provider_in_window(db):
    provider = make_user("maint.vendor", Role.MAINTENANCE)
    # The worst case: an account someone made staff and superuser by mistake.
    provider.is_staff = provider.is_superuser = True
    provider.save(update_fields=["is_staff", "is_superuser"])
    now = timezone.now()
    maintenance_window_approve(provider=provider, starts_at=now - timedelta(minutes=1),
                               ends_at=now + timedelta(hours=1), purpose="upgrade",
                               approved_by=make_user("it.admin", Role.IT_ADMIN))
    return provider


def test_the_gate_gives_maintenance_nothing(cast, provider_in_window):
    for category in Category:
        for action in Action:
            decision = gate.authorize(provider_in_window, patient_id=cast.patient.pk, category=category,
                                      action=action)
            assert not decision.allowed and decision.basis == "deny:matrix"
            assert not decision.can_break_glass
    assert not gate.visible_patients(provider_in_window, Patient.objects.all()).exists()


def test_no_page_shows_clinical_or_identity_data(client, cast, provider_in_window):
    note = note_create(patient=cast.patient, author=cast.physician, body=SECRET, title="Addictologie")
    doc = document_add(patient=cast.patient, author=cast.physician, title="CR", content=b"%PDF compte rendu secret")
    verified_login(client, provider_in_window)
    pid = cast.patient.pk
    urls = [
        "/admin/", "/admin/patients/patient/", f"/admin/patients/patient/{pid}/change/",
        "/admin/dpi/clinicalnote/", f"/admin/dpi/clinicalnote/{note.pk}/change/", "/admin/auth/user/",
        "/patients/", f"/patients/{pid}/", f"/patients/{pid}/notes/{note.pk}/",
        f"/patients/{pid}/documents/{doc.pk}/", f"/fhir/Patient/{pid}", f"/fhir/DocumentReference?patient={pid}",
        f"/api/patients/{pid}/", "/compliance/maintenance/status", "/compliance/rights", "/compliance/breaches",
    ]
    secrets = [SECRET, "Addictologie", "compte rendu secret", cast.patient.birth_name, cast.patient.ins]
    for url in urls:
        response = client.get(url, follow=False)
        content = b"".join(response.streaming_content) if response.streaming else response.content
        text = content.decode("utf-8", errors="replace")
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"{url} ({response.status_code}) shows {leaked}"
        if url.startswith(("/admin/patients", "/admin/dpi", f"/patients/{pid}", "/fhir/", "/api/")):
            assert response.status_code != 200, url

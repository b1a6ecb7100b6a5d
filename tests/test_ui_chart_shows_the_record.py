"""The chart shows the whole record to the care team, flags abnormal results, hides sensitive notes from
roles that may not read restricted data (without even asking the gate), and shows the INS only once the
identity is qualified."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from dpi import services as dpi_services
from dpi.models import Allergy, Prescription, Problem
from patients import services as patient_services
from patients.models import Patient
from tests.helpers import audit_events
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def record(cast):
    p, author, enc = cast.patient, cast.physician, cast.encounter
    dpi_services.note_create(patient=p, author=author, encounter=enc, title="Admission", body="Douleur thoracique")
    dpi_services.note_create(patient=p, author=author, encounter=enc, title="Entretien", body="Suivi addictologie",
                             sensitive=True)
    now = timezone.now()
    dpi_services.observation_record(patient=p, author=author, label="Potassium", value=Decimal("6.2"),
                                    unit="mmol/L", reference_low=Decimal("3.5"), reference_high=Decimal("5.0"),
                                    effective_at=now - timedelta(hours=2))
    dpi_services.observation_record(patient=p, author=author, label="Hémoglobine", value=Decimal("9.1"),
                                    unit="g/dL", reference_low=Decimal("12"), reference_high=Decimal("17"),
                                    effective_at=now - timedelta(hours=1))
    dpi_services.observation_record(patient=p, author=author, label="Glucose", value=Decimal("5.0"), unit="mmol/L",
                                    reference_low=Decimal("3.9"), reference_high=Decimal("6.1"), effective_at=now)
    Prescription.objects.create(patient=p, author=author, medication="Bisoprolol 2,5 mg",
                                instructions="1 par jour", start=timezone.localdate())
    Allergy.objects.create(patient=p, author=author, substance="Pénicilline", severity="high")
    Problem.objects.create(patient=p, author=author, icd10="I48.9", label="Fibrillation auriculaire")
    dpi_services.document_add(patient=p, author=author, title="Compte rendu ECG", content=b"%PDF-1.4")
    return p


def test_the_care_team_sees_every_section(cast, record):
    html = verified_client(cast.nurse).get(f"/patients/{record.pk}/").content.decode()
    for text in ("Douleur thoracique", "Potassium", "Bisoprolol 2,5 mg", "Pénicilline", "Fibrillation auriculaire",
                 "Compte rendu ECG", "Cardiologie (test)"):
        assert text in html
    assert record.display_name in html


def test_abnormal_results_are_flagged_in_text_not_only_colour(cast, record):
    html = verified_client(cast.nurse).get(f"/patients/{record.pk}/").content.decode()
    assert html.count('class="abnormal"') == 2
    assert 'class="flag flag-H"' in html and 'class="flag flag-L"' in html
    assert "au-dessus de l’intervalle de référence" in html or "above the reference range" in html


def test_sensitive_notes_only_for_roles_allowed_restricted_data(cast, record):
    nurse_html = verified_client(cast.nurse).get(f"/patients/{record.pk}/").content.decode()
    assert "Suivi addictologie" not in nurse_html
    # The nurse's chart asked nothing of the gate about restricted data: no denial to explain to the DPO.
    assert not audit_events(actor_id=cast.nurse.pk, category="restricted")
    physician_html = verified_client(cast.physician).get(f"/patients/{record.pk}/").content.decode()
    assert "Suivi addictologie" in physician_html
    [event] = audit_events(actor_id=cast.physician.pk, category="restricted")
    assert event.outcome == "allowed" and event.patient_id == record.pk


def test_the_ins_is_shown_only_when_the_identity_is_qualified(cast, record):
    client = verified_client(cast.nurse)
    assert record.ins in client.get(f"/patients/{record.pk}/").content.decode()
    # The evidence withdrawn (document check and INSi answer): the status follows it down to provisional.
    patient_services.patient_update(patient=record, validation_mode="", validation_date=None, validated_by=None,
                                    validated_by_name="", insi_date=None)
    assert Patient.objects.get(pk=record.pk).identity_status == Patient.IdentityStatus.PROVISIONAL
    html = client.get(f"/patients/{record.pk}/").content.decode()
    assert record.ins not in html
    assert "Provisoire" in html or "provisoire" in html


def test_the_chart_read_is_recorded_per_category(cast, record):
    verified_client(cast.nurse).get(f"/patients/{record.pk}/")
    events = audit_events(actor_id=cast.nurse.pk, patient_id=record.pk, outcome="allowed")
    assert {(e.category, e.resource_type) for e in events} == {("medical", "chart"), ("administrative", "patient")}


def test_a_document_opens_inline_only_for_safe_types(cast, record):
    client = verified_client(cast.nurse)
    html_doc = dpi_services.document_add(patient=record, author=cast.physician, title="page",
                                         content=b"<script>alert(1)</script>", media_type="text/html")
    response = client.get(f"/patients/{record.pk}/documents/{html_doc.pk}/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment")
    assert "sandbox" in response["Content-Security-Policy"]

"""Printouts (the record, the current prescriptions, the patient's access report): every page names the patient
(name, birth date, IPP), is numbered "page x / y" and dated; printing passes the gate as "print" and is
recorded; the chart page's own print style carries the same marks."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from pypdf import PdfReader

from access import gate
from access.policy import Action, Category
from dpi import services as dpi_services
from dpi.models import Prescription
from tests.helpers import audit_events
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db

PARAGRAPH = ("Patient vu ce matin, apyrétique, hémodynamique stable. Douleur thoracique résolue sous traitement. "
             "Poursuite de la surveillance scopée et du bilan biologique. ") * 4


@pytest.fixture
def record(cast):
    for i in range(24):
        dpi_services.note_create(patient=cast.patient, author=cast.physician, encounter=cast.encounter,
                                 title=f"Observation médicale J{i + 1}", body=PARAGRAPH)
    today = timezone.localdate()
    Prescription.objects.create(patient=cast.patient, author=cast.physician, encounter=cast.encounter,
                                medication="Bisoprolol 2,5 mg", instructions="1 comprimé le matin",
                                start=today)
    Prescription.objects.create(patient=cast.patient, author=cast.physician, medication="Amoxicilline 1 g",
                                instructions="1 g trois fois par jour", start=today - timedelta(days=20),
                                end=today - timedelta(days=13), status=Prescription.Status.COMPLETED)
    return cast


def pages_of(response) -> list[str]:
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"] == "application/pdf"
    return [page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages]


def assert_marked(pages: list[str], identity: list[str], printed: str, page_word: str = "Page") -> None:
    for number, text in enumerate(pages, start=1):
        flat = " ".join(text.split())
        for part in identity:
            assert part in flat, (number, part, flat[:300])
        assert f"{page_word} {number} / {len(pages)}" in flat, (number, flat[-200:])
        assert printed in flat, (number, flat[-200:])


def identity_of(patient) -> list[str]:
    return [patient.display_name, patient.birth_date.strftime("%d/%m/%Y"), f"IPP {patient.ipp}"]


def test_the_printed_record_names_the_patient_on_every_page(record):
    patient = record.patient
    pages = pages_of(verified_client(record.physician).get(f"/patients/{patient.pk}/print/record.pdf"))
    assert len(pages) >= 3  # a multi-page record
    today = timezone.localdate().strftime("%d/%m/%Y")
    assert_marked(pages, identity_of(patient), f"Imprimé le {today}")
    text = " ".join(" ".join(pages).split())
    assert "par Dr.House Staff" in text and "né le" in text and "Observation médicale J24" in text
    assert "Bisoprolol 2,5 mg" in text and "Amoxicilline 1 g" in text


def test_printing_is_a_print_access_recorded_in_the_trace(record):
    verified_client(record.nurse).get(f"/patients/{record.patient.pk}/print/record.pdf")
    printed = audit_events(actor_id=record.nurse.pk, action="print")
    assert {(e.category, e.resource_type, e.outcome) for e in printed} == {
        ("medical", "chart", "allowed"), ("administrative", "patient", "allowed")}
    assert all(e.patient_id == record.patient.pk for e in printed)


def test_someone_outside_the_care_team_cannot_print_and_is_recorded(record):
    response = verified_client(record.other_physician).get(f"/patients/{record.patient.pk}/print/record.pdf")
    assert response.status_code == 403
    [event] = audit_events(actor_id=record.other_physician.pk, action="print")
    assert (event.outcome, event.basis) == ("denied", "deny:no_care_relationship")


def test_the_printed_prescriptions_list_the_current_ones_with_the_same_marks(record):
    patient = record.patient
    response = verified_client(record.physician).get(f"/patients/{patient.pk}/print/prescriptions.pdf")
    pages = pages_of(response)
    assert_marked(pages, identity_of(patient), "Imprimé le")
    text = " ".join(" ".join(pages).split())
    assert "Bisoprolol 2,5 mg" in text and "Amoxicilline" not in text  # only what is in progress
    assert "Prescripteur : Dr.House Staff" in text
    assert {e.resource_type for e in audit_events(actor_id=record.physician.pk, action="print")} == {
        "prescription", "patient"}


def test_english_printouts_read_day_first(record):
    patient = record.patient
    response = verified_client(record.physician).get(f"/patients/{patient.pk}/print/prescriptions.pdf",
                                                     HTTP_ACCEPT_LANGUAGE="en")
    pages = pages_of(response)
    today = timezone.localdate().strftime("%d/%m/%Y")
    assert_marked(pages, identity_of(patient), f"Printed on {today}")
    assert "born on" in " ".join(pages[0].split())


def test_the_access_report_is_marked_on_every_page_with_names_and_words(record):
    patient = record.patient
    for i in range(70):  # enough rows for several pages
        gate.authorize(record.physician if i % 2 else record.nurse, patient_id=patient.pk,
                       category=Category.MEDICAL, action=Action.VIEW, resource_type="clinicalnote", resource_id=i)
    import time

    from access.authn.services import FRESH_OTP_AT

    client = verified_client(record.dpo)  # an access report is an export: a fresh one-time code (issue 13)
    session = client.session
    session[FRESH_OTP_AT] = time.time()
    session.save()
    response = client.get(f"/audit/patients/{patient.pk}/access-report.pdf")
    pages = pages_of(response)
    assert len(pages) >= 2
    assert_marked(pages, [f"Dossier patient n° {patient.pk}"], f"Imprimé le {timezone.localdate():%d/%m/%Y}")
    text = " ".join(" ".join(pages).split())
    # Staff names and functions, in French only: no login names, no codes of the trace.
    assert "Dr.House Staff" in text and "Nurse.Joy Staff" in text and "médecin" in text and "infirmier" in text
    assert "équipe de soins" in text and "consultation" in text
    assert "Cardiologie (test)" in text  # the unit's name, not its code
    for code in ("dr.house", "nurse.joy", "care:", "clinicalnote", "physician", "allowed", "medical ", "cardio-t"):
        assert code not in text, code


def test_the_chart_page_prints_with_the_same_marks(record):
    html = verified_client(record.physician).get(f"/patients/{record.patient.pk}/").content.decode()
    style = re.search(r"<style nonce=\"[^\"]+\">(@page .*?)</style>", html, re.S)
    assert style, "the chart has no @page rules"
    css = style.group(1)
    assert record.patient.ipp in css and "counter(page)" in css and "counter(pages)" in css
    assert "Imprimé le" in css and "@top-left" in css and "@bottom-right" in css
    assert "/print/record.pdf" in html and "/print/prescriptions.pdf" in html

"""The services' refusals are in the user's language: French for the UI's users, English when English is
asked for, always keyed by the same field; a refusal the access trace records keeps its stable English there.

The REST API (/api/) reaches none of these services' texts; the JSON endpoints of the archive (/retention/,
session-signed, in the UI's language) do, so they stand for the JSON channel here."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone, translation

from access import services as access_services
from dpi import services as clinical_services
from dpi.models import Problem
from retention import services as retention_services
from tests.helpers import audit_events
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db


def _cases(cast) -> list[tuple[str, str, str, object]]:
    """(field, French, English, call) for one refusal of each service area."""
    today = timezone.localdate()
    return [
        ("substance", "Indiquez la substance.", "Name the substance.",
         lambda: clinical_services.allergy_record(patient=cast.patient, author=cast.physician, substance="  ")),
        ("icd10", "Ce n’est pas un code CIM-10 (une lettre, deux chiffres, puis éventuellement un point et un ou "
                  "deux caractères, par exemple I10 ou E11.9).",
         "Not a CIM-10 code (a letter, two digits, then optionally a dot and one or two characters, e.g. I10 "
         "or E11.9).",
         lambda: clinical_services.problem_record(patient=cast.patient, author=cast.physician, icd10="hello")),
        ("onset", "La date de début ne peut pas être dans le futur.", "The onset cannot be in the future.",
         lambda: clinical_services.problem_record(patient=cast.patient, author=cast.physician, icd10="I10",
                                                  onset=today + timedelta(days=3))),
        ("duration_days", "Entre 1 et 365 jours.", "Between 1 and 365 days.",
         lambda: clinical_services.prescription_create(patient=cast.patient, author=cast.physician,
                                                       medication="Amoxicilline 1 g", dose="1 g", route="oral",
                                                       frequency="3 fois par jour", start=today,
                                                       duration_days=400)),
        ("file", "Le fichier dépasse 1 Mo.", "The file is larger than 1 MB.",
         lambda: clinical_services.document_sniff(b"%PDF-" + b"x" * (1 << 20), max_bytes=1 << 20)),
        ("name", "Donnez un nom à la campagne.", "Give the campaign a name.",
         lambda: access_services.review_campaign_start(actor=cast.dpo, name=" ",
                                                       due_at=timezone.now() + timedelta(days=30))),
        ("reason", "Indiquez le motif de la restauration (au moins 10 caractères).",
         "State the reason for the restore (at least 10 characters).",
         lambda: retention_services.restore_request_create(user=cast.dim, patient_id=cast.patient.pk,
                                                           reason="demande")),
    ]


@pytest.mark.parametrize("language", ["fr", "en"])
def test_each_refusal_is_in_the_active_language_under_the_same_field(cast, language):
    wrong = {}
    for field, french, english, call in _cases(cast):
        with translation.override(language), pytest.raises(ValidationError) as exc:
            call()
        expected = french if language == "fr" else english
        if exc.value.message_dict != {field: [expected]}:
            wrong[field] = exc.value.message_dict
    assert not wrong
    assert not Problem.objects.exists()


def test_a_refusal_the_trace_records_is_shown_in_french_and_recorded_in_english(cast):
    with translation.override("fr"), pytest.raises(PermissionDenied) as exc:
        retention_services.restore_request_create(user=cast.nurse, patient_id=cast.patient.pk,
                                                  reason="Recours du patient (art. L1111-7 CSP)")
    assert str(exc.value) == "fonction « infirmier·ère » : non autorisée à demander une restauration"
    event = audit_events(actor_id=cast.nurse.pk)[-1]
    assert (event.outcome, event.reason) == ("denied", "role nurse may not request a restore")


def test_the_archive_json_answers_in_the_uis_language(cast):
    client = verified_client(cast.dim)
    body = json.dumps({"patient_id": cast.patient.pk, "reason": "demande"})
    answers = {}
    for accept in ("", "en", "fr"):
        response = client.post("/retention/restore-requests", body, content_type="application/json",
                               headers={"Accept-Language": accept} if accept else {})
        assert response.status_code == 400, response.content[:300]
        answers[accept] = response.json()["errors"]
    french = "Indiquez le motif de la restauration (au moins 10 caractères)."
    assert answers[""] == answers["fr"] == {"reason": [french]}
    assert answers["en"] == {"reason": ["State the reason for the restore (at least 10 characters)."]}


def test_the_problem_form_shows_the_services_refusal_in_french(cast):
    response = verified_client(cast.physician).post(f"/patients/{cast.patient.pk}/problems/new/",
                                                    {"icd10": "hello", "label": "", "onset": "", "comment": ""})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Ce n’est pas un code CIM-10" in page and "Not a CIM-10 code" not in page
    assert "icd10" in response.context["form"].errors
    assert not Problem.objects.exists()

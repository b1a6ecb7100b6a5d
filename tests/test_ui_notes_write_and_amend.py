"""A member of the care team writes a note; its author amends it and the previous version stays visible."""

from __future__ import annotations

import pytest

from dpi.models import Amendment, ClinicalNote
from tests.helpers import audit_events
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db


def _write(client, patient, **fields):
    data = {"kind": "nursing", "title": "Tour de 14 h", "body": "Patient calme, constantes stables."} | fields
    return client.post(f"/patients/{patient.pk}/notes/new/", data)


def test_a_nurse_in_the_care_team_writes_a_note(cast):
    response = _write(verified_client(cast.nurse), cast.patient)
    assert response.status_code == 302 and response["Location"].endswith(f"/patients/{cast.patient.pk}/#notes")
    note = ClinicalNote.objects.get(patient=cast.patient)
    assert (note.author, note.encounter, note.kind, note.sensitive) == (cast.nurse, cast.encounter, "nursing", False)
    [event] = audit_events(actor_id=cast.nurse.pk, action="create")
    assert (event.outcome, event.category, event.resource_type) == ("allowed", "medical", "clinicalnote")


def test_a_nurse_cannot_write_a_sensitive_note(cast):
    _write(verified_client(cast.nurse), cast.patient, sensitive="on")
    assert ClinicalNote.objects.get(patient=cast.patient).sensitive is False  # the field is not offered


def test_a_physician_writes_a_sensitive_note_as_restricted_data(cast):
    _write(verified_client(cast.physician), cast.patient, sensitive="on")
    assert ClinicalNote.objects.get(patient=cast.patient).sensitive is True
    [event] = audit_events(actor_id=cast.physician.pk, action="create")
    assert event.category == "restricted"


def test_an_empty_note_is_refused_with_the_field_named(cast):
    response = _write(verified_client(cast.nurse), cast.patient, body="")
    assert response.status_code == 400
    assert 'id="id_body"' in response.content.decode() and 'class="errorlist' in response.content.decode()
    assert not ClinicalNote.objects.exists()


def test_the_author_amends_a_note_and_the_history_keeps_the_previous_text(cast):
    client = verified_client(cast.nurse)
    _write(client, cast.patient)
    note = ClinicalNote.objects.get()
    url = f"/patients/{cast.patient.pk}/notes/{note.pk}/"
    assert client.get(url + "amend/").status_code == 200
    response = client.post(url + "amend/", {"title": "Tour de 14 h", "body": "Patient agité à 15 h.",
                                            "reason": "heure corrigée"})
    assert response.status_code == 302
    note.refresh_from_db()
    assert (note.body, note.version) == ("Patient agité à 15 h.", 2)
    history = client.get(url).content.decode()
    assert "Patient calme, constantes stables." in history and "heure corrigée" in history
    assert Amendment.objects.get().amended_by == cast.nurse


def test_an_amendment_needs_a_reason(cast):
    client = verified_client(cast.nurse)
    _write(client, cast.patient)
    note = ClinicalNote.objects.get()
    response = client.post(f"/patients/{cast.patient.pk}/notes/{note.pk}/amend/",
                           {"title": "", "body": "changed", "reason": ""})
    assert response.status_code == 200 and 'class="errorlist' in response.content.decode()
    note.refresh_from_db()
    assert note.version == 1


def test_only_the_author_amends(cast):
    _write(verified_client(cast.nurse), cast.patient)
    note = ClinicalNote.objects.get()
    response = verified_client(cast.physician).post(f"/patients/{cast.patient.pk}/notes/{note.pk}/amend/",
                                                    {"title": "", "body": "changed", "reason": "mine now"})
    assert response.status_code == 403
    assert not Amendment.objects.exists()

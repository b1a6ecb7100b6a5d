import pytest
from django.core.exceptions import ValidationError

from dpi.models import ClinicalNote
from dpi.services import item_amend, item_history, note_create

pytestmark = pytest.mark.django_db


def test_amending_a_note_keeps_the_previous_version(cast):
    note = note_create(patient=cast.patient, author=cast.physician, body="Tension 14/9")
    item_amend(item=note, author=cast.physician, reason="erreur de saisie", body="Tension 13/8")
    item_amend(item=note, author=cast.nurse, reason="précision", body="Tension 13/8 au repos")
    note = ClinicalNote.objects.get(pk=note.pk)
    assert note.body == "Tension 13/8 au repos"
    assert note.version == 3
    history = item_history(note)
    assert [h["previous"]["body"] for h in history] == ["Tension 14/9", "Tension 13/8"]
    assert [h["reason"] for h in history] == ["erreur de saisie", "précision"]


def test_an_amendment_needs_a_reason(cast):
    note = note_create(patient=cast.patient, author=cast.physician, body="x")
    with pytest.raises(ValidationError) as exc:
        item_amend(item=note, author=cast.physician, reason=" ", body="y")
    assert "reason" in exc.value.message_dict
    assert ClinicalNote.objects.get(pk=note.pk).body == "x"


def test_author_and_patient_cannot_be_amended(cast):
    note = note_create(patient=cast.patient, author=cast.physician, body="x")
    with pytest.raises(ValidationError) as exc:
        item_amend(item=note, author=cast.physician, reason="r", author_id=cast.nurse.pk)
    assert "author_id" in exc.value.message_dict

"""Restriction of processing (art. 18 GDPR): the record is frozen while the dispute is checked (every write is
refused), then unfrozen when the request is answered."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from dpi.compliance.models import RightsRequest
from dpi.compliance.services import (
    rights_request_complete,
    rights_request_register,
    rights_restrict,
    rights_restriction_lift,
)
from dpi.models import ClinicalNote
from dpi.services import document_add, item_amend, note_create, observation_record
from patients.models import Patient
from patients.services import appointment_book, encounter_admit, patient_update
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


@pytest.fixture
def restriction(cast):
    return rights_request_register(patient=cast.patient, kind="restriction", identity_proof="CNI", by=cast.dpo,
                                   details="conteste l'exactitude du compte rendu du 12/03")


def test_freezing_blocks_every_change(cast, restriction, now):
    note = note_create(patient=cast.patient, author=cast.physician, body="avant")
    rights_restrict(request=restriction, by=cast.dpo)
    patient = Patient.objects.get(pk=cast.patient.pk)
    assert patient.frozen
    writes = [
        lambda: patient_update(patient=patient, address="ailleurs"),
        lambda: note_create(patient=patient, author=cast.physician, body="pendant"),
        lambda: item_amend(item=note, author=cast.physician, reason="r", body="modifié"),
        lambda: observation_record(patient=patient, author=cast.nurse, label="Pouls", effective_at=now, value=80),
        lambda: document_add(patient=patient, author=cast.physician, title="t", content=b"x"),
        lambda: encounter_admit(patient=patient, unit=cast.cardio),
        lambda: appointment_book(patient=patient, unit=cast.cardio, practitioner=cast.physician,
                                 start=now + timedelta(days=1), end=now + timedelta(days=1, hours=1)),
    ]
    for write in writes:
        with pytest.raises(ValidationError, match="frozen|gelé|limitation du traitement"):
            write()
    assert ClinicalNote.objects.get(pk=note.pk).body == "avant"
    assert ClinicalNote.objects.filter(patient=cast.patient).count() == 1
    (event,) = audit_events(basis="rights:restricted")
    assert event.details["frozen"] == {"old": False, "new": True} and event.actor_id == cast.dpo.pk
    assert RightsRequest.objects.get(pk=restriction.pk).status == RightsRequest.Status.IN_PROGRESS


def test_lifting_unfreezes_and_answers(cast, restriction):
    rights_restrict(request=restriction, by=cast.dpo)
    with pytest.raises(ValidationError, match="Lift the restriction"):
        rights_request_complete(request=restriction, by=cast.dpo, answer="fini")
    with pytest.raises(ValidationError):
        rights_restriction_lift(request=restriction, by=cast.dpo, answer=" ")
    r = rights_restriction_lift(request=restriction, by=cast.dpo,
                                answer="Le compte rendu est exact ; vous en avez été informé le 02/04.")
    assert r.status == RightsRequest.Status.COMPLETED
    assert not Patient.objects.get(pk=cast.patient.pk).frozen
    note_create(patient=cast.patient, author=cast.physician, body="après")  # writes work again
    assert audit_events(basis="rights:restriction_lifted")


def test_another_open_restriction_keeps_the_record_frozen(cast, restriction):
    second = rights_request_register(patient=cast.patient, kind="restriction", identity_proof="CNI", by=cast.dpo)
    rights_restrict(request=restriction, by=cast.dpo)
    rights_restrict(request=second, by=cast.dpo)
    rights_restriction_lift(request=restriction, by=cast.dpo, answer="vérifié")
    assert Patient.objects.get(pk=cast.patient.pk).frozen
    rights_restriction_lift(request=second, by=cast.dpo, answer="vérifié")
    assert not Patient.objects.get(pk=cast.patient.pk).frozen


def test_refusal_paths(cast, restriction):
    with pytest.raises(PermissionDenied):
        rights_restrict(request=restriction, by=cast.reception)
    assert not Patient.objects.get(pk=cast.patient.pk).frozen
    access = rights_request_register(patient=cast.patient, kind="access", identity_proof="CNI", by=cast.dpo)
    with pytest.raises(ValidationError):
        rights_restrict(request=access, by=cast.dpo)

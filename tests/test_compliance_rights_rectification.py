"""Rectification: administrative data through patients.services.patient_update (audit keeps old and new values,
identifiers masked), clinical data through dpi.services.item_amend (previous version kept), each by someone the
gate allows; refusals (wrong person, frozen record, clinical opinion) are recorded."""

import pytest
from django.core.exceptions import ValidationError

from access.gate import AccessDenied
from dpi.compliance.models import RightsRequest
from dpi.compliance.services import (
    rights_amend_clinical,
    rights_rectify_identity,
    rights_request_complete,
    rights_request_refuse,
    rights_request_register,
    rights_restrict,
)
from dpi.models import ClinicalNote
from dpi.services import item_history, note_create
from patients.models import Patient
from tests.helpers import audit_events
from tests.personas import coherent_ins

pytestmark = pytest.mark.django_db


@pytest.fixture
def request_(cast):
    return rights_request_register(patient=cast.patient, kind="rectification", identity_proof="CNI", by=cast.dpo,
                                   details="adresse erronée, INS à corriger")


def test_reception_corrects_identity_and_the_audit_keeps_old_and_new(cast, request_):
    old_ins = cast.patient.ins
    new_ins = coherent_ins(sex=cast.patient.sex, birth_date=cast.patient.birth_date, n=123)
    history = rights_rectify_identity(request=request_, by=cast.reception, address="3 rue des Lilas", ins=new_ins)
    patient = Patient.objects.get(pk=cast.patient.pk)
    assert patient.address == "3 rue des Lilas" and patient.ins == new_ins
    (event,) = audit_events(basis="rights:rectified")
    assert event.actor_id == cast.reception.pk and event.patient_id == cast.patient.pk
    assert event.details["changes"]["address"] == {"old": "", "new": "3 rue des Lilas"}
    assert event.details["changes"]["ins"] == {"old": "[encrypted value]", "new": "[encrypted value]"}
    assert old_ins not in str(event.details) and new_ins not in str(event.details)
    assert history == event.details["changes"]
    assert audit_events(basis="role", action="amend", resource_type="patient", patient_id=cast.patient.pk)
    done = rights_request_complete(request=request_, by=cast.dpo, answer="Adresse et INS corrigés.")
    assert done.status == RightsRequest.Status.COMPLETED


def test_the_dpo_cannot_edit_the_record_itself(cast, request_):
    with pytest.raises(AccessDenied):
        rights_rectify_identity(request=request_, by=cast.dpo, address="x")
    assert audit_events(actor_id=cast.dpo.pk, outcome="denied", action="amend", basis="deny:matrix")
    assert Patient.objects.get(pk=cast.patient.pk).address == ""


def test_invalid_data_is_refused_and_recorded(cast, request_):
    with pytest.raises(ValidationError):
        rights_rectify_identity(request=request_, by=cast.reception, ins="123")
    (event,) = audit_events(basis="rights:rectification_refused")
    assert event.outcome == "denied" and "ins" in event.details["fields"]


def test_a_clinician_of_the_care_team_amends_clinical_data_with_history(cast, request_):
    note = note_create(patient=cast.patient, author=cast.physician, body="Allergie à la pénicilline")
    rights_amend_clinical(request=request_, by=cast.physician, item=note, reason="le patient n'est pas allergique",
                          body="Pas d'allergie connue (correction à la demande du patient)")
    note = ClinicalNote.objects.get(pk=note.pk)
    assert note.version == 2 and note.body.startswith("Pas d'allergie")
    (previous,) = item_history(note)
    assert previous["previous"]["body"] == "Allergie à la pénicilline"
    assert previous["reason"].startswith(f"rights request #{request_.pk}:")
    (event,) = audit_events(basis="rights:amended")
    assert event.details["fields"] == ["body"] and "pénicilline" not in str(event.details)


def test_clinicians_outside_the_care_team_cannot_amend(cast, request_):
    note = note_create(patient=cast.patient, author=cast.physician, body="texte")
    for user in (cast.other_physician, cast.reception, cast.dpo):
        with pytest.raises(AccessDenied):
            rights_amend_clinical(request=request_, by=user, item=note, reason="r", body="autre")
    assert ClinicalNote.objects.get(pk=note.pk).body == "texte"


def test_a_frozen_record_cannot_be_rectified(cast, request_):
    note = note_create(patient=cast.patient, author=cast.physician, body="avant gel")
    restriction = rights_request_register(patient=cast.patient, kind="restriction", identity_proof="CNI", by=cast.dpo)
    rights_restrict(request=restriction, by=cast.dpo)
    with pytest.raises(ValidationError, match="frozen|gelé|limitation du traitement"):
        rights_rectify_identity(request=request_, by=cast.reception, address="ailleurs")
    assert audit_events(basis="rights:rectification_refused", outcome="denied")
    with pytest.raises(ValidationError, match="frozen|gelé|limitation du traitement"):
        rights_amend_clinical(request=request_, by=cast.physician, item=note, reason="r", body="après")
    assert audit_events(basis="rights:amendment_refused", outcome="denied")


def test_a_clinical_opinion_is_not_rectified_the_refusal_says_why(cast, request_):
    r = rights_request_refuse(request=request_, by=cast.dpo,
                              reason="Le diagnostic est une appréciation médicale, non une donnée inexacte ; "
                                     "votre désaccord est versé au dossier.")
    assert r.status == RightsRequest.Status.REFUSED and "CNIL" in r.answer and r.answered_at
    assert audit_events(basis="rights:refused", patient_id=cast.patient.pk)
    with pytest.raises(ValidationError):
        rights_request_refuse(request=r, by=cast.dpo, reason="again")
    with pytest.raises(ValidationError):
        rights_rectify_identity(request=r, by=cast.reception, address="x")

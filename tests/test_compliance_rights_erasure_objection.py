"""Erasure and objection: the medical record is a legal obligation (R1112-7 CSP; GDPR art. 17(3)(b)(c), 21), so
the request is refused with the legal reason and the remedies, and nothing is deleted."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from dpi.compliance.models import RightsRequest
from dpi.compliance.services import rights_answer_legal_obligation, rights_request_register
from dpi.models import ClinicalNote
from dpi.services import note_create
from patients.models import Patient
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


def test_erasure_is_refused_with_the_legal_reason(cast):
    note_create(patient=cast.patient, author=cast.physician, body="à conserver")
    r = rights_request_register(patient=cast.patient, kind="erasure", identity_proof="CNI", by=cast.dpo)
    r = rights_answer_legal_obligation(request=r, by=cast.dpo)
    assert r.status == RightsRequest.Status.REFUSED and r.answered_at and r.handled_by == cast.dpo
    assert "R1112-7" in r.answer and "17(3)(b)" in r.answer and "17(3)(c)" in r.answer and "CNIL" in r.answer
    assert "kept at least until" in r.answer
    (event,) = audit_events(basis="rights:refused_legal_obligation")
    assert event.patient_id == cast.patient.pk and event.details["status"] == "refused"
    assert "R1112-7" in event.details["legal_basis"] and event.details["kept_through"]
    assert Patient.objects.filter(pk=cast.patient.pk).exists()
    assert ClinicalNote.objects.filter(patient=cast.patient).count() == 1


def test_objection_is_refused_with_the_legal_reason(cast):
    r = rights_request_register(patient=cast.patient, kind="objection", identity_proof="CNI", by=cast.dim)
    r = rights_answer_legal_obligation(request=r, by=cast.dim, note="Nous avons noté votre opposition à la "
                                                                    "réutilisation pour la recherche.")
    assert r.status == RightsRequest.Status.REFUSED
    assert "art. 21" in r.answer and "6(1)(c)" in r.answer and "recherche" in r.answer
    assert "kept at least until" not in r.answer


def test_refusal_paths(cast):
    r = rights_request_register(patient=cast.patient, kind="erasure", identity_proof="CNI", by=cast.dpo)
    with pytest.raises(PermissionDenied):
        rights_answer_legal_obligation(request=r, by=cast.physician)
    access = rights_request_register(patient=cast.patient, kind="access", identity_proof="CNI", by=cast.dpo)
    with pytest.raises(ValidationError):
        rights_answer_legal_obligation(request=access, by=cast.dpo)
    rights_answer_legal_obligation(request=r, by=cast.dpo)
    with pytest.raises(ValidationError, match="already refused"):
        rights_answer_legal_obligation(request=r, by=cast.dpo)

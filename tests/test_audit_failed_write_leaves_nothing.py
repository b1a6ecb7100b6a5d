"""A write that fails leaves neither half-written data nor an event; one that succeeds commits both, chained."""

import uuid

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction

from access import gate
from access.policy import Action, Category
from audit.context import access_context
from audit.models import AccessEvent, ChainLink
from audit.services import chain_seal
from dpi.models import ClinicalNote
from dpi.services import note_create
from tests.test_audit_support import sql

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_permission_cache(monkeypatch):
    import access.care_team

    monkeypatch.setattr(access.care_team, "_perm_id", None)  # permissions are recreated after each flush


def _write(cast, *, second_body: str) -> None:
    with transaction.atomic():
        gate.require(cast.physician, patient_id=cast.patient.pk, category=Category.MEDICAL, action=Action.CREATE,
                     resource_type="clinicalnote")
        note_create(patient=cast.patient, author=cast.physician, body="Douleur thoracique, ECG normal.",
                    encounter=cast.encounter)
        note_create(patient=cast.patient, author=cast.physician, body=second_body, encounter=cast.encounter)


def test_a_failed_write_leaves_no_event_no_link_and_no_data(cast):
    links_before = sql("SELECT count(*) FROM audit_chainlink")[0][0]
    request_id = uuid.uuid4().hex
    with access_context(request_id=request_id), pytest.raises(ValidationError):
        _write(cast, second_body="")  # the second note is invalid: the whole write fails
    assert not ClinicalNote.objects.filter(patient=cast.patient).exists()
    assert not AccessEvent.objects.filter(request_id=request_id).exists()
    chain_seal()
    assert sql("SELECT count(*) FROM audit_chainlink")[0][0] == links_before


def test_a_successful_write_commits_data_and_its_chained_event(cast):
    request_id = uuid.uuid4().hex
    with access_context(request_id=request_id):
        _write(cast, second_body="Contrôle à 6 heures.")
    assert ClinicalNote.objects.filter(patient=cast.patient).count() == 2
    event = AccessEvent.objects.get(request_id=request_id)
    assert (event.action, event.outcome, event.patient_id) == ("create", "allowed", cast.patient.pk)
    chain_seal()
    assert ChainLink.objects.filter(event_id=event.pk).exists()

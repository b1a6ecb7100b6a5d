"""An allowed read's access event is written in the read's own transaction (prepared INSERT, issue #18): a read
rolled back leaves neither event nor chain link, a read committed leaves its event linked into the chain."""

import uuid

import pytest
from django.db import transaction

from access import gate
from access.policy import Action, Category
from audit.context import access_context
from audit.models import AccessEvent, ChainLink
from audit.services import chain_seal
from patients.selectors import patient_by_id
from tests.test_audit_support import sql

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_permission_cache(monkeypatch):
    import access.care_team

    monkeypatch.setattr(access.care_team, "_perm_id", None)  # permissions are recreated after each flush


def _read(cast) -> None:
    gate.require(cast.physician, patient_id=cast.patient.pk, category=Category.MEDICAL, action=Action.VIEW,
                 resource_type="chart", resource_id=cast.patient.pk)
    assert patient_by_id(cast.patient.pk).pk == cast.patient.pk


def test_a_read_rolled_back_leaves_no_event_and_no_link(cast):
    links_before = sql("SELECT count(*) FROM audit_chainlink")[0][0]
    request_id = uuid.uuid4().hex
    with access_context(request_id=request_id), pytest.raises(RuntimeError), transaction.atomic():
        _read(cast)
        raise RuntimeError("the page failed after the decision")
    assert not AccessEvent.objects.filter(request_id=request_id).exists()
    chain_seal()
    assert sql("SELECT count(*) FROM audit_chainlink")[0][0] == links_before


def test_a_read_committed_leaves_its_chained_event(cast):
    request_id = uuid.uuid4().hex
    with access_context(request_id=request_id), transaction.atomic():
        _read(cast)
    event = AccessEvent.objects.get(request_id=request_id)
    assert (event.action, event.outcome, event.basis[:5]) == ("view", "allowed", "care:")
    chain_seal()
    assert ChainLink.objects.filter(event_id=event.pk).exists()

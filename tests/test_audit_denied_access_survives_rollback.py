"""A refused access keeps its event although the request that asked ends in 403 and its transaction rolls back;
the allowed access recorded in that same transaction disappears with it."""

import uuid

import pytest
from django.db import transaction

from access import gate
from access.policy import Action, Category
from audit.context import access_context
from audit.models import AccessEvent, ChainLink
from audit.services import chain_seal

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_permission_cache(monkeypatch):
    import access.care_team

    monkeypatch.setattr(access.care_team, "_perm_id", None)  # permissions are recreated after each flush


def test_denied_event_is_committed_even_though_the_transaction_rolls_back(cast):
    request_id = str(uuid.uuid4())
    with access_context(request_id=request_id, channel="web"), pytest.raises(gate.AccessDenied):
        with transaction.atomic():
            gate.require(cast.physician, patient_id=cast.patient.pk, category=Category.MEDICAL,
                         action=Action.VIEW, resource_type="patient", resource_id=cast.patient.pk)
            gate.require(cast.other_physician, patient_id=cast.patient.pk, category=Category.MEDICAL,
                         action=Action.VIEW, resource_type="patient", resource_id=cast.patient.pk)
    events = list(AccessEvent.objects.filter(request_id=request_id))
    assert [(e.actor_username, e.outcome, e.basis) for e in events] == [
        ("dr.other", "denied", "deny:no_care_relationship")]
    chain_seal()
    assert ChainLink.objects.filter(event_id=events[0].pk).exists()


def test_denied_page_answers_403_and_keeps_the_event(cast, client):
    from tests.test_audit_support import verified_client

    request_id = str(uuid.uuid4())
    response = verified_client(cast.physician).get(
        f"/audit/patients/{cast.patient.pk}/access-report.csv", HTTP_X_REQUEST_ID=request_id)
    assert response.status_code == 403
    event = AccessEvent.objects.get(request_id=request_id)
    assert (event.actor_username, event.action, event.outcome) == ("dr.house", "export", "denied")

"""Changes of rights (role granted, membership added, account disabled...) are events too."""

import pytest

from audit.services import rights_change_record
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


def test_rights_change_record_writes_a_permission_change_event(cast):
    rights_change_record(cast.dpo, cast.nurse, "account_disable", {"old": {"is_active": True},
                                                                   "new": {"is_active": False}},
                         actor_role="dpo")
    [event] = audit_events(action="permission_change", actor_id=cast.dpo.pk)
    assert (event.outcome, event.basis, event.resource_type, event.resource_id) == (
        "allowed", "account_disable", "user", str(cast.nurse.pk))
    assert event.details["subject_username"] == "nurse.joy"
    assert event.details["new"] == {"is_active": False}

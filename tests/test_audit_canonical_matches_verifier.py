"""The bytes hashed at commit (SQL function audit_event_canonical) are the bytes verify_audit rebuilds, whatever
the session's encoding or time zone."""

import pytest
from django.db import transaction

from audit.services import event_record
from audit.verification import CANONICAL_SQL
from tests.test_audit_support import sql

pytestmark = pytest.mark.django_db


def _both(event_id: int) -> tuple[bytes, bytes]:
    row = sql(f"SELECT audit_event_canonical(e), {CANONICAL_SQL} FROM audit_accessevent e WHERE e.id = %s",  # noqa: S608
              [event_id])[0]
    return bytes(row[0]), bytes(row[1])


def test_stored_function_and_verifier_agree():
    from audit.context import access_context

    with access_context(ip="2001:db8::1", user_agent="Navigateur « été » ✓", request_id="r-1"):
        event = event_record(action="view", outcome="allowed", actor_role="infirmière", reason="Zoë's chart",
                             details={"b": [1, 2.5, None], "a": {"é": "ü"}}, patient_id=12, category="medical")
    stored, rebuilt = _both(event.pk)
    assert stored == rebuilt
    assert "Zoë's chart".encode() in stored and "infirmière".encode() in stored
    with transaction.atomic():
        sql("SET LOCAL TimeZone = 'Pacific/Auckland'")
        sql("SET LOCAL client_encoding = 'LATIN1'")
        assert bytes(sql("SELECT audit_event_canonical(e) FROM audit_accessevent e WHERE e.id = %s",
                         [event.pk])[0][0]) == stored

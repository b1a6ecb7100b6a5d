"""The access trace is readable through the API by the DPO only, and reading it is itself recorded."""

import pytest

from dpi.api.testing import bearer, make_api_client, request_id, verified_login
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


def test_the_dpo_reads_a_patients_access_events_and_that_is_recorded(cast, client):
    _, token = make_api_client()
    marker = request_id()
    client.get(f"/api/patients/{cast.patient.pk}/", headers=bearer(token, **{"X-Request-ID": marker}))
    verified_login(client, cast.dpo)
    rid = request_id()
    response = client.get(f"/api/audit-events/?patient={cast.patient.pk}&page_size=200", headers={"X-Request-ID": rid})
    assert response.status_code == 200
    assert marker in {e["request_id"] for e in response.json()["results"]}
    [reading] = audit_events(request_id=rid)
    assert (reading.actor_username, reading.resource_type, reading.outcome) == ("the.dpo", "accessevent", "allowed")
    assert reading.patient_id == cast.patient.pk


@pytest.mark.parametrize("who", ["physician", "dim"])
def test_other_staff_are_refused(cast, client, who):
    verified_login(client, getattr(cast, who))
    rid = request_id()
    assert client.get("/api/audit-events/", headers={"X-Request-ID": rid}).status_code == 403
    [event] = audit_events(request_id=rid)
    assert (event.outcome, event.basis) == ("denied", "deny:role")


def test_an_integration_client_is_refused_even_with_the_audit_scope(cast, client):
    _, token = make_api_client(scopes=["audit:view"])
    assert client.get("/api/audit-events/", headers=bearer(token)).status_code == 403
    assert client.get("/fhir/AuditEvent", headers=bearer(token)).status_code == 403


def test_a_client_acting_for_the_dpo_is_refused_even_with_the_audit_scope(cast, client):
    """The DPO's own second factor cannot be lent to a client: acting on her behalf is refused, scope or not
    (issue #13; the privileged-roles test covers the other privileged accounts)."""
    _, without = make_api_client(on_behalf=True, scopes=["administrative:view"])
    _, with_scope = make_api_client(on_behalf=True, scopes=["audit:view"])
    assert client.get("/api/audit-events/", headers=bearer(without, **{"X-On-Behalf-Of": "the.dpo"})).status_code == 403
    assert (
        client.get("/api/audit-events/", headers=bearer(with_scope, **{"X-On-Behalf-Of": "the.dpo"})).status_code == 403
    )

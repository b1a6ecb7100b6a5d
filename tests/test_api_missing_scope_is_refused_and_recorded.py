"""A client whose token lacks the scope of a request gets 403, and the refusal is an access event."""

import pytest

from dpi.api.services import api_token_issue
from dpi.api.testing import bearer, make_api_client, post_json, request_id
from dpi.models import Observation
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


def test_client_without_the_scope_gets_403_and_an_audit_event(cast, client):
    api, token = make_api_client(scopes=["administrative:view", "administrative:search"])
    rid = request_id()
    response = client.get(
        f"/api/observations/?patient={cast.patient.pk}", headers=bearer(token, **{"X-Request-ID": rid})
    )
    assert response.status_code == 403
    assert "medical:view" in response.json()["detail"]
    [event] = audit_events(request_id=rid)
    assert (event.outcome, event.basis, event.category, event.action) == ("denied", "deny:scope", "medical", "view")
    assert event.channel == "api"
    assert event.actor_username == api.user.username
    assert event.details["scope"] == "medical:view"
    assert event.details["api_client"] == api.name


def test_a_token_narrower_than_its_client_is_held_to_its_own_scopes(cast, client):
    api, _ = make_api_client(scopes=["medical:view", "medical:create"])
    _, narrow = api_token_issue(actor=None, client=api, scopes=["medical:view"])
    rid = request_id()
    body = {"patient": cast.patient.pk, "label": "Glucose", "value": "5.1", "effective_at": "2025-03-01T08:00:00Z"}
    response = post_json(client, "/api/observations/", body, **bearer(narrow, **{"X-Request-ID": rid}))
    assert response.status_code == 403
    assert not Observation.objects.filter(patient=cast.patient).exists()
    [event] = audit_events(request_id=rid)
    assert event.basis == "deny:scope" and event.details["scope"] == "medical:create"


def test_fhir_refuses_a_missing_scope_the_same_way(cast, client):
    _, token = make_api_client(scopes=["administrative:view"])
    rid = request_id()
    response = client.get(
        f"/fhir/Observation?patient={cast.patient.pk}", headers=bearer(token, **{"X-Request-ID": rid})
    )
    assert response.status_code == 403
    assert response["Content-Type"].startswith("application/fhir+json")
    assert response.json()["issue"][0]["code"] == "forbidden"
    [event] = audit_events(request_id=rid)
    assert event.basis == "deny:scope"

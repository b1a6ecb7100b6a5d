"""Finding 3 of issue 13: an integration account is token-only: no web, admin or session-API sign-in, whatever
its one-time codes; the gate refuses it any interactive use."""

from __future__ import annotations

import pytest
from django.test import Client

from access import gate
from access.policy import Action, Category, Role
from dpi.api.testing import bearer, make_api_client, request_id
from tests.helpers import audit_events
from tests.personas import PASSWORD, make_user
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def integration(db):
    return make_user("demo.integration", Role.INTEGRATION)


def test_password_sign_in_is_refused(integration, cast):
    client = Client()
    response = client.post("/accounts/login/", {"username": "demo.integration", "password": PASSWORD})
    assert "_auth_user_id" not in client.session
    assert response.status_code in (200, 403)
    assert audit_events(actor_id=integration.pk, action="login_failure", basis="token_only")


def test_a_verified_session_reads_nothing_and_is_ended(integration, cast):
    client = verified_client(integration)  # as if signed in with a voluntary one-time code
    for path in (f"/api/observations/?patient={cast.patient.pk}", f"/fhir/Patient/{cast.patient.pk}",
                 f"/api/patients/{cast.patient.pk}/"):
        rid = request_id()
        response = client.get(path, HTTP_X_REQUEST_ID=rid)
        assert response.status_code == 401, path
        assert [e.basis for e in audit_events(request_id=rid) if e.outcome == "denied"] == ["deny:token_only"]
        client = verified_client(integration)
    response = client.get("/admin/")
    assert response.status_code == 302 and "_auth_user_id" not in client.session


def test_the_gate_refuses_it_without_a_token(integration, cast):
    decision = gate.decide(integration, patient_id=cast.patient.pk, category=Category.MEDICAL, action=Action.VIEW)
    assert (decision.allowed, decision.basis) == (False, "deny:token_only")
    gate.mark_token_principal(integration)
    assert gate.decide(integration, patient_id=cast.patient.pk, category=Category.MEDICAL, action=Action.VIEW)


def test_its_token_still_works(cast):
    _, token = make_api_client()
    response = Client().get(f"/api/observations/?patient={cast.patient.pk}", headers=bearer(token))
    assert response.status_code == 200

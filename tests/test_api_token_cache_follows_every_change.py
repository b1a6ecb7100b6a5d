"""Verified tokens are cached per process (issue #18), yet every change of what a token stands for applies to the
very next request: revocation, narrowed scopes, a client switched off, a service account disabled. A changed
entry is dropped, not served (access.authn.credentials)."""

import pytest

from access import services as access_services
from dpi.api.authentication import verified_tokens
from dpi.api.models import ApiToken
from dpi.api.services import api_token_revoke
from dpi.api.testing import bearer, make_api_client

pytestmark = pytest.mark.django_db


def _cached(client, url: str, token: str) -> None:
    """Two answered calls: the second one served from the cache."""
    assert client.get(url, headers=bearer(token)).status_code == 200
    assert client.get(url, headers=bearer(token)).status_code == 200
    assert verified_tokens.holds(token)


def test_a_revoked_token_is_refused_at_once_despite_the_cache(cast, client):
    api, token = make_api_client()
    url = f"/fhir/Patient/{cast.patient.pk}"
    _cached(client, url, token)
    api_token_revoke(actor=None, token=ApiToken.objects.get(client=api))
    assert client.get(url, headers=bearer(token)).status_code == 401


def test_narrowing_a_cached_clients_scopes_applies_to_the_next_call(cast, client):
    api, token = make_api_client(scopes=["administrative:view", "medical:view"])
    url = f"/api/patients/{cast.patient.pk}/"
    _cached(client, url, token)
    api.scopes = ["medical:view"]
    api.save(update_fields=["scopes"])
    assert client.get(url, headers=bearer(token)).status_code == 403


def test_a_client_switched_off_is_refused_at_once(cast, client):
    api, token = make_api_client()
    url = f"/fhir/Patient/{cast.patient.pk}"
    _cached(client, url, token)
    api.is_active = False
    api.save(update_fields=["is_active"])
    assert client.get(url, headers=bearer(token)).status_code == 401


def test_a_disabled_service_account_is_refused_at_once(cast, client):
    # account_disable changes the account with a queryset UPDATE (no model signal): it moves the generation itself.
    api, token = make_api_client()
    url = f"/fhir/Patient/{cast.patient.pk}"
    _cached(client, url, token)
    access_services.account_disable(actor=None, user=api.user, reason="compromised integration host")
    assert client.get(url, headers=bearer(token)).status_code == 401


def test_a_wrong_secret_with_a_cached_prefix_is_still_refused(cast, client):
    _, token = make_api_client()
    url = f"/fhir/Patient/{cast.patient.pk}"
    _cached(client, url, token)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert client.get(url, headers=bearer(forged)).status_code == 401

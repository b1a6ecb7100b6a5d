"""Behind the load balancer of a multi-node deployment REMOTE_ADDR is the balancer's: an access event records
the client's address from X-Forwarded-For when (and only when) the balancer is listed in DPI_TRUSTED_PROXIES."""

import pytest

from dpi.api.testing import bearer, make_api_client, request_id
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db

BALANCER = "10.0.0.2"
CLIENT = "198.51.100.7"


def _recorded_ip(client, cast, token) -> str:
    rid = request_id()
    response = client.get(f"/api/patients/{cast.patient.pk}/", REMOTE_ADDR=BALANCER,
                          HTTP_X_FORWARDED_FOR=f"203.0.113.99, {CLIENT}",
                          headers=bearer(token, **{"X-Request-ID": rid}))
    assert response.status_code == 200
    [event] = audit_events(request_id=rid)
    return event.ip


def test_the_client_behind_a_trusted_balancer_is_recorded(client, cast, settings):
    settings.DPI_TRUSTED_PROXIES = [BALANCER]
    _, token = make_api_client()
    assert _recorded_ip(client, cast, token) == CLIENT


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(client, cast, settings):
    settings.DPI_TRUSTED_PROXIES = []
    _, token = make_api_client()
    assert _recorded_ip(client, cast, token) == BALANCER

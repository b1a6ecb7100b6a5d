"""Each client has a request rate (Redis counters); past it, 429 with Retry-After."""

import pytest

from dpi.api.testing import bearer, make_api_client

pytestmark = pytest.mark.django_db


def test_a_client_over_its_rate_gets_429(cast, client):
    _, token = make_api_client(rate_per_minute=2)
    codes = [client.get(f"/api/patients/{cast.patient.pk}/", headers=bearer(token)).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    throttled = client.get(f"/fhir/Patient/{cast.patient.pk}", headers=bearer(token))
    assert throttled.status_code == 429
    assert int(throttled["Retry-After"]) > 0
    assert throttled.json()["issue"][0]["code"] == "throttled"


def test_clients_have_separate_counters(cast, client):
    _, busy = make_api_client(rate_per_minute=1)
    _, other = make_api_client(rate_per_minute=1)
    url = f"/api/patients/{cast.patient.pk}/"
    assert client.get(url, headers=bearer(busy)).status_code == 200
    assert client.get(url, headers=bearer(busy)).status_code == 429
    assert client.get(url, headers=bearer(other)).status_code == 200

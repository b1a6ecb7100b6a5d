"""Redis down: the REST and FHIR APIs still answer (the rate limit counts in the process, with a warning)
instead of a 500 for every hospital system; sign-in attempt limits do not depend on Redis (PostgreSQL)."""

import logging

import pytest

from dpi.api.testing import bearer, make_api_client
from tests.ops_support import ScratchRedis

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_stopped(settings, tmp_path):
    redis = ScratchRedis(tmp_path).start()
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": redis.url}}
    redis.stop()
    return redis


def test_the_api_answers_and_still_limits_the_rate_with_redis_stopped(cast, client, redis_stopped, caplog):
    _, token = make_api_client(rate_per_minute=2)
    with caplog.at_level(logging.WARNING, logger="dpi.api.throttling"):
        codes = [client.get(f"/api/patients/{cast.patient.pk}/", headers=bearer(token)).status_code
                 for _ in range(3)]
    assert codes == [200, 200, 429]
    assert "Redis unavailable" in caplog.text
    _, other = make_api_client(rate_per_minute=5)
    response = client.get(f"/fhir/Patient/{cast.patient.pk}", headers=bearer(other))
    assert response.status_code == 200 and response.json()["resourceType"] == "Patient"


def test_sign_in_attempt_limits_stay_enforced_with_redis_stopped(cast, client, redis_stopped, settings):
    settings.DPI_LOGIN_MAX_FAILURES = 2
    settings.DPI_LOGIN_DELAY_SECONDS = 0
    user = cast.physician
    for _ in range(2):
        client.post("/accounts/login/", {"username": user.username, "password": "wrong-password"})
    user.refresh_from_db()
    from access.authn import throttle

    assert throttle.account_verdict(user).locked

"""The rate limit's round trip goes through a connection each worker thread keeps for it (issue #18): when Redis
restarts under it (the connection closed by the server, the counting script forgotten), the next call still
answers, is still counted, and a revoked token is still refused on the very next call."""

import pytest

from dpi import redis_client
from dpi.api.models import ApiToken
from dpi.api.services import api_token_revoke
from dpi.api.testing import bearer, make_api_client
from tests.ops_support import ScratchRedis

pytestmark = pytest.mark.django_db


@pytest.fixture
def scratch_redis(settings, tmp_path, monkeypatch):
    # One rate window for the whole test, whatever the clock: the counts below do not straddle a minute.
    for module in ("dpi.api.authentication", "dpi.api.throttling"):
        monkeypatch.setattr(f"{module}.rate_window", lambda now=None: 1)
    redis = ScratchRedis(tmp_path).start()
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": redis.url}}
    yield redis
    redis.stop()


def test_calls_are_counted_across_a_redis_restart(cast, client, scratch_redis):
    _, token = make_api_client(rate_per_minute=3)
    url = f"/fhir/Patient/{cast.patient.pk}"
    assert [client.get(url, headers=bearer(token)).status_code for _ in range(2)] == [200, 200]
    kept = redis_client._lane(redis_client.client())
    scratch_redis.stop()
    scratch_redis.start()  # same port, empty: the kept connection is dead and the script unknown
    codes = [client.get(url, headers=bearer(token)).status_code for _ in range(5)]
    # The new Redis starts the counter again: three calls, then the limit.
    assert codes == [200, 200, 200, 429, 429]
    assert redis_client._lane(redis_client.client()) is kept  # reconnected, not replaced


def test_a_revoked_token_is_refused_on_the_next_call_after_a_restart(cast, client, scratch_redis):
    api, token = make_api_client()
    url = f"/fhir/Patient/{cast.patient.pk}"
    assert client.get(url, headers=bearer(token)).status_code == 200
    scratch_redis.stop()
    scratch_redis.start()
    assert client.get(url, headers=bearer(token)).status_code == 200
    api_token_revoke(actor=None, token=ApiToken.objects.get(client=api))
    assert client.get(url, headers=bearer(token)).status_code == 401

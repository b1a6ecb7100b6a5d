"""``/healthz`` says the process runs; ``/readyz`` answers 503 when PostgreSQL, Redis or the keyring is
unavailable; during a database outage pages answer 503 with a plain French message, not a 500.

The outages are real: a scratch redis-server and a scratch PostgreSQL cluster are started, then stopped (the
shared servers are never touched). The database outage is seen by dpi served by gunicorn in its own process.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client

from dpi import crypto
from tests.ops_support import ScratchPostgres, ScratchRedis, gunicorn, http_get, server_env


@pytest.fixture
def redis_stopped(settings, tmp_path):
    """Django's cache pointed at a Redis that ran and was then stopped."""
    redis = ScratchRedis(tmp_path).start()
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": redis.url}}
    redis.stop()
    return redis


def test_liveness_and_readiness_answer_when_everything_runs(db):
    client = Client()
    assert client.get("/healthz").content == b"ok"
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"ready": True, "checks": {"database": "ok", "redis": "ok", "keyring": "ok"}}


def test_readiness_fails_with_redis_stopped_while_liveness_still_answers(db, redis_stopped):
    client = Client()
    assert client.get("/healthz").status_code == 200
    response = client.get("/readyz")
    assert response.status_code == 503 and response["Retry-After"]
    checks = response.json()["checks"]
    assert checks["database"] == "ok" and checks["keyring"] == "ok"
    assert checks["redis"] == "ConnectionError"


def test_readiness_fails_when_the_keyring_cannot_be_loaded(db, settings, tmp_path, monkeypatch):
    broken = tmp_path / "keyring.json"
    broken.write_text("{}")
    settings.DPI_KEYRING_FILE = broken
    monkeypatch.setattr(crypto, "_keyring", None)  # as in a process starting now; restored afterwards
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["keyring"] == "KeyringError"


@pytest.mark.slow
def test_with_postgres_stopped_readiness_fails_and_pages_answer_503_in_french(tmp_path):
    postgres = ScratchPostgres().start()
    try:
        env = server_env(tmp_path, DATABASE_URL=postgres.url)
        with gunicorn(env) as base:
            status, body, _ = http_get(base + "/readyz")
            assert status == 200, body
            postgres.stop()

            status, body, headers = http_get(base + "/readyz")
            assert status == 503
            assert json.loads(body)["checks"]["database"] == "OperationalError"
            assert http_get(base + "/healthz")[0] == 200  # the process itself is alive: no restart loop

            # A signed-in user's next page: the session cannot be read.
            status, body, headers = http_get(base + "/", headers={"Cookie": "sessionid=" + "a1b2c3d4" * 4})
            assert status == 503
            assert "base de données injoignable" in body
            assert headers["Content-Type"].startswith("text/plain") and headers["Retry-After"]

            status, body, _ = http_get(base + "/api/patients/", headers={"Authorization": "Bearer x.y"})
            assert status == 503 and "unavailable" in json.loads(body)["detail"]  # the API's default: English
            status, body, _ = http_get(base + "/api/patients/", headers={"Authorization": "Bearer x.y",
                                                                         "Accept-Language": "fr"})
            assert status == 503 and "indisponible" in json.loads(body)["detail"]
    finally:
        postgres.remove()

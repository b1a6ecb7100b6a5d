"""The app runs on real PostgreSQL and Redis, and a real Celery worker answers."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.cache import cache
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
def test_database_is_postgresql():
    assert connection.vendor == "postgresql"
    with connection.cursor() as cur:
        cur.execute("SHOW server_version_num")
        assert int(cur.fetchone()[0]) >= 150000


def test_cache_is_redis():
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache

    assert isinstance(caches["default"], RedisCache)
    cache.set("dpi-test-key", "value", 5)
    assert cache.get("dpi-test-key") == "value"
    assert cache._cache.get_client().ping()


def test_celery_worker_answers_a_ping():
    from dpi.celery import app

    env = dict(os.environ)
    worker = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "dpi",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "WARNING",
            "--hostname",
            f"test-{os.getpid()}@localhost",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        replies = None
        for _ in range(60):
            replies = app.control.ping(timeout=1.0, destination=[f"test-{os.getpid()}@localhost"])
            if replies:
                break
            time.sleep(0.5)
        assert replies, "no Celery worker answered"
    finally:
        worker.terminate()
        worker.wait(timeout=20)

"""A Celery worker SIGKILLed in the middle of a long run: the broker gives the unacknowledged task back after
the visibility timeout, a new worker runs it to the end, and the stale-run sweep marks the dead run failed
(its heartbeat stopped) instead of leaving it "running" forever.

Real worker processes (prefork, as in production), a real Redis (a scratch redis-server), the test database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from celery import Celery
from django.conf import settings
from django.db import connection

from dpi import jobs
from dpi.models import JobRun
from tests.ops_support import ROOT, ScratchRedis, url_of_test_database, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

VISIBILITY_TIMEOUT = 3


def _worker(redis: ScratchRedis, tmp_path, name: str) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update({"DATABASE_URL": url_of_test_database(), "REDIS_URL": redis.url, "DPI_VAR_DIR": str(tmp_path / "var"),
                "DPI_KEYRING_FILE": str(settings.DPI_KEYRING_FILE),
                "DPI_CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT), "DPI_JOB_HEARTBEAT_SECONDS": "1",
                "DPI_JOB_STALE_SECONDS": "3"})
    log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "dpi", "worker", "--include", "tests.worker_tasks", "--pool",
         "prefork", "--concurrency", "1", "--loglevel", "INFO", "-n", f"{name}@%h", "--without-heartbeat",
         "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _runs(task_id: str) -> list[JobRun]:
    return list(JobRun.objects.filter(task_id=task_id).order_by("pk"))


def test_a_killed_workers_task_is_redelivered_and_its_run_marked_failed(tmp_path, settings):
    redis = ScratchRedis(tmp_path).start()
    release = tmp_path / "release"
    sender = Celery("sender", broker=redis.url)
    first = second = None
    try:
        first = _worker(redis, tmp_path, "first")
        result = sender.send_task("tests.worker_tasks.long_run", args=[str(release)])
        task_id = result.id
        wait_for(lambda: _runs(task_id), timeout=90, interval=0.3, what="the first worker to start the run")
        [dying] = _runs(task_id)
        assert dying.status == JobRun.Status.RUNNING
        wait_for(lambda: JobRun.objects.get(pk=dying.pk).heartbeat_at > dying.heartbeat_at, timeout=10,
                 what="a heartbeat")

        os.killpg(first.pid, signal.SIGKILL)  # the whole worker: main process and its pool child
        first.wait(10)

        settings.DPI_JOB_STALE_SECONDS = 3
        wait_for(lambda: jobs.stale_runs_fail() == 1, timeout=15, interval=0.5, what="the sweep to see the run")
        dying.refresh_from_db()
        assert dying.status == JobRun.Status.FAILED and "no heartbeat" in dying.message

        release.touch()  # the redelivered run may finish at once
        second = _worker(redis, tmp_path, "second")
        wait_for(lambda: len(_runs(task_id)) == 2 and _runs(task_id)[1].status == JobRun.Status.FINISHED,
                 timeout=90, interval=0.3, what="the task to be redelivered and finished")
        assert [run.status for run in _runs(task_id)] == [JobRun.Status.FAILED, JobRun.Status.FINISHED]
        assert "Task tests.worker_tasks.long_run" in (tmp_path / "second.log").read_text()
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
                try:
                    worker.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(worker.pid, signal.SIGKILL)
        redis.stop()
        connection.close()

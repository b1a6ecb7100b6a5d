"""Heartbeats for long background runs, and the sweep that fails runs whose worker died.

``with job_running("retention", task_id=...):`` records a ``JobRun`` (committed at once, outside the caller's
transaction), touches its heartbeat from a thread every ``DPI_JOB_HEARTBEAT_SECONDS`` while the body runs, and
records the outcome. A worker killed with SIGKILL (or a host lost) leaves the row "running" with a heartbeat that
no longer moves: ``stale_runs_fail`` (beat, every minute) marks it failed once the heartbeat is older than
``DPI_JOB_STALE_SECONDS``. Celery redelivers the task itself: acknowledgement is late and the broker gives an
unacknowledged message back after ``DPI_CELERY_VISIBILITY_TIMEOUT`` (settings, docs/operations.md).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from dpi import metrics
from dpi.models import JobRun

logger = logging.getLogger(__name__)

# kind -> what else to correct when a run of that kind is found dead (registered by the owning app's ready(),
# so that dpi imports no app above it); called inside the sweep's transaction.
STALE_HANDLERS: dict[str, Callable[[JobRun], None]] = {}


class _Heartbeat(threading.Thread):
    def __init__(self, run_id: int, interval: float):
        super().__init__(name=f"heartbeat-{run_id}", daemon=True)
        self.run_id = run_id
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(self.interval):
                try:
                    JobRun.objects.filter(pk=self.run_id, status=JobRun.Status.RUNNING).update(
                        heartbeat_at=timezone.now())
                except Exception as exc:  # a database hiccup: the next beat tries again
                    logger.warning("heartbeat of run %s failed: %s", self.run_id, type(exc).__name__)
        finally:
            connection.close()  # this thread's own connection

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=self.interval + 5)


@contextlib.contextmanager
def job_running(kind: str, *, task_id: str = "") -> Iterator[JobRun]:
    """Record a run with a heartbeat around the body; finished or failed (with the error's class) at the end.
    Enter it outside a transaction (Celery tasks are) so that the rows commit at once."""
    run = JobRun.objects.create(kind=kind, task_id=(task_id or "")[:64], heartbeat_at=timezone.now())
    beat = _Heartbeat(run.pk, settings.DPI_JOB_HEARTBEAT_SECONDS)
    beat.start()
    try:
        yield run
    except BaseException as exc:  # SoftTimeLimitExceeded, KeyboardInterrupt...: the run did not finish
        beat.stop()
        JobRun.objects.filter(pk=run.pk).update(status=JobRun.Status.FAILED, finished_at=timezone.now(),
                                                message=f"{type(exc).__name__}: {exc}"[:500])
        raise
    beat.stop()
    JobRun.objects.filter(pk=run.pk).update(status=JobRun.Status.FINISHED, finished_at=timezone.now())


@transaction.atomic
def stale_runs_fail(*, now=None) -> int:
    """Mark failed every run whose heartbeat is older than DPI_JOB_STALE_SECONDS, and let the owning app
    correct its own records (``STALE_HANDLERS``). Returns how many runs were failed."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.DPI_JOB_STALE_SECONDS)
    stale = list(JobRun.objects.select_for_update(skip_locked=True)
                 .filter(status=JobRun.Status.RUNNING, heartbeat_at__lt=cutoff))
    for run in stale:
        run.status = JobRun.Status.FAILED
        run.finished_at = now
        run.message = f"worker stopped: no heartbeat since {run.heartbeat_at:%Y-%m-%d %H:%M:%S%z}"[:500]
        run.save(update_fields=["status", "finished_at", "message"])
        metrics.STALE_RUNS.labels(run.kind).inc()
        logger.warning("run %s (%s, task %s) marked failed: no heartbeat since %s", run.pk, run.kind,
                       run.task_id, run.heartbeat_at)
        handler = STALE_HANDLERS.get(run.kind)
        if handler is not None:
            handler(run)
    return len(stale)

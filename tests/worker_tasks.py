"""A task for the worker tests only (loaded with ``celery worker --include tests.worker_tasks``): a long run
recorded with a heartbeat (dpi.jobs) that waits for a file to exist before it finishes."""

from __future__ import annotations

import time
from pathlib import Path

from celery import shared_task

from dpi.jobs import job_running


@shared_task(bind=True, name="tests.worker_tasks.long_run", acks_late=True)
def long_run(self, release_file: str) -> str:
    with job_running("test_long_run", task_id=self.request.id or ""):
        while not Path(release_file).exists():
            time.sleep(0.1)
    return "done"

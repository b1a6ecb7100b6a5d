"""Celery tasks of the project package (thin: they call dpi.jobs)."""

from __future__ import annotations

from celery import shared_task

from dpi import jobs


@shared_task(name="dpi.tasks.stale_runs_sweep", acks_late=True)
def stale_runs_sweep() -> int:
    """Long runs whose worker stopped beating are marked failed (schedule: dpi/schedule.py)."""
    return jobs.stale_runs_fail()

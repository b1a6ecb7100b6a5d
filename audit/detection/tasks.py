"""Celery tasks of the detector: thin wrappers around ``audit.detection.services`` (schedule: dpi/schedule.py)."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from audit.context import access_context
from audit.detection import services


@shared_task(bind=True, max_retries=3, default_retry_delay=60, acks_late=True)
def detect_new_events(self) -> dict:
    """Analyse the events recorded since the last watermark (idempotent; a concurrent run skips)."""
    try:
        with access_context(channel="worker"):
            summary = services.detect_new_events()
    except Exception as exc:  # a database hiccup: the next attempt re-reads from the same watermark
        raise self.retry(exc=exc) from exc
    return {"skipped": summary.skipped, "events": summary.events, "created": len(summary.created),
            "updated": len(summary.updated), "explained_share": summary.explained_share}


@shared_task(bind=True, max_retries=3, default_retry_delay=300, acks_late=True, soft_time_limit=3600,
             time_limit=3600 + 120)
def detect_replay_yesterday(self) -> dict:
    """Re-analyse the whole of yesterday for every user: catches any commit later than the overlap window and
    scores full-day volumes (the incremental pass sees the day as it fills)."""
    from dpi.jobs import job_running

    yesterday = timezone.localdate() - timedelta(days=1)
    try:
        with job_running("detection_replay", task_id=self.request.id or ""), access_context(channel="worker"):
            summary = services.detect_range(day_from=yesterday, day_to=yesterday)
    except Exception as exc:
        raise self.retry(exc=exc) from exc
    return {"events": summary.events, "created": len(summary.created), "updated": len(summary.updated)}

"""Celery tasks of the retention area: thin wrappers over retention.services."""

from __future__ import annotations

from celery import shared_task

from audit.context import access_context


# Hours for a large archive; resumable, so a redelivered copy (visibility timeout) skips on the advisory lock.
@shared_task(bind=True, name="retention.tasks.archive_due", acks_late=True, soft_time_limit=5 * 3600,
             time_limit=5 * 3600 + 300)
def archive_due(self) -> int:
    """The daily retention run (archive, restore, dispose, purge); returns the RetentionRun id."""
    from dpi.jobs import job_running
    from retention import services

    with job_running("retention", task_id=self.request.id or ""), access_context(channel="worker"):
        return services.retention_run().pk

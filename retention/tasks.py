"""Celery tasks of the retention area: thin wrappers over retention.services."""

from __future__ import annotations

from celery import shared_task

from audit.context import access_context


@shared_task(name="retention.tasks.archive_due", acks_late=True)
def archive_due() -> int:
    """The daily retention run (archive, restore, dispose, purge); returns the RetentionRun id."""
    from retention import services

    with access_context(channel="worker"):
        return services.retention_run().pk

"""Celery tasks of the compliance area (thin: they call services)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from audit.context import access_context
from dpi.compliance import backups
from dpi.jobs import job_running

LOCK_SECONDS = 6 * 3600  # longer than any backup; released at the end, expires if a worker dies


def lock_key() -> str:
    return f"compliance:backup:running:{settings.DATABASES['default']['NAME']}"


@shared_task(bind=True, autoretry_for=(OSError, backups.BackupError), retry_backoff=300, retry_jitter=False,
             max_retries=3, acks_late=True, soft_time_limit=3 * 3600, time_limit=3 * 3600 + 300)
def backup_scheduled(self) -> str:
    """Nightly encrypted backup, then keep the DPI_BACKUP_KEEP most recent. One at a time (Redis lock)."""
    key = lock_key()
    if not cache.add(key, self.request.id or "inline", LOCK_SECONDS):
        return "skipped: a backup is already running"
    try:
        with job_running("backup", task_id=self.request.id or ""), access_context(channel="worker"):
            path = backups.backup_create()
            backups.backup_verify(path, decrypt=False)
            removed = backups.backup_prune(keep=settings.DPI_BACKUP_KEEP)
    finally:
        cache.delete(key)
    return f"{path.name} (removed {len(removed)} old)"

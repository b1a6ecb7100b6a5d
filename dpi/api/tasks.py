"""Celery tasks of the API area (thin: they call services)."""

from celery import shared_task

from audit.context import access_context


@shared_task
def idempotency_sweep() -> int:
    """Forget expired idempotency keys and their stored (encrypted) answers."""
    from dpi.api.services import idempotency_sweep as sweep

    with access_context(channel="worker"):
        return sweep()

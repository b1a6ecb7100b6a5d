"""Periodic audit work (scheduled in dpi/schedule.py). Thin: each task calls a service."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from audit import services
from audit.context import access_context


@shared_task(name="audit.tasks.checkpoint_sign", autoretry_for=(OperationalError,), retry_backoff=True,
             max_retries=5)
def checkpoint_sign() -> int | None:
    """Chain queued events, then sign the head (skipped when nothing new was chained)."""
    with access_context(channel="worker"):
        services.chain_seal()
        cp = services.checkpoint_sign()
    return cp.pk if cp is not None else None


@shared_task(name="audit.tasks.chain_seal", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def chain_seal() -> int:
    """Chain events that committed while the chain lock was busy (normally the next committer does it)."""
    return services.chain_seal()


@shared_task(name="audit.tasks.partitions_ensure", autoretry_for=(OperationalError,), retry_backoff=True,
             max_retries=5)
def partitions_ensure() -> int:
    return services.partitions_ensure()


@shared_task(name="audit.tasks.chain_verify", acks_late=True, soft_time_limit=2 * 3600, time_limit=2 * 3600 + 300)
def chain_verify() -> bool:
    """Nightly full verification; the result is shown on the DPO dashboard."""
    from audit.verification import chain_verify as verify

    with access_context(channel="worker"):
        return verify().ok

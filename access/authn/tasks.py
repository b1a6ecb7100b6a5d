"""Periodic authentication chores (scheduled in dpi/schedule.py). Thin: each calls a service."""

from __future__ import annotations

from celery import shared_task

from audit.context import access_context


@shared_task(bind=True, max_retries=3, default_retry_delay=60, acks_late=True)
def accounts_disable(self) -> dict[str, int]:
    """Disable accounts past their contract end date and accounts unused for DPI_ACCOUNT_INACTIVITY_DAYS."""
    from access.authn import services

    try:
        with access_context(channel="worker"):
            return {"contract_end": services.accounts_disable_expired(),
                    "inactivity": services.accounts_disable_inactive()}
    except Exception as exc:  # retried: the work is idempotent (conditional UPDATE claims each account)
        raise self.retry(exc=exc) from exc


@shared_task(bind=True, max_retries=3, default_retry_delay=30, acks_late=True)
def login_locks_release(self) -> dict[str, int]:
    """Release (and trace) expired sign-in locks; forget stale counters; purge dead sessions."""
    from access.authn import services, throttle

    try:
        with access_context(channel="worker"):
            return {"released": throttle.expired_locks_release(), "purged": throttle.stale_rows_purge(),
                    "sessions": services.session_records_purge()}
    except Exception as exc:
        raise self.retry(exc=exc) from exc

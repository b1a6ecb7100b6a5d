"""Reads for the DPO dashboard and the user's own pages (authentication side)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from access.authn.models import AccountDeactivation, LoginThrottle, SessionRecord


def locked_accounts(*, now: datetime | None = None) -> QuerySet[LoginThrottle]:
    """Accounts locked now after failed sign-ins: ``row.user``, ``row.failures``, ``row.locked_at``,
    ``row.blocked_until`` (end of the lock), ``row.lock_count`` (locks since the last successful sign-in)."""
    now = now or timezone.now()
    return (LoginThrottle.objects.filter(scope=LoginThrottle.Scope.ACCOUNT, locked=True, blocked_until__gt=now,
                                         user__isnull=False)
            .select_related("user", "user__staff").order_by("-locked_at"))


def locked_addresses(*, now: datetime | None = None) -> QuerySet[LoginThrottle]:
    """Source addresses locked now (``row.key`` is the address)."""
    now = now or timezone.now()
    return (LoginThrottle.objects.filter(scope=LoginThrottle.Scope.ADDRESS, locked=True, blocked_until__gt=now)
            .order_by("-locked_at"))


def disabled_accounts(*, since: datetime | None = None) -> QuerySet[AccountDeactivation]:
    """Accounts disabled (contract ended, unused, by hand) and not enabled again: ``row.user``, ``row.reason``
    (``get_reason_display``), ``row.deactivated_at``, ``row.last_login``, ``row.end_date``."""
    rows = AccountDeactivation.objects.filter(reactivated_at__isnull=True)
    if since is not None:
        rows = rows.filter(deactivated_at__gte=since)
    return rows.select_related("user", "user__staff").order_by("-deactivated_at")


def accounts_due_for_disabling(*, now: datetime | None = None) -> dict[str, QuerySet]:
    """What the next run of the beat task will disable: ``past_end_date`` and ``inactive`` user querysets."""
    from access.authn.services import accounts_inactive, accounts_past_end_date

    now = now or timezone.now()
    return {"past_end_date": accounts_past_end_date(today=timezone.localdate(now)),
            "inactive": accounts_inactive(now=now)}


def sessions_of(user) -> list[SessionRecord]:
    from access.authn.services import sessions_of as _sessions_of

    return _sessions_of(user)

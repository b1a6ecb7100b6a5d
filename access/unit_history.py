"""Which stays a principal may list (issue #13 finding 9).

A patient's unit history is health data: a stay in psychiatry, maternity or oncology says what the patient
has (art. 9 GDPR), even though admissions, transfers and discharges are administrative work. Roles that may
read medical data see every stay (the gate still decides per patient); roles with an administrative view only
(reception, an integration token without a medical scope) see what their purpose needs: the open stays and
those that ended within the post-discharge period (DPI_POST_DISCHARGE_DAYS, for discharge paperwork and
billing), never the older history.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from access import gate
from access.policy import Action, Category, allowed_by_matrix

MEDICAL_VIEW_SCOPE = f"{Category.MEDICAL.value}:{Action.VIEW.value}"


def may_read_unit_history(user: Any, scopes: frozenset[str] | None = None) -> bool:
    """True for a principal whose role reads medical data (and whose token, if any, has the medical scope)."""
    role = gate.role_of(user)
    if role is None or not allowed_by_matrix(role, Category.MEDICAL, Action.VIEW):
        return False
    return scopes is None or MEDICAL_VIEW_SCOPE in scopes


def limit_unit_history(queryset: QuerySet, *, user: Any, scopes: frozenset[str] | None = None,
                       now: datetime | None = None) -> QuerySet:
    """Encounters narrowed to the open and recently ended ones for administrative-only principals."""
    if may_read_unit_history(user, scopes):
        return queryset
    cutoff = (now or timezone.now()) - timedelta(days=settings.DPI_POST_DISCHARGE_DAYS)
    return queryset.filter(Q(end__isnull=True) | Q(end__gte=cutoff))

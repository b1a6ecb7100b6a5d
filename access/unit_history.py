"""Which stays a principal may list (issue #13 finding 9).

A patient's unit history is health data: a stay in psychiatry, maternity or oncology says what the patient
has (art. 9 GDPR), even though admissions, transfers and discharges are administrative work. Everyone with an
administrative view sees what admissions need: the open stays and those that ended within the post-discharge
period (DPI_POST_DISCHARGE_DAYS, for discharge paperwork and billing). The older history, and the reason of an
appointment, are read as medical data: by roles that read medical data, on the patients whose record the gate
would open to them (a valid care relationship without the patient's objection, or an active break-the-glass;
roles that need no care relationship, such as the DIM, read them all). A physician of another unit, a
pharmacist or a secretary never list a stranger's psychiatry stay.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import BooleanField, Case, Exists, OuterRef, Q, QuerySet, Value, When
from django.utils import timezone

from access import gate
from access.policy import Action, Category, allowed_by_matrix, needs_care_relationship

MEDICAL_VIEW_SCOPE = f"{Category.MEDICAL.value}:{Action.VIEW.value}"


def may_read_unit_history(user: Any, scopes: frozenset[str] | None = None) -> bool:
    """True for a principal whose role reads medical data (and whose token, if any, has the medical scope)."""
    role = gate.role_of(user)
    if role is None or not allowed_by_matrix(role, Category.MEDICAL, Action.VIEW):
        return False
    return scopes is None or MEDICAL_VIEW_SCOPE in scopes


def medical_access_condition(user: Any, now: datetime | None = None, *, patient_field: str = "patient_id") -> Q:
    """Rows whose patient's medical record this user may read now, as SQL (the gate's rules 4 and 5): a care
    grant valid now and no objection of the patient to this user, or an active break-the-glass."""
    from access.models import CareGrant, EmergencyAccess, PatientObjection

    now = now or timezone.now()
    grant = CareGrant.objects.filter(user_id=user.pk, content_object_id=OuterRef(patient_field),
                                     valid_from__lte=now).filter(Q(valid_until__isnull=True) | Q(valid_until__gt=now))
    objection = PatientObjection.objects.filter(professional_id=user.pk, patient_id=OuterRef(patient_field))
    glass = EmergencyAccess.objects.filter(user_id=user.pk, patient_id=OuterRef(patient_field), started_at__lte=now,
                                           expires_at__gt=now)
    return (Exists(grant) & ~Exists(objection)) | Exists(glass)


def _medical_rows(user: Any, scopes: frozenset[str] | None, now: datetime) -> Q | bool:
    """True: every row; False: none; else the condition on rows."""
    if not may_read_unit_history(user, scopes):
        return False
    role = gate.role_of(user)
    if role is not None and not needs_care_relationship(role, Category.MEDICAL):
        return True
    return medical_access_condition(user, now)


def limit_unit_history(queryset: QuerySet, *, user: Any, scopes: frozenset[str] | None = None,
                       now: datetime | None = None) -> QuerySet:
    """Encounters narrowed to the open and recently ended ones, plus the older history of the patients whose
    medical record this principal may read."""
    now = now or timezone.now()
    medical = _medical_rows(user, scopes, now)
    if medical is True:
        return queryset
    cutoff = now - timedelta(days=settings.DPI_POST_DISCHARGE_DAYS)
    recent = Q(end__isnull=True) | Q(end__gte=cutoff)
    return queryset.filter(recent if medical is False else recent | medical)


def annotate_medical_access(queryset: QuerySet, *, user: Any, now: datetime | None = None) -> QuerySet:
    """Appointments (or any rows with a patient) annotated ``medical_access``: may this user read their health
    data (the reason of an appointment)?"""
    medical = _medical_rows(user, None, now or timezone.now())
    if isinstance(medical, bool):
        return queryset.annotate(medical_access=Value(medical, output_field=BooleanField()))
    return queryset.annotate(medical_access=Case(When(medical, then=Value(True)), default=Value(False),
                                                 output_field=BooleanField()))


def may_read_appointment_reason(user: Any, appointment: Any) -> bool:
    """The reason of one appointment: health data, for those the gate would open the patient's record to."""
    if not may_read_unit_history(user):
        return False
    return gate.decide(user, patient_id=appointment.patient_id, category=Category.MEDICAL, action=Action.VIEW).allowed

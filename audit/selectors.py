"""Reads of the audit trail. Policy-free: the caller (a view for the DPO) decides who may read them."""

from __future__ import annotations

from datetime import datetime

from audit.models import AccessEvent, AuditCheckpoint, VerificationRun


def last_verification() -> VerificationRun | None:
    """The most recent ``verify_audit`` run (DPO dashboard)."""
    return VerificationRun.objects.order_by("-finished_at", "-id").first()


def last_checkpoint() -> AuditCheckpoint | None:
    return AuditCheckpoint.objects.order_by("-signed_at", "-id").first()


def patient_access_report(
    *, patient_id: int, since: datetime | None = None, until: datetime | None = None,
) -> list[AccessEvent]:
    """Every recorded access to one patient's file, oldest first: who, when, role, unit, basis, action, outcome.

    Includes refused attempts and automated tasks (archiving, backups) so the patient sees the whole picture.
    """
    qs = AccessEvent.objects.filter(patient_id=patient_id)
    if since is not None:
        qs = qs.filter(occurred_at__gte=since)
    if until is not None:
        qs = qs.filter(occurred_at__lt=until)
    return list(qs.order_by("occurred_at", "id"))

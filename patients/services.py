"""Writes of administrative data. Callers pass through the gate (access.gate) first.

Each service validates (``full_clean``) and saves in one transaction: bad input raises a ValidationError
naming the field, and nothing is saved.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from dpi import crypto
from patients.models import Appointment, CareUnit, Encounter, Patient


def ins_blind_index(ins: str) -> str:
    return crypto.blind_index(ins, domain="ins") if ins else ""


def next_ipp() -> str:
    last = Patient.objects.order_by("-id").values_list("id", flat=True).first() or 0
    return f"P{last + 1:09d}"


def check_not_frozen(patient: Patient) -> None:
    """GDPR art. 18 restriction: no change while a dispute is checked."""
    if patient.frozen:
        raise ValidationError(
            {"__all__": [_("This record is frozen (restriction of processing) while a dispute is checked.")]}
        )


@transaction.atomic
def patient_create(**fields: Any) -> Patient:
    fields.setdefault("ipp", next_ipp())
    patient = Patient(**fields)
    patient.full_clean()
    patient.ins_bidx = ins_blind_index(patient.ins)
    patient.save(force_insert=True)
    return patient


@transaction.atomic
def patient_update(*, patient: Patient, **changes: Any) -> dict[str, tuple[Any, Any]]:
    """Apply changes to identity or contact fields; returns {field: (old, new)} for the audit trail."""
    patient = Patient.objects.select_for_update().get(pk=patient.pk)
    check_not_frozen(patient)
    diff = {}
    for name, value in changes.items():
        old = getattr(patient, name)
        if old != value:
            diff[name] = (old, value)
            setattr(patient, name, value)
    if not diff:
        return {}
    patient.full_clean()
    patient.ins_bidx = ins_blind_index(patient.ins)
    patient.save(update_fields=[*diff.keys(), "ins_bidx", "updated_at"])
    return diff


def patient_find_by_ins(ins: str):
    return Patient.objects.filter(ins_bidx=ins_blind_index(ins))


def _unit(unit: CareUnit | str | int) -> CareUnit:
    if isinstance(unit, CareUnit):
        return unit
    try:
        if isinstance(unit, int):
            return CareUnit.objects.get(pk=unit)
        return CareUnit.objects.get(code=unit)
    except CareUnit.DoesNotExist as exc:
        raise ValidationError({"unit": [_("Unknown care unit: %(unit)s") % {"unit": unit}]}) from exc


def touch_activity(patient_id: int, when: datetime) -> None:
    """Last activity drives the retention period (retention recomputes from it)."""
    Patient.objects.filter(pk=patient_id).exclude(last_activity_at__gte=when).update(last_activity_at=when)


@transaction.atomic
def encounter_admit(
    *, patient: Patient, unit: CareUnit | str | int, start: datetime | None = None, kind: str = Encounter.Kind.STAY
) -> Encounter:
    check_not_frozen(patient)
    encounter = Encounter(patient=patient, unit=_unit(unit), start=start or timezone.now(), kind=kind)
    encounter.full_clean()
    encounter.save(force_insert=True)
    touch_activity(patient.pk, encounter.start)
    return encounter


@transaction.atomic
def encounter_discharge(*, encounter: Encounter, end: datetime | None = None) -> Encounter:
    encounter = Encounter.objects.select_for_update().get(pk=encounter.pk)
    if encounter.end is not None:
        raise ValidationError({"end": [_("This encounter is already closed.")]})
    encounter.end = end or timezone.now()
    encounter.full_clean()
    encounter.save(update_fields=["end"])
    touch_activity(encounter.patient_id, encounter.end)
    return encounter


@transaction.atomic
def encounter_transfer(*, encounter: Encounter, unit: CareUnit | str | int, at: datetime | None = None) -> Encounter:
    at = at or timezone.now()
    closed = encounter_discharge(encounter=encounter, end=at)
    new = Encounter(patient_id=closed.patient_id, unit=_unit(unit), start=at, kind=closed.kind, transferred_from=closed)
    new.full_clean()
    new.save(force_insert=True)
    return new


@transaction.atomic
def appointment_book(
    *, patient: Patient, unit: CareUnit | str | int, practitioner, start: datetime, end: datetime, reason: str = ""
) -> Appointment:
    check_not_frozen(patient)
    appt = Appointment(
        patient=patient, unit=_unit(unit), practitioner=practitioner, start=start, end=end, reason=reason
    )
    appt.full_clean()
    appt.save(force_insert=True)
    touch_activity(patient.pk, start)
    return appt


@transaction.atomic
def appointment_cancel(*, appointment: Appointment) -> Appointment:
    appointment.status = Appointment.Status.CANCELLED
    appointment.save(update_fields=["status"])
    return appointment


# --- movements undone or reclassified (cancellations of the ADT feed: IHE PAM A11, A12, A13, A06, A07) ---------
@transaction.atomic
def encounter_cancel(*, encounter: Encounter) -> None:
    """An admission entered in error is removed (A11); the care relationships it opened go with it. A stay
    that has already moved on (transferred) is cancelled movement by movement, last first."""
    encounter = Encounter.objects.select_for_update().get(pk=encounter.pk)
    check_not_frozen(encounter.patient)
    if Encounter.objects.filter(transferred_from=encounter).exists():
        raise ValidationError({"encounter": ["This stay was transferred since: cancel the transfer first."]})
    encounter.delete()


@transaction.atomic
def encounter_discharge_cancel(*, encounter: Encounter) -> Encounter:
    """A discharge entered in error: the stay is open again (A13)."""
    encounter = Encounter.objects.select_for_update().get(pk=encounter.pk)
    check_not_frozen(encounter.patient)
    if encounter.end is None:
        raise ValidationError({"end": ["This encounter is not closed."]})
    if Encounter.objects.filter(transferred_from=encounter).exists():
        raise ValidationError({"end": ["This encounter ended with a transfer, not a discharge."]})
    encounter.end = None
    encounter.full_clean()
    encounter.save(update_fields=["end"])
    return encounter


@transaction.atomic
def encounter_transfer_cancel(*, encounter: Encounter) -> Encounter:
    """A transfer entered in error (A12): the movement it opened is removed and the previous one reopened."""
    encounter = Encounter.objects.select_for_update().get(pk=encounter.pk)
    check_not_frozen(encounter.patient)
    previous = encounter.transferred_from
    if previous is None:
        raise ValidationError({"encounter": ["This encounter does not follow a transfer."]})
    if encounter.end is not None or Encounter.objects.filter(transferred_from=encounter).exists():
        raise ValidationError({"encounter": ["Only the current movement of a stay can be cancelled."]})
    encounter.delete()
    previous.end = None
    previous.full_clean()
    previous.save(update_fields=["end"])
    return previous


@transaction.atomic
def encounter_reclassify(*, encounter: Encounter, kind: str) -> Encounter:
    """Outpatient to inpatient or back (A06/A07): the same encounter changes kind."""
    encounter = Encounter.objects.select_for_update().get(pk=encounter.pk)
    check_not_frozen(encounter.patient)
    encounter.kind = kind
    encounter.full_clean()
    encounter.save(update_fields=["kind"])
    return encounter

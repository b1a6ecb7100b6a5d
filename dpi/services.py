"""Writes of clinical data. Callers pass through the gate (access.gate) first.

A correction never overwrites silently: ``item_amend`` stores the previous values (encrypted) in
``Amendment`` and bumps the item's version, in one transaction.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from dpi.models import Amendment, ClinicalNote, Document, Observation
from patients.models import Encounter, Patient
from patients.services import check_not_frozen, touch_activity


def _check_encounter(patient: Patient, encounter: Encounter | None) -> None:
    if encounter is not None and encounter.patient_id != patient.pk:
        raise ValidationError({"encounter": ["This encounter belongs to another patient."]})


@transaction.atomic
def note_create(
    *,
    patient: Patient,
    author,
    body: str,
    title: str = "",
    kind: str = ClinicalNote.Kind.PROGRESS,
    sensitive: bool = False,
    encounter: Encounter | None = None,
) -> ClinicalNote:
    check_not_frozen(patient)
    _check_encounter(patient, encounter)
    note = ClinicalNote(
        patient=patient, author=author, body=body, title=title, kind=kind, sensitive=sensitive, encounter=encounter
    )
    note.full_clean()
    note.save(force_insert=True)
    touch_activity(patient.pk, timezone.now())
    return note


@transaction.atomic
def observation_record(
    *,
    patient: Patient,
    author,
    label: str,
    effective_at: datetime,
    value=None,
    unit: str = "",
    loinc: str = "",
    reference_low=None,
    reference_high=None,
    value_text: str = "",
    obs_category: str = Observation.Category.LAB,
    encounter: Encounter | None = None,
) -> Observation:
    check_not_frozen(patient)
    _check_encounter(patient, encounter)
    obs = Observation(
        patient=patient,
        author=author,
        label=label,
        effective_at=effective_at,
        value=value,
        unit=unit,
        loinc=loinc,
        reference_low=reference_low,
        reference_high=reference_high,
        value_text=value_text,
        obs_category=obs_category,
        encounter=encounter,
    )
    obs.full_clean()
    obs.save(force_insert=True)
    touch_activity(patient.pk, effective_at)
    return obs


@transaction.atomic
def document_add(
    *,
    patient: Patient,
    author,
    title: str,
    content: bytes,
    media_type: str = "application/pdf",
    encounter: Encounter | None = None,
    type_code: str = "",
) -> Document:
    check_not_frozen(patient)
    _check_encounter(patient, encounter)
    doc = Document(
        patient=patient,
        author=author,
        title=title,
        content=content,
        media_type=media_type,
        size=len(content),
        encounter=encounter,
        type_code=type_code,
    )
    doc.full_clean()
    doc.save(force_insert=True)
    touch_activity(patient.pk, timezone.now())
    return doc


_NOT_AMENDABLE = {"id", "pk", "patient", "patient_id", "author", "author_id", "version", "created_at", "updated_at"}


@transaction.atomic
def item_amend(*, item, author, reason: str, **changes: Any):
    """Amend a clinical item: keep its previous values in ``Amendment``, then apply the changes."""
    if not reason.strip():
        raise ValidationError({"reason": ["An amendment needs a reason."]})
    model = type(item)
    item = model.objects.select_for_update().get(pk=item.pk)
    check_not_frozen(item.patient)
    bad = [name for name in changes if name in _NOT_AMENDABLE or not hasattr(item, name)]
    if bad:
        raise ValidationError({name: ["This field cannot be amended."] for name in bad})
    previous = {name: getattr(item, name) for name in changes}
    if all(previous[n] == v for n, v in changes.items()):
        return item
    Amendment.objects.create(
        resource_type=model._meta.model_name,
        resource_id=item.pk,
        patient_id=item.patient_id,
        version=item.version,
        previous=json.dumps(previous, cls=DjangoJSONEncoder),
        reason=reason,
        amended_by=author,
    )
    for name, value in changes.items():
        setattr(item, name, value)
    item.version += 1
    item.full_clean()
    item.save(update_fields=[*changes.keys(), "version", "updated_at"])
    return item


def item_history(item) -> list[dict[str, Any]]:
    """Previous versions of an item, oldest first, with who amended it and why."""
    rows = Amendment.objects.filter(resource_type=type(item)._meta.model_name, resource_id=item.pk)
    return [
        {
            "version": a.version,
            "previous": json.loads(a.previous),
            "reason": a.reason,
            "amended_by": a.amended_by_id,
            "amended_at": a.amended_at,
        }
        for a in rows.order_by("version")
    ]

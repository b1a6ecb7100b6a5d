"""Writes of clinical data. Callers pass through the gate (access.gate) first.

A correction never overwrites silently: ``item_amend`` stores the previous values (encrypted) in
``Amendment`` and bumps the item's version, in one transaction.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from dpi.models import (
    Allergy,
    Amendment,
    ClinicalNote,
    Document,
    MedicationAdministration,
    Observation,
    Prescription,
    Problem,
)
from patients.models import Encounter, Patient
from patients.services import check_not_frozen, touch_activity


def _check_encounter(patient: Patient, encounter: Encounter | None) -> None:
    if encounter is not None and encounter.patient_id != patient.pk:
        raise ValidationError({"encounter": [_("This encounter belongs to another patient.")]})


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
    document_date=None,
) -> Document:
    import hashlib

    check_not_frozen(patient)
    _check_encounter(patient, encounter)
    if document_date is not None and document_date > timezone.localdate():
        raise ValidationError({"document_date": [_("The date of the document cannot be in the future.")]})
    doc = Document(
        patient=patient,
        author=author,
        title=title,
        content=content,
        media_type=media_type,
        size=len(content),
        encounter=encounter,
        type_code=type_code,
        document_date=document_date,
        sha256=hashlib.sha256(content).hexdigest(),
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
        raise ValidationError({"reason": [_("An amendment needs a reason.")]})
    model = type(item)
    item = model.objects.select_for_update().get(pk=item.pk)
    check_not_frozen(item.patient)
    bad = [name for name in changes if name in _NOT_AMENDABLE or not hasattr(item, name)]
    if bad:
        raise ValidationError({name: [_("This field cannot be amended.")] for name in bad})
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


# --- structured entry: allergies, problems, vital signs, prescriptions and their administration -------------
@transaction.atomic
def allergy_record(
    *,
    patient: Patient,
    author,
    substance: str,
    substance_code: str = "",
    reaction: str = "",
    severity: str = "unable-to-assess",
    clinical_status: str = "active",
    verification: str = "unconfirmed",
    encounter: Encounter | None = None,
) -> Allergy:
    """An allergy or intolerance. Recording one closes a previous "no known allergy" statement."""
    check_not_frozen(patient)
    _check_encounter(patient, encounter)
    if not substance.strip():
        raise ValidationError({"substance": [_("Name the substance.")]})
    allergy = Allergy(patient=patient, author=author, substance=substance.strip(), substance_code=substance_code,
                      reaction=reaction, severity=severity, clinical_status=clinical_status,
                      verification=verification, encounter=encounter)
    allergy.full_clean()
    allergy.save(force_insert=True)
    Allergy.objects.filter(patient=patient, substance_code=Allergy.NO_KNOWN_ALLERGY,
                           clinical_status=Allergy.Status.ACTIVE).update(clinical_status=Allergy.Status.INACTIVE)
    touch_activity(patient.pk, timezone.now())
    return allergy


@transaction.atomic
def allergy_none_known(*, patient: Patient, author, encounter: Encounter | None = None) -> Allergy:
    """The clinician asked: no known allergy (SNOMED CT 716186003). Refused while an allergy is active."""
    check_not_frozen(patient)
    active = Allergy.objects.filter(patient=patient, clinical_status=Allergy.Status.ACTIVE).exclude(
        substance_code=Allergy.NO_KNOWN_ALLERGY).exclude(verification=Allergy.Verification.ERROR)
    if active.exists():
        raise ValidationError({"substance": [_("An active allergy is recorded: close it before stating none.")]})
    existing = Allergy.objects.filter(patient=patient, substance_code=Allergy.NO_KNOWN_ALLERGY,
                                      clinical_status=Allergy.Status.ACTIVE).first()
    if existing:
        return existing
    allergy = Allergy(patient=patient, author=author, substance="Aucune allergie connue",
                      substance_code=Allergy.NO_KNOWN_ALLERGY, severity=Allergy.Severity.UNKNOWN,
                      verification=Allergy.Verification.CONFIRMED, encounter=encounter)
    allergy.full_clean()
    allergy.save(force_insert=True)
    return allergy


@transaction.atomic
def problem_record(
    *,
    patient: Patient,
    author,
    icd10: str,
    label: str = "",
    onset=None,
    status: str = "active",
    comment: str = "",
    encounter: Encounter | None = None,
) -> Problem:
    """A problem coded in CIM-10; the label defaults to the bundled list's."""
    from dpi.clinical_reference import CIM10_CODE, cim10

    check_not_frozen(patient)
    _check_encounter(patient, encounter)
    code = icd10.strip().upper()
    if not CIM10_CODE.match(code):
        raise ValidationError({"icd10": [_("Not a CIM-10 code (a letter, two digits, then optionally a dot "
                                           "and one or two characters, e.g. I10 or E11.9).")]})
    label = label.strip() or cim10().get(code, "")
    if not label:
        raise ValidationError({"label": [_("This code is not in the list: write its label.")]})
    if onset is not None and onset > timezone.localdate():
        raise ValidationError({"onset": [_("The onset cannot be in the future.")]})
    problem = Problem(patient=patient, author=author, icd10=code, label=label, onset=onset, status=status,
                      comment=comment, encounter=encounter)
    problem.full_clean()
    problem.save(force_insert=True)
    touch_activity(patient.pk, timezone.now())
    return problem


@transaction.atomic
def vitals_record(
    *, patient: Patient, author, effective_at: datetime, values: dict[str, Any], encounter: Encounter | None = None
) -> list[Observation]:
    """Vital signs taken together (LOINC-coded, UCUM units). Every value is checked before anything is saved:
    an implausible one (a typing error) is refused with its field named, and nothing is written."""
    from decimal import Decimal, InvalidOperation

    from dpi.clinical_reference import VITALS

    check_not_frozen(patient)
    _check_encounter(patient, encounter)
    errors: dict[str, list[str]] = {}
    clean: dict[str, Decimal] = {}
    for key, raw in values.items():
        spec = VITALS.get(key)
        if spec is None:
            errors[key] = [_("Unknown vital sign.")]
            continue
        if raw in (None, ""):
            continue
        try:
            value = Decimal(str(raw).replace(",", ".").strip())
        except InvalidOperation:
            errors[key] = [_("Enter a number.")]
            continue
        if not value.is_finite() or not spec.low <= value <= spec.high:
            errors[key] = [_("Implausible value: expected between %(low)s and %(high)s %(unit)s.")
                           % {"low": spec.low, "high": spec.high, "unit": spec.unit}]
            continue
        clean[key] = value
    if effective_at > timezone.now() + timedelta(minutes=5):
        errors["effective_at"] = [_("The time cannot be in the future.")]
    if "systolic" in clean and "diastolic" in clean and clean["diastolic"] >= clean["systolic"]:
        errors["diastolic"] = [_("The diastolic pressure must be lower than the systolic.")]
    if not clean and not errors:
        errors["__all__"] = [_("Enter at least one value.")]
    if errors:
        raise ValidationError(errors)
    saved = []
    for key, value in clean.items():
        spec = VITALS[key]
        obs = Observation(patient=patient, author=author, encounter=encounter, obs_category=Observation.Category.VITAL,
                          loinc=spec.loinc, label=spec.label, value=value, unit=spec.unit,
                          reference_low=spec.normal_low, reference_high=spec.normal_high, effective_at=effective_at)
        obs.full_clean()
        obs.save(force_insert=True)
        saved.append(obs)
    touch_activity(patient.pk, effective_at)
    return saved


@transaction.atomic
def prescription_create(
    *,
    patient: Patient,
    author,
    medication: str,
    dose: str,
    route: str,
    frequency: str,
    start,
    duration_days: int | None = None,
    instructions: str = "",
    encounter: Encounter | None = None,
) -> Prescription:
    """A prescription line (the prescriber is its author); its end follows from the duration."""
    check_not_frozen(patient)
    _check_encounter(patient, encounter)
    errors = {name: [_("This field is required.")] for name, value in
              (("medication", medication), ("dose", dose), ("route", route), ("frequency", frequency))
              if not str(value).strip()}
    if duration_days is not None and not 1 <= duration_days <= 365:
        errors["duration_days"] = [_("Between 1 and 365 days.")]
    if errors:
        raise ValidationError(errors)
    end = start + timedelta(days=duration_days - 1) if duration_days else None
    text = instructions.strip() or f"{dose}, {frequency}"
    rx = Prescription(patient=patient, author=author, medication=medication.strip(), dose=dose.strip(), route=route,
                      frequency=frequency.strip(), duration_days=duration_days, start=start, end=end,
                      instructions=text, encounter=encounter)
    rx.full_clean()
    rx.save(force_insert=True)
    touch_activity(patient.pk, timezone.now())
    return rx


@transaction.atomic
def prescription_stop(*, prescription: Prescription, author, reason: str) -> Prescription:
    if not reason.strip():
        raise ValidationError({"reason": [_("Say why the prescription is stopped.")]})
    rx = Prescription.objects.select_for_update().get(pk=prescription.pk)
    check_not_frozen(rx.patient)
    if rx.status != Prescription.Status.ACTIVE:
        raise ValidationError({"status": [_("This prescription is no longer active.")]})
    return item_amend(item=rx, author=author, reason=reason, status=Prescription.Status.STOPPED,
                      stopped_reason=reason, end=timezone.localdate())


@transaction.atomic
def prescription_validate(*, prescription: Prescription, pharmacist) -> Prescription:
    """Pharmaceutical validation (R4235-48 CSP). The caller's gate decision (action "validate") says who may."""
    rx = Prescription.objects.select_for_update().get(pk=prescription.pk)
    check_not_frozen(rx.patient)
    if rx.status != Prescription.Status.ACTIVE:
        raise ValidationError({"status": [_("Only an active prescription is validated.")]})
    if rx.validated_at is None:
        rx.validated_by, rx.validated_at = pharmacist, timezone.now()
        rx.save(update_fields=["validated_by", "validated_at", "updated_at"])
    return rx


@transaction.atomic
def administration_record(
    *,
    prescription: Prescription,
    author,
    given: bool,
    administered_at: datetime,
    dose_given: str = "",
    reason_not_given: str = "",
) -> MedicationAdministration:
    """One dose given (or not, with the reason) by the nurse, at a time that is neither future nor outside
    the prescription's dates."""
    rx = Prescription.objects.select_for_update().get(pk=prescription.pk)
    check_not_frozen(rx.patient)
    errors: dict[str, list[str]] = {}
    if rx.status != Prescription.Status.ACTIVE:
        errors["prescription"] = [_("This prescription is no longer active.")]
    if administered_at > timezone.now() + timedelta(minutes=5):
        errors["administered_at"] = [_("The time cannot be in the future.")]
    elif timezone.localdate(administered_at) < rx.start or (rx.end and timezone.localdate(administered_at) > rx.end):
        errors["administered_at"] = [_("The time is outside the prescription's dates.")]
    if not given and not reason_not_given.strip():
        errors["reason_not_given"] = [_("Say why the dose was not given.")]
    if errors:
        raise ValidationError(errors)
    record = MedicationAdministration(
        patient_id=rx.patient_id, encounter_id=rx.encounter_id, author=author, prescription=rx,
        status=MedicationAdministration.Status.GIVEN if given else MedicationAdministration.Status.NOT_GIVEN,
        administered_at=administered_at, dose_given=dose_given.strip() or (rx.dose if given else ""),
        reason_not_given=reason_not_given.strip(),
    )
    record.full_clean()
    record.save(force_insert=True)
    touch_activity(rx.patient_id, administered_at)
    return record


# Files accepted from the browser: the type is read from the content, never from the name or the browser's say.
UPLOAD_SIGNATURES = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
)


def document_sniff(content: bytes, *, max_bytes: int) -> str:
    """The media type of an uploaded file from its first bytes; refuses anything else and oversized files."""
    if not content:
        raise ValidationError({"file": [_("The file is empty.")]})
    if len(content) > max_bytes:
        raise ValidationError({"file": [_("The file is larger than %(mb)d MB.") % {"mb": max_bytes // (1024 * 1024)}]})
    for magic, media_type in UPLOAD_SIGNATURES:
        if content.startswith(magic):
            if media_type == "application/pdf" and b"/JavaScript" in content:
                raise ValidationError({"file": [_("PDF files with embedded scripts are refused.")]})
            return media_type
    raise ValidationError({"file": [_("Only PDF, PNG and JPEG files are accepted.")]})

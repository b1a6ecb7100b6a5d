"""Writes of administrative data. Callers pass through the gate (access.gate) first.

Each service validates (``full_clean``) and saves in one transaction: bad input raises a ValidationError
naming the field, and nothing is saved.

Identity vigilance (RNIV, Référentiel INS) lives here, for every channel alike (reception admin, REST API and
its ADT feed, FHIR, the HL7 listener): the status follows the evidence (INSi result, identity document),
strict traits are stored as the referential writes them, the INS must agree with the traits, a duplicate INS
is refused, probable duplicates are flagged, and two files of one person are merged (and unmerged) here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.dispatch import Signal
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from dpi import crypto
from patients import insi as insi_client
from patients.models import (
    STRICT_TRAITS,
    Appointment,
    CareUnit,
    DuplicateSuspicion,
    Encounter,
    IdentityFlag,
    IdentityMerge,
    InsiQuery,
    Patient,
)
from patients.phonetic import phonetic_key

# Sent after rows moved between two files (merge, unmerge, split), in the same transaction, with
# ``patient_ids``: derived data (care grants in ``access``) is recomputed by its owner.
patient_records_moved = Signal()

EVIDENCE_FIELDS = ("validation_mode", "validation_date", "validated_by", "validated_by_name", "insi_date")


def _audit(*, actor: Any, action: str, patient_id: int | None, basis: str, details: dict[str, Any],
           system_task: str = "", resource_type: str = "patient", resource_id: Any = "") -> None:
    """The identity-vigilance trace, in the caller's transaction (old and new values, never the INS itself)."""
    from audit.services import event_record

    role = getattr(getattr(actor, "staff", None), "role", "") if actor is not None else "system"
    if system_task:
        details = {**details, "system_task": system_task}
    event_record(action=action, outcome="allowed", actor=actor, actor_role=role, patient_id=patient_id,
                 category="administrative", resource_type=resource_type,
                 resource_id=resource_id if resource_id != "" else (patient_id or ""), basis=basis,
                 details=details)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, models.Model):
        return value.pk
    return value


# Checks another app adds on facts that let people into a care team (``access`` checks that an appointment's
# practitioner is a clinician): this app does not know roles. Each raises a ValidationError naming the field.
appointment_validators: list[Callable[[Appointment], None]] = []


def _provenance(actor: Any, source: str) -> dict[str, Any]:
    """Who creates a fact that lets people into a care team, and how (feed, staff, system)."""
    if source not in Encounter.Source.values:
        raise ValueError(f"unknown source {source!r}")
    return {"created_by": actor if getattr(actor, "pk", None) else None, "source": source}


def ins_blind_index(ins: str) -> str:
    return crypto.blind_index(ins, domain="ins") if ins else ""


def next_ipp() -> str:
    last = Patient.objects.order_by("-id").values_list("id", flat=True).first() or 0
    return f"P{last + 1:09d}"


def check_not_frozen(patient: Patient) -> None:
    """GDPR art. 18 restriction: no change while a dispute is checked. A merged file takes no new data either:
    it is an alias of the kept one."""
    if patient.frozen:
        raise ValidationError(
            {"__all__": [_("This record is frozen (restriction of processing) while a dispute is checked.")]}
        )
    if patient.is_merged:
        kept = merged_into(patient)
        if kept is None or kept.is_restricted:  # a refusal never names a restricted file (docs/authorization.md)
            raise ValidationError({"__all__": [_("This file was merged into another file: write there (identity "
                                                 "vigilance knows which).")]}, code="merged")
        raise ValidationError({"__all__": [_("This file was merged into file %(ipp)s: write there.")
                                           % {"ipp": kept.ipp}]}, code="merged")


def merge_of(patient: Patient) -> IdentityMerge | None:
    """The merge (not undone) that made this file an alias, or None."""
    return IdentityMerge.objects.filter(merged_id=patient.pk, undone_at__isnull=True).first()


def merged_into(patient: Patient) -> Patient | None:
    """The file this one was merged into (its IPP is then an alias), or None."""
    merge = IdentityMerge.objects.filter(merged_id=patient.pk, undone_at__isnull=True).first()
    return Patient.objects.filter(pk=merge.kept_patient_id).first() if merge else None


def patient_by_ipp(ipp: str) -> Patient | None:
    """The live file for an IPP, following merge aliases (an HL7 or JSON feed may still send the old IPP)."""
    patient = Patient.objects.filter(ipp=ipp).first()
    seen = set()
    while patient is not None and patient.is_merged and patient.pk not in seen:
        seen.add(patient.pk)
        patient = merged_into(patient)
    return patient


def check_ins_unique(patient: Patient) -> None:
    """The same INS on two files is refused (one person, one file): name the file to merge with instead."""
    if not patient.ins:
        return
    other = (Patient.objects.filter(ins_bidx=ins_blind_index(patient.ins), is_merged=False)
             .exclude(pk=patient.pk).values_list("ipp", "confidentiality").first())
    if other and other[1] == Patient.Confidentiality.RESTRICTED:
        # A refusal never names a restricted file: whoever typed the INS may not be allowed to know it.
        raise ValidationError({"ins": [_("This INS is already registered on another file: the same person "
                                         "cannot have two files (ask identity vigilance).")]}, code="duplicate_ins")
    if other:
        raise ValidationError({"ins": [_("This INS is already registered on file %(ipp)s: the same person "
                                         "cannot have two files (ask identity vigilance to merge them).")
                                       % {"ipp": other[0]}]}, code="duplicate_ins")


def _flags_resolve(patient: Patient) -> None:
    """The identity just passed the rules (``full_clean``, unique INS): what was flagged on its traits and INS
    (migration 0007, ``patients.legacy``) is resolved; a corrected status once evidence is recorded again."""
    kinds = [k for k in IdentityFlag.Kind.values if k != IdentityFlag.Kind.STATUS_CORRECTED]
    if patient.identity_status != Patient.IdentityStatus.PROVISIONAL:
        kinds.append(IdentityFlag.Kind.STATUS_CORRECTED)
    IdentityFlag.objects.filter(patient_id=patient.pk, resolved_at__isnull=True, kind__in=kinds).update(
        resolved_at=timezone.now())


def _apply_status(patient: Patient, requested: str | None) -> None:
    """The status follows the evidence; a requested status must be the one the evidence gives."""
    patient.identity_status = requested or patient.evidence_status()


def probable_duplicates(patient: Patient, *, limit: int = 10) -> list[tuple[Patient, str]]:
    """Files that may be the same person: same strict traits, or same phonetic names and birth date."""
    if not patient.birth_date:
        return []
    same_day = (Patient.objects.filter(birth_date=patient.birth_date, is_merged=False).exclude(pk=patient.pk)
                .order_by("pk"))
    key_birth, key_first = phonetic_key(patient.birth_name), phonetic_key(patient.first_name)
    names = {phonetic_key(patient.used_name)} - {""} | {key_birth}
    out: list[tuple[Patient, str]] = []
    for other in same_day[:500]:
        if (other.birth_name, other.first_name, other.sex) == (patient.birth_name, patient.first_name, patient.sex) \
                and (not patient.birthplace_insee or not other.birthplace_insee
                     or other.birthplace_insee == patient.birthplace_insee):
            out.append((other, "strict_traits"))
        elif names & ({phonetic_key(other.birth_name), phonetic_key(other.used_name)} - {""}) \
                and phonetic_key(other.first_name) == key_first:
            out.append((other, "phonetic_birth_date"))
        if len(out) >= limit:
            break
    return out


def _flag_duplicates(patient: Patient) -> list[tuple[Patient, str]]:
    found = probable_duplicates(patient)
    DuplicateSuspicion.objects.bulk_create(
        [DuplicateSuspicion(patient=patient, candidate_id=other.pk, reason=why) for other, why in found])
    return found


@transaction.atomic
def patient_create(*, actor: Any = None, insi: InsiQuery | None = None, **fields: Any) -> Patient:
    """Register an identity. Provisional unless evidence is given: an identity document check
    (``validation_mode``, ``validation_date``, who checked) makes it validated; ``insi``, an INSi answer
    recorded by ``insi_search`` for these traits, makes it recovered (qualified with both).

    The traits are stored as the referential writes them. The new file's probable duplicates are flagged
    (``patient.probable_duplicates``), never silently merged.
    """
    fields.setdefault("ipp", next_ipp())
    requested = fields.pop("identity_status", None) or None
    if fields.get("validation_mode") and not fields.get("validated_by") and not fields.get("validated_by_name"):
        fields["validated_by"] = actor
    patient = Patient(**fields)
    if insi is not None:
        _take_insi_answer(patient, insi)
    _apply_status(patient, requested)
    patient.full_clean()
    check_ins_unique(patient)
    patient.ins_bidx = ins_blind_index(patient.ins)
    patient.save(force_insert=True)
    if insi is not None:
        InsiQuery.objects.filter(pk=insi.pk).update(patient=patient)
    patient.probable_duplicates = _flag_duplicates(patient)
    if patient.probable_duplicates:  # the creation itself is recorded by the channel's gate
        _audit(actor=actor, action="other", patient_id=patient.pk, basis="identity:duplicates_flagged",
               details={"status": patient.identity_status,
                        "candidates": [p.pk for p, _why in patient.probable_duplicates]})
    return patient


def _take_insi_answer(patient: Patient, answer: InsiQuery) -> None:
    """The INS and the strict traits as the INSi teleservice returned them (RNIV: they replace typed ones)."""
    if answer.outcome != InsiQuery.Outcome.FOUND or not answer.ins:
        raise ValidationError({"ins": [_("Only an INSi answer with exactly one identity can be used.")]})
    if answer.patient_id and answer.patient_id != patient.pk:
        raise ValidationError({"ins": [_("This INSi answer was obtained for another file.")]})
    if patient.is_doubtful_or_fictitious:
        raise ValidationError({"identity_attribute": [_("A doubtful or fictitious identity cannot use the INSi "
                                                        "teleservice.")]})
    if patient.has_document_check:
        # A validated identity: the document and the referential must agree, else a person must look.
        patient.normalise_traits()
        theirs = (answer.birth_name, answer.first_name, answer.sex, answer.birth_date)
        ours = (patient.birth_name, patient.first_name, patient.sex, patient.birth_date)
        if theirs != ours:
            raise ValidationError({"birth_name": [_("The INSi traits differ from the checked identity document: "
                                                    "check the document again before qualifying.")]})
    patient.ins = answer.ins
    patient.birth_name = answer.birth_name
    patient.first_names = answer.first_names
    patient.first_name = answer.first_name
    patient.sex = answer.sex
    patient.birth_date = answer.birth_date
    patient.birthplace_insee = answer.birthplace_insee
    patient.insi_date = answer.requested_at


def _diff(patient: Patient, changes: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    diff = {}
    for name, value in changes.items():
        old = getattr(patient, name)
        if old != value:
            diff[name] = (old, value)
            setattr(patient, name, value)
    return diff


@transaction.atomic
def patient_update(
    *, patient: Patient, actor: Any = None, _confidentiality_lowering: bool = False, **changes: Any
) -> dict[str, tuple[Any, Any]]:
    """Apply changes to identity or contact fields; returns {field: (old, new)} for the audit trail.

    Lowering confidentiality (restricted -> normal) is not a general update: it is refused here, and done
    only by ``access.services.patient_confidentiality_lower`` (a separate, audited permission).

    Editing a strict trait of a validated, recovered or qualified identity returns it to provisional (its
    document check and INSi result were about the old traits); editing the INS by hand voids the INSi
    result. The downgrade is part of the returned diff and recorded.
    """
    patient = Patient.objects.select_for_update().get(pk=patient.pk)
    check_not_frozen(patient)
    lowering = (
        patient.is_restricted
        and changes.get("confidentiality", patient.confidentiality) != Patient.Confidentiality.RESTRICTED
    )
    if lowering and not _confidentiality_lowering:
        raise ValidationError(
            {"confidentiality": [_("Lowering confidentiality is a separate, audited act (DPO), not an update.")]}
        )
    requested = changes.pop("identity_status", None) or None
    if changes.get("identity_attribute") in {Patient.Attribute.DOUBTFUL, Patient.Attribute.FICTITIOUS}:
        # A doubtful or fictitious identity stays provisional and never sends an INS (RNIV): its INS and its
        # evidence go with the flag, whatever the channel that sets it.
        changes.update(ins="", validation_mode="", validation_date=None, validated_by=None, validated_by_name="",
                       insi_date=None)
    before = {name: getattr(patient, name) for name in (*STRICT_TRAITS, "ins")}
    diff = _diff(patient, changes)
    if not diff and (requested is None or requested == patient.identity_status):
        return {}
    patient.normalise_traits()
    trait_changed = [n for n in STRICT_TRAITS if getattr(patient, n) != before[n]]
    ins_changed = patient.ins != before["ins"]
    downgrade: dict[str, tuple[Any, Any]] = {}
    if trait_changed and patient.identity_status != Patient.IdentityStatus.PROVISIONAL:
        downgrade = _diff(patient, {"validation_mode": "", "validation_date": None, "validated_by": None,
                                    "validated_by_name": "", "insi_date": None})
    elif ins_changed and patient.insi_date is not None:
        downgrade = _diff(patient, {"insi_date": None})
    if patient.validation_mode and "validation_mode" in changes and not patient.validated_by_id \
            and not patient.validated_by_name:
        patient.validated_by = actor
        diff["validated_by"] = (None, actor)
    old_status = patient.identity_status
    if requested is None and (downgrade or any(f in diff for f in (*EVIDENCE_FIELDS, "identity_attribute"))):
        _apply_status(patient, None)
    elif requested is not None:
        _apply_status(patient, requested)
    if patient.identity_status != old_status:
        downgrade["identity_status"] = (old_status, patient.identity_status)
    diff.update(downgrade)
    patient.full_clean()
    check_ins_unique(patient)
    patient.ins_bidx = ins_blind_index(patient.ins)
    saved = {*diff.keys(), *STRICT_TRAITS}
    patient.save(update_fields=sorted({("validated_by" if n == "validated_by" else n) for n in saved}
                                      | {"ins_bidx", "updated_at"}))
    _flags_resolve(patient)
    if "confidentiality" in diff or "restriction_reason" in diff:
        _aliases_follow(patient, actor=actor)
    if "identity_status" in downgrade or trait_changed:
        _audit(actor=actor, action="amend", patient_id=patient.pk, basis="identity:update",
               details={"fields": sorted(diff), "traits_changed": trait_changed,
                        "status": [old_status, patient.identity_status],
                        "downgraded": _rank(patient.identity_status) < _rank(old_status)})
    return diff


def _rank(status: str) -> int:
    return {"PROV": 0, "RECUP": 1, "VALI": 1, "QUAL": 2}.get(status, 0)


@transaction.atomic
def patient_document_record(*, actor: Any, patient: Patient, mode: str, checked_on: date | None = None,
                            checked_by_name: str = "") -> Patient:
    """A high-trust identity document was checked: PROV -> VALI, RECUP -> QUAL."""
    patient_update(patient=patient, actor=actor, validation_mode=mode,
                   validation_date=checked_on or timezone.localdate(),
                   validated_by=actor if not checked_by_name else None, validated_by_name=checked_by_name)
    return Patient.objects.get(pk=patient.pk)


@transaction.atomic
def patient_attribute_set(*, actor: Any, patient: Patient, attribute: str) -> Patient:
    """Flag an identity doubtful or fictitious (it returns to provisional: evidence and INS dropped), or homonym."""
    patient_update(patient=patient, actor=actor, identity_attribute=attribute)
    return Patient.objects.get(pk=patient.pk)


@transaction.atomic
def insi_search(*, actor: Any, traits: insi_client.InsiTraits, patient: Patient | None = None) -> InsiQuery:
    """Ask the INSi teleservice (or the simulator) for these traits; the call and its answer are recorded."""
    if patient is not None and patient.is_doubtful_or_fictitious:
        raise ValidationError({"identity_attribute": [_("A doubtful or fictitious identity cannot use the INSi "
                                                        "teleservice.")]})
    backend = insi_client.client()
    answer = backend.search(traits)
    first = answer.identities[0] if answer.outcome == "found" else None
    query = InsiQuery(
        patient=patient, requested_by=actor, backend=backend.name, outcome=answer.outcome, detail=answer.detail[:300],
        ins=first.ins if first else "", oid=first.oid if first else "",
        birth_name=first.birth_name if first else "", first_names=first.first_names if first else "",
        sex=first.sex if first else "", birth_date=first.birth_date if first else None,
        birthplace_insee=first.birthplace_insee if first else "",
    )
    query.save(force_insert=True)
    query.candidates = answer.identities
    _audit(actor=actor, action="search", patient_id=patient.pk if patient else None, basis="identity:insi",
           resource_type="insi", resource_id=query.pk, details={"outcome": answer.outcome,
                                                               "results": len(answer.identities)})
    return query


@transaction.atomic
def patient_insi_apply(*, actor: Any, patient: Patient, answer: InsiQuery) -> Patient:
    """Use an INSi answer on an existing file: PROV -> RECUP, VALI -> QUAL (traits must match the document)."""
    patient = Patient.objects.select_for_update().get(pk=patient.pk)
    check_not_frozen(patient)
    old = patient.identity_status
    _take_insi_answer(patient, answer)
    _apply_status(patient, None)
    patient.full_clean()
    check_ins_unique(patient)
    patient.ins_bidx = ins_blind_index(patient.ins)
    patient.save(update_fields=["ins", "ins_bidx", "birth_name", "first_name", "first_names", "sex", "birth_date",
                                "birthplace_insee", "insi_date", "identity_status", "updated_at"])
    InsiQuery.objects.filter(pk=answer.pk).update(patient=patient)
    _flags_resolve(patient)
    _audit(actor=actor, action="amend", patient_id=patient.pk, basis="identity:insi_applied",
           details={"status": [old, patient.identity_status], "insi_query": answer.pk})
    return patient


@transaction.atomic
def patient_insi_check(*, actor: Any, patient: Patient) -> tuple[Patient, InsiQuery]:
    """Query INSi with the file's traits and, on exactly one result, apply it."""
    traits = insi_client.InsiTraits(birth_name=patient.birth_name,
                                    first_names=patient.first_names or patient.first_name, sex=patient.sex,
                                    birth_date=patient.birth_date,
                                    birthplace_insee=patient.birthplace_insee)
    query = insi_search(actor=actor, traits=traits, patient=patient)
    if query.outcome != InsiQuery.Outcome.FOUND:
        return patient, query
    return patient_insi_apply(actor=actor, patient=patient, answer=query), query


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


def _check_stay_dates(patient: Patient, start: datetime) -> None:
    """No stay before birth or after death (compared on the hospital's calendar day). The messages do not quote
    the stored dates, whoever asks: they also reach HL7 and API senders, who must not learn what the record
    holds."""
    patient.check_in_lifetime(start, field="start",
                              before_birth=_("A stay cannot start before the patient's birth."),
                              after_death=_("A stay cannot start after the patient's death."))


def _check_no_open_stay(patient: Patient, *, start: datetime, excluding: int | None = None) -> None:
    """At most one open stay per patient: a move to another unit is a transfer, which closes the previous. The
    message does not name the open stay's unit or date, whoever asks (it reaches HL7 and API senders too)."""
    open_stays = Encounter.objects.filter(patient_id=patient.pk, end__isnull=True)
    if excluding:
        open_stays = open_stays.exclude(pk=excluding)
    current = open_stays.first()
    if current is not None:
        raise ValidationError({"patient": [_("This patient already has a stay in progress: transfer or "
                                             "discharge it first.")]},
                              code="open_stay")


def check_admission(*, patient: Patient, start: datetime) -> None:
    """What ``encounter_admit`` refuses, for a form to say before saving (same rules, same messages)."""
    check_not_frozen(patient)
    _check_stay_dates(patient, start)
    _check_no_open_stay(patient, start=start)


def check_appointment(*, patient: Patient, start: datetime, regularisation: bool = False) -> None:
    """What ``appointment_book`` refuses, for a form to say before saving."""
    check_not_frozen(patient)
    _check_not_past(start, regularisation)
    _check_stay_dates(patient, start)


def _check_not_past(start: datetime, regularisation: bool) -> None:
    if not regularisation and start < timezone.now() - timedelta(minutes=5):
        raise ValidationError({"start": [_("An appointment cannot be booked in the past; tick "
                                           "\"regularisation\" to record one that took place.")]})


@transaction.atomic
def encounter_admit(
    *,
    patient: Patient,
    unit: CareUnit | str | int,
    start: datetime | None = None,
    kind: str = Encounter.Kind.STAY,
    actor: Any = None,
    source: str = Encounter.Source.SYSTEM,
) -> Encounter:
    """Open a stay. A refusal gives neither the birth or death date nor the unit and date of the stay in
    progress, whoever asks (a purpose lets the feed admit a patient whose data it may not read)."""
    patient = Patient.objects.select_for_update().get(pk=patient.pk)  # one admission at a time per patient
    check_not_frozen(patient)
    unit = _unit(unit)
    start = start or timezone.now()
    _check_stay_dates(patient, start)
    _check_no_open_stay(patient, start=start)
    encounter = Encounter(patient=patient, unit=unit, start=start, kind=kind, **_provenance(actor, source))
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
def encounter_transfer(
    *,
    encounter: Encounter,
    unit: CareUnit | str | int,
    at: datetime | None = None,
    actor: Any = None,
    source: str = Encounter.Source.SYSTEM,
) -> Encounter:
    at = at or timezone.now()
    closed = encounter_discharge(encounter=encounter, end=at)
    new = Encounter(
        patient_id=closed.patient_id,
        unit=_unit(unit),
        start=at,
        kind=closed.kind,
        transferred_from=closed,
        **_provenance(actor, source),
    )
    new.full_clean()
    new.save(force_insert=True)
    return new


@transaction.atomic
def appointment_book(
    *, patient: Patient, unit: CareUnit | str | int, practitioner, start: datetime, end: datetime, reason: str = "",
    regularisation: bool = False, actor: Any = None, source: str = Appointment.Source.SYSTEM,
) -> Appointment:
    """Book an appointment. Not in the past, unless it records one that took place (``regularisation``)."""
    check_not_frozen(patient)
    unit = _unit(unit)
    _check_not_past(start, regularisation)
    _check_stay_dates(patient, start)
    appt = Appointment(
        patient=patient, unit=unit, practitioner=practitioner, start=start, end=end, reason=reason,
        **_provenance(actor, source),
    )
    appt.full_clean()
    for validate in appointment_validators:
        validate(appt)
    appt.save(force_insert=True)
    touch_activity(patient.pk, start)
    return appt


@transaction.atomic
def appointment_cancel(*, appointment: Appointment) -> Appointment:
    appointment.status = Appointment.Status.CANCELLED
    appointment.save(update_fields=["status"])
    return appointment


# --- merge, unmerge, split (identity vigilance) -------------------------------------------------------------
# Relations not moved by a merge: the merge's own bookkeeping, the traces of INSi calls (they belong to the
# file they were made for), duplicate flags, and derived care grants (recomputed by ``access``).
_NOT_MOVED = {"patients.identitymerge", "patients.insiquery", "patients.duplicatesuspicion", "patients.identityflag",
              "access.caregrant", "access.patientgroupobjectpermission"}


def _patient_relations() -> list[tuple[type[models.Model], models.Field]]:
    """Every foreign key (or one-to-one) to Patient, found from the models (nothing is forgotten)."""
    out = []
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed or model._meta.label_lower in _NOT_MOVED:
            continue
        for field in model._meta.concrete_fields:
            if isinstance(field, models.ForeignKey) and field.related_model is Patient:
                out.append((model, field))
    return out


def _move_rows(*, source_id: int, target_id: int, only: dict[str, list[int]] | None = None) -> dict[str, list[int]]:
    """Point every row of ``source_id`` (or only the listed ones) at ``target_id``. Returns what moved.

    A row that would break a uniqueness rule on the target (the target already has it: e.g. the same
    objection, a staff link) is left on the source, which stays readable as an alias.
    """
    moved: dict[str, list[int]] = {}
    for model, field in _patient_relations():
        key = f"{model._meta.label_lower}.{field.name}"
        rows = model._base_manager.filter(**{field.attname: source_id})
        if only is not None:
            if key not in only:
                continue
            rows = rows.filter(pk__in=only[key])
        ids = list(rows.values_list("pk", flat=True))
        if not ids:
            continue
        if field.one_to_one or field.unique:
            if model._base_manager.filter(**{field.attname: target_id}).exists():
                continue
        unique_sets = [tuple(c.fields) for c in model._meta.constraints
                       if isinstance(c, models.UniqueConstraint) and field.name in c.fields and c.condition is None]
        unique_sets += [tuple(u) for u in model._meta.unique_together if field.name in u]
        done: list[int] = []
        for pk in ids:
            if unique_sets:
                row = model._base_manager.get(pk=pk)
                clash = any(model._base_manager.filter(**{field.attname: target_id, **{
                    f: getattr(row, model._meta.get_field(f).attname) for f in fields if f != field.name}})
                    .exists() for fields in unique_sets)
                if clash:
                    continue
            done.append(pk)
        if done:
            model._base_manager.filter(pk__in=done).update(**{field.attname: target_id})
            moved[key] = done
    return moved


# In ``IdentityMerge.moved``: the kept file's confidentiality before a restricted file was merged into it.
_KEPT_CONFIDENTIALITY = "_kept_confidentiality"
_MERGED_CONFIDENTIALITY = "_merged_confidentiality"


def _moved_back(moved: dict[str, Any], *, source_id: int, target_id: int) -> None:
    by_key = {f"{m._meta.label_lower}.{f.name}": (m, f) for m, f in _patient_relations()}
    for key, ids in moved.items():
        if key not in by_key:
            continue
        model, field = by_key[key]
        model._base_manager.filter(pk__in=ids, **{field.attname: source_id}).update(**{field.attname: target_id})


def _aliases_follow(patient: Patient, *, actor: Any = None, system_task: str = "") -> None:
    """The files merged into ``patient`` (merges not undone, and the files merged into those) carry its
    confidentiality: an alias is the same person (its identity, its IPP resolving to the kept file), so a file
    restricted or lowered after its merge takes its aliases with it, and whoever may not know it may not find it
    under an alias either. Each alias's own setting before it first followed is kept in its merge record, which
    an unmerge puts back."""
    level = (patient.confidentiality, patient.restriction_reason)
    seen, frontier = {patient.pk}, [patient.pk]
    while frontier:
        merges = list(IdentityMerge.objects.select_for_update()
                      .filter(kept_patient_id__in=frontier, undone_at__isnull=True).order_by("pk"))
        frontier = []
        for merge in merges:
            if merge.merged_id in seen:
                continue
            seen.add(merge.merged_id)
            frontier.append(merge.merged_id)
            alias = Patient.objects.select_for_update().get(pk=merge.merged_id)
            old = (alias.confidentiality, alias.restriction_reason)
            if old == level:
                continue
            if _MERGED_CONFIDENTIALITY not in merge.moved:
                merge.moved[_MERGED_CONFIDENTIALITY] = list(old)
                merge.save(update_fields=["moved"])
            Patient.objects.filter(pk=alias.pk).update(confidentiality=level[0], restriction_reason=level[1],
                                                       updated_at=timezone.now())
            _audit(actor=actor, action="amend", patient_id=alias.pk, basis="identity:alias_confidentiality",
                   system_task=system_task, resource_type="identitymerge", resource_id=merge.pk,
                   details={"kept": patient.pk, "confidentiality": [old[0], level[0]]})


@transaction.atomic
def patient_merge(*, actor: Any, kept: Patient, merged: Patient, reason: str, system_task: str = "") -> IdentityMerge:
    """Merge two files of one person (identity vigilance; HL7 ADT A40): ``merged`` into ``kept``.

    Every row of the merged file (stays, appointments, clinical records, care-team memberships, objections,
    emergency accesses, rights requests...) moves to the kept file; the merged file stays as an alias (its
    IPP resolves to the kept file through ``patient_by_ipp``) and takes no new data; the audit trails of
    both files are left whole (events keep the id they were written with). Care grants are recomputed.

    ``actor`` is the identity-vigilance user, already authorised by the channel; it may be None for a
    system task (the HL7 listener), which then names itself in ``system_task`` (e.g. ``"hl7:A40:<msg id>"``).
    The merge is reversible with ``patient_unmerge`` within ``DPI_IDENTITY_UNMERGE_DAYS`` days.
    """
    if actor is None and not system_task:
        raise ValueError("a merge without a user must name its system_task")
    if not reason.strip():
        raise ValidationError({"reason": [_("Give the reason for the merge.")]})
    first, second = sorted([kept.pk, merged.pk])
    locked = {p.pk: p for p in Patient.objects.select_for_update().filter(pk__in=[first, second]).order_by("pk")}
    if kept.pk == merged.pk or len(locked) != 2:
        raise ValidationError({"merged": [_("Choose two different files.")]})
    kept, merged = locked[kept.pk], locked[merged.pk]
    for patient in (kept, merged):
        if patient.is_merged:
            raise ValidationError({"merged": [_("File %(ipp)s was already merged.") % {"ipp": patient.ipp}]})
        if patient.frozen:
            raise ValidationError({"merged": [_("File %(ipp)s is frozen (restriction of processing).")
                                              % {"ipp": patient.ipp}]})
    if kept.birth_date != merged.birth_date or (kept.sex != merged.sex and "U" not in {kept.sex, merged.sex}):
        if not reason.lower().startswith("forced:"):
            raise ValidationError({"merged": [_("The two files differ in birth date or sex: they may be two "
                                                "people. Check, or start the reason with 'forced:'.")]})
    if kept.ins and merged.ins and kept.ins != merged.ins:
        raise ValidationError({"merged": [_("The two files carry different INS: two different people.")]})
    if kept.pk and Encounter.objects.filter(patient_id=kept.pk, end__isnull=True).exists() \
            and Encounter.objects.filter(patient_id=merged.pk, end__isnull=True).exists():
        raise ValidationError({"merged": [_("Both files have a stay in progress: discharge one first.")]})
    moved: dict[str, Any] = _move_rows(source_id=merged.pk, target_id=kept.pk)
    if merged.is_restricted and not kept.is_restricted:
        # The stricter confidentiality follows the data: a restricted person's record does not become findable
        # by everyone by joining a normal file. Put back by an unmerge.
        moved[_KEPT_CONFIDENTIALITY] = [kept.confidentiality, kept.restriction_reason]
        kept.confidentiality, kept.restriction_reason = merged.confidentiality, merged.restriction_reason
        kept.save(update_fields=["confidentiality", "restriction_reason", "updated_at"])
    if kept.is_restricted and not merged.is_restricted:
        # The same rule the other way: the alias is the same person (its identity, its IPP resolving to the kept
        # file), so whoever may not know the kept file may not know the alias either, nor learn from it or its
        # unmerge that a hidden file exists. Put back by an unmerge.
        moved[_MERGED_CONFIDENTIALITY] = [merged.confidentiality, merged.restriction_reason]
        merged.confidentiality, merged.restriction_reason = kept.confidentiality, kept.restriction_reason
    merged.is_merged = True
    merged.save(update_fields=["is_merged", "confidentiality", "restriction_reason", "updated_at"])
    if merged.last_activity_at and (not kept.last_activity_at or merged.last_activity_at > kept.last_activity_at):
        touch_activity(kept.pk, merged.last_activity_at)
    record = IdentityMerge(merged=merged, kept_patient_id=kept.pk, kept_ipp=kept.ipp, actor=actor,
                           system_task=system_task[:100], reason=reason[:300], moved=moved)
    record.full_clean()
    record.save(force_insert=True)
    _aliases_follow(kept, actor=actor, system_task=system_task)  # the merged file's own aliases too
    DuplicateSuspicion.objects.filter(patient_id__in=[kept.pk, merged.pk], candidate_id__in=[kept.pk, merged.pk],
                                      resolved_at__isnull=True).update(resolved_at=timezone.now())
    IdentityFlag.objects.filter(patient_id__in=[kept.pk, merged.pk], kind=IdentityFlag.Kind.SAME_INS,
                                resolved_at__isnull=True).update(resolved_at=timezone.now())
    counts = {k: len(v) for k, v in moved.items() if not k.startswith("_")}
    for pid, role in ((kept.pk, "kept"), (merged.pk, "merged")):
        _audit(actor=actor, action="amend", patient_id=pid, basis=f"identity:merge_{role}", system_task=system_task,
               resource_type="identitymerge", resource_id=record.pk,
               details={"kept": kept.pk, "kept_ipp": kept.ipp, "merged": merged.pk, "merged_ipp": merged.ipp,
                        "moved": counts, "reason": reason[:300],
                        "confidentiality": [moved[_KEPT_CONFIDENTIALITY][0], kept.confidentiality]
                        if _KEPT_CONFIDENTIALITY in moved else None})
    patient_records_moved.send(sender=IdentityMerge, patient_ids=[kept.pk, merged.pk])
    return record


@transaction.atomic
def patient_unmerge(*, actor: Any, merge: IdentityMerge, reason: str, system_task: str = "") -> IdentityMerge:
    """Undo a merge within ``DPI_IDENTITY_UNMERGE_DAYS``: the rows it moved go back, the alias ends.

    Rows written on the kept file after the merge stay there (they were written for the kept file).
    """
    if actor is None and not system_task:
        raise ValueError("an unmerge without a user must name its system_task")
    merge = IdentityMerge.objects.select_for_update().get(pk=merge.pk)
    if merge.undone_at is not None:
        raise ValidationError({"merge": [_("This merge was already undone.")]})
    days = getattr(settings, "DPI_IDENTITY_UNMERGE_DAYS", 30)
    if timezone.now() - merge.merged_at > timedelta(days=days):
        raise ValidationError({"merge": [_("A merge can only be undone within %(days)d days.") % {"days": days}]})
    if not reason.strip():
        raise ValidationError({"reason": [_("Give the reason for undoing the merge.")]})
    merged = Patient.objects.select_for_update().get(pk=merge.merged_id)
    _moved_back(merge.moved, source_id=merge.kept_patient_id, target_id=merged.pk)
    if _KEPT_CONFIDENTIALITY in merge.moved:
        kept = Patient.objects.select_for_update().get(pk=merge.kept_patient_id)
        kept.confidentiality, kept.restriction_reason = merge.moved[_KEPT_CONFIDENTIALITY]
        kept.save(update_fields=["confidentiality", "restriction_reason", "updated_at"])
    if _MERGED_CONFIDENTIALITY in merge.moved:
        merged.confidentiality, merged.restriction_reason = merge.moved[_MERGED_CONFIDENTIALITY]
    merged.is_merged = False
    merged.save(update_fields=["is_merged", "confidentiality", "restriction_reason", "updated_at"])
    merge.undone_at, merge.undone_by, merge.undo_reason = timezone.now(), actor, reason[:300]
    merge.save(update_fields=["undone_at", "undone_by", "undo_reason"])
    _aliases_follow(merged, actor=actor, system_task=system_task)
    _aliases_follow(Patient.objects.get(pk=merge.kept_patient_id), actor=actor, system_task=system_task)
    for pid in (merge.kept_patient_id, merged.pk):
        _audit(actor=actor, action="amend", patient_id=pid, basis="identity:unmerge", system_task=system_task,
               resource_type="identitymerge", resource_id=merge.pk,
               details={"kept": merge.kept_patient_id, "merged": merged.pk, "reason": reason[:300]})
    patient_records_moved.send(sender=IdentityMerge, patient_ids=[merge.kept_patient_id, merged.pk])
    return merge


@transaction.atomic
def patient_split(*, actor: Any, patient: Patient, identity: dict[str, Any], encounters: list[int],
                  appointments: list[int] | None = None, reason: str) -> Patient:
    """A collision (one file holding two people): create the second person's file and move to it the stays
    given, their appointments and every clinical item linked to those stays. Audited on both files."""
    if not reason.strip():
        raise ValidationError({"reason": [_("Give the reason for the split.")]})
    source = Patient.objects.select_for_update().get(pk=patient.pk)
    check_not_frozen(source)
    if not encounters and not appointments:
        raise ValidationError({"encounters": [_("Choose the stays or appointments that belong to the other "
                                                "person.")]})
    owned = set(Encounter.objects.filter(patient_id=source.pk, pk__in=encounters).values_list("pk", flat=True))
    if owned != set(encounters):
        raise ValidationError({"encounters": [_("These stays are not in this file.")]})
    other = patient_create(actor=actor, **identity)
    only: dict[str, list[int]] = {}
    for model, field in _patient_relations():
        key = f"{model._meta.label_lower}.{field.name}"
        names = {f.name for f in model._meta.concrete_fields}
        if model is Encounter:
            only[key] = list(owned)
        elif model is Appointment:
            only[key] = list(appointments or [])
        elif "encounter" in names:
            only[key] = list(model._base_manager.filter(**{field.attname: source.pk, "encounter_id__in": owned})
                             .values_list("pk", flat=True))
    # Versions kept of the items that move (rows naming an item by resource_type and resource_id) move too.
    items = {(key.split(".")[1], pk) for key, pks in only.items() for pk in pks}
    for model, field in _patient_relations():
        names = {f.name for f in model._meta.concrete_fields}
        if {"resource_type", "resource_id"} <= names:
            key = f"{model._meta.label_lower}.{field.name}"
            only[key] = [pk for pk, rt, rid in model._base_manager.filter(**{field.attname: source.pk})
                         .values_list("pk", "resource_type", "resource_id") if (rt, rid) in items]
    moved = _move_rows(source_id=source.pk, target_id=other.pk, only=only)
    counts = {k: len(v) for k, v in moved.items()}
    for pid in (source.pk, other.pk):
        _audit(actor=actor, action="amend", patient_id=pid, basis="identity:split",
               details={"from": source.pk, "to": other.pk, "to_ipp": other.ipp, "moved": counts,
                        "reason": reason[:300]})
    patient_records_moved.send(sender=Patient, patient_ids=[source.pk, other.pk])
    return other


# --- movements undone or reclassified (cancellations of the ADT feed: IHE PAM A11, A12, A13, A06, A07) ---------
@transaction.atomic
def encounter_cancel(*, encounter: Encounter) -> None:
    """An admission entered in error is removed (A11); the care relationships it opened go with it. A stay
    that has already moved on (transferred) is cancelled movement by movement, last first."""
    encounter = Encounter.objects.select_for_update().get(pk=encounter.pk)
    check_not_frozen(encounter.patient)
    if Encounter.objects.filter(transferred_from=encounter).exists():
        raise ValidationError({"encounter": [_("This stay was transferred since: cancel the transfer first.")]})
    encounter.delete()


@transaction.atomic
def encounter_discharge_cancel(*, encounter: Encounter) -> Encounter:
    """A discharge entered in error: the stay is open again (A13)."""
    encounter = Encounter.objects.select_for_update().get(pk=encounter.pk)
    check_not_frozen(encounter.patient)
    if encounter.end is None:
        raise ValidationError({"end": [_("This encounter is not closed.")]})
    if Encounter.objects.filter(transferred_from=encounter).exists():
        raise ValidationError({"end": [_("This encounter ended with a transfer, not a discharge.")]})
    _check_no_open_stay(encounter.patient, start=encounter.start, excluding=encounter.pk)  # one stay in progress
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
        raise ValidationError({"encounter": [_("This encounter does not follow a transfer.")]})
    if encounter.end is not None or Encounter.objects.filter(transferred_from=encounter).exists():
        raise ValidationError({"encounter": [_("Only the current movement of a stay can be cancelled.")]})
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

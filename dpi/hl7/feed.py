"""The HL7 v2 feed as calls to dpi's services, each write asked of the gate's system path (task ``hl7_feed``)
and so recorded. This module holds no rule of its own: identities through ``patients.services``, movements
through the encounter services (the care team follows them, as for the JSON ADT endpoint), results through
``dpi.services.observation_record``. IHE PAM (French national extension) events:

- A28 / A31 / A08: create or update the identity (PID);
- A01 / A04: admission (inpatient / outpatient) under the visit number PV1-19; A05 pre-admission (no encounter,
  so no care relationship, until the A01); A38 cancels a pre-admission;
- A02 transfer (PV1-3 the new unit), A03 discharge, A06 / A07 outpatient to inpatient and back;
- A11 / A12 / A13 cancel an admission, a transfer, a discharge;
- A21 / A22 leave of absence and return (the stay, and the care team, stay as they are);
- A40 merge (PID the identity kept, MRG-1 the one merged into it): ``patients.services.patient_merge``;
- ORU^R01: each OBX a result (LOINC when OBX-3.3 is LN); OBX-11 ``C`` corrects the result of the same code and
  time (the previous value is kept as an amendment).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from access import gate
from access.policy import Category, Role
from audit.services import event_record
from dpi import services as clinical_services
from dpi.hl7.message import (
    DATA_TYPE_ERROR,
    DUPLICATE_KEY_IDENTIFIER,
    REQUIRED_FIELD_MISSING,
    TABLE_VALUE_NOT_FOUND,
    UNKNOWN_KEY_IDENTIFIER,
    Hl7Error,
    Message,
    Reader,
    Segment,
    parse_dt,
    parse_ts,
)
from dpi.hl7.models import VisitLink
from dpi.models import Observation
from patients import services as patient_services
from patients.models import CareUnit, Encounter, Patient

TASK = "hl7_feed"
FEED_USERNAME = "hl7.feed"

# Where a service's ValidationError on a field comes from in the message.
FIELD_OF = {
    "ipp": "PID-3",
    "ins": "PID-3",
    "birth_name": "PID-5",
    "used_name": "PID-5",
    "first_name": "PID-5",
    "first_names": "PID-5",
    "birth_date": "PID-7",
    "sex": "PID-8",
    "birthplace_insee": "PID-11",
    "address": "PID-11",
    "postal_code": "PID-11",
    "city": "PID-11",
    "phone": "PID-13",
    "date_of_death": "PID-29",
    "identity_status": "PID-32",
    "merged": "MRG-1",
    "unit": "PV1-3",
    "start": "PV1-44",
    "end": "PV1-45",
    "encounter": "PV1-19",
    "value": "OBX-5",
    "unit_of_measure": "OBX-6",
    "label": "OBX-3",
    "loinc": "OBX-3",
    "effective_at": "OBX-14",
    "reference_low": "OBX-7",
    "reference_high": "OBX-7",
}
# HL7 table 0001 (administrative sex): F, M, O other, U unknown, A ambiguous, N not applicable.
ADMINISTRATIVE_SEX = frozenset({"F", "M", "O", "U", "A", "N"})
PATIENT_CLASS = {
    "I": Encounter.Kind.STAY,
    "O": Encounter.Kind.CONSULTATION,
    "R": Encounter.Kind.CONSULTATION,
    "E": Encounter.Kind.EMERGENCY,
}


@dataclass
class Context:
    message: Message
    reader: Reader

    @property
    def control_id(self) -> str:
        return self.message.header.control_id

    @property
    def event(self) -> str:
        return self.message.header.event


def feed_user() -> User:
    """The service account results are authored by (role integration, no password), created once and
    recorded as a permission change."""
    user = User.objects.filter(username=FEED_USERNAME).first()
    if user is not None:
        return user
    from access.models import StaffProfile

    try:
        with transaction.atomic():
            user = User(username=FEED_USERNAME, first_name="HL7", last_name="(interface)")
            user.set_unusable_password()  # never signs in
            user.full_clean()
            user.save()
            StaffProfile.objects.create(user=user, role=Role.INTEGRATION.value)
            event_record(
                action="permission_change",
                outcome="allowed",
                actor_role="system",
                actor_unit=TASK,
                basis="hl7_feed_account",
                resource_type="user",
                resource_id=user.pk,
                details={"service_account": FEED_USERNAME, "role": Role.INTEGRATION.value},
            )
            return user
    except (IntegrityError, ValidationError):
        return User.objects.get(username=FEED_USERNAME)


def _authorize(
    ctx: Context,
    *,
    action: str,
    patient_id: int | None,
    category: Category = Category.ADMINISTRATIVE,
    resource_type: str = "",
    resource_id: Any = "",
) -> None:
    gate.authorize_system(
        TASK,
        patient_id=patient_id,
        category=category,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        details={"hl7": ctx.message.header.message_type, "control_id": ctx.control_id[:64]},
    )


# --- identity -----------------------------------------------------------------------------------------------
def patient_key(message: Message, reader: Reader) -> str:
    """The sender's IPP (PID-3 with identifier type PI, else the first identifier), or ''."""
    pid = message.first("PID")
    if pid is None:
        return ""
    reps = reader.reps(pid, 3)
    for rep in reps:
        if reader.comp_of(rep, 5).upper() == "PI":
            return reader.comp_of(rep, 1).strip()
    return reader.comp_of(reps[0], 1).strip() if reps else ""


def merged_key(message: Message, reader: Reader) -> str:
    mrg = message.first("MRG")
    return reader.value(mrg, 1) if mrg is not None else ""


def _cleared(value: str) -> bool:
    return value == '""'  # HL7: explicitly emptied


def identity(ctx: Context, pid: Segment) -> dict[str, Any]:
    """The traits of PID, as Patient fields. Empty fields are left out (no information); ``""`` clears."""
    r = ctx.reader
    out: dict[str, Any] = {}
    ipp = patient_key(ctx.message, r)
    if not ipp:
        raise Hl7Error("PID-3", REQUIRED_FIELD_MISSING, "The patient identifier (IPP, type PI) is missing.")
    if len(ipp) > 20:
        raise Hl7Error("PID-3", DATA_TYPE_ERROR, "The IPP is longer than 20 characters.")
    out["ipp"] = ipp
    for rep in r.reps(pid, 3):
        kind = r.comp_of(rep, 5).upper()
        if kind.startswith("INS"):
            out["ins"] = r.comp_of(rep, 1).strip()
    legal = usual = None
    names = r.reps(pid, 5)
    for rep in names:
        kind = r.comp_of(rep, 7).upper()
        if kind == "L" and legal is None:
            legal = rep
        elif kind == "D" and usual is None:
            usual = rep
    legal = legal or (names[0] if names else None)
    if legal is None or not r.comp_of(legal, 1).split(r.sub)[0].strip():
        raise Hl7Error("PID-5", REQUIRED_FIELD_MISSING, "The birth name (PID-5, type L) is missing.")
    out["birth_name"] = r.comp_of(legal, 1).split(r.sub)[0].strip().upper()
    first = r.comp_of(legal, 2).strip()
    if not first:
        raise Hl7Error("PID-5", REQUIRED_FIELD_MISSING, "The first given name (PID-5.2) is missing.")
    out["first_name"] = first
    more = r.comp_of(legal, 3).strip()
    if more:
        out["first_names"] = f"{first} {more}".replace(",", " ")
    if usual is not None:
        out["used_name"] = r.comp_of(usual, 1).split(r.sub)[0].strip().upper()
    out["birth_date"] = parse_dt(r.value(pid, 7), "PID-7", required=True)
    sex = r.value(pid, 8).upper()
    if sex and sex not in ADMINISTRATIVE_SEX:
        raise Hl7Error("PID-8", TABLE_VALUE_NOT_FOUND, f"Administrative sex {sex[:3]} is not in HL7 table 0001.")
    out["sex"] = sex if sex in ("M", "F") else "U"  # dpi records F, M or U (unknown)
    # PID-11: the home address, and (IHE PAM France) the birth place as a repetition of type BDL with the
    # INSEE code of the commune (or 99 + country) in XAD-9.
    places = r.reps(pid, 11)
    for rep in places:
        if r.comp_of(rep, 7).upper() == "BDL" and r.comp_of(rep, 9).strip():
            out["birthplace_insee"] = r.comp_of(rep, 9).strip().upper()
            break
    address = [rep for rep in places if r.comp_of(rep, 7).upper() != "BDL"]
    if address:
        street = r.comp_of(address[0], 1).split(r.sub)[0].strip()
        for name, value in (
            ("address", street),
            ("city", r.comp_of(address[0], 3)),
            ("postal_code", r.comp_of(address[0], 5)),
        ):
            if _cleared(value):
                out[name] = ""
            elif value.strip():
                out[name] = value.strip()
    phone = r.value(pid, 13)
    if _cleared(phone):
        out["phone"] = ""
    elif phone:
        out["phone"] = phone[:30]
    death = r.value(pid, 29)
    if death and not _cleared(death):
        out["date_of_death"] = parse_dt(death, "PID-29")
    # PID-32 (identity reliability) is not applied: dpi's identity status follows its own evidence (identity
    # document checked, INSi answer), as identity vigilance requires.
    return out


def _find(ipp: str) -> Patient | None:
    return patient_services.patient_by_ipp(ipp)  # follows the IPP of a merged file to the file kept


def patient_upsert(ctx: Context, *, create: bool = True, update: bool = True) -> Patient:
    traits = identity(ctx, ctx.message.require("PID"))
    patient = _find(traits["ipp"])
    if patient is None:
        if not create:
            raise Hl7Error("PID-3", UNKNOWN_KEY_IDENTIFIER, "No patient with this IPP.")
        patient = patient_services.patient_create(**traits)
        _authorize(ctx, action="create", patient_id=patient.pk, resource_type="patient", resource_id=patient.pk)
        return patient
    if update:
        changes = {k: v for k, v in traits.items() if k != "ipp" and getattr(patient, k) != v}
        if changes:
            _authorize(ctx, action="amend", patient_id=patient.pk, resource_type="patient", resource_id=patient.pk)
            patient_services.patient_update(patient=patient, **changes)
            patient.refresh_from_db()
    return patient


def patient_existing(ctx: Context) -> Patient:
    ipp = patient_key(ctx.message, ctx.reader)
    if not ipp:
        raise Hl7Error("PID-3", REQUIRED_FIELD_MISSING, "The patient identifier (IPP, type PI) is missing.")
    patient = _find(ipp)
    if patient is None:
        raise Hl7Error("PID-3", UNKNOWN_KEY_IDENTIFIER, "No patient with this IPP.")
    return patient


# --- movements ----------------------------------------------------------------------------------------------
def _visit_number(ctx: Context) -> str:
    pv1 = ctx.message.require("PV1")
    number = ctx.reader.value(pv1, 19)
    if not number:
        raise Hl7Error("PV1-19", REQUIRED_FIELD_MISSING, "The visit number (PV1-19) is missing.")
    if len(number) > 64:
        raise Hl7Error("PV1-19", DATA_TYPE_ERROR, "The visit number is longer than 64 characters.")
    return number


def _unit(ctx: Context, *, required: bool = True) -> CareUnit | None:
    code = ctx.reader.value(ctx.message.require("PV1"), 3)
    if not code:
        if required:
            raise Hl7Error("PV1-3", REQUIRED_FIELD_MISSING, "The unit (PV1-3.1) is missing.")
        return None
    unit = CareUnit.objects.filter(code__iexact=code).first()
    if unit is None:
        raise Hl7Error("PV1-3", TABLE_VALUE_NOT_FOUND, f"Unknown care unit {code[:32]}.")
    return unit


def _when(ctx: Context, pv1_field: int | None = None) -> tuple[datetime, str]:
    """The movement's time and the field it was read from: ZBE-2, else EVN-6, else PV1-44/45, else EVN-2, else
    MSH-7, else now ('')."""
    r, m = ctx.reader, ctx.message
    candidates: list[tuple[Segment | None, int, str]] = [(m.first("ZBE"), 2, "ZBE-2"), (m.first("EVN"), 6, "EVN-6")]
    if pv1_field:
        candidates.append((m.first("PV1"), pv1_field, f"PV1-{pv1_field}"))
    candidates += [(m.first("EVN"), 2, "EVN-2"), (m.first("MSH"), 7, "MSH-7")]
    for segment, n, location in candidates:
        if segment is not None and r.value(segment, n):
            value = parse_ts(r.value(segment, n), location)
            if value is not None:
                return value, location
    return timezone.now(), ""


@contextmanager
def _time_from(location: str, *names: str):
    """A service refusing the movement's time (``start``, ``end``...) is answered on the field the time was read
    from, not on FIELD_OF's default (PV1-44 for a time that came from EVN-2)."""
    try:
        yield
    except ValidationError as exc:
        name = next((n for n in getattr(exc, "error_dict", {}) if n in names), None)
        if not location or name is None:
            raise
        text = "; ".join(m for e in exc.error_dict[name] for m in e.messages)[:250]
        raise Hl7Error(location, DATA_TYPE_ERROR, text or "Invalid time.") from exc


def _link(ctx: Context, patient: Patient, *, open_encounter: bool | None = None) -> VisitLink:
    """The visit of PV1-19, which must belong to this patient (and have an open or closed encounter)."""
    number = _visit_number(ctx)
    link = (
        VisitLink.objects.select_for_update(of=("self",))
        .select_related("encounter")
        .filter(visit_number=number)
        .first()
    )
    if link is None or link.patient_id != patient.pk:
        raise Hl7Error("PV1-19", UNKNOWN_KEY_IDENTIFIER, "No such visit for this patient.")
    if open_encounter is not None:
        if link.encounter is None:
            raise Hl7Error("PV1-19", UNKNOWN_KEY_IDENTIFIER, "This visit has no admission.")
        if open_encounter and link.encounter.end is not None:
            raise Hl7Error("PV1-19", UNKNOWN_KEY_IDENTIFIER, "This visit is closed.")
        if not open_encounter and link.encounter.end is None:
            raise Hl7Error("PV1-19", UNKNOWN_KEY_IDENTIFIER, "This visit is not closed.")
    return link


def admit(ctx: Context) -> Patient:
    patient = patient_upsert(ctx)
    number = _visit_number(ctx)
    unit = _unit(ctx)
    pv1 = ctx.message.require("PV1")
    default = Encounter.Kind.STAY if ctx.event == "A01" else Encounter.Kind.CONSULTATION
    kind = PATIENT_CLASS.get(ctx.reader.value(pv1, 2).upper(), default)
    link = VisitLink.objects.select_for_update().filter(visit_number=number).first()
    if link is not None and (link.patient_id != patient.pk or link.encounter_id is not None):
        raise Hl7Error("PV1-19", DUPLICATE_KEY_IDENTIFIER, "This visit number is already admitted.")
    _authorize(ctx, action="create", patient_id=patient.pk, resource_type="encounter")
    start, where = _when(ctx, 44)
    with _time_from(where, "start"):
        encounter = patient_services.encounter_admit(patient=patient, unit=unit, start=start, kind=kind, source="feed")
    if link is None:
        VisitLink.objects.create(visit_number=number, patient=patient, encounter=encounter)
    else:
        link.encounter, link.preadmitted_unit = encounter, ""
        link.save(update_fields=["encounter", "preadmitted_unit", "updated_at"])
    return patient


def preadmit(ctx: Context) -> Patient:
    patient = patient_upsert(ctx)
    number = _visit_number(ctx)
    unit = _unit(ctx, required=False)
    link = VisitLink.objects.select_for_update().filter(visit_number=number).first()
    if link is not None and (link.patient_id != patient.pk or link.encounter_id is not None):
        raise Hl7Error("PV1-19", DUPLICATE_KEY_IDENTIFIER, "This visit number is already in use.")
    _authorize(ctx, action="create", patient_id=patient.pk, resource_type="visit")
    VisitLink.objects.update_or_create(
        visit_number=number, defaults={"patient": patient, "preadmitted_unit": unit.code if unit else ""}
    )
    return patient


def preadmit_cancel(ctx: Context) -> Patient:
    patient = patient_existing(ctx)
    link = _link(ctx, patient)
    if link.encounter_id is not None:
        raise Hl7Error("PV1-19", UNKNOWN_KEY_IDENTIFIER, "This visit is admitted: cancel the admission (A11).")
    _authorize(ctx, action="amend", patient_id=patient.pk, resource_type="visit")
    link.delete()
    return patient


def transfer(ctx: Context) -> Patient:
    patient = patient_upsert(ctx, create=False)
    link = _link(ctx, patient, open_encounter=True)
    unit = _unit(ctx)
    _authorize(ctx, action="amend", patient_id=patient.pk, resource_type="encounter", resource_id=link.encounter_id)
    at, where = _when(ctx)
    with _time_from(where, "at", "start", "end"):
        new = patient_services.encounter_transfer(encounter=link.encounter, unit=unit, at=at, source="feed")
    link.encounter = new
    link.save(update_fields=["encounter", "updated_at"])
    return patient


def discharge(ctx: Context) -> Patient:
    patient = patient_upsert(ctx, create=False)
    link = _link(ctx, patient, open_encounter=True)
    _authorize(ctx, action="amend", patient_id=patient.pk, resource_type="encounter", resource_id=link.encounter_id)
    end, where = _when(ctx, 45)
    with _time_from(where, "end"):
        patient_services.encounter_discharge(encounter=link.encounter, end=end)
    link.leave_since = None
    link.save(update_fields=["leave_since", "updated_at"])
    return patient


def reclassify(ctx: Context) -> Patient:
    patient = patient_upsert(ctx, create=False)
    link = _link(ctx, patient, open_encounter=True)
    kind = Encounter.Kind.STAY if ctx.event == "A06" else Encounter.Kind.CONSULTATION
    _authorize(ctx, action="amend", patient_id=patient.pk, resource_type="encounter", resource_id=link.encounter_id)
    patient_services.encounter_reclassify(encounter=link.encounter, kind=kind)
    return patient


def admit_cancel(ctx: Context) -> Patient:
    patient = patient_existing(ctx)
    link = _link(ctx, patient, open_encounter=True)
    _authorize(ctx, action="amend", patient_id=patient.pk, resource_type="encounter", resource_id=link.encounter_id)
    patient_services.encounter_cancel(encounter=link.encounter)
    link.delete()
    return patient


def transfer_cancel(ctx: Context) -> Patient:
    patient = patient_existing(ctx)
    link = _link(ctx, patient, open_encounter=True)
    _authorize(ctx, action="amend", patient_id=patient.pk, resource_type="encounter", resource_id=link.encounter_id)
    previous = patient_services.encounter_transfer_cancel(encounter=link.encounter)
    link.encounter = previous
    link.save(update_fields=["encounter", "updated_at"])
    return patient


def discharge_cancel(ctx: Context) -> Patient:
    patient = patient_existing(ctx)
    link = _link(ctx, patient, open_encounter=False)
    _authorize(ctx, action="amend", patient_id=patient.pk, resource_type="encounter", resource_id=link.encounter_id)
    patient_services.encounter_discharge_cancel(encounter=link.encounter)
    return patient


def leave(ctx: Context) -> Patient:
    patient = patient_upsert(ctx, create=False)
    link = _link(ctx, patient, open_encounter=True)
    _authorize(ctx, action="amend", patient_id=patient.pk, resource_type="encounter", resource_id=link.encounter_id)
    link.leave_since = _when(ctx)[0] if ctx.event == "A21" else None
    link.save(update_fields=["leave_since", "updated_at"])
    return patient


def identity_update(ctx: Context) -> Patient:
    return patient_upsert(ctx, create=True)


def merge(ctx: Context) -> Patient:
    kept = patient_existing(ctx)
    merged_ipp = merged_key(ctx.message, ctx.reader)
    if not merged_ipp:
        raise Hl7Error("MRG-1", REQUIRED_FIELD_MISSING, "The merged patient's identifier (MRG-1) is missing.")
    merged = Patient.objects.filter(ipp=merged_ipp, is_merged=False).first()
    if merged is None:
        raise Hl7Error("MRG-1", UNKNOWN_KEY_IDENTIFIER, "No patient with the merged IPP.")
    if merged.pk == kept.pk:
        raise Hl7Error("MRG-1", DUPLICATE_KEY_IDENTIFIER, "A patient cannot be merged into itself.")
    _authorize(ctx, action="amend", patient_id=kept.pk, resource_type="patient", resource_id=kept.pk)
    _authorize(ctx, action="amend", patient_id=merged.pk, resource_type="patient", resource_id=merged.pk)
    patient_services.patient_merge(
        actor=None, kept=kept, merged=merged, reason=f"HL7 A40 {ctx.control_id}"[:200],
        system_task=f"hl7:A40:{ctx.control_id}"[:100],
    )
    return kept


# --- results --------------------------------------------------------------------------------------------------
def _decimal(raw: str, location: str) -> Decimal:
    try:
        value = Decimal(raw.replace(",", "."))
    except InvalidOperation as exc:
        raise Hl7Error(location, DATA_TYPE_ERROR, f"{location} is not a number.") from exc
    if not value.is_finite() or abs(value) >= Decimal("1e9"):
        raise Hl7Error(location, DATA_TYPE_ERROR, f"{location} is out of range.")
    return value


def results(ctx: Context) -> Patient:
    r, m = ctx.reader, ctx.message
    patient = patient_existing(ctx)
    encounter = None
    pv1 = m.first("PV1")
    if pv1 is not None and r.value(pv1, 19):
        link = VisitLink.objects.filter(visit_number=r.value(pv1, 19), patient=patient).first()
        encounter = link.encounter if link else None
    obr = m.first("OBR")
    default_time = parse_ts(r.value(obr, 7), "OBR-7") if obr is not None else None
    observations = m.all("OBX")
    if not observations:
        raise Hl7Error("OBX", REQUIRED_FIELD_MISSING, "An ORU^R01 needs at least one OBX segment.")
    author = feed_user()
    for obx in observations:
        where = f"OBX[{obx.index}]" if len(observations) > 1 else "OBX"
        code, text, system = (r.comp_of(r.reps(obx, 3)[0], n).strip() if r.reps(obx, 3) else "" for n in (1, 2, 3))
        if not code and not text:
            raise Hl7Error(f"{where}-3", REQUIRED_FIELD_MISSING, "The observation code (OBX-3) is missing.")
        status = r.value(obx, 11).upper() or "F"
        if status in ("D", "W", "X"):  # deleted / wrong patient / cannot be obtained: nothing to record
            continue
        kind, raw = r.value(obx, 2).upper(), r.value(obx, 5)
        fields: dict[str, Any] = {
            "label": (text or code)[:200],
            "loinc": code[:16] if system.upper() in ("LN", "LOINC") else "",
            "unit": r.value(obx, 6)[:32],
            "effective_at": parse_ts(r.value(obx, 14), f"{where}-14") or default_time or _when(ctx)[0],
        }
        if kind in ("NM", "SN"):
            if kind == "SN":
                raw = r.comp_of(r.reps(obx, 5)[0], 2) if r.reps(obx, 5) else ""
            if not raw:
                raise Hl7Error(f"{where}-5", REQUIRED_FIELD_MISSING, "The numeric value (OBX-5) is missing.")
            fields["value"] = _decimal(raw, f"{where}-5")
            low, _, high = r.value(obx, 7).partition("-")
            if low.strip() and high.strip():
                fields["reference_low"] = _decimal(low.strip(), f"{where}-7")
                fields["reference_high"] = _decimal(high.strip(), f"{where}-7")
        elif kind in ("ST", "TX", "FT", "CE", "CWE", ""):
            text_value = r.unescape("~".join(r.reps(obx, 5))) if kind in ("ST", "TX", "FT", "") else text
            if kind in ("CE", "CWE"):
                text_value = (
                    r.comp_of(r.reps(obx, 5)[0], 2) or r.comp_of(r.reps(obx, 5)[0], 1) if r.reps(obx, 5) else ""
                )
            if not text_value:
                raise Hl7Error(f"{where}-5", REQUIRED_FIELD_MISSING, "The value (OBX-5) is missing.")
            fields["value_text"] = text_value[:2000]
        else:
            raise Hl7Error(f"{where}-2", TABLE_VALUE_NOT_FOUND, f"Value type {kind[:3]} is not accepted.")
        existing = None
        if status == "C":
            # The label is encrypted at rest (no SQL equality on it): narrow in SQL, compare the label here.
            candidates = Observation.objects.filter(
                patient=patient, loinc=fields["loinc"], effective_at=fields["effective_at"]
            ).order_by("-pk")
            existing = next((o for o in candidates if o.label == fields["label"]), None)
        if existing is not None:
            _authorize(
                ctx,
                action="amend",
                patient_id=patient.pk,
                category=Category.MEDICAL,
                resource_type="observation",
                resource_id=existing.pk,
            )
            changes = {
                k: v
                for k, v in fields.items()
                if k in ("value", "value_text", "unit", "reference_low", "reference_high")
            }
            clinical_services.item_amend(
                item=existing, author=author, reason=f"HL7 correction {ctx.control_id}"[:300], **changes
            )
        else:
            _authorize(
                ctx, action="create", patient_id=patient.pk, category=Category.MEDICAL, resource_type="observation"
            )
            clinical_services.observation_record(patient=patient, author=author, encounter=encounter, **fields)
    return patient


HANDLERS = {
    "A01": admit,
    "A04": admit,
    "A05": preadmit,
    "A38": preadmit_cancel,
    "A02": transfer,
    "A03": discharge,
    "A06": reclassify,
    "A07": reclassify,
    "A11": admit_cancel,
    "A12": transfer_cancel,
    "A13": discharge_cancel,
    "A21": leave,
    "A22": leave,
    "A08": identity_update,
    "A28": identity_update,
    "A31": identity_update,
    "A40": merge,
    "R01": results,
}


def apply(message: Message) -> Patient:
    ctx = Context(message, Reader(message.header))
    return HANDLERS[message.header.event](ctx)

"""Writes of the compliance area: supervised maintenance, the patient's rights register, the breach register.

Every step leaves an audit event (``audit.services.event_record``) in the same transaction; refusals are
recorded on the independent connection so they survive the rollback.
"""

from __future__ import annotations

import calendar
import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from access import gate
from access.policy import Action, Category, Role
from audit.services import event_record
from dpi.compliance.models import Breach, MaintenanceLogEntry, MaintenanceWindow, RightsRequest
from patients.models import Patient

# Who approves a maintenance window: the IT department or the security officer, never the provider.
MAINTENANCE_APPROVERS = frozenset({Role.IT_ADMIN, Role.SECURITY_OFFICER})
# Who registers and answers the patient's rights requests (the DPO; the DIM physician for the medical record).
RIGHTS_OFFICERS = frozenset({Role.DPO, Role.DIM})
# Who records and follows personal-data breaches.
BREACH_OFFICERS = frozenset({Role.DPO, Role.SECURITY_OFFICER})


def _audit(*, actor: Any, action: str, resource_type: str, resource_id: Any = "", patient_id: int | None = None,
           outcome: str = "allowed", basis: str = "", reason: str = "", category: str = "",
           details: dict[str, Any] | None = None) -> None:
    role = gate.role_of(actor) if actor is not None else None
    event_record(action=action, outcome=outcome, actor=actor, actor_role=role.value if role else "",
                 actor_unit=gate.unit_of(actor) if actor is not None else "", patient_id=patient_id,
                 category=category, resource_type=resource_type, resource_id=resource_id, basis=basis,
                 reason=reason, details=details or {})


def _require_role(user: Any, roles: frozenset[Role], *, what: str, resource_type: str, resource_id: Any = "",
                  patient_id: int | None = None) -> Role:
    role = gate.role_of(user)
    if role not in roles or not getattr(user, "is_active", False):
        reason = f"{what} needs one of: {', '.join(sorted(r.value for r in roles))}"
        _audit(actor=user, action="other", resource_type=resource_type, resource_id=resource_id,
               patient_id=patient_id, outcome="denied", basis="deny:role", reason=reason)
        raise PermissionDenied(reason)
    assert role is not None
    return role


# === maintenance ==========================================================================================
def is_maintenance_account(user: Any) -> bool:
    """A maintenance provider's account: role ``maintenance`` (staff profile or Django group of that name)."""
    if user is None or not getattr(user, "pk", None):
        return False
    role = gate.role_of(user)
    if role is not None:
        return role == Role.MAINTENANCE
    return user.groups.filter(name=Role.MAINTENANCE.value).exists()


def active_window(user: Any, now: datetime | None = None) -> MaintenanceWindow | None:
    now = now or timezone.now()
    return (MaintenanceWindow.objects.filter(provider_id=user.pk, starts_at__lte=now, ends_at__gt=now,
                                             revoked_at__isnull=True)
            .select_related("approved_by").order_by("ends_at").last())


def maintenance_login_allowed(user: Any, now: datetime | None = None) -> bool:
    """False for a maintenance account outside every approved, unrevoked window; True otherwise."""
    if not is_maintenance_account(user):
        return True
    return active_window(user, now) is not None


@transaction.atomic
def maintenance_window_approve(*, provider: AbstractBaseUser, starts_at: datetime, ends_at: datetime,
                               purpose: str, approved_by: AbstractBaseUser) -> MaintenanceWindow:
    _require_role(approved_by, MAINTENANCE_APPROVERS, what="approving a maintenance window",
                  resource_type="maintenance_window")
    errors: dict[str, list[str]] = {}
    if not is_maintenance_account(provider):
        errors["provider"] = ["Only a maintenance provider's account gets maintenance windows."]
    if provider.pk == approved_by.pk:
        errors["approved_by"] = ["A provider cannot approve their own window."]
    if not purpose.strip():
        errors["purpose"] = ["Say what the intervention is for."]
    if ends_at <= starts_at:
        errors["ends_at"] = ["The window must end after it starts."]
    elif ends_at - starts_at > timedelta(days=7):
        errors["ends_at"] = ["A window lasts at most 7 days: approve another one if the work goes on."]
    if errors:
        raise ValidationError(errors)
    window = MaintenanceWindow(provider=provider, starts_at=starts_at, ends_at=ends_at, purpose=purpose.strip(),
                               approved_by=approved_by)
    window.full_clean()
    window.save(force_insert=True)
    _audit(actor=approved_by, action="permission_change", resource_type="maintenance_window", resource_id=window.pk,
           basis="maintenance:approve",
           details={"provider": provider.get_username(), "starts_at": starts_at.isoformat(),
                    "ends_at": ends_at.isoformat(), "purpose": window.purpose})
    maintenance_log_record(user=approved_by, what=f"window approved for {provider.get_username()}: {window.purpose}",
                           window=window)
    return window


@transaction.atomic
def maintenance_window_revoke(*, window: MaintenanceWindow, by: AbstractBaseUser) -> MaintenanceWindow:
    _require_role(by, MAINTENANCE_APPROVERS, what="revoking a maintenance window", resource_type="maintenance_window",
                  resource_id=window.pk)
    window = MaintenanceWindow.objects.select_for_update().get(pk=window.pk)
    if window.revoked_at is None:
        window.revoked_at, window.revoked_by = timezone.now(), by
        window.save(update_fields=["revoked_at", "revoked_by"])
        _audit(actor=by, action="permission_change", resource_type="maintenance_window", resource_id=window.pk,
               basis="maintenance:revoke")
        maintenance_log_record(user=by, what="window revoked", window=window)
    return window


def maintenance_log_record(*, user: Any, what: str, window: MaintenanceWindow | None = None,
                           outcome: str = MaintenanceLogEntry.Outcome.DONE,
                           details: dict[str, Any] | None = None) -> MaintenanceLogEntry:
    """One logbook line (append-only). ``window`` defaults to the user's active window."""
    if window is None and user is not None and outcome == MaintenanceLogEntry.Outcome.DONE:
        window = active_window(user)
    entry = MaintenanceLogEntry(
        window=window, actor_id=getattr(user, "pk", None),
        actor_username=user.get_username() if user is not None else "", what=what[:500], outcome=outcome,
        approved_by_username=window.approved_by.get_username() if window is not None else "",
        details=details or {},
    )
    # Refusals must survive the rollback of the refused request, like denied access events.
    entry.save(force_insert=True, using="audit" if outcome == MaintenanceLogEntry.Outcome.REFUSED else "default")
    return entry


def maintenance_login_refused(user: Any, *, now: datetime, channel_detail: str = "login") -> None:
    """Trace an out-of-window sign-in (audit event and logbook line), both outside the request's transaction."""
    reason = "maintenance account outside an approved window"
    event_record(action="login", outcome="denied", actor=user, actor_role=Role.MAINTENANCE.value,
                 basis="deny:maintenance_window", reason=reason, resource_type="session",
                 details={"at": now.isoformat(), "step": channel_detail})
    maintenance_log_record(user=user, what=f"{channel_detail} refused: {reason}",
                           outcome=MaintenanceLogEntry.Outcome.REFUSED, details={"at": now.isoformat()})


# === the patient's rights =================================================================================
def add_one_month(day: date) -> date:
    """Art. 12(3) GDPR: one month from receipt (same day next month, or its last day if shorter)."""
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


def _add_months(day: date, months: int) -> date:
    for _ in range(months):
        day = add_one_month(day)
    return day


def _rights_audit(request: RightsRequest, *, by: Any, step: str, action: str = "other", category: str = "",
                  details: dict[str, Any] | None = None, outcome: str = "allowed", reason: str = "") -> None:
    _audit(actor=by, action=action, resource_type="rights_request", resource_id=request.pk,
           patient_id=request.patient_id, outcome=outcome, basis=f"rights:{step}", reason=reason, category=category,
           details={"kind": request.kind, **(details or {})})


def _locked(request: RightsRequest) -> RightsRequest:
    return RightsRequest.objects.select_for_update().select_related("patient").get(pk=request.pk)


def _check_open(request: RightsRequest, kinds: set[str] | None = None) -> None:
    if not request.is_open:
        raise ValidationError({"status": [f"This request is already {request.status}."]})
    if kinds is not None and request.kind not in kinds:
        raise ValidationError({"kind": [f"Not possible for a request of kind {request.kind}."]})


@transaction.atomic
def rights_request_register(*, patient: Patient, kind: str, identity_proof: str, by: AbstractBaseUser,
                            received_at: datetime | None = None, details: str = "") -> RightsRequest:
    """Register a request the day it arrives: the one-month clock starts at receipt, not at registration."""
    _require_role(by, RIGHTS_OFFICERS, what="registering a rights request", resource_type="rights_request",
                  patient_id=patient.pk)
    received_at = received_at or timezone.now()
    request = RightsRequest(patient=patient, kind=kind, received_at=received_at, identity_proof=identity_proof.strip(),
                            details=details, registered_by=by,
                            due_at=add_one_month(timezone.localdate(received_at)))
    if not request.identity_proof:
        raise ValidationError({"identity_proof": ["Check and note the requester's identity (art. 12(6) GDPR)."]})
    request.full_clean()
    request.save(force_insert=True)
    _rights_audit(request, by=by, step="received", details={"due_at": request.due_at.isoformat()})
    return request


@transaction.atomic
def rights_request_extend(*, request: RightsRequest, by: AbstractBaseUser, reason: str) -> RightsRequest:
    """Art. 12(3): two further months for complex or numerous requests, decided within the first month."""
    _require_role(by, RIGHTS_OFFICERS, what="extending a rights request", resource_type="rights_request",
                  resource_id=request.pk, patient_id=request.patient_id)
    request = _locked(request)
    _check_open(request)
    if request.extended:
        raise ValidationError({"extended": ["Already extended: the limit is three months in all."]})
    if timezone.localdate() > request.due_at:
        raise ValidationError({"due_at": ["Too late: an extension is decided within the first month."]})
    if not reason.strip():
        raise ValidationError({"extension_reason": ["The patient must be told why (art. 12(3))."]})
    request.extended, request.extension_reason = True, reason.strip()
    request.due_at = _add_months(timezone.localdate(request.received_at), 3)
    request.save(update_fields=["extended", "extension_reason", "due_at"])
    _rights_audit(request, by=by, step="extended", details={"due_at": request.due_at.isoformat()})
    return request


def _answer(request: RightsRequest, *, by: Any, status: str, answer: str, step: str,
            details: dict[str, Any] | None = None) -> RightsRequest:
    request.status, request.answer, request.handled_by = status, answer, by
    fields = ["status", "answer", "handled_by"]
    if status in {RightsRequest.Status.COMPLETED, RightsRequest.Status.REFUSED}:
        request.answered_at = timezone.now()
        fields.append("answered_at")
    request.save(update_fields=fields)
    _rights_audit(request, by=by, step=step, details={"status": status, **(details or {})})
    return request


@transaction.atomic
def rights_request_refuse(*, request: RightsRequest, by: AbstractBaseUser, reason: str) -> RightsRequest:
    """Refuse with a stated reason (e.g. a clinical opinion is not 'inaccurate data'); the answer names the remedies."""
    _require_role(by, RIGHTS_OFFICERS, what="answering a rights request", resource_type="rights_request",
                  resource_id=request.pk, patient_id=request.patient_id)
    request = _locked(request)
    _check_open(request)
    if not reason.strip():
        raise ValidationError({"answer": ["A refusal states its reason (art. 12(4) GDPR)."]})
    return _answer(request, by=by, status=RightsRequest.Status.REFUSED, answer=f"{reason.strip()}\n\n{REMEDIES}",
                   step="refused")


@transaction.atomic
def rights_request_complete(*, request: RightsRequest, by: AbstractBaseUser, answer: str) -> RightsRequest:
    _require_role(by, RIGHTS_OFFICERS, what="answering a rights request", resource_type="rights_request",
                  resource_id=request.pk, patient_id=request.patient_id)
    request = _locked(request)
    _check_open(request)
    if request.kind == RightsRequest.Kind.RESTRICTION and request.patient.frozen:
        raise ValidationError({"status": ["Lift the restriction (rights_restriction_lift) to close this request."]})
    return _answer(request, by=by, status=RightsRequest.Status.COMPLETED, answer=answer.strip(), step="completed")


# --- access (art. 15): the full record, encrypted for the patient -----------------------------------------
@dataclass(frozen=True)
class AccessExport:
    filename: str
    content: bytes  # an AES-256 encrypted ZIP (PDF + FHIR Bundle)
    password: str  # shown once to the operator, given to the patient through another channel; never stored
    sha256: str


@transaction.atomic
def rights_access_export(*, request: RightsRequest, by: AbstractBaseUser) -> AccessExport:
    """Build the patient's full record (PDF and FHIR Bundle) in an encrypted ZIP; completes the request.

    The operator never reads the record: a declared system task ("rights") reads it through the gate,
    which records one export event per data category with the operator's name.
    """
    from dpi.compliance import export

    _require_role(by, RIGHTS_OFFICERS, what="exporting a patient's record", resource_type="rights_request",
                  resource_id=request.pk, patient_id=request.patient_id)
    request = _locked(request)
    _check_open(request, {RightsRequest.Kind.ACCESS})
    for category in Category:
        gate.authorize_system("rights", patient_id=request.patient_id, category=category, action="export",
                              resource_type="rights_request", resource_id=request.pk,
                              details={"operator": by.get_username()})
    record = export.record_collect(request.patient)
    password = export.password_generate()
    content = export.encrypted_zip(record, password=password, reference=f"{request.pk}")
    digest = hashlib.sha256(content).hexdigest()
    request.export_sha256 = digest
    request.save(update_fields=["export_sha256"])
    _answer(request, by=by, status=RightsRequest.Status.COMPLETED, step="access_exported",
            answer="Copy of the full record sent (PDF and FHIR Bundle in an AES-256 encrypted ZIP); the password "
                   "was given through a separate channel.",
            details={"sha256": digest, "bytes": len(content)})
    return AccessExport(f"dossier-{request.pk}.zip", content, password, digest)


# --- rectification (art. 16) ------------------------------------------------------------------------------
def _masked(model_field_names: set[str], name: str, value: Any) -> Any:
    # Identifiers are encrypted at rest: never copy them into the audit trail in clear.
    if name in model_field_names:
        return "[encrypted value]" if value else ""
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


@transaction.atomic
def rights_rectify_identity(*, request: RightsRequest, by: AbstractBaseUser, **changes: Any) -> dict[str, Any]:
    """Correct administrative data through ``patients.services.patient_update``; the audit event keeps old/new.

    ``by`` is whoever may amend administrative data (reception, through the gate), not the DPO.
    """
    from patients.services import patient_update

    request = _locked(request)
    _check_open(request, {RightsRequest.Kind.RECTIFICATION})
    gate.require(by, patient_id=request.patient_id, category=Category.ADMINISTRATIVE, action=Action.AMEND,
                 resource_type="patient", resource_id=request.patient_id,
                 details={"rights_request": request.pk, "fields": sorted(changes)})
    encrypted = {f.name for f in Patient._meta.concrete_fields if getattr(f, "encrypted", False)}
    try:
        with transaction.atomic():
            diff = patient_update(patient=request.patient, **changes)
    except ValidationError as exc:
        _rights_audit(request, by=by, step="rectification_refused", action="amend", category="administrative",
                      outcome="denied", reason="; ".join(exc.messages)[:300], details={"fields": sorted(changes)})
        raise
    history = {name: {"old": _masked(encrypted, name, old), "new": _masked(encrypted, name, new)}
               for name, (old, new) in diff.items()}
    _rights_audit(request, by=by, step="rectified", action="amend", category="administrative",
                  details={"changes": history})
    if request.status == RightsRequest.Status.RECEIVED:
        request.status = RightsRequest.Status.IN_PROGRESS
        request.save(update_fields=["status"])
    return history


@transaction.atomic
def rights_amend_clinical(*, request: RightsRequest, by: AbstractBaseUser, item: Any, reason: str, **changes: Any):
    """Amend a clinical item through ``dpi.services.item_amend`` (previous version kept): a clinician of the
    care team does it, through the gate; the request and its reason are written into the amendment."""
    from dpi.services import item_amend

    request = _locked(request)
    _check_open(request, {RightsRequest.Kind.RECTIFICATION})
    if item.patient_id != request.patient_id:
        raise ValidationError({"item": ["This item belongs to another patient."]})
    gate.require(by, patient_id=request.patient_id, category=item.category, action=Action.AMEND,
                 resource_type=item.resource_type, resource_id=item.pk,
                 details={"rights_request": request.pk, "fields": sorted(changes)})
    try:
        with transaction.atomic():
            amended = item_amend(item=item, author=by, reason=f"rights request #{request.pk}: {reason}", **changes)
    except ValidationError as exc:
        _rights_audit(request, by=by, step="amendment_refused", action="amend", category=item.category,
                      outcome="denied", reason="; ".join(exc.messages)[:300], details={"fields": sorted(changes)})
        raise
    # Clinical text stays out of the audit trail: the previous version is in Amendment (encrypted).
    _rights_audit(request, by=by, step="amended", action="amend", category=item.category,
                  details={"resource_type": item.resource_type, "resource_id": item.pk, "fields": sorted(changes),
                           "version": amended.version})
    if request.status == RightsRequest.Status.RECEIVED:
        request.status = RightsRequest.Status.IN_PROGRESS
        request.save(update_fields=["status"])
    return amended


# --- restriction (art. 18) --------------------------------------------------------------------------------
def _set_frozen(patient: Patient, frozen: bool) -> None:
    # patients.services.patient_update refuses any change while frozen, including the unfreeze itself, so
    # the flag is set here, under a row lock, and audited by the caller.
    Patient.objects.select_for_update().filter(pk=patient.pk).update(frozen=frozen, updated_at=timezone.now())


@transaction.atomic
def rights_restrict(*, request: RightsRequest, by: AbstractBaseUser) -> RightsRequest:
    """Freeze the record while the contested accuracy or lawfulness is checked: every change is refused."""
    _require_role(by, RIGHTS_OFFICERS, what="restricting processing", resource_type="rights_request",
                  resource_id=request.pk, patient_id=request.patient_id)
    request = _locked(request)
    _check_open(request, {RightsRequest.Kind.RESTRICTION})
    _set_frozen(request.patient, True)
    _rights_audit(request, by=by, step="restricted", action="amend", category="administrative",
                  details={"frozen": {"old": request.patient.frozen, "new": True}})
    request.status = RightsRequest.Status.IN_PROGRESS
    request.save(update_fields=["status"])
    return request


@transaction.atomic
def rights_restriction_lift(*, request: RightsRequest, by: AbstractBaseUser, answer: str) -> RightsRequest:
    """Unfreeze once the check is done (art. 18(3): the patient is told before the restriction is lifted)."""
    _require_role(by, RIGHTS_OFFICERS, what="lifting a restriction", resource_type="rights_request",
                  resource_id=request.pk, patient_id=request.patient_id)
    request = _locked(request)
    _check_open(request, {RightsRequest.Kind.RESTRICTION})
    if not answer.strip():
        raise ValidationError({"answer": ["Say what the check found; the patient is informed before lifting."]})
    # Another open restriction request on the same patient keeps the record frozen.
    others = RightsRequest.objects.filter(patient_id=request.patient_id, kind=RightsRequest.Kind.RESTRICTION,
                                          status=RightsRequest.Status.IN_PROGRESS).exclude(pk=request.pk)
    if not others.exists():
        _set_frozen(request.patient, False)
    _rights_audit(request, by=by, step="restriction_lifted", action="amend", category="administrative",
                  details={"frozen": {"old": True, "new": others.exists()}})
    return _answer(request, by=by, status=RightsRequest.Status.COMPLETED, answer=answer.strip(), step="completed")


# --- erasure (art. 17) and objection (art. 21): the medical record is a legal obligation --------------------
REMEDIES = ("You may lodge a complaint with the CNIL (www.cnil.fr) or bring the matter before a court "
            "(art. 12(4) and 77-79 GDPR).")

ERASURE_REFUSAL = (
    "Your medical record cannot be erased. The hospital must keep it (article R1112-7 of the French Public Health "
    "Code: 20 years from the last stay or outpatient consultation, extended to the patient's 28th birthday, "
    "10 years from death if earlier). The right to erasure does not apply where processing is necessary to "
    "comply with a legal obligation (art. 17(3)(b) GDPR) or for reasons of public interest in the area of public "
    "health (art. 17(3)(c), with art. 9(2)(h) and (i)). The record is destroyed at the end of that period. You "
    "may ask for inaccurate data to be rectified (art. 16) or for processing to be restricted while you contest "
    "it (art. 18)."
)
OBJECTION_REFUSAL = (
    "The right to object (art. 21 GDPR) does not apply to the keeping of your medical record: the hospital keeps "
    "it to comply with a legal obligation (art. 6(1)(c) GDPR; articles R1112-2 and R1112-7 of the Public Health "
    "Code) and for your care (art. 9(2)(h)), not on the grounds of public interest or legitimate interest that "
    "art. 21(1) covers. You may still ask that a named professional not consult your file, and object to the "
    "reuse of your data for research, which are separate processings."
)


def _kept_through(patient: Patient) -> date | None:
    try:
        from retention.policies import PatientDates, current_policy
    except ImportError:  # retention not installed
        return None
    last = timezone.localdate(patient.last_activity_at or patient.created_at)
    return current_policy().kept_through(PatientDates(last, patient.birth_date, patient.date_of_death))


@transaction.atomic
def rights_answer_legal_obligation(*, request: RightsRequest, by: AbstractBaseUser, note: str = "") -> RightsRequest:
    """Answer an erasure or objection request on the medical record: refused, with the legal reason."""
    _require_role(by, RIGHTS_OFFICERS, what="answering a rights request", resource_type="rights_request",
                  resource_id=request.pk, patient_id=request.patient_id)
    request = _locked(request)
    _check_open(request, {RightsRequest.Kind.ERASURE, RightsRequest.Kind.OBJECTION})
    text = ERASURE_REFUSAL if request.kind == RightsRequest.Kind.ERASURE else OBJECTION_REFUSAL
    details: dict[str, Any] = {"legal_basis": "R1112-7 CSP; GDPR art. 17(3)(b)(c)" if request.kind == "erasure"
                               else "GDPR art. 21(1), 6(1)(c), 9(2)(h); R1112-2 CSP"}
    kept = _kept_through(request.patient)
    if kept is not None and request.kind == RightsRequest.Kind.ERASURE:
        text += f" Under the current rules, your record is kept at least until {kept:%d/%m/%Y}."
        details["kept_through"] = kept.isoformat()
    if note.strip():
        text += "\n\n" + note.strip()
    return _answer(request, by=by, status=RightsRequest.Status.REFUSED, answer=f"{text}\n\n{REMEDIES}",
                   step="refused_legal_obligation", details=details)


# === breaches =============================================================================================
@transaction.atomic
def breach_record(*, by: AbstractBaseUser, detected_at: datetime, description: str, categories: list[str],
                  approx_people: int, risk: str = Breach.Risk.RISK, measures: str = "") -> Breach:
    _require_role(by, BREACH_OFFICERS, what="recording a breach", resource_type="breach")
    breach = Breach(detected_at=detected_at, description=description.strip(), categories=list(categories),
                    approx_people=approx_people, risk=risk, measures=measures.strip(), recorded_by=by)
    if detected_at > timezone.now() + timedelta(minutes=5):
        raise ValidationError({"detected_at": ["The moment of awareness cannot be in the future."]})
    breach.full_clean()
    breach.save(force_insert=True)
    _audit(actor=by, action="other", resource_type="breach", resource_id=breach.pk, basis="breach:recorded",
           details={"detected_at": detected_at.isoformat(), "risk": risk, "approx_people": approx_people})
    return breach


@transaction.atomic
def breach_notify_cnil(*, breach: Breach, by: AbstractBaseUser, at: datetime | None = None, reference: str = "",
                       late_reason: str = "") -> Breach:
    """Record the notification to the CNIL; after 72 hours art. 33(1) requires the reasons for the delay."""
    _require_role(by, BREACH_OFFICERS, what="notifying a breach", resource_type="breach", resource_id=breach.pk)
    breach = Breach.objects.select_for_update().get(pk=breach.pk)
    at = at or timezone.now()
    if breach.notified_cnil_at is not None:
        raise ValidationError({"notified_cnil_at": ["Already notified."]})
    if at > breach.notification_deadline and not late_reason.strip():
        raise ValidationError({"late_reason": [
            "Notified after 72 hours: give the reasons for the delay (art. 33(1))."]})
    breach.notified_cnil_at, breach.cnil_reference, breach.late_reason = at, reference, late_reason.strip()
    breach.save(update_fields=["notified_cnil_at", "cnil_reference", "late_reason"])
    _audit(actor=by, action="other", resource_type="breach", resource_id=breach.pk, basis="breach:notified_cnil",
           details={"at": at.isoformat(), "late": at > breach.notification_deadline})
    return breach


@transaction.atomic
def breach_notify_people(*, breach: Breach, by: AbstractBaseUser, at: datetime | None = None) -> Breach:
    _require_role(by, BREACH_OFFICERS, what="notifying a breach", resource_type="breach", resource_id=breach.pk)
    breach = Breach.objects.select_for_update().get(pk=breach.pk)
    breach.notified_people_at = at or timezone.now()
    breach.save(update_fields=["notified_people_at"])
    _audit(actor=by, action="other", resource_type="breach", resource_id=breach.pk, basis="breach:notified_people",
           details={"at": breach.notified_people_at.isoformat()})
    return breach


"""Writes that change who may reach patient data. Each one is an audit event (permission_change or
break_glass) in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from access import gate
from access.authn.credentials import credentials_changed
from access.models import (
    AccessReviewCampaign,
    AccessReviewItem,
    CareTeamMembership,
    EmergencyAccess,
    PatientObjection,
    StaffProfile,
)
from access.policy import (
    BREAK_GLASS_ROLES,
    CARE_STAFF_ROLES,
    CLINICAL_ROLES,
    CONFIDENTIALITY_LOWERING_ROLES,
    Action,
    Category,
    Role,
)
from access.selectors import justification_digest
from audit.services import event_record
from patients import services as patient_services
from patients.models import Appointment, CareUnit, Encounter, Patient


def _record_change(
    actor: Any,
    *,
    what: str,
    patient_id: int | None = None,
    details: dict | None = None,
    action: str = "permission_change",
) -> None:
    event_record(
        actor=actor,
        actor_role=(gate.role_of(actor) or "") if actor else "system",
        actor_unit=gate.unit_of(actor) if actor else "",
        patient_id=patient_id,
        action=action,
        outcome="allowed",
        basis=what,
        details=details or {},
    )


def _require_role(user: Any, roles: set[Role], what: str) -> None:
    role = gate.role_of(user)
    if role not in roles:
        event_record(
            actor=user,
            actor_role=role.value if role else "",
            actor_unit=gate.unit_of(user),
            action="permission_change",
            outcome="denied",
            basis="deny:role",
            reason=what,
        )
        raise PermissionDenied(gettext(what))  # the trace keeps the English; the caller reads its language


# --- break-the-glass --------------------------------------------------------------------------------------
def _verify_otp(user: User, token: str, request: Any = None) -> bool:
    """The account's one code check (access.authn): failures count towards the same throttle and lock as
    sign-in, committed before this service refuses anything."""
    from access.authn.services import one_time_code_check

    return bool(token) and one_time_code_check(user, token.strip(), request=request, purpose="break_glass")


def break_glass_open(
    *,
    user: User,
    patient: Patient,
    reason_category: str,
    reason_text: str,
    otp_token: str,
    hours: int | None = None,
    request: Any = None,
) -> EmergencyAccess:
    """Open an emergency access outside the care team: justified, re-authenticated, bounded, reviewed.

    The one-time code is checked first, outside the transaction, so that a wrong code keeps counting towards
    the account's lock even though the request is then refused (and rolled back)."""
    code_ok = _verify_otp(user, otp_token or "", request)
    with transaction.atomic():
        return _break_glass_open(user=user, patient=patient, reason_category=reason_category,
                                 reason_text=reason_text, code_ok=code_ok, hours=hours)


def _break_glass_open(
    *, user: User, patient: Patient, reason_category: str, reason_text: str, code_ok: bool, hours: int | None
) -> EmergencyAccess:
    errors: dict[str, list[str]] = {}
    if reason_category not in EmergencyAccess.ReasonCategory.values:
        errors["reason_category"] = [gettext("Choose a reason category.")]
    if len((reason_text or "").strip()) < 10:
        errors["reason_text"] = [gettext("Explain the emergency (at least 10 characters).")]
    if not code_ok:
        errors["otp_token"] = [gettext("The one-time code is wrong or expired.")]
    if errors:
        event_record(
            actor=user,
            actor_role=str(gate.role_of(user) or ""),
            actor_unit=gate.unit_of(user),
            patient_id=patient.pk,
            action="break_glass",
            outcome="denied",
            basis="deny:invalid_request",
            reason=", ".join(sorted(errors)),
        )
        raise ValidationError(errors)
    role = gate.role_of(user)
    decision = gate.decide(user, patient_id=patient.pk, category=Category.MEDICAL, action=Action.VIEW)
    if role not in BREAK_GLASS_ROLES or (not decision.allowed and not decision.can_break_glass):
        event_record(
            actor=user,
            actor_role=role.value if role else "",
            actor_unit=gate.unit_of(user),
            patient_id=patient.pk,
            action="break_glass",
            outcome="denied",
            basis="deny:role",
            reason="this role cannot use emergency access",
        )
        raise PermissionDenied(gettext("this role cannot use emergency access"))
    now = timezone.now()
    objected = PatientObjection.objects.filter(patient=patient, professional=user).exists()
    access = EmergencyAccess.objects.create(
        user=user,
        patient=patient,
        reason_category=reason_category,
        reason_text=reason_text.strip()[:500],
        started_at=now,
        expires_at=now + timedelta(hours=hours or settings.DPI_BREAK_GLASS_HOURS),
        patient_objected=objected,
    )
    event_record(
        actor=user,
        actor_role=role.value,
        actor_unit=gate.unit_of(user),
        patient_id=patient.pk,
        action="break_glass",
        outcome="allowed",
        basis="break_glass",
        category=Category.MEDICAL,
        resource_type="emergencyaccess",
        resource_id=access.pk,
        details={
            "reason_category": reason_category,
            "expires_at": access.expires_at.isoformat(),
            "patient_objection": objected,
            # verify_audit checks the record against these (access.selectors.emergency_accesses_against_trail)
            "reason_digest": justification_digest(access.reason_text),
        },
    )
    transaction.on_commit(lambda: _notify_dpo_break_glass(access.pk))
    return access


def break_glass_refusal_record(*, user: User, patient_id: int, basis: str, reason: str) -> None:
    """A break-the-glass request refused before the service runs (invalid form, role, unknown patient)."""
    event_record(
        actor=user,
        actor_role=str(gate.role_of(user) or ""),
        actor_unit=gate.unit_of(user),
        patient_id=patient_id,
        action="break_glass",
        outcome="denied",
        basis=basis,
        reason=reason[:300],
    )


def _notify_dpo_break_glass(access_id: int) -> None:
    access = EmergencyAccess.objects.select_related("user").get(pk=access_id)
    # No patient identity in the e-mail: the DPO opens the dashboard to review.
    send_mail(
        subject=f"[dpi] Break-the-glass #{access.pk} by {access.user.username}",
        message=(
            f"{access.user.username} opened an emergency access ({access.reason_category}) at "
            f"{access.started_at:%Y-%m-%d %H:%M} UTC, until {access.expires_at:%H:%M} UTC. "
            "It waits for your review on the DPO dashboard."
            + (" The patient had objected to this professional." if access.patient_objected else "")
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=settings.DPI_DPO_EMAILS,
        fail_silently=True,
    )


@transaction.atomic
def emergency_access_review(
    *, reviewer: User, access: EmergencyAccess, status: str, comment: str = ""
) -> EmergencyAccess:
    _require_role(reviewer, {Role.DPO}, gettext_noop("only the DPO reviews emergency accesses"))
    if access.user_id == reviewer.pk:
        # A DPO who once broke the glass under a care role does not judge her own emergency access.
        event_record(actor=reviewer, actor_role=Role.DPO.value, actor_unit=gate.unit_of(reviewer),
                     patient_id=access.patient_id, action="permission_change", outcome="denied",
                     basis="deny:self_review", reason="nobody reviews their own emergency access",
                     resource_type="emergencyaccess", resource_id=access.pk)
        raise PermissionDenied(gettext("nobody reviews their own emergency access"))
    if status not in {EmergencyAccess.Review.JUSTIFIED, EmergencyAccess.Review.VIOLATION}:
        raise ValidationError({"status": [gettext("Choose justified or violation.")]})
    if status == EmergencyAccess.Review.VIOLATION and not comment.strip():
        raise ValidationError({"comment": [gettext("A violation needs a comment.")]})
    access = EmergencyAccess.objects.select_for_update().get(pk=access.pk)
    access.review_status, access.review_comment = status, comment
    access.reviewed_by, access.reviewed_at = reviewer, timezone.now()
    access.save(update_fields=["review_status", "review_comment", "reviewed_by", "reviewed_at"])
    _record_change(
        reviewer,
        what="break_glass_review",
        patient_id=access.patient_id,
        details={"emergency_access_id": access.pk, "status": status, "comment": comment},
    )
    return access


def emergency_access_active(user: User, patient_id: int) -> EmergencyAccess | None:
    now = timezone.now()
    return (
        EmergencyAccess.objects.filter(user=user, patient_id=patient_id, started_at__lte=now, expires_at__gt=now)
        .order_by("-expires_at")
        .first()
    )


# --- care team, objections --------------------------------------------------------------------------------
@transaction.atomic
def membership_add(
    *,
    actor: User,
    patient: Patient,
    user: User,
    end: datetime,
    reason: str,
    start: datetime | None = None,
    source: str = "staff",
) -> CareTeamMembership:
    """Add a professional to a patient's care team (referral, consultation). The actor must be in the team."""
    gate.require(
        actor,
        patient_id=patient.pk,
        category=Category.MEDICAL,
        action=Action.CREATE,
        resource_type="careteammembership",
    )
    membership = CareTeamMembership(
        patient=patient,
        user=user,
        start=start or timezone.now(),
        end=end,
        reason=reason,
        granted_by=actor,
        source=source,
    )
    membership.full_clean()
    membership.save()
    _record_change(
        actor,
        what="membership_add",
        patient_id=patient.pk,
        details={"user_id": user.pk, "end": end.isoformat(), "membership_id": membership.pk},
    )
    return membership


@transaction.atomic
def membership_end(*, actor: User, membership: CareTeamMembership, at: datetime | None = None) -> CareTeamMembership:
    gate.require(
        actor,
        patient_id=membership.patient_id,
        category=Category.MEDICAL,
        action=Action.AMEND,
        resource_type="careteammembership",
        resource_id=membership.pk,
    )
    membership = CareTeamMembership.objects.select_for_update().get(pk=membership.pk)
    end = at or timezone.now()
    if end > membership.end:
        # Ending only shortens: a later date would extend a grant, or re-open one that has ended, without the
        # act of another person that created it (provenance: who created the fact that grants this access?).
        event_record(
            actor=actor, actor_role=str(gate.role_of(actor) or ""), actor_unit=gate.unit_of(actor),
            patient_id=membership.patient_id, category=Category.MEDICAL, action=Action.AMEND, outcome="denied",
            basis="deny:extend", reason="ending a care-team membership cannot move its end later",
            resource_type="careteammembership", resource_id=membership.pk,
        )
        raise ValidationError({"at": [gettext("A membership ends at the latest on its current end: to extend it, "
                                              "add a new one.")]})
    membership.end = end
    if membership.end <= membership.start:  # ended before it began: keep start < end, both past
        membership.start = membership.end - timedelta(microseconds=1)
    membership.save(update_fields=["start", "end"])
    _record_change(
        actor, what="membership_end", patient_id=membership.patient_id, details={"membership_id": membership.pk}
    )
    return membership


@transaction.atomic
def objection_record(*, actor: User, patient: Patient, professional: User, reason: str = "") -> PatientObjection:
    """The patient objects to a named professional (recorded by reception, the DPO or the DIM)."""
    gate.require(
        actor,
        patient_id=patient.pk,
        category=Category.ADMINISTRATIVE,
        action=Action.AMEND,
        resource_type="patientobjection",
    )
    objection, _ = PatientObjection.objects.get_or_create(
        patient=patient, professional=professional, defaults={"reason": reason, "recorded_by": actor}
    )
    _record_change(actor, what="objection_add", patient_id=patient.pk, details={"professional_id": professional.pk})
    return objection


# --- provenance of care relationships -------------------------------------------------------------------
def appointment_practitioner_check(appointment: Appointment) -> None:
    """Only a clinician is the practitioner of an appointment (registered in patients.services)."""
    profile = gate.profile_of(appointment.practitioner) if appointment.practitioner_id else None
    if profile is None or profile.role not in {r.value for r in CLINICAL_ROLES}:
        raise ValidationError({"practitioner": [gettext("The practitioner of an appointment must be a clinician.")]})


def self_declared_grantees(fact: Encounter | Appointment | CareTeamMembership) -> list[int]:
    """Users a fact would let in who created it themselves (they get nothing until someone confirms it)."""
    if isinstance(fact, CareTeamMembership):
        creator_id, confirmed = fact.granted_by_id, fact.confirmed_by_id
        candidates = [fact.user_id]
    elif isinstance(fact, Appointment):
        creator_id, confirmed = fact.created_by_id, fact.confirmed_by_id
        candidates = [fact.practitioner_id]
    else:
        creator_id, confirmed = fact.created_by_id, fact.confirmed_by_id
        candidates = list(
            StaffProfile.objects.filter(
                units=fact.unit_id, role__in=[r.value for r in CARE_STAFF_ROLES], user_id=creator_id
            ).values_list("user_id", flat=True)
        )
    if creator_id is None or confirmed is not None:
        return []
    return [c for c in candidates if c == creator_id]


def self_declared_record(fact: Encounter | Appointment | CareTeamMembership) -> None:
    """A fact created by the person it would let in: no access for them, and a flagged event for detection."""
    for user_id in self_declared_grantees(fact):
        user = User.objects.filter(pk=user_id).first()
        event_record(
            actor=user,
            actor_role=str(gate.role_of(user) or ""),
            actor_unit=gate.unit_of(user),
            patient_id=fact.patient_id,
            category=Category.MEDICAL,
            action="permission_change",
            outcome="denied",
            basis="deny:self_declared",
            reason="a care relationship created by the person it would let in needs another person's confirmation",
            resource_type=fact._meta.model_name,
            resource_id=fact.pk,
            details={"flags": ["self_declared_relationship"]},
        )


@transaction.atomic
def care_fact_confirm(
    *, actor: User, fact: Encounter | Appointment | CareTeamMembership, source: str = "staff"
) -> Encounter | Appointment | CareTeamMembership:
    """A second person confirms a self-declared care relationship: a member of the encounter's or
    appointment's unit, someone already in the patient's care team, or the feed. Never its creator."""
    from access.care_team import care_grants_recompute

    model = type(fact)
    fact = model.objects.select_for_update().get(pk=fact.pk)
    creator_id = fact.granted_by_id if isinstance(fact, CareTeamMembership) else fact.created_by_id
    role = gate.role_of(actor)
    if actor.pk == creator_id:
        _require_role(actor, set(), gettext_noop("the creator of a care relationship cannot confirm it"))
    if source != "feed":
        unit_id = getattr(fact, "unit_id", None)
        profile = gate.profile_of(actor)
        in_unit = (
            unit_id is not None
            and profile is not None
            and role in CARE_STAFF_ROLES
            and profile.units.filter(pk=unit_id).exists()
        )
        if not in_unit:
            gate.require(
                actor,
                patient_id=fact.patient_id,
                category=Category.MEDICAL,
                action=Action.CREATE,
                resource_type=model._meta.model_name,
                resource_id=fact.pk,
            )
    fact.confirmed_by, fact.confirmed_at = actor, timezone.now()
    fact.save(update_fields=["confirmed_by", "confirmed_at"])
    care_grants_recompute(patient_ids=[fact.patient_id])
    _record_change(
        actor,
        what="care_fact_confirm",
        patient_id=fact.patient_id,
        details={"fact": model._meta.model_name, "fact_id": fact.pk, "creator_id": creator_id, "source": source},
    )
    return fact


def merge_check(*, actor: User, kept_id: int, merged_id: int) -> None:
    """A merge moves every stay, appointment and membership of one file to the other: a member of identity
    vigilance who is care staff (a medical secretary) could join a file she may not read to one her unit treats,
    and read it. So a merge that would let its actor read medical data of a file she cannot read today is left to
    another member of the cell (provenance: nobody creates the fact that grants them access). Refused and
    recorded (``deny:self_declared``, flagged for the DPO)."""
    decisions = {
        pid: gate.decide(actor, patient_id=pid, category=Category.MEDICAL, action=Action.VIEW)
        for pid in (kept_id, merged_id)
    }
    if decisions[kept_id].allowed == decisions[merged_id].allowed:
        return
    closed = merged_id if decisions[kept_id].allowed else kept_id
    event_record(
        actor=actor,
        actor_role=str(gate.role_of(actor) or ""),
        actor_unit=gate.unit_of(actor),
        patient_id=closed,
        category=Category.MEDICAL,
        action="permission_change",
        outcome="denied",
        basis="deny:self_declared",
        reason="a merge that would open to its actor a file she may not read is done by another member",
        resource_type="identitymerge",
        details={"flags": ["self_declared_relationship"], "kept": kept_id, "merged": merged_id},
    )
    raise PermissionDenied(gettext("this merge would open to you a file you may not read: another member of "
                                   "identity vigilance must do it"))


# --- confidentiality ----------------------------------------------------------------------------------------
@transaction.atomic
def patient_confidentiality_lower(*, actor: User, patient: Patient, reason: str) -> Patient:
    """Lower a restricted patient to normal confidentiality: the DPO only, with a reason, audited.

    Never a field of a general update (``patients.services.patient_update`` refuses it)."""
    role = gate.role_of(actor)
    if role not in CONFIDENTIALITY_LOWERING_ROLES:
        event_record(
            actor=actor,
            actor_role=str(role or ""),
            actor_unit=gate.unit_of(actor),
            patient_id=patient.pk,
            category=Category.ADMINISTRATIVE,
            action=Action.AMEND,
            outcome="denied",
            basis="deny:role",
            reason="only the DPO lowers confidentiality",
            resource_type="patient",
            resource_id=patient.pk,
        )
        raise PermissionDenied(gettext("only the DPO lowers confidentiality"))
    if len((reason or "").strip()) < 10:
        raise ValidationError({"reason": [gettext("Explain why the restriction ends (at least 10 characters).")]})
    old = (patient.confidentiality, patient.restriction_reason)
    patient_services.patient_update(
        patient=patient, _confidentiality_lowering=True, confidentiality="normal", restriction_reason=""
    )
    _record_change(
        actor,
        what="confidentiality_lower",
        patient_id=patient.pk,
        details={"old": list(old), "new": ["normal", ""], "reason": reason.strip()[:300]},
    )
    return Patient.objects.get(pk=patient.pk)


# --- roles and units --------------------------------------------------------------------------------------
@transaction.atomic
def staff_role_set(
    *, actor: User | None, user: User, role: Role, units: list[CareUnit] | None = None, end_date=None
) -> StaffProfile:
    """Grant a role (and units) to a user: one role per person, audited."""
    if actor is not None:
        _require_role(actor, {Role.IT_ADMIN, Role.SECURITY_OFFICER},
                      gettext_noop("only IT administrators manage roles"))
        if actor.pk == user.pk:
            # Provenance: nobody grants themselves a role or units (who created the fact that grants access?).
            _require_role(actor, set(), gettext_noop("nobody changes their own role or units"))
    profile, created = StaffProfile.objects.get_or_create(user=user, defaults={"role": role.value})
    old_role = None if created else profile.role
    profile.role = role.value
    if end_date is not None:
        profile.end_date = end_date
    profile.save()
    user.groups.set([Group.objects.get_or_create(name=role.value)[0]])
    if units is not None:
        profile.units.set(units)
    _record_change(
        actor,
        what="role_set",
        details={
            "user_id": user.pk,
            "old_role": old_role,
            "role": role.value,
            "units": [u.code for u in (units or [])],
        },
    )
    return profile


@transaction.atomic
def account_disable(*, actor: User | None, user: User, reason: str) -> None:
    User.objects.filter(pk=user.pk).update(is_active=False)
    credentials_changed()
    from django.contrib.sessions.models import Session

    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if str(session.get_decoded().get("_auth_user_id")) == str(user.pk):
            session.delete()
    from access.care_team import care_grants_recompute

    care_grants_recompute(patient_ids=list(user.caregrant_set.values_list("content_object_id", flat=True)))
    _record_change(actor, what="account_disable", details={"user_id": user.pk, "reason": reason})


# --- yearly authorization review --------------------------------------------------------------------------
REVIEW_STARTERS = {Role.DPO, Role.SECURITY_OFFICER}
REVIEW_DECIDERS = {Role.DPO, Role.SECURITY_OFFICER, Role.IT_ADMIN}


@dataclass(frozen=True)
class ReviewSubject:
    """A right to review: an account (``membership_id`` None) or one open care-team membership."""

    user_id: int
    username: str
    role: str
    units: str
    rights: str
    membership_id: int | None = None

    def describe(self) -> str:
        if self.membership_id:
            return f"{self.username}: {self.rights}"
        return f"{self.username} ({self.rights})"


def review_subjects(*, now: datetime | None = None) -> list[ReviewSubject]:
    """Every active account holding any right (a staff profile, superuser or staff flag, a group, a direct
    permission) and every care-team membership not yet ended: what a yearly review must cover."""
    now = now or timezone.now()
    users = (
        User.objects.filter(is_active=True)
        .filter(
            Q(staff__isnull=False) | Q(is_superuser=True) | Q(is_staff=True) | Q(groups__isnull=False)
            | Q(user_permissions__isnull=False)
        )
        .distinct()
        .select_related("staff")
        .prefetch_related("groups", "user_permissions", "staff__units")
        .order_by("username")
    )
    subjects = []
    for user in users:
        profile = getattr(user, "staff", None)
        rights = []
        if profile is not None:
            rights.append(f"role {profile.role}")
        if user.is_superuser:
            rights.append("superuser")
        if user.is_staff:
            rights.append("admin site")
        rights += [f"group {g.name}" for g in user.groups.all()]
        perms = [p.codename for p in user.user_permissions.all()]
        if perms:
            rights.append("permissions " + ", ".join(sorted(perms)[:10]) + ("…" if len(perms) > 10 else ""))
        subjects.append(ReviewSubject(user.pk, user.username, profile.role if profile else "",
                                      profile.unit_label if profile else "", "; ".join(rights)[:500]))
    memberships = (
        CareTeamMembership.objects.filter(end__gt=now, user__is_active=True)
        .select_related("user")
        .order_by("user__username", "pk")
    )
    for m in memberships:
        subjects.append(ReviewSubject(
            m.user_id, m.user.username, "", "",
            f"care team of patient {m.patient_id} until {m.end:%Y-%m-%d}", membership_id=m.pk,
        ))
    return subjects


@transaction.atomic
def review_campaign_start(*, actor: User, name: str, due_at: datetime) -> AccessReviewCampaign:
    _require_role(actor, REVIEW_STARTERS, gettext_noop("only the DPO or security officer starts a review"))
    if not name.strip():
        raise ValidationError({"name": [gettext("Give the campaign a name.")]})
    if due_at <= timezone.now():
        raise ValidationError({"due_at": [gettext("The due date must be in the future.")]})
    campaign = AccessReviewCampaign.objects.create(name=name.strip()[:100], due_at=due_at, started_by=actor)
    items = [
        AccessReviewItem(
            campaign=campaign, user_id=s.user_id, role=s.role, units=s.units, rights=s.rights,
            kind=AccessReviewItem.Kind.MEMBERSHIP if s.membership_id else AccessReviewItem.Kind.ACCOUNT,
            membership_id=s.membership_id,
        )
        for s in review_subjects()
    ]
    AccessReviewItem.objects.bulk_create(items)
    _record_change(actor, what="review_start", details={"campaign_id": campaign.pk, "items": len(items)})
    return campaign


def review_missing_subjects(campaign: AccessReviewCampaign) -> list[str]:
    """Rights held today that the campaign does not cover (accounts or memberships created since, or left out)."""
    accounts = set(campaign.items.filter(kind=AccessReviewItem.Kind.ACCOUNT).values_list("user_id", flat=True))
    memberships = set(campaign.items.filter(kind=AccessReviewItem.Kind.MEMBERSHIP)
                      .values_list("membership_id", flat=True))
    missing = []
    for s in review_subjects():
        covered = s.membership_id in memberships if s.membership_id else s.user_id in accounts
        if not covered:
            missing.append(s.describe())
    return missing


@transaction.atomic
def review_item_decide(*, reviewer: User, item: AccessReviewItem, decision: str, comment: str = "") -> AccessReviewItem:
    _require_role(reviewer, REVIEW_DECIDERS, gettext_noop("only managers named for the review decide"))
    if item.user_id == reviewer.pk:
        # Nobody confirms their own rights (CNIL DPI fiche 11: the review is done by someone else).
        event_record(
            actor=reviewer, actor_role=gate.role_of(reviewer) or "", actor_unit=gate.unit_of(reviewer),
            action="permission_change", outcome="denied", basis="deny:self_review",
            reason="a reviewer cannot decide on their own rights", resource_type="review_item",
            resource_id=item.pk,
        )
        raise PermissionDenied(gettext("a reviewer cannot decide on their own rights"))
    if decision not in {AccessReviewItem.Decision.CONFIRMED, AccessReviewItem.Decision.REVOKED}:
        raise ValidationError({"decision": [gettext("Choose confirmed or revoked.")]})
    item = AccessReviewItem.objects.select_for_update(of=("self",)).select_related("membership").get(pk=item.pk)
    item.decision, item.reviewer, item.decided_at, item.comment = decision, reviewer, timezone.now(), comment
    item.save(update_fields=["decision", "reviewer", "decided_at", "comment"])
    if decision == AccessReviewItem.Decision.REVOKED:
        if item.kind == AccessReviewItem.Kind.MEMBERSHIP:
            if item.membership is not None and item.membership.end > timezone.now():
                _membership_close(actor=reviewer, membership=item.membership)
        else:
            account_disable(actor=reviewer, user=item.user, reason=f"revoked in review {item.campaign_id}")
    _record_change(
        reviewer, what="review_decide",
        details={"item_id": item.pk, "user_id": item.user_id, "decision": decision, "kind": item.kind},
    )
    return item


def _membership_close(*, actor: User, membership: CareTeamMembership) -> None:
    """End a membership revoked in a review (the reviewer is not in the team: no team check here)."""
    from access.care_team import care_grants_recompute

    membership.end = max(timezone.now(), membership.start + timedelta(seconds=1))
    membership.save(update_fields=["end"])
    care_grants_recompute(patient_ids=[membership.patient_id])
    _record_change(actor, what="membership_end", patient_id=membership.patient_id,
                   details={"membership_id": membership.pk, "user_id": membership.user_id, "via": "review"})


# The weekly reminder task may be sent twice (a beat takeover, a redelivered task): one reminder a day at most.
REVIEW_REMIND_GAP = timedelta(hours=20)


@transaction.atomic
def review_remind(*, campaign: AccessReviewCampaign) -> int:
    """E-mail every person who may decide (DPO, security officer, IT admin) what is still pending.
    Returns the number of pending items reminded (0: nothing pending, or a reminder was sent in the last
    ``REVIEW_REMIND_GAP``: its trace is the claim, taken under a lock so two workers never both send)."""
    from audit.models import AccessEvent

    with connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"dpi:review_remind:{campaign.pk}"])
    pending = campaign.items.filter(decision=AccessReviewItem.Decision.PENDING).count()
    if not pending or campaign.closed_at:
        return 0
    if AccessEvent.objects.filter(action="permission_change", basis="review_remind",
                                  occurred_at__gte=timezone.now() - REVIEW_REMIND_GAP,
                                  details__campaign_id=campaign.pk).exists():
        return 0
    recipients = list(
        User.objects.filter(is_active=True, staff__role__in=[r.value for r in REVIEW_DECIDERS])
        .exclude(email="").values_list("email", flat=True)
    ) or list(settings.DPI_DPO_EMAILS)
    send_mail(
        subject=f"[dpi] Revue des habilitations « {campaign.name} » : {pending} droit(s) à revoir",
        message=(
            f"La revue des habilitations « {campaign.name} » attend encore {pending} décision(s), "
            f"échéance le {timezone.localtime(campaign.due_at):%d/%m/%Y}.\n"
            "Ouvrez le tableau de bord du DPO pour confirmer ou retirer chaque droit. "
            "Nul ne peut statuer sur ses propres droits."
        ),
        from_email=None,
        recipient_list=recipients,
    )
    _record_change(None, what="review_remind", details={"campaign_id": campaign.pk, "pending": pending})
    return pending


def review_unreviewed(campaign: AccessReviewCampaign):
    """Rights not yet reviewed, for the DPO."""
    return campaign.items.filter(decision=AccessReviewItem.Decision.PENDING).select_related("user")


def review_progress(campaign: AccessReviewCampaign) -> dict[str, int]:
    from django.db.models import Count

    counts = dict(campaign.items.values_list("decision").annotate(n=Count("id")))
    return {"total": sum(counts.values()), **{d: counts.get(d, 0) for d in AccessReviewItem.Decision.values}}

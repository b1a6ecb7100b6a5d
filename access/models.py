"""Who may reach which patient: staff profiles, care relationships, emergency access, objections.

``CareGrant`` is the materialised care relationship: a django-guardian object permission
(``patients.access_medical``) on the patient, with a direct foreign key, plus the validity the rules give
it. It is recomputed from encounters, appointments and memberships by ``access.care_team`` and swept by a
beat task when it expires. The gate reads it with one indexed query.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from access.policy import Role
from dpi.fields import EncryptedCharField
from patients.models import CareUnit, Patient


class StaffProfile(models.Model):
    """One per person (no shared accounts): role, units, contract dates, identity traits for detection."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff")
    role = models.CharField(max_length=24, choices=[(r.value, r.value) for r in Role])
    units = models.ManyToManyField(CareUnit, blank=True, related_name="staff")
    start_date = models.DateField(default=timezone.localdate)
    end_date = models.DateField(null=True, blank=True)
    birth_name = models.CharField(max_length=100, blank=True, default="")
    address = models.CharField(max_length=300, blank=True, default="")
    postal_code = models.CharField(max_length=10, blank=True, default="")
    city = models.CharField(max_length=100, blank=True, default="")
    # The staff member's own patient file, if they were ever treated here (self-access, coworker rules).
    patient = models.OneToOneField(
        Patient, null=True, blank=True, on_delete=models.SET_NULL, related_name="staff_profile"
    )
    must_change_password = models.BooleanField(default=False)
    password_changed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.user.username} ({self.role})"

    @property
    def unit_label(self) -> str:
        # Read on every audited access: the prefetched units straight from the prefetch cache, where
        # ``units.all()`` would build a manager and a queryset around the same list (issue #18).
        prefetched = getattr(self, "_prefetched_objects_cache", {}).get("units")
        units = prefetched if prefetched is not None else self.units.all()
        return ",".join(u.code for u in units)


class CareTeamMembership(models.Model):
    """An explicit place in a patient's care team (referral, consultation from another unit)."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="care_memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="care_memberships")
    start = models.DateTimeField(default=timezone.now)
    end = models.DateTimeField()
    reason = models.CharField(max_length=300)
    granted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=8, default="staff")  # feed, staff, system (access.policy, provenance)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["patient", "end"]), models.Index(fields=["user", "end"])]
        constraints = [
            models.CheckConstraint(condition=models.Q(end__gt=models.F("start")), name="membership_end_after_start")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in team of patient {self.patient_id} until {self.end:%Y-%m-%d}"

class CareGrant(UserObjectPermissionBase):
    """guardian direct object permission on a patient, with the validity and basis of the relationship."""

    class Basis(models.TextChoices):
        ENCOUNTER = "encounter", _("member of the unit of an encounter")
        APPOINTMENT = "appointment", _("author of an appointment")
        MEMBERSHIP = "membership", _("explicit care-team membership")

    content_object = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="care_grants")
    basis = models.CharField(max_length=16, choices=Basis.choices)
    valid_from = models.DateTimeField()
    valid_until = models.DateTimeField(null=True, blank=True, help_text=_("empty: while the encounter is open"))
    # Provenance of the fact behind the grant: who created it, and how (feed, staff, system, or confirmed by a
    # second person). A fact created by the grantee alone never makes a grant (access.policy).
    provenance = models.CharField(max_length=10, blank=True, default="")
    fact_created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta(UserObjectPermissionBase.Meta):
        indexes = [
            models.Index(fields=["user", "content_object", "valid_until"], name="caregrant_lookup"),
            models.Index(fields=["valid_until"], name="caregrant_expiry"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} -> patient {self.content_object_id} ({self.basis})"

class PatientGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Patient, on_delete=models.CASCADE)

    class Meta(GroupObjectPermissionBase.Meta):
        pass


class EmergencyAccess(models.Model):
    """Break-the-glass: bounded access outside the care team, justified, always reviewed by the DPO."""

    class ReasonCategory(models.TextChoices):
        EMERGENCY = "emergency", _("vital emergency, patient cannot consent")
        CONTINUITY = "continuity", _("continuity of care (on call, replacement)")
        REFERRAL = "referral", _("referral not yet registered")
        OTHER = "other", _("other (explain)")

    class Review(models.TextChoices):
        PENDING = "pending", _("waiting for DPO review")
        JUSTIFIED = "justified", _("justified")
        VIOLATION = "violation", _("violation")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="emergency_accesses")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="emergency_accesses")
    reason_category = models.CharField(max_length=16, choices=ReasonCategory.choices)
    reason_text = EncryptedCharField(plaintext_max_length=500)  # clinical free text
    started_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    patient_objected = models.BooleanField(default=False)
    review_status = models.CharField(max_length=12, choices=Review.choices, default=Review.PENDING)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_comment = models.TextField(blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["user", "patient", "expires_at"]), models.Index(fields=["review_status"])]

    @property
    def is_active(self) -> bool:
        return self.started_at <= timezone.now() < self.expires_at

    def __str__(self) -> str:
        return f"break-the-glass #{self.pk} by {self.user_id}"

class PatientObjection(models.Model):
    """The patient objects to a named professional seeing their file (break-the-glass stays possible, flagged)."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="objections")
    professional = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=300, blank=True, default="")
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["patient", "professional"], name="objection_unique")]

    def __str__(self) -> str:
        return f"patient {self.patient_id} objects to {self.professional_id}"

class AccessReviewCampaign(models.Model):
    """The yearly authorization review: managers confirm or revoke each user's role and units."""

    name = models.CharField(max_length=100)
    started_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    def __str__(self) -> str:
        return self.name


class AccessReviewItem(models.Model):
    """One right under review: an account (its role, units, groups, superuser or staff flags, permissions) or
    one care-team membership. Every account holding any right, and every open membership, gets an item."""

    class Decision(models.TextChoices):
        PENDING = "pending", _("not reviewed")
        CONFIRMED = "confirmed", _("confirmed")
        REVOKED = "revoked", _("revoked")

    class Kind(models.TextChoices):
        ACCOUNT = "account", _("account")
        MEMBERSHIP = "membership", _("care-team membership")

    campaign = models.ForeignKey(AccessReviewCampaign, on_delete=models.CASCADE, related_name="items")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.ACCOUNT)
    membership = models.ForeignKey(
        CareTeamMembership, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    role = models.CharField(max_length=24)
    units = models.CharField(max_length=300, blank=True, default="")
    rights = models.CharField(max_length=500, blank=True, default="", help_text=_("what the account holds"))
    decision = models.CharField(max_length=12, choices=Decision.choices, default=Decision.PENDING)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "user"], condition=models.Q(kind="account"), name="review_item_unique"
            ),
            models.UniqueConstraint(
                fields=["campaign", "membership"], condition=models.Q(kind="membership"),
                name="review_item_membership_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}: {self.kind} {self.user_id} {self.decision}"

"""Supervised maintenance, the patient's rights register and the breach register.

Writes go through ``dpi.compliance.services``; reads for the DPO through ``dpi.compliance.selectors``.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from patients.models import Patient


class MaintenanceWindow(models.Model):
    """A time slot in which one maintenance provider's account may sign in, approved beforehand."""

    provider = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                 related_name="maintenance_windows")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    purpose = models.CharField(_("purpose"), max_length=300)
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    approved_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")

    class Meta:
        ordering = ["-starts_at"]
        indexes = [models.Index(fields=["provider", "starts_at", "ends_at"])]
        constraints = [
            models.CheckConstraint(condition=models.Q(ends_at__gt=models.F("starts_at")),
                                   name="maintenance_window_order"),
            models.CheckConstraint(condition=~models.Q(approved_by=models.F("provider")),
                                   name="maintenance_window_not_self_approved"),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.starts_at:%Y-%m-%d %H:%M} - {self.ends_at:%H:%M}"


class MaintenanceLogEntry(models.Model):
    """The maintenance logbook: who did what, when, under which approval. Append-only (no service edits it)."""

    class Outcome(models.TextChoices):
        DONE = "done", _("done")
        REFUSED = "refused", _("refused")

    window = models.ForeignKey(MaintenanceWindow, null=True, blank=True, on_delete=models.PROTECT,
                               related_name="entries")
    # A plain id, not a foreign key (like audit events): refusals are written on the independent audit
    # connection, and the logbook outlives the provider's account.
    actor_id = models.BigIntegerField(null=True)
    actor_username = models.CharField(max_length=150)
    occurred_at = models.DateTimeField(auto_now_add=True, db_index=True)
    what = models.CharField(_("intervention"), max_length=500)
    outcome = models.CharField(max_length=8, choices=Outcome.choices, default=Outcome.DONE)
    approved_by_username = models.CharField(max_length=150, blank=True, default="")
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        verbose_name_plural = "maintenance log entries"

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M} {self.actor_username}: {self.what}"


class RightsRequest(models.Model):
    """A data subject's request (GDPR art. 15-21), due one month after receipt (art. 12(3))."""

    class Kind(models.TextChoices):
        ACCESS = "access", _("access (art. 15)")
        RECTIFICATION = "rectification", _("rectification (art. 16)")
        ERASURE = "erasure", _("erasure (art. 17)")
        RESTRICTION = "restriction", _("restriction of processing (art. 18)")
        OBJECTION = "objection", _("objection (art. 21)")

    class Status(models.TextChoices):
        RECEIVED = "received", _("received")
        IN_PROGRESS = "in_progress", _("in progress")
        COMPLETED = "completed", _("completed")
        REFUSED = "refused", _("refused")

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    received_at = models.DateTimeField()
    due_at = models.DateField(_("answer due by"))
    extended = models.BooleanField(default=False, help_text=_("art. 12(3): two more months, patient informed"))
    extension_reason = models.CharField(max_length=300, blank=True, default="")
    identity_proof = models.CharField(_("how the requester's identity was checked"), max_length=200)
    details = models.TextField(_("what is asked"), blank=True, default="")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RECEIVED)
    answer = models.TextField(blank=True, default="")
    answered_at = models.DateTimeField(null=True, blank=True)
    registered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    handled_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    export_sha256 = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["due_at", "id"]
        indexes = [models.Index(fields=["status", "due_at"]), models.Index(fields=["patient", "kind"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} patient {self.patient_id} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in {self.Status.RECEIVED, self.Status.IN_PROGRESS}


class Breach(models.Model):
    """A personal-data breach (art. 33-34 GDPR): notify the CNIL within 72 hours of becoming aware of it."""

    class Risk(models.TextChoices):
        UNLIKELY = "unlikely", _("unlikely to result in a risk (documented, not notified)")
        RISK = "risk", _("risk: notify the CNIL")
        HIGH = "high", _("high risk: notify the CNIL and the people")

    NOTIFICATION_DELAY = timedelta(hours=72)

    detected_at = models.DateTimeField(_("became aware at"))
    description = models.TextField()
    categories = models.JSONField(_("categories of data"), default=list)
    approx_people = models.PositiveIntegerField(_("approximate number of people"))
    risk = models.CharField(max_length=10, choices=Risk.choices, default=Risk.RISK)
    measures = models.TextField(_("measures taken or proposed"), blank=True, default="")
    notified_cnil_at = models.DateTimeField(null=True, blank=True)
    cnil_reference = models.CharField(max_length=100, blank=True, default="")
    late_reason = models.TextField(blank=True, default="", help_text=_("art. 33(1): reasons for a late notification"))
    notified_people_at = models.DateTimeField(null=True, blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-detected_at"]
        verbose_name_plural = "breaches"

    def __str__(self) -> str:
        return f"breach #{self.pk} ({self.detected_at:%Y-%m-%d %H:%M})"

    @property
    def notification_deadline(self):
        return self.detected_at + self.NOTIFICATION_DELAY


class RestoreTest(models.Model):
    """A backup restored successfully into a scratch database (``manage.py restore``): the DPO's live state
    shows the age of the last one (CNIL DPI fiche 5: backups are tested)."""

    tested_at = models.DateTimeField(auto_now_add=True, db_index=True)
    backup_name = models.CharField(max_length=255)
    target_database = models.CharField(max_length=255)
    ok = models.BooleanField(default=True)

    class Meta:
        ordering = ["-tested_at"]

    def __str__(self) -> str:
        return f"restore test {self.backup_name} -> {self.target_database} ({self.tested_at:%Y-%m-%d})"

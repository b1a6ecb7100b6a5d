"""Retention state: archiving jobs (one state machine per patient), archived-patient stubs and their wrapped
keys, legal holds, restore requests, disposal decisions, anonymous statistics and run reports.

Nothing here holds a patient's identity or clinical data in clear. ``patient_id`` is a plain integer, not a
foreign key: the live row disappears when the record is archived. An archived patient can be found by exact
IPP or INS through keyed blind indexes (HMAC, ``dpi.crypto.blind_index``), never by name.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class RetentionRun(models.Model):
    """One execution of the daily retention run (or of ``manage.py retention_run``), for the DPO dashboard."""

    class Status(models.TextChoices):
        RUNNING = "running", _("running")
        FINISHED = "finished", _("finished")
        FAILED = "failed", _("failed")
        SKIPPED = "skipped", _("skipped (another run was active)")

    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    profile = models.CharField(max_length=20, default="")
    due = models.PositiveIntegerField(default=0, help_text=_("patients whose live period has ended (pending jobs)"))
    archived = models.PositiveIntegerField(default=0)
    restored = models.PositiveIntegerField(default=0)
    destroyed = models.PositiveIntegerField(default=0)
    anonymised = models.PositiveIntegerField(default=0)
    care_sheets_purged = models.PositiveIntegerField(default=0)
    trace_partitions_dropped = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    message = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"retention run {self.pk} {self.status}"


class ArchiveJob(models.Model):
    """Moves one patient's record to the archive through explicit states, each committed before the next:

    selected -> exported (file written, fsynced, renamed; wrapped key and checksums stored)
             -> verified (file read back, checksum, decrypted, content digest checked)
             -> live_removed (stub + key created and every live row deleted, in one transaction)
             -> archived (final checks done).

    A crash at any point leaves the job in the last committed state; the next run resumes from there. Until
    ``live_removed`` the record is live only; from then on it is archived only.
    """

    class State(models.TextChoices):
        SELECTED = "selected", _("selected")
        EXPORTED = "exported", _("exported")
        VERIFIED = "verified", _("verified")
        LIVE_REMOVED = "live_removed", _("live rows removed")
        ARCHIVED = "archived", _("archived")
        ABANDONED = "abandoned", _("abandoned (patient no longer live)")

    token = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, help_text=_("names the archive file"))
    patient_id = models.BigIntegerField()
    state = models.CharField(max_length=12, choices=State.choices, default=State.SELECTED)
    kept_through = models.DateField(help_text=_("end of the legal retention period"))
    key_version = models.PositiveIntegerField(null=True, blank=True)
    wrapped_key = models.BinaryField(null=True, blank=True)  # moved to ArchiveKey when the live rows go
    checksum = models.CharField(max_length=64, blank=True, default="", help_text=_("SHA-256 of the file"))
    live_digest = models.CharField(max_length=64, blank=True, default="",
                                   help_text=_("digest of the live rows when exported"))
    size = models.PositiveBigIntegerField(default=0)
    categories = models.CharField(max_length=60, blank=True, default="", help_text=_("data categories, for audit"))
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True, default="")
    run = models.ForeignKey(RetentionRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["patient_id"], condition=~Q(state__in=["archived", "abandoned"]),
                                    name="archivejob_one_open_per_patient"),
        ]
        indexes = [models.Index(fields=["state", "id"])]

    def __str__(self) -> str:
        return f"archive job {self.pk} patient {self.patient_id} {self.state}"

    @property
    def relative_path(self) -> str:
        return archive_relative_path(self.token)


def archive_relative_path(token: uuid.UUID | str) -> str:
    hexa = uuid.UUID(str(token)).hex
    return f"{hexa[:2]}/{hexa}.dpa"


class ArchivedPatient(models.Model):
    """The stub left in the live database for an archived record: no identity, no clinical data.

    ``ipp_bidx`` / ``ins_bidx`` are keyed HMACs (blind indexes) so the DIM can find an archive by exact IPP or
    INS; the IPP itself is not kept in clear (a deliberate choice: the IPP is an indirect identifier shared
    with the lab, imaging and billing systems). After disposal only the patient id and dates remain.
    """

    class State(models.TextChoices):
        ARCHIVED = "archived", _("archived")
        DESTROYED = "destroyed", _("destroyed")
        ANONYMISED = "anonymised", _("anonymised for statistics")

    patient_id = models.BigIntegerField(unique=True)
    state = models.CharField(max_length=12, choices=State.choices, default=State.ARCHIVED)
    ipp_bidx = models.CharField(max_length=64, blank=True, default="", db_index=True)
    ins_bidx = models.CharField(max_length=64, blank=True, default="", db_index=True)
    token = models.UUIDField(null=True, blank=True, unique=True)
    checksum = models.CharField(max_length=64, blank=True, default="")
    size = models.PositiveBigIntegerField(default=0)
    categories = models.CharField(max_length=60, blank=True, default="")
    policy = models.CharField(max_length=20, default="")
    kept_through = models.DateField(help_text=_("last day the archive must be kept (legal period)"))
    archived_at = models.DateTimeField(auto_now_add=True)
    disposal_decision = models.ForeignKey("DisposalDecision", null=True, blank=True, on_delete=models.PROTECT,
                                          related_name="archives")
    disposed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["patient_id"]
        indexes = [models.Index(fields=["state", "kept_through"])]

    def __str__(self) -> str:
        return f"archived patient {self.patient_id} ({self.state})"

    @property
    def relative_path(self) -> str:
        return archive_relative_path(self.token) if self.token else ""

    @property
    def legal_hold(self) -> bool:
        return LegalHold.objects.filter(patient_id=self.patient_id, lifted_at__isnull=True).exists()


class ArchiveKey(models.Model):
    """The archive's data key, wrapped (AES-256-GCM) by the keyring's ``archive`` key. Deleting this row
    makes the archive file unreadable everywhere, including in copies of the archive storage (crypto-shredding)."""

    archive = models.OneToOneField(ArchivedPatient, on_delete=models.CASCADE, primary_key=True, related_name="key")
    key_version = models.PositiveIntegerField()
    wrapped_key = models.BinaryField()

    def __str__(self) -> str:
        return f"archive key of patient {self.archive_id} (archive key v{self.key_version})"


class LegalHold(models.Model):
    """A claim on medical liability suspends the retention periods (R1112-7 CSP, last sentence): while a hold
    is active the archive is neither destroyed nor anonymised. Applies to live and archived patients alike."""

    patient_id = models.BigIntegerField(db_index=True)
    reason = models.CharField(max_length=300, help_text=_("reference of the claim, no patient identity"))
    placed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    placed_at = models.DateTimeField(auto_now_add=True)
    lifted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="+")
    lifted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-placed_at"]
        constraints = [
            models.UniqueConstraint(fields=["patient_id"], condition=Q(lifted_at__isnull=True),
                                    name="legalhold_one_active_per_patient"),
        ]

    def __str__(self) -> str:
        return f"legal hold {self.pk} patient {self.patient_id}" + (" (lifted)" if self.lifted_at else "")


class RestoreRequest(models.Model):
    """A DIM physician asks for an archived record to come back to the live database, for a stated reason;
    a second authorised person approves; the restore then re-inserts the record. Every step is audited."""

    class State(models.TextChoices):
        PENDING = "pending", _("waiting for approval")
        APPROVED = "approved", _("approved, restore pending")
        REJECTED = "rejected", _("rejected")
        RESTORED = "restored", _("restored")

    patient_id = models.BigIntegerField(db_index=True)
    reason = models.CharField(max_length=500)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(auto_now_add=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_comment = models.CharField(max_length=500, blank=True, default="")
    restored_at = models.DateTimeField(null=True, blank=True)
    keep_live_until = models.DateField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.UniqueConstraint(fields=["patient_id"], condition=Q(state__in=["pending", "approved"]),
                                    name="restorerequest_one_open_per_patient"),
            models.CheckConstraint(condition=Q(decided_by__isnull=True) | ~Q(decided_by=models.F("requested_by")),
                                   name="restorerequest_four_eyes"),
        ]

    def __str__(self) -> str:
        return f"restore request {self.pk} patient {self.patient_id} ({self.state})"


class DisposalDecision(models.Model):
    """The decision to dispose of archives whose legal period has ended. R1112-7 CSP: destruction is decided by
    the establishment's director after the DIM physician's advice; the DIM records the decision's reference."""

    class Action(models.TextChoices):
        DESTROY = "destroy", _("destroy (crypto-shredding)")
        ANONYMISE = "anonymise", _("anonymise for statistics, then destroy")

    action = models.CharField(max_length=10, choices=Action.choices)
    reference = models.CharField(max_length=200, help_text=_("the director's decision (number, date)"))
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(auto_now_add=True)
    as_of = models.DateField(help_text=_("covers archives kept through a day before this date"))
    archives_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-recorded_at"]

    def __str__(self) -> str:
        return f"disposal decision {self.pk} ({self.action}, {self.reference})"


class StatisticsAggregate(models.Model):
    """Anonymous statistics kept from disposed records: one-dimensional counts per year (marginals, never a
    cross-tabulation, and never a row per patient). Pseudonymised data would not be anonymous (CNIL)."""

    class Dimension(models.TextChoices):
        SEX = "sex", _("sex")
        AGE_BAND = "age_band", _("age band at last activity")
        UNIT = "unit", _("care unit of stays and consultations")
        ICD10_CHAPTER = "icd10_chapter", _("ICD-10 chapter of problems")

    metric = models.CharField(max_length=20)  # patients | encounters | problems
    year = models.PositiveIntegerField(help_text=_("year of the last activity"))
    dimension = models.CharField(max_length=16, choices=Dimension.choices)
    value = models.CharField(max_length=40)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["year", "metric", "dimension", "value"]
        constraints = [
            models.UniqueConstraint(fields=["metric", "year", "dimension", "value"], name="statistics_cell_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.year} {self.metric} {self.dimension}={self.value}: {self.count}"

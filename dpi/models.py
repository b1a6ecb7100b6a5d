"""The clinical record: notes, observations and lab results, prescriptions, documents, allergies, problems.

Every item belongs to a patient (and usually an encounter), has an author and timestamps. Free text and
document contents are encrypted (dpi.fields). A correction never overwrites silently: ``Amendment`` keeps
every previous version (see dpi.services).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from dpi.core.choices import ChoiceDisplay
from dpi.fields import EncryptedBinaryField, EncryptedCharField, EncryptedTextField
from patients.models import Encounter, Patient


class ClinicalItem(ChoiceDisplay):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    encounter = models.ForeignKey(Encounter, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    version = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Data category of the item for the authorization matrix (access.policy).
    category = "medical"

    class Meta:
        abstract = True

    @property
    def resource_type(self) -> str:
        return self._meta.model_name


class ClinicalNote(ClinicalItem):
    class Kind(models.TextChoices):
        PROGRESS = "progress", _("progress note")
        ADMISSION = "admission", _("admission note")
        DISCHARGE = "discharge", _("discharge summary")
        CONSULTATION = "consultation", _("consultation note")
        NURSING = "nursing", _("nursing note")

    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.PROGRESS)
    title = EncryptedTextField(_("title"), blank=True, default="")
    body = EncryptedTextField(_("text"))
    sensitive = models.BooleanField(
        _("sensitive"), default=False, help_text=_("restricted medical data, e.g. psychiatry or addiction")
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["patient", "created_at"])]

    @property
    def category(self) -> str:  # type: ignore[override]
        return "restricted" if self.sensitive else "medical"

    def __str__(self) -> str:
        return f"note #{self.pk}"

class Observation(ClinicalItem):
    class Category(models.TextChoices):
        VITAL = "vital-signs", _("vital signs")
        LAB = "laboratory", _("laboratory")

    obs_category = models.CharField(max_length=16, choices=Category.choices, default=Category.LAB)
    loinc = models.CharField(_("LOINC code"), max_length=16, blank=True, default="")
    label = EncryptedCharField(_("label"), plaintext_max_length=200)  # "HIV viral load" says a diagnosis
    value = models.DecimalField(max_digits=12, decimal_places=3, null=True, blank=True)
    value_text = EncryptedTextField(blank=True, default="")
    unit = models.CharField(max_length=32, blank=True, default="")
    reference_low = models.DecimalField(max_digits=12, decimal_places=3, null=True, blank=True)
    reference_high = models.DecimalField(max_digits=12, decimal_places=3, null=True, blank=True)
    effective_at = models.DateTimeField()

    class Meta:
        ordering = ["-effective_at"]
        indexes = [models.Index(fields=["patient", "effective_at"])]

    @property
    def abnormal(self) -> str:
        """'L' below the reference range, 'H' above it, '' otherwise (HL7 interpretation codes)."""
        if self.value is None:
            return ""
        if self.reference_low is not None and self.value < self.reference_low:
            return "L"
        if self.reference_high is not None and self.value > self.reference_high:
            return "H"
        return ""

    def __str__(self) -> str:
        return f"{self.label} {self.value or ''} {self.unit}"

    # How far ahead of the server's clock a result may be dated (clocks of other systems drift), as for vitals.
    CLOCK_SKEW = timedelta(minutes=5)

    def clean(self) -> None:
        """The rules every channel shares (REST API, HL7 feed, structured entry): a reference range whose bounds
        are in order, and a date within the patient's life, not ahead. (The LOINC check, ``is_loinc``, is the
        channels' own: the HL7 feed still takes local codes sent as LN.)"""
        errors: dict[str, list[str]] = {}
        low, high = self.reference_low, self.reference_high
        if low is not None and high is not None and low > high:
            errors["reference_high"] = [str(_("The upper bound of the reference range is below its lower bound."))]
        if isinstance(self.effective_at, datetime):
            if self.effective_at > timezone.now() + self.CLOCK_SKEW:
                errors["effective_at"] = [str(_("A result cannot be dated in the future."))]
            elif self.patient_id is not None:
                try:
                    self.patient.check_in_lifetime(
                        self.effective_at, field="effective_at",
                        before_birth=_("A result cannot be dated before the patient's birth."))
                except ValidationError as exc:
                    errors.update(exc.message_dict)
        if errors:
            raise ValidationError(errors)

class Prescription(ClinicalItem):
    class Status(models.TextChoices):
        ACTIVE = "active", _("active")
        STOPPED = "stopped", _("stopped")
        COMPLETED = "completed", _("completed")

    class Route(models.TextChoices):
        ORAL = "oral", _("oral")
        IV = "iv", _("intravenous")
        SC = "sc", _("subcutaneous")
        IM = "im", _("intramuscular")
        CUTANEOUS = "cutaneous", _("cutaneous")
        INHALED = "inhaled", _("inhaled")
        RECTAL = "rectal", _("rectal")
        OTHER = "other", _("other")

    medication = EncryptedCharField(_("medication"), plaintext_max_length=200)
    instructions = EncryptedTextField(_("dosage and instructions"))
    # Structured prescription (the ordonnance): dose, route, frequency, duration. Free text stays encrypted.
    dose = EncryptedTextField(_("dose"), blank=True, default="")
    route = models.CharField(_("route"), max_length=12, choices=Route.choices, blank=True, default="")
    frequency = EncryptedTextField(_("frequency"), blank=True, default="")
    duration_days = models.PositiveIntegerField(_("duration (days)"), null=True, blank=True)
    start = models.DateField()
    end = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ACTIVE)
    stopped_reason = EncryptedTextField(_("reason for stopping"), blank=True, default="")
    validated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        verbose_name=_("validated by (pharmacist)"),
    )
    validated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-start"]

    def __str__(self) -> str:
        return self.medication

# Document types (XDS/DMP metadata): LOINC typeCode -> (display, classCode of TRE_A03-ClasseDocument, its display).
DOCUMENT_TYPE_CODES: dict[str, tuple[str, str, str]] = {
    "11490-0": ("Lettre de liaison à la sortie d'un établissement de soins", "11", "Synthèse"),
    "34133-9": ("Synthèse d'épisode de soins", "11", "Synthèse"),
    "11488-4": ("Compte rendu de consultation", "10", "Compte rendu"),
    "15507-7": ("Compte rendu de passage aux urgences", "10", "Compte rendu"),
    "11502-2": ("Compte rendu d'examens biologiques", "10", "Compte rendu"),
    "18748-4": ("Compte rendu d'imagerie médicale", "31", "Imagerie médicale"),
    "57833-6": ("Prescription de médicaments", "42", "Prescription"),
}


class Document(ClinicalItem):
    title = EncryptedCharField(_("title"), plaintext_max_length=200)
    # XDS/DMP typeCode (LOINC), e.g. 11490-0 discharge letter; its class code follows (dpi.fhir.mapping).
    type_code = models.CharField(_("document type (LOINC)"), max_length=16, blank=True, default="")
    media_type = models.CharField(max_length=100, default="application/pdf")
    document_date = models.DateField(_("date of the document"), null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True, default="")
    content = EncryptedBinaryField()
    size = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        if self.type_code and self.type_code not in DOCUMENT_TYPE_CODES:
            message = _("Unknown document type %(code)s.") % {"code": repr(self.type_code)}
            raise ValidationError({"type_code": [message]})

class Allergy(ClinicalItem):
    class Severity(models.TextChoices):
        LOW = "low", _("low")
        HIGH = "high", _("high")
        UNKNOWN = "unable-to-assess", _("unknown")

    class Status(models.TextChoices):
        ACTIVE = "active", _("active")
        INACTIVE = "inactive", _("inactive")
        RESOLVED = "resolved", _("resolved")

    class Verification(models.TextChoices):
        UNCONFIRMED = "unconfirmed", _("unconfirmed")
        CONFIRMED = "confirmed", _("confirmed")
        REFUTED = "refuted", _("refuted")
        ERROR = "entered-in-error", _("entered in error")

    # SNOMED CT 716186003 "No known allergy": the clinician asked and the patient has none (FHIR convention),
    # which differs from "not recorded" (no row at all).
    NO_KNOWN_ALLERGY = "716186003"

    substance = EncryptedCharField(_("substance"), plaintext_max_length=200)
    substance_code = models.CharField(_("substance code"), max_length=20, blank=True, default="",
                                      help_text=_("ATC or SNOMED CT code when known"))
    reaction = EncryptedTextField(_("reaction"), blank=True, default="")
    severity = models.CharField(max_length=20, choices=Severity.choices, default=Severity.UNKNOWN)
    clinical_status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.ACTIVE)
    verification = models.CharField(_("verification"), max_length=20, choices=Verification.choices,
                                    default=Verification.UNCONFIRMED)

    class Meta:
        verbose_name_plural = "allergies"

    @property
    def is_no_known_allergy(self) -> bool:
        return self.substance_code == self.NO_KNOWN_ALLERGY

    def __str__(self) -> str:
        return self.substance

class Problem(ClinicalItem):
    class Status(models.TextChoices):
        ACTIVE = "active", _("active")
        RESOLVED = "resolved", _("resolved")

    icd10 = models.CharField(_("ICD-10 code"), max_length=8)
    label = EncryptedCharField(_("label"), plaintext_max_length=200)
    comment = EncryptedTextField(_("comment"), blank=True, default="")
    onset = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ACTIVE)

    def __str__(self) -> str:
        return f"{self.icd10} {self.label}"

class Amendment(ChoiceDisplay):
    """A previous version of a clinical item, kept when it is amended (never overwritten silently)."""

    resource_type = models.CharField(max_length=40)
    resource_id = models.BigIntegerField()
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    version = models.PositiveIntegerField()
    previous = EncryptedTextField(help_text="JSON of the fields before the change")
    reason = EncryptedCharField(plaintext_max_length=300)
    amended_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    amended_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["resource_type", "resource_id", "version"]
        constraints = [
            models.UniqueConstraint(fields=["resource_type", "resource_id", "version"], name="amendment_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.resource_type} #{self.resource_id} v{self.version}"

class MedicationAdministration(ClinicalItem):
    """The nurse's record of one dose of a prescription: given, or not given with the reason."""

    class Status(models.TextChoices):
        GIVEN = "completed", _("given")
        NOT_GIVEN = "not-done", _("not given")

    prescription = models.ForeignKey(Prescription, on_delete=models.CASCADE, related_name="administrations")
    status = models.CharField(_("status"), max_length=10, choices=Status.choices)
    administered_at = models.DateTimeField(_("time"))
    dose_given = EncryptedTextField(_("dose given"), blank=True, default="")
    reason_not_given = EncryptedTextField(_("reason not given"), blank=True, default="")

    class Meta:
        ordering = ["-administered_at"]
        indexes = [models.Index(fields=["patient", "administered_at"])]

    def __str__(self) -> str:
        return f"administration #{self.pk} of prescription {self.prescription_id}"


CLINICAL_MODELS = (ClinicalNote, Observation, Prescription, Document, Allergy, Problem, MedicationAdministration)


class JobRun(ChoiceDisplay):
    """One execution of a long background run (retention, detection replay, backup), with a heartbeat.

    The worker running it touches ``heartbeat_at`` every ``DPI_JOB_HEARTBEAT_SECONDS`` (``dpi.jobs``). A run whose
    heartbeat stopped (the worker was killed, its host lost power) is marked failed by the ``jobs-stale-sweep``
    beat task, so no status stays "running" for a run nobody is doing; Celery redelivers the task itself (late
    acknowledgement) and the redelivered run resumes from the last committed state.
    """

    class Status(models.TextChoices):
        RUNNING = "running", _("running")
        FINISHED = "finished", _("finished")
        FAILED = "failed", _("failed")

    kind = models.CharField(max_length=40)
    task_id = models.CharField(max_length=64, blank=True, default="", help_text=_("Celery task id"))
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    heartbeat_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    message = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["status", "heartbeat_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.status} ({self.started_at:%Y-%m-%d %H:%M})"

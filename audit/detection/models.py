"""Detection of unusual access: alerts for the DPO, the detector's watermark and its per-user daily summary.

Alerts name the user and the patient by id only: the DPO role reads no patient data, and an alert must not
leak a name or an address. ``patient_id`` is a plain value (like the access trace itself): an alert outlives
an archived or destroyed patient.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils.translation import gettext_lazy as _


class Alert(models.Model):
    """One (user, patient, day) whose accesses scored above the alert threshold; ``patient_id`` empty: a
    user-level alert (volume, browsing, dormant account, bulk export, account past its end date)."""

    class Status(models.TextChoices):
        NEW = "new", _("new")
        IN_REVIEW = "in_review", _("in review")
        JUSTIFIED = "justified", _("justified")
        VIOLATION = "violation", _("violation")

    class Severity(models.TextChoices):
        LOW = "low", _("low")
        MEDIUM = "medium", _("medium")
        HIGH = "high", _("high")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    patient_id = models.BigIntegerField(null=True, blank=True)
    day = models.DateField()
    score = models.IntegerField()
    severity = models.CharField(max_length=8, choices=Severity.choices)
    rules = ArrayField(models.CharField(max_length=32), default=list, blank=True)
    # [{"rule": ..., "points": ..., "detail": {...}, "fr": ..., "en": ...}]: what each rule saw.
    hits = models.JSONField(default=list, blank=True)
    event_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    patient_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)  # user-level alerts: who was opened
    n_events = models.IntegerField(default=0)
    reason_fr = models.TextField(blank=True, default="")
    reason_en = models.TextField(blank=True, default="")
    # {"fr": ..., "en": ...}: what was accessed, the explanations looked for and found, the user's baseline.
    context = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.NEW)
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(blank=True, default="")
    notified_at = models.DateTimeField(null=True, blank=True)
    # The learned model that scored this alert (None: rules only), its probability of a violation, and the
    # features it saw: a DPO verdict on the alert becomes a training label with exactly these features.
    model = models.ForeignKey("DetectionModel", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    model_probability = models.FloatField(null=True, blank=True)
    features = models.JSONField(null=True, blank=True)  # written by the detector after the upsert
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-day", "-score", "id"]
        constraints = [
            # The deduplication key: re-running the detector updates, never duplicates (NULL patient included).
            models.UniqueConstraint(fields=["user", "patient_id", "day"], nulls_distinct=False,
                                    name="detection_alert_unique"),
        ]
        indexes = [
            models.Index(fields=["status", "day"]),
            models.Index(fields=["day"]),
            models.Index(fields=["patient_id"]),
        ]

    def __str__(self) -> str:
        return f"alert {self.pk} user {self.user_id} patient {self.patient_id} {self.day} ({self.score})"


class DetectionState(models.Model):
    """The incremental detector's watermark (one row, ``name="default"``)."""

    name = models.CharField(max_length=32, primary_key=True)
    watermark = models.DateTimeField(null=True, blank=True, help_text=_("events up to here were analysed"))
    history_from = models.DateField(null=True, blank=True,
                                    help_text=_("first day summarised: older inactivity is unknown"))
    last_run_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name}: {self.watermark}"


class UserDay(models.Model):
    """What one user did in one day (local time): the baselines of the volume, hour and export rules, and
    the share of explained accesses."""

    user_id = models.BigIntegerField()
    day = models.DateField()
    role = models.CharField(max_length=100, default="")
    unit = models.CharField(max_length=100, default="")
    n_events = models.IntegerField(default=0)
    n_patient_events = models.IntegerField(default=0)
    n_explained_events = models.IntegerField(default=0)
    n_patients = models.IntegerField(default=0)
    n_unexplained_patients = models.IntegerField(default=0)
    n_searches = models.IntegerField(default=0)
    n_export_patients = models.IntegerField(default=0)
    hours = ArrayField(models.IntegerField(), size=24, default=list)  # events per local hour 0..23
    # patients first opened that day in each local hour 0..23 (the model's baselines by weekday and hour band)
    patient_hours = ArrayField(models.IntegerField(), size=24, null=True, blank=True)  # set after the upsert

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user_id", "day"], name="detection_userday_unique")]
        indexes = [models.Index(fields=["day", "role", "unit"])]

    def __str__(self) -> str:
        return f"user {self.user_id} {self.day}"


class DetectionRun(models.Model):
    """One pass of the detector over a time range: what it analysed and what it found."""

    class Kind(models.TextChoices):
        INCREMENTAL = "incremental", _("incremental")
        REPLAY = "replay", _("replay")

    kind = models.CharField(max_length=12, choices=Kind.choices)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    range_start = models.DateTimeField()
    range_end = models.DateTimeField()
    events = models.IntegerField(default=0)
    patient_events = models.IntegerField(default=0)
    explained_events = models.IntegerField(default=0)
    hits = models.IntegerField(default=0)
    alerts_created = models.IntegerField(default=0)
    alerts_updated = models.IntegerField(default=0)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.range_start:%Y-%m-%d %H:%M}..{self.range_end:%Y-%m-%d %H:%M}"


class UnexplainedAccess(models.Model):
    """A (user, patient, local day) that no care relationship explained: the memory of the rules that look
    over weeks (the same patient on several days, one unrelated chart a day, several staff on one patient).

    ``cold``: the patient was not in the hospital at all then and the user's units had never treated them
    (no stay, appointment or membership anywhere near that time, no former link): nothing at all connects them.
    """

    user_id = models.BigIntegerField()
    patient_id = models.BigIntegerField()
    day = models.DateField()
    cold = models.BooleanField(default=False)
    view_only = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user_id", "patient_id", "day"],
                                               name="detection_unexplained_unique")]
        indexes = [models.Index(fields=["patient_id", "day"]), models.Index(fields=["user_id", "day"])]

    def __str__(self) -> str:
        return f"user {self.user_id} patient {self.patient_id} {self.day}"


class DetectionModel(models.Model):
    """One trained version of the detector's learned model (``audit.detection.model``).

    The parameters are plain numbers in JSON (the standardisation and the logistic regression's coefficients),
    never a pickle: loading a model executes nothing. ``sha256`` is the digest of the canonical JSON of
    ``features`` and ``params``; a model whose digest does not match is refused (the detector then scores with
    the rules alone). The newest ``active`` version scores; none stored: rules only.
    """

    version = models.PositiveIntegerField(unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    active = models.BooleanField(default=True)
    algorithm = models.CharField(max_length=64)  # e.g. "scikit-learn 1.9.1 LogisticRegression"
    features = models.JSONField(default=list)  # feature names, in the order of the coefficients
    params = models.JSONField(default=dict)  # {"mean": [...], "scale": [...], "coef": [...], "intercept": x}
    training = models.JSONField(default=dict)  # what it was trained on: label sources, counts, days
    metrics = models.JSONField(default=dict)  # before / after on the held-out part (and the benchmark)
    sha256 = models.CharField(max_length=64)

    class Meta:
        ordering = ["-version"]

    def __str__(self) -> str:
        return f"detection model v{self.version}"

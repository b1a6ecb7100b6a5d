"""Administrative data: identity (INS traits), contact, care units, encounters, appointments.

This app knows nothing of the clinical record. Identifiers (INS, social security number) are encrypted;
exact search on INS uses a keyed blind index.
"""

from __future__ import annotations

from datetime import date

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from dpi.fields import EncryptedCharField
from patients import ins as ins_rules


class CareUnit(models.Model):
    """A care unit (service), e.g. cardiology."""

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=200)

    class Meta:
        ordering = ["name"]
        verbose_name = _("care unit")
        verbose_name_plural = _("care units")

    def __str__(self) -> str:
        return self.name


class Patient(models.Model):
    class Sex(models.TextChoices):
        MALE = "M", _("male")
        FEMALE = "F", _("female")
        UNKNOWN = "U", _("unknown")

    class IdentityStatus(models.TextChoices):
        """Identity reliability status of the national identity-vigilance framework (RNIV)."""

        PROVISIONAL = "PROV", _("provisional")
        RECOVERED = "RECUP", _("recovered")
        VALIDATED = "VALI", _("validated")
        QUALIFIED = "QUAL", _("qualified")

    class Confidentiality(models.TextChoices):
        NORMAL = "normal", _("normal")
        RESTRICTED = "restricted", _("restricted")

    class RestrictionReason(models.TextChoices):
        NONE = "", _("none")
        VIP = "vip", _("public figure (VIP)")
        STAFF = "staff", _("staff member treated as patient")
        PROTECTED = "protected", _("protected identity (e.g. anonymous birth)")

    ipp = models.CharField(_("IPP"), max_length=20, unique=True, help_text=_("permanent internal patient id"))
    ins = EncryptedCharField(_("INS"), blank=True, default="", plaintext_max_length=15)
    ins_bidx = models.CharField(max_length=64, blank=True, default="", db_index=True, editable=False)
    birth_name = models.CharField(_("birth name"), max_length=100)
    used_name = models.CharField(_("used name"), max_length=100, blank=True, default="")
    first_name = models.CharField(_("first given name"), max_length=100)
    first_names = models.CharField(_("birth given names"), max_length=300, blank=True, default="")
    sex = models.CharField(_("sex"), max_length=1, choices=Sex.choices)
    birth_date = models.DateField(_("date of birth"))
    birthplace_insee = models.CharField(_("birthplace INSEE code"), max_length=5, blank=True, default="")
    identity_status = models.CharField(
        _("identity status"), max_length=5, choices=IdentityStatus.choices, default=IdentityStatus.PROVISIONAL
    )
    address = models.CharField(_("address"), max_length=300, blank=True, default="")
    postal_code = models.CharField(_("postal code"), max_length=10, blank=True, default="")
    city = models.CharField(_("city"), max_length=100, blank=True, default="")
    phone = models.CharField(_("phone"), max_length=30, blank=True, default="")
    email = models.EmailField(_("e-mail"), blank=True, default="")
    marital_status = models.CharField(_("family status"), max_length=30, blank=True, default="")
    occupation = models.CharField(_("occupation"), max_length=100, blank=True, default="")
    social_security_number = EncryptedCharField(
        _("social security number"), blank=True, default="", plaintext_max_length=15
    )
    confidentiality = models.CharField(
        _("confidentiality"), max_length=12, choices=Confidentiality.choices, default=Confidentiality.NORMAL
    )
    restriction_reason = models.CharField(
        _("restriction reason"), max_length=12, choices=RestrictionReason.choices, blank=True, default=""
    )
    date_of_death = models.DateField(_("date of death"), null=True, blank=True)
    frozen = models.BooleanField(
        _("restricted processing"),
        default=False,
        help_text=_("GDPR art. 18: changes are blocked while a dispute is checked"),
    )
    last_activity_at = models.DateTimeField(_("last activity"), null=True, blank=True, db_index=True, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("patient")
        verbose_name_plural = _("patients")
        indexes = [
            models.Index(fields=["birth_name", "first_name"]),
            models.Index(fields=["used_name"]),
            models.Index(fields=["birth_date"]),
        ]
        permissions = [
            ("access_medical", "Is in the patient's care team (object permission)"),
        ]

    def __str__(self) -> str:
        return f"{self.display_name} ({self.ipp})"

    @property
    def display_name(self) -> str:
        name = self.used_name or self.birth_name
        return f"{name.upper()} {self.first_name}"

    @property
    def is_restricted(self) -> bool:
        return self.confidentiality == self.Confidentiality.RESTRICTED

    @property
    def ins_kind(self) -> str:
        return ins_rules.kind(self.ins) if self.ins else ""

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if self.ins:
            self.ins = ins_rules.normalise(self.ins)
            try:
                ins_rules.validate_ins(self.ins)
            except ValidationError as exc:
                errors.setdefault("ins", []).extend(exc.messages)
        if self.social_security_number:
            self.social_security_number = ins_rules.normalise(self.social_security_number)
            try:
                ins_rules.validate_ins(self.social_security_number)
            except ValidationError as exc:
                errors.setdefault("social_security_number", []).extend(exc.messages)
        today = timezone.localdate()
        # clean_fields() already reported unparsable dates; only compare real dates here.
        if not isinstance(self.birth_date, date):
            self.birth_date = None
        if not isinstance(self.date_of_death, date):
            self.date_of_death = None
        if self.birth_date and self.birth_date > today:
            errors.setdefault("birth_date", []).append(str(_("The date of birth cannot be in the future.")))
        if self.date_of_death:
            if self.date_of_death > today:
                errors.setdefault("date_of_death", []).append(str(_("The date of death cannot be in the future.")))
            if self.birth_date and self.date_of_death < self.birth_date:
                errors.setdefault("date_of_death", []).append(str(_("The date of death is before the birth date.")))
        if self.is_restricted and not self.restriction_reason:
            errors.setdefault("restriction_reason", []).append(str(_("A restricted patient needs a reason.")))
        if errors:
            raise ValidationError(errors)


class Encounter(models.Model):
    """A stay (hospitalisation) or a consultation in one care unit. A transfer closes one and opens the next."""

    class Kind(models.TextChoices):
        STAY = "stay", _("stay")
        CONSULTATION = "consultation", _("consultation")
        EMERGENCY = "emergency", _("emergency")

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="encounters",
                                verbose_name=_("patient"))
    unit = models.ForeignKey(CareUnit, on_delete=models.PROTECT, related_name="encounters", verbose_name=_("unit"))
    kind = models.CharField(_("type"), max_length=16, choices=Kind.choices, default=Kind.STAY)
    start = models.DateTimeField(_("start"))
    end = models.DateTimeField(_("end"), null=True, blank=True)
    transferred_from = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="transferred_to",
        verbose_name=_("transferred from"),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["-start"]
        verbose_name = _("encounter")
        verbose_name_plural = _("encounters")
        indexes = [models.Index(fields=["patient", "start"]), models.Index(fields=["unit", "end"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__isnull=True) | models.Q(end__gte=models.F("start")),
                name="encounter_end_after_start",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.unit} {self.start:%Y-%m-%d}"

    @property
    def is_open(self) -> bool:
        return self.end is None

    def clean(self) -> None:
        if self.end and self.start and self.end < self.start:
            raise ValidationError({"end": _("The end of an encounter cannot be before its start.")})


class Appointment(models.Model):
    class Status(models.TextChoices):
        BOOKED = "booked", _("booked")
        FULFILLED = "fulfilled", _("fulfilled")
        CANCELLED = "cancelled", _("cancelled")
        NOSHOW = "noshow", _("no-show")

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="appointments",
                                verbose_name=_("patient"))
    unit = models.ForeignKey(CareUnit, on_delete=models.PROTECT, related_name="appointments", verbose_name=_("unit"))
    practitioner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="appointments",
                                     verbose_name=_("practitioner"))
    start = models.DateTimeField(_("start"))
    end = models.DateTimeField(_("end"))
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.BOOKED)
    reason = models.CharField(_("reason"), max_length=200, blank=True, default="")

    class Meta:
        ordering = ["start"]
        verbose_name = _("appointment")
        verbose_name_plural = _("appointments")
        indexes = [models.Index(fields=["patient", "start"]), models.Index(fields=["practitioner", "start"])]

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} {self.unit}"

    def clean(self) -> None:
        if self.end and self.start and self.end <= self.start:
            raise ValidationError({"end": _("An appointment must end after it starts.")})

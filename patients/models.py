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

from dpi.core import dates
from dpi.core.choices import ChoiceDisplay
from dpi.fields import EncryptedCharField
from patients import ins as ins_rules
from patients import places

# Strict traits (Référentiel INS): editing one on a validated, recovered or qualified identity downgrades it.
STRICT_TRAITS = ("birth_name", "first_name", "first_names", "sex", "birth_date", "birthplace_insee")


class CareUnit(ChoiceDisplay):
    """A care unit (service), e.g. cardiology."""

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=200)

    class Meta:
        ordering = ["name"]
        verbose_name = _("care unit")
        verbose_name_plural = _("care units")

    def __str__(self) -> str:
        return self.name


def status_from_evidence(*, insi: bool, document: bool, doubtful_or_fictitious: bool) -> str:
    """RNIV status = INSi retrieval x high-trust document check; a doubtful or fictitious identity stays PROV."""
    if doubtful_or_fictitious:
        return "PROV"
    return {(True, True): "QUAL", (True, False): "RECUP", (False, True): "VALI"}.get((insi, document), "PROV")


class Patient(ChoiceDisplay):
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

    class Attribute(models.TextChoices):
        """RNIV identity attributes (FR Core ``comment`` codes). Doubtful and fictitious stay provisional."""

        NONE = "", _("none")
        DOUBTFUL = "DOUT", _("doubtful identity")
        FICTITIOUS = "FICT", _("fictitious identity")
        HOMONYM = "HOMA", _("known homonym")

    class ValidationMode(models.TextChoices):
        """High-trust identity documents (FR Core ``fr-core-cs-mode-validation-identity`` codes)."""

        NONE = "", _("none")
        ID_CARD = "CN", _("national identity card")
        ELECTRONIC_ID_CARD = "eCN", _("electronic national identity card")
        PASSPORT = "PA", _("passport")
        RESIDENCE_PERMIT = "CS", _("residence permit")

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
    identity_attribute = models.CharField(
        _("identity attribute"), max_length=4, choices=Attribute.choices, blank=True, default=""
    )
    validation_mode = models.CharField(
        _("identity document"), max_length=4, choices=ValidationMode.choices, blank=True, default=""
    )
    validation_date = models.DateField(_("identity document checked on"), null=True, blank=True)
    validated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("identity document checked by"),
    )
    validated_by_name = models.CharField(
        _("checked by (name, when recorded by another system)"), max_length=150, blank=True, default=""
    )
    insi_date = models.DateTimeField(_("INSi teleservice result of"), null=True, blank=True)
    is_merged = models.BooleanField(
        _("merged into another file"), default=False, db_index=True,
        help_text=_("identity vigilance: this file was merged; its IPP is an alias of the kept one"),
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

    def check_in_lifetime(self, when, *, field: str, before_birth, after_death=None) -> None:
        """A fact dated ``when`` (a datetime) is not before birth, nor after death when ``after_death`` is given
        (compared on the hospital's calendar day). The messages take ``%(date)s``; the error names ``field``."""
        day = timezone.localtime(when).date() if timezone.is_aware(when) else when.date()
        if isinstance(self.birth_date, date) and day < self.birth_date:
            raise ValidationError({field: [before_birth % {"date": self.birth_date.strftime("%d/%m/%Y")}]})
        if after_death is not None and isinstance(self.date_of_death, date) and day > self.date_of_death:
            raise ValidationError({field: [after_death % {"date": self.date_of_death.strftime("%d/%m/%Y")}]})

    @property
    def is_restricted(self) -> bool:
        return self.confidentiality == self.Confidentiality.RESTRICTED

    @property
    def ins_kind(self) -> str:
        return ins_rules.kind(self.ins) if self.ins else ""

    @property
    def has_document_check(self) -> bool:
        return bool(self.validation_mode and self.validation_date and (self.validated_by_id or self.validated_by_name))

    @property
    def has_insi_result(self) -> bool:
        return self.insi_date is not None

    @property
    def is_doubtful_or_fictitious(self) -> bool:
        return self.identity_attribute in {self.Attribute.DOUBTFUL, self.Attribute.FICTITIOUS}

    def evidence_status(self) -> str:
        """RNIV status = INSi retrieval x high-trust document check (doubtful or fictitious: provisional)."""
        return status_from_evidence(insi=self.has_insi_result, document=self.has_document_check,
                                    doubtful_or_fictitious=self.is_doubtful_or_fictitious)

    def normalise_traits(self) -> None:
        """Strict traits as the INS referential writes them: upper case, no diacritics."""
        for name in ("birth_name", "first_name", "first_names"):
            setattr(self, name, ins_rules.normalise_trait(getattr(self, name) or ""))
        if self.first_name and not self.first_names:
            self.first_names = self.first_name
        self.birthplace_insee = (self.birthplace_insee or "").strip().upper()

    def identity_errors(self) -> dict[str, list[str]]:
        """The identity-vigilance rules (status, coherence of the INS, birth place, strict traits)."""
        errors: dict[str, list[str]] = {}

        def add(field: str, message) -> None:
            errors.setdefault(field, []).append(str(message))

        for name in ("birth_name", "first_name", "first_names"):
            value = getattr(self, name)
            if value and not ins_rules.trait_valid(value):
                add(name, _("Letters only, separated by a space, a hyphen or an apostrophe (no digits)."))
        if self.first_names and self.first_name and self.first_names.split(" ")[0] != self.first_name:
            add("first_name", _("The first given name must be the first of the birth given names."))
        if self.birthplace_insee:
            if not places.well_formed(self.birthplace_insee):
                add("birthplace_insee", _("An INSEE code is 5 characters: a commune code, or 99 and a country."))
            elif not places.is_known(self.birthplace_insee):
                add("birthplace_insee", _("This INSEE code is not in the reference list of communes and countries."))
        status = self.evidence_status()
        if getattr(self, "_status_follows_evidence", False):  # set by forms: the status is computed, not typed
            self.identity_status = status
        if self.is_doubtful_or_fictitious and (self.insi_date or self.validation_mode or self.ins):
            add("identity_attribute", _("A doubtful or fictitious identity stays provisional: no INS, no INSi "
                                        "result, no identity document."))
        if self.validation_mode and not (self.validation_date and (self.validated_by_id or self.validated_by_name)):
            add("validation_date", _("Record the date of the document check and who checked it."))
        if self.validation_date and self.birth_date and isinstance(self.validation_date, date):
            if self.validation_date > timezone.localdate():
                add("validation_date", _("The document check cannot be in the future."))
        if self.identity_status != status:
            add("identity_status", STATUS_REFUSAL.get((self.identity_status, status), _("Status not allowed.")))
        if status in {self.IdentityStatus.RECOVERED, self.IdentityStatus.QUALIFIED} and not self.ins:
            add("ins", _("A recovered or qualified identity carries the INS returned by the INSi teleservice."))
        if status != self.IdentityStatus.PROVISIONAL and not self.birthplace_insee:
            add("birthplace_insee", _("The birth place (INSEE code) is a strict trait: required from the "
                                      "validated status on."))
        if self.ins and ins_rules.is_valid(self.ins) and isinstance(self.birth_date, date):
            for field, messages in ins_rules.coherence_errors(
                self.ins, sex=self.sex, birth_date=self.birth_date, birthplace=self.birthplace_insee
            ).items():
                errors.setdefault(field, []).extend(messages)
        return errors

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
        if self.birth_date and self.birth_date < dates.EARLIEST_BIRTH_DATE:
            errors.setdefault("birth_date", []).append(str(
                _("The date of birth cannot be before %(date)s.")
                % {"date": dates.EARLIEST_BIRTH_DATE.strftime("%d/%m/%Y")}))
        if self.date_of_death:
            if self.date_of_death > today:
                errors.setdefault("date_of_death", []).append(str(_("The date of death cannot be in the future.")))
            if self.birth_date and self.date_of_death < self.birth_date:
                errors.setdefault("date_of_death", []).append(str(_("The date of death is before the birth date.")))
        if self.is_restricted and not self.restriction_reason:
            errors.setdefault("restriction_reason", []).append(str(_("A restricted patient needs a reason.")))
        self.normalise_traits()
        for field, messages in self.identity_errors().items():
            errors.setdefault(field, []).extend(messages)
        if errors:
            raise ValidationError(errors)


# Why a requested status is refused, by (requested, what the evidence gives).
_P, _R, _V, _Q = "PROV", "RECUP", "VALI", "QUAL"
STATUS_REFUSAL = {
    (_Q, _P): _("Qualified needs both an INSi teleservice result and a high-trust identity document check."),
    (_Q, _R): _("Qualified also needs a high-trust identity document check (identity card, passport, "
                "residence permit)."),
    (_Q, _V): _("Qualified also needs the INS retrieved from the INSi teleservice."),
    (_R, _P): _("Recovered only comes from an INSi teleservice result."),
    (_R, _V): _("With a document check, an INSi result makes the identity qualified, not recovered."),
    (_R, _Q): _("This identity has both checks: it is qualified."),
    (_V, _P): _("Validated needs a high-trust identity document check (type, date, who checked)."),
    (_V, _R): _("With an INSi result, a document check makes the identity qualified, not validated."),
    (_V, _Q): _("This identity has both checks: it is qualified."),
    (_P, _R): _("This identity has an INSi result: it is recovered, not provisional."),
    (_P, _V): _("This identity has a document check: it is validated, not provisional."),
    (_P, _Q): _("This identity has both checks: it is qualified, not provisional."),
}


class InsiQuery(ChoiceDisplay):
    """One call to the INSi teleservice (or its simulator) and what it answered: the trace RNIV asks for."""

    class Outcome(models.TextChoices):
        FOUND = "found", _("one identity found")
        NONE = "none", _("no identity found")
        SEVERAL = "several", _("several identities found")
        ERROR = "error", _("teleservice error")

    patient = models.ForeignKey(Patient, null=True, blank=True, on_delete=models.CASCADE, related_name="insi_queries")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField(default=timezone.now)
    backend = models.CharField(max_length=32)
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    ins = EncryptedCharField(blank=True, default="", plaintext_max_length=15)
    oid = models.CharField(max_length=40, blank=True, default="")
    birth_name = models.CharField(max_length=100, blank=True, default="")
    first_names = models.CharField(max_length=300, blank=True, default="")
    sex = models.CharField(max_length=1, blank=True, default="")
    birth_date = models.DateField(null=True, blank=True)
    birthplace_insee = models.CharField(max_length=5, blank=True, default="")
    detail = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["-requested_at"]

    def __str__(self) -> str:
        return f"INSi {self.outcome} {self.requested_at:%Y-%m-%d %H:%M}"

    @property
    def first_name(self) -> str:
        return self.first_names.split(" ")[0] if self.first_names else ""


class IdentityMerge(ChoiceDisplay):
    """A merge of two files of one person (identity vigilance): ``merged`` into the kept patient.

    The merged file stays (its IPP an alias of the kept one, its audit trail untouched); ``moved`` lists every
    row moved, by model label, so that the merge can be undone within ``DPI_IDENTITY_UNMERGE_DAYS``.
    """

    merged = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="merges_out")
    kept_patient_id = models.BigIntegerField(db_index=True)  # an id, not a key: the record of one file only
    kept_ipp = models.CharField(max_length=20)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    system_task = models.CharField(max_length=100, blank=True, default="")
    reason = models.CharField(max_length=300)
    merged_at = models.DateTimeField(default=timezone.now)
    moved = models.JSONField(default=dict)
    undone_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")
    undo_reason = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["-merged_at"]

    def __str__(self) -> str:
        return f"{self.merged_id} -> {self.kept_patient_id}"


class IdentityFlag(ChoiceDisplay):
    """Something in an identity for the identity-vigilance cell to look at (worklist): found on identities
    recorded before the rules (migration ``0007_identities_brought_into_line``), resolved when the identity is
    next saved through the rules (or, for a status, when its evidence is recorded)."""

    class Kind(models.TextChoices):
        STATUS_CORRECTED = "status_corrected", _("status resting on no recorded evidence: corrected")
        INS_INVALID = "ins_invalid", _("INS malformed or with a wrong key")
        INS_INCOHERENT = "ins_incoherent", _("INS contradicting the traits")
        TRAIT_INVALID = "trait_invalid", _("strict trait not as the INS referential writes it")
        BIRTHPLACE = "birthplace", _("birth place not a known INSEE code")
        SAME_INS = "same_ins", _("same INS on another file")

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="identity_flags")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    fields = models.JSONField(default=list, blank=True)  # the fields concerned (names, never values)
    previous_status = models.CharField(max_length=5, blank=True, default="")
    flagged_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["flagged_at", "pk"]

    def __str__(self) -> str:
        return f"{self.patient_id} {self.kind}"


class DuplicateSuspicion(ChoiceDisplay):
    """A probable duplicate flagged at creation, for the identity-vigilance worklist."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="duplicate_suspicions")
    candidate_id = models.BigIntegerField()
    reason = models.CharField(max_length=32)  # strict_traits | phonetic_birth_date
    flagged_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.patient_id} ~ {self.candidate_id} ({self.reason})"


class CareFactProvenance(ChoiceDisplay):
    """Who created a fact that lets people into a patient's care team, and how (access.policy, provenance).

    A fact created by the person it would let in grants that person nothing until another person confirms it.
    """

    class Source(models.TextChoices):
        FEED = "feed", _("hospital system feed (ADT, integration)")
        STAFF = "staff", _("entered by a staff member")
        SYSTEM = "system", _("system (import, seed, command)")

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.SYSTEM, editable=False)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    confirmed_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        abstract = True


class Encounter(CareFactProvenance):
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
    bed = models.CharField(_("bed"), max_length=20, blank=True, default="")
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


class Appointment(CareFactProvenance):
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
    # Why the patient comes is health data (art. 9 GDPR), unlike the booking itself: encrypted, and shown to
    # clinical roles only (docs/security.md "What is encrypted").
    reason = EncryptedCharField(_("reason"), plaintext_max_length=200, blank=True, default="")

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

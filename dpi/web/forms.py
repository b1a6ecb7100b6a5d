"""Browser forms. They validate input; the services (dpi.services, access.services) do the work."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from access.models import EmergencyAccess
from audit.models import AccessEvent
from dpi.models import Allergy, ClinicalNote, Prescription


class PatientSearchForm(forms.Form):
    q = forms.CharField(
        label=_("Search a patient"), required=False, max_length=100,
        help_text=_("Name, date of birth (dd/mm/yyyy), IPP or INS."),
        widget=forms.TextInput(attrs={"type": "search", "autocomplete": "off", "autofocus": True}),
    )

    def clean_q(self) -> str:
        q = " ".join(self.cleaned_data["q"].split())
        if q and len(q) < 2:
            raise forms.ValidationError(_("Type at least two characters."))
        return q


# Note kinds offered by role, the first being the default: a nurse writes a "transmission infirmière".
NOTE_KINDS_BY_ROLE: dict[str, tuple[str, ...]] = {
    "nurse": (ClinicalNote.Kind.NURSING,),
    "midwife": (ClinicalNote.Kind.PROGRESS, ClinicalNote.Kind.ADMISSION, ClinicalNote.Kind.DISCHARGE,
                ClinicalNote.Kind.CONSULTATION, ClinicalNote.Kind.NURSING),
    "physician": (ClinicalNote.Kind.PROGRESS, ClinicalNote.Kind.ADMISSION, ClinicalNote.Kind.DISCHARGE,
                  ClinicalNote.Kind.CONSULTATION, ClinicalNote.Kind.NURSING),
    "medical_secretary": (ClinicalNote.Kind.CONSULTATION,),
}


class NoteForm(forms.Form):
    kind = forms.ChoiceField(label=_("Kind of note"), choices=ClinicalNote.Kind.choices,
                             initial=ClinicalNote.Kind.PROGRESS)
    title = forms.CharField(label=_("Title"), required=False, max_length=200)
    body = forms.CharField(label=_("Text"), widget=forms.Textarea(attrs={"rows": 6}), max_length=20000)
    sensitive = forms.BooleanField(
        label=_("Sensitive note (restricted: psychiatry, addiction...)"), required=False,
        help_text=_("Only physicians and midwives of the care team will see it."),
    )

    def __init__(self, *args, allow_sensitive: bool = False, role: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if not allow_sensitive:
            del self.fields["sensitive"]
        kinds = NOTE_KINDS_BY_ROLE.get(str(role) if role else "")
        if kinds:
            self.fields["kind"].choices = [(k, label) for k, label in ClinicalNote.Kind.choices if k in kinds]
            self.fields["kind"].initial = kinds[0]


class NoteAmendForm(forms.Form):
    title = forms.CharField(label=_("Title"), required=False, max_length=200)
    body = forms.CharField(label=_("Text"), widget=forms.Textarea(attrs={"rows": 8}), max_length=20000)
    reason = forms.CharField(label=_("Reason for the amendment"), max_length=300,
                             help_text=_("Kept with the previous version, visible in the note's history."))


class BreakGlassForm(forms.Form):
    reason_category = forms.ChoiceField(label=_("Reason"), choices=EmergencyAccess.ReasonCategory.choices,
                                        widget=forms.RadioSelect)
    reason_text = forms.CharField(
        label=_("Explain why you need this record now"), min_length=10, max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    otp_token = forms.CharField(
        label=_("One-time code from your authenticator"), min_length=6, max_length=8,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code", "pattern": "[0-9]*"}),
    )


class EmergencyReviewForm(forms.Form):
    status = forms.ChoiceField(label=_("Decision"), widget=forms.RadioSelect, choices=[
        (EmergencyAccess.Review.JUSTIFIED, _("justified")),
        (EmergencyAccess.Review.VIOLATION, _("violation")),
    ])
    comment = forms.CharField(label=_("Comment"), required=False, max_length=2000,
                              widget=forms.Textarea(attrs={"rows": 2}),
                              help_text=_("Required for a violation."))


_DATE = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")  # the browser's date picker speaks ISO


class AccessLogFilterForm(forms.Form):
    patient = forms.CharField(label=_("Patient (id or IPP)"), required=False, max_length=20)
    user = forms.CharField(label=_("User (username)"), required=False, max_length=150)
    date_from = forms.DateField(label=_("From"), required=False, widget=_DATE)
    date_to = forms.DateField(label=_("To"), required=False, widget=_DATE)
    outcome = forms.ChoiceField(label=_("Outcome"), required=False, choices=[
        ("", _("all")), (AccessEvent.Outcome.ALLOWED, _("allowed")), (AccessEvent.Outcome.DENIED, _("denied")),
    ])

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_to"] < data["date_from"]:
            self.add_error("date_to", _("The end date is before the start date."))
        return data


# XDS/DMP document types (LOINC) offered for upload.
DOCUMENT_TYPES = [
    ("11490-0", _("discharge letter")),
    ("11488-4", _("consultation report")),
    ("18748-4", _("imaging report")),
    ("11502-2", _("laboratory report")),
    ("34133-9", _("summary of episode")),
    ("51851-4", _("administrative document")),
]


# --- structured entry (dpi.services does the checks; these forms only parse) -----------------------------
_DT = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
_D = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class AllergyForm(forms.Form):
    substance = forms.CharField(label=_("Substance"), max_length=200)
    substance_code = forms.CharField(label=_("Code (ATC or SNOMED CT), if known"), max_length=20, required=False)
    reaction = forms.CharField(label=_("Reaction"), max_length=500, required=False)
    severity = forms.ChoiceField(label=_("Severity"), choices=Allergy.Severity.choices,
                                 initial=Allergy.Severity.UNKNOWN)
    verification = forms.ChoiceField(label=_("Verification"), choices=Allergy.Verification.choices[:2],
                                     initial=Allergy.Verification.UNCONFIRMED)


class ProblemForm(forms.Form):
    icd10 = forms.CharField(label=_("CIM-10 code"), max_length=8,
                            widget=forms.TextInput(attrs={"list": "cim10-list", "autocomplete": "off"}))
    label = forms.CharField(label=_("Label (from the list if empty)"), max_length=200, required=False)
    onset = forms.DateField(label=_("Onset"), required=False, widget=_D)
    comment = forms.CharField(label=_("Comment"), max_length=2000, required=False)


class VitalsForm(forms.Form):
    effective_at = forms.DateTimeField(label=_("Time"), widget=_DT,
                                       input_formats=["%Y-%m-%dT%H:%M", "%d/%m/%Y %H:%M"])
    systolic = forms.CharField(label=_("Systolic BP (mmHg)"), required=False, max_length=8)
    diastolic = forms.CharField(label=_("Diastolic BP (mmHg)"), required=False, max_length=8)
    pulse = forms.CharField(label=_("Pulse (/min)"), required=False, max_length=8)
    temperature = forms.CharField(label=_("Temperature (°C)"), required=False, max_length=8)
    spo2 = forms.CharField(label=_("SpO2 (%)"), required=False, max_length=8)
    respiratory_rate = forms.CharField(label=_("Respiratory rate (/min)"), required=False, max_length=8)
    weight = forms.CharField(label=_("Weight (kg)"), required=False, max_length=8)
    height = forms.CharField(label=_("Height (cm)"), required=False, max_length=8)
    pain = forms.CharField(label=_("Pain (0-10)"), required=False, max_length=4)

    VALUE_FIELDS = ("systolic", "diastolic", "pulse", "temperature", "spo2", "respiratory_rate", "weight",
                    "height", "pain")


class PrescriptionForm(forms.Form):
    medication = forms.CharField(label=_("Medication"), max_length=200)
    dose = forms.CharField(label=_("Dose"), max_length=100)
    route = forms.ChoiceField(label=_("Route"), choices=Prescription.Route.choices)
    frequency = forms.CharField(label=_("Frequency"), max_length=100)
    start = forms.DateField(label=_("Start"), widget=_D)
    duration_days = forms.IntegerField(label=_("Duration (days)"), required=False, min_value=1, max_value=365)
    instructions = forms.CharField(label=_("Instructions"), max_length=2000, required=False,
                                   widget=forms.Textarea(attrs={"rows": 2}))


class PrescriptionStopForm(forms.Form):
    reason = forms.CharField(label=_("Reason for stopping"), max_length=300)


class AdministrationForm(forms.Form):
    given = forms.TypedChoiceField(label=_("Given"), coerce=lambda v: v == "yes",
                                   choices=[("yes", _("given")), ("no", _("not given"))], widget=forms.RadioSelect)
    administered_at = forms.DateTimeField(label=_("Time"), widget=_DT,
                                          input_formats=["%Y-%m-%dT%H:%M", "%d/%m/%Y %H:%M"])
    dose_given = forms.CharField(label=_("Dose given"), max_length=100, required=False)
    reason_not_given = forms.CharField(label=_("Reason not given"), max_length=300, required=False)


class DocumentUploadForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=200)
    type_code = forms.ChoiceField(label=_("Type"), choices=DOCUMENT_TYPES)
    document_date = forms.DateField(label=_("Date of the document"), widget=_D)
    file = forms.FileField(label=_("File (PDF, PNG or JPEG)"))

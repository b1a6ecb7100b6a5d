"""Browser forms. They validate input; the services (dpi.services, access.services) do the work."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from access.models import EmergencyAccess
from audit.models import AccessEvent
from dpi.models import ClinicalNote


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


class NoteForm(forms.Form):
    kind = forms.ChoiceField(label=_("Kind of note"), choices=ClinicalNote.Kind.choices,
                             initial=ClinicalNote.Kind.PROGRESS)
    title = forms.CharField(label=_("Title"), required=False, max_length=200)
    body = forms.CharField(label=_("Text"), widget=forms.Textarea(attrs={"rows": 6}), max_length=20000)
    sensitive = forms.BooleanField(
        label=_("Sensitive note (restricted: psychiatry, addiction...)"), required=False,
        help_text=_("Only physicians and midwives of the care team will see it."),
    )

    def __init__(self, *args, allow_sensitive: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not allow_sensitive:
            del self.fields["sensitive"]


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


# Messages the services raise (in English, like every msgid): listed here so that ``makemessages`` puts them
# in the catalogue and the views can show them translated.
SERVICE_MESSAGES = (
    gettext_noop("An amendment needs a reason."),
    gettext_noop("This field cannot be amended."),
    gettext_noop("This record is frozen (restriction of processing) while a dispute is checked."),
    gettext_noop("This encounter belongs to another patient."),
    gettext_noop("This encounter is already closed."),
    gettext_noop("Choose a reason category."),
    gettext_noop("Explain the emergency (at least 10 characters)."),
    gettext_noop("The one-time code is wrong or expired."),
    gettext_noop("Choose justified or violation."),
    gettext_noop("A violation needs a comment."),
    gettext_noop("Choose confirmed or revoked."),
)

"""Reception's admin-only view: identity and contact, identity status, encounters, appointments.

A Django AdminSite of its own, installed as the project's default admin site (``dpi.web.apps.
ReceptionAdminConfig`` replaces ``django.contrib.admin`` in INSTALLED_APPS, so ``admin.site`` *is* this
site). It accepts only the administrative models below: any other ``admin.site.register`` call (users,
OTP devices, anything clinical) is refused, so no clinical model is ever registered or reachable here.

Every page that shows patients goes through the gate: lists through ``gate.visible_patients`` (restricted
patients are masked, and each search is recorded), each patient page through ``gate.require``; writes go
through ``patients.services``. Django's own change log (``django_admin_log``) is not written: it would copy
patient names outside the audited trace.
"""

from __future__ import annotations

import logging
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.widgets import AutocompleteSelect
from django.contrib.auth import get_user_model
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.db.models.base import ModelBase
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from access import gate
from access.policy import CARE_STAFF_ROLES, Action, Category, allowed_by_matrix
from access.unit_history import limit_unit_history, may_read_unit_history
from dpi.converters import parse_id
from dpi.web.permissions import ADMIN_SITE_ROLES, is_verified, record_refusal
from dpi.web.selectors import patient_filter
from patients import services as patient_services
from patients.models import Appointment, CareUnit, Encounter, Patient

log = logging.getLogger(__name__)
A = Category.ADMINISTRATIVE


class ReceptionAdminSite(admin.AdminSite):
    site_header = _("dpi · reception")
    site_title = _("dpi reception")
    index_title = _("Admissions and appointments")
    # The only models this site will ever show (administrative data, category "administrative").
    allowed_models = (Patient, Encounter, Appointment)

    def __init__(self, name: str = "admin"):
        super().__init__(name)
        self.disable_action("delete_selected")  # records leave through retention, never by hand

    def register(self, model_or_iterable, admin_class=None, **options):
        models = [model_or_iterable] if isinstance(model_or_iterable, ModelBase) else list(model_or_iterable)
        refused = [m for m in models if m not in self.allowed_models]
        for model in refused:
            log.debug("reception admin site: %s is not administrative data, not registered", model._meta.label)
        accepted = [m for m in models if m in self.allowed_models]
        if accepted:
            super().register(accepted, admin_class, **options)

    def has_permission(self, request) -> bool:
        user = request.user
        if not (user.is_active and user.is_authenticated):
            return False
        role = gate.role_of(user)
        if role not in ADMIN_SITE_ROLES:
            return False
        return is_verified(user) or not gate.requires_second_factor(role)

    def login(self, request, extra_context=None):
        """Sign-in happens on the project's login (password and one-time code), never on the admin's."""
        if request.user.is_authenticated:
            record_refusal(request, gate.role_of(request.user), "the reception site is for admission staff",
                           {"next": request.GET.get("next", "")[:64]})
            raise PermissionDenied("the reception site is for admission staff")
        return redirect_to_login(request.GET.get("next") or reverse("admin:index"))

    index_template = "admin/reception_index.html"
    # Names shown for the models (their own verbose names are English and belong to the patients app).
    model_labels = {"patient": _("Patients"), "encounter": _("Encounters"), "appointment": _("Appointments")}

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        for app in apps:
            app["name"] = gettext("Admissions")
            for model in app["models"]:
                model["name"] = self.model_labels.get(model["object_name"].lower(), model["name"])
        return apps

    def each_context(self, request):
        context = super().each_context(request)
        context["dpi_reception"] = True
        return context


# --- common rules for every page --------------------------------------------------------------------------
class GatedAdmin(admin.ModelAdmin):
    """Permissions from the authorization matrix (not Django's model permissions); no deletion; no LogEntry."""

    actions = None
    list_per_page = 50
    show_full_result_count = False  # no COUNT(*) over every patient on each page
    show_facets = admin.ShowFacets.NEVER  # no per-filter counts either

    def _allowed(self, request, action: Action) -> bool:
        role = gate.role_of(request.user)
        return role in ADMIN_SITE_ROLES and allowed_by_matrix(role, A, action)

    def has_module_permission(self, request) -> bool:
        return self._allowed(request, Action.VIEW)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._allowed(request, Action.VIEW)

    def has_add_permission(self, request) -> bool:
        return self._allowed(request, Action.CREATE)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._allowed(request, Action.AMEND)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # records leave through retention, never by hand

    def log_addition(self, request, obj, message):
        return None

    def log_change(self, request, obj, message):
        return None

    def log_deletions(self, request, queryset):
        return None

    def get_changeform_initial_data(self, request):
        # Prefilled values come from the query string (``?patient=12``): one the form field refuses is dropped,
        # not rendered (a widget given "zz" or "-1" raised a 500).
        initial = super().get_changeform_initial_data(request)
        fields = self.get_form(request).base_fields
        kept = {}
        for name, value in initial.items():
            field = fields.get(name)
            if field is None:
                continue
            try:
                field.clean(value)
            except (ValidationError, ValueError, TypeError, OverflowError):
                continue
            kept[name] = value
        return kept

    def visible(self, request) -> QuerySet:
        return gate.visible_patients(request.user, Patient.objects.all(), record=False)

    def record_search(self, request, term: str) -> None:
        """A list or search of patients is an administrative search, recorded like any other."""
        gate.visible_patients(request.user, Patient.objects.none(), query=term)

    def gate_object(self, request, patient_id: int, resource_type: str, resource_id: Any) -> None:
        action = Action.VIEW if request.method in {"GET", "HEAD"} else Action.AMEND
        gate.require(request.user, patient_id=patient_id, category=A, action=action, resource_type=resource_type,
                     resource_id=resource_id)


# --- patients ---------------------------------------------------------------------------------------------
class PatientForm(forms.ModelForm):
    class Meta:
        model = Patient
        fields = ["birth_name", "used_name", "first_name", "first_names", "sex", "birth_date", "birthplace_insee",
                  "ins", "identity_status", "social_security_number", "address", "postal_code", "city", "phone",
                  "email", "marital_status", "occupation", "confidentiality", "restriction_reason", "date_of_death"]
        widgets = {"birth_date": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
                   "date_of_death": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")}


class PatientAdmin(GatedAdmin):
    form = PatientForm
    list_display = ("ipp", "display_name", "birth_date", "sex", "identity_status", "city")
    list_filter = ("identity_status",)
    search_fields = ("birth_name",)  # the real search is get_search_results (names, IPP, INS, birth date)
    search_help_text = _("Name, date of birth (dd/mm/yyyy), IPP or INS.")
    ordering = ("birth_name", "first_name", "pk")
    readonly_fields = ("ipp",)
    fieldsets = (
        (_("Identity (INS traits)"), {"fields": ("ipp", "birth_name", "used_name", "first_name", "first_names",
                                                 "sex", "birth_date", "birthplace_insee")}),
        (_("Identity vigilance"), {"fields": ("ins", "identity_status", "social_security_number")}),
        (_("Contact"), {"fields": ("address", "postal_code", "city", "phone", "email", "marital_status",
                                   "occupation")}),
        (_("Confidentiality"), {"fields": ("confidentiality", "restriction_reason", "date_of_death")}),
    )

    @admin.display(description=_("name"), ordering="birth_name")
    def display_name(self, obj: Patient) -> str:
        return obj.display_name

    def get_queryset(self, request):
        return self.visible(request)

    def get_search_results(self, request, queryset, search_term):
        self.record_search(request, search_term)
        if search_term.strip():
            queryset = patient_filter(queryset, search_term)
        return queryset, False

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            self.gate_object(request, obj.pk, "patient", obj.pk)
        return obj

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.frozen:  # GDPR art. 18: restricted processing while a dispute is checked
            return ("ipp", *PatientForm.Meta.fields)
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            changes = {name: form.cleaned_data[name] for name in form.changed_data}
            patient_services.patient_update(patient=Patient.objects.get(pk=obj.pk), **changes)
            return
        fields = {name: form.cleaned_data[name] for name in PatientForm.Meta.fields}
        created = patient_services.patient_create(**fields)
        gate.require(request.user, patient_id=created.pk, category=A, action=Action.CREATE,
                     resource_type="patient", resource_id=created.pk)
        obj.pk, obj.ipp = created.pk, created.ipp
        obj._state.adding = False


# --- encounters -------------------------------------------------------------------------------------------
class OpenFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "open"

    def lookups(self, request, model_admin):
        return (("1", _("in progress")), ("0", _("closed")))

    def queryset(self, request, queryset):
        if self.value() == "1":
            return queryset.filter(end__isnull=True)
        if self.value() == "0":
            return queryset.filter(end__isnull=False)
        return queryset


class TransferForm(forms.Form):
    unit = forms.ModelChoiceField(label=_("Transfer to unit"), queryset=CareUnit.objects.all())


class _IdAutocompleteSelect(AutocompleteSelect):
    """Django's autocomplete re-renders a refused value by filtering on it: a posted "zz" raised a 500."""

    def optgroups(self, name, value, attr=None):
        return super().optgroups(name, [v for v in value if parse_id(v) is not None], attr)


class PatientScopedAdmin(GatedAdmin):
    """Encounters and appointments: only those of patients the user may find; writes through services."""

    autocomplete_fields = ("patient",)
    search_fields = ("patient__birth_name",)
    search_help_text = _("Patient name, IPP, INS or date of birth.")
    resource_type = ""

    def get_queryset(self, request):
        return (super().get_queryset(request).filter(patient__in=self.visible(request))
                .select_related("patient", "unit"))

    def get_search_results(self, request, queryset, search_term):
        self.record_search(request, search_term)
        if search_term.strip():
            queryset = queryset.filter(patient__in=patient_filter(Patient.objects.all(), search_term))
        return queryset, False

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            self.gate_object(request, obj.patient_id, self.resource_type, obj.pk)
        return obj

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "patient":
            kwargs["queryset"] = self.visible(request)
            kwargs["widget"] = _IdAutocompleteSelect(db_field, self.admin_site, using=kwargs.get("using"))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        # Existing rows change only through the actions (discharge, transfer, cancel): each is a service.
        return [f.name for f in self.model._meta.fields if f.name != "id"] if obj is not None else ()

    @admin.display(description=_("patient"), ordering="patient__birth_name")
    def patient_name(self, obj) -> str:
        return str(obj.patient)

    def _each(self, request, queryset, do, done_message: str) -> None:
        done, errors = 0, []
        for item in queryset:
            try:
                with transaction.atomic():
                    gate.require(request.user, patient_id=item.patient_id, category=A, action=Action.AMEND,
                                 resource_type=self.resource_type, resource_id=item.pk)
                    do(item)
                done += 1
            except ValidationError as exc:
                errors.append(f"{item}: {' '.join(gettext(m) for m in exc.messages)}")
        if done:
            self.message_user(request, done_message % {"count": done}, messages.SUCCESS)
        for error in errors:
            self.message_user(request, error, messages.ERROR)


class EncounterAdmin(PatientScopedAdmin):
    resource_type = "encounter"
    list_display = ("patient_name", "unit", "kind", "start", "end", "transferred_from")
    list_filter = (OpenFilter, "unit", "kind")
    ordering = ("-start",)
    fields = ("patient", "unit", "kind", "start", "end", "transferred_from")
    actions = ("discharge", "transfer")

    def get_fields(self, request, obj=None):
        return ("patient", "unit", "kind", "start") if obj is None else self.fields

    def get_queryset(self, request):
        # Unit history is health data: reception lists current stays only (access.unit_history).
        return limit_unit_history(super().get_queryset(request), user=request.user)

    def get_changeform_initial_data(self, request):
        return {"start": timezone.localtime().replace(second=0, microsecond=0), **super()
                .get_changeform_initial_data(request)}

    def save_model(self, request, obj, form, change):
        if change:
            return  # every field of an existing row is read-only: it changes through the actions only
        data = form.cleaned_data
        gate.require(request.user, patient_id=data["patient"].pk, category=A, action=Action.CREATE,
                     resource_type="encounter")
        created = patient_services.encounter_admit(patient=data["patient"], unit=data["unit"],
                                                   start=data["start"], kind=data["kind"])
        obj.pk = created.pk
        obj._state.adding = False

    @admin.action(description=_("Discharge the selected patients (close the encounter now)"),
                  permissions=("change",))
    def discharge(self, request, queryset):
        self._each(request, queryset.filter(end__isnull=True),
                   lambda e: patient_services.encounter_discharge(encounter=e),
                   gettext("%(count)d encounter(s) closed."))

    @admin.action(description=_("Transfer the selected patients to another unit"), permissions=("change",))
    def transfer(self, request, queryset):
        queryset = queryset.filter(end__isnull=True)
        form = TransferForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            unit = form.cleaned_data["unit"]
            self._each(request, queryset, lambda e: patient_services.encounter_transfer(encounter=e, unit=unit),
                       gettext("%(count)d patient(s) transferred."))
            return None
        return render(request, "admin/patients/encounter/transfer.html", {
            **self.admin_site.each_context(request), "title": gettext("Transfer to another unit"),
            "encounters": queryset, "form": form, "opts": self.model._meta,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        })


# --- appointments -----------------------------------------------------------------------------------------
class AppointmentForm(forms.ModelForm):
    class Meta:
        model = Appointment
        fields = ["patient", "unit", "practitioner", "start", "end", "reason"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "practitioner" in self.fields:
            self.fields["practitioner"].queryset = (
                get_user_model().objects.filter(is_active=True, staff__role__in=[r.value for r in CARE_STAFF_ROLES])
                .order_by("last_name", "first_name"))
            self.fields["practitioner"].label_from_instance = lambda u: u.get_full_name() or u.get_username()


class AppointmentAdmin(PatientScopedAdmin):
    resource_type = "appointment"
    form = AppointmentForm
    list_display = ("patient_name", "unit", "practitioner", "start", "end", "status", "reason")
    list_filter = ("status", "unit")
    ordering = ("start",)
    actions = ("cancel",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("practitioner")

    # Why the patient comes is health data: shown to roles that read medical data only. Reception may still
    # write it when booking (what the patient says at the desk), never read it back.
    def get_list_display(self, request):
        shown = super().get_list_display(request)
        return shown if may_read_unit_history(request.user) else [f for f in shown if f != "reason"]

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        if obj is not None and not may_read_unit_history(request.user):
            fields = [f for f in fields if f != "reason"]
        return fields

    def save_model(self, request, obj, form, change):
        if change:
            return  # every field of an existing row is read-only: it changes through the actions only
        data = form.cleaned_data
        gate.require(request.user, patient_id=data["patient"].pk, category=A, action=Action.CREATE,
                     resource_type="appointment")
        created = patient_services.appointment_book(
            patient=data["patient"], unit=data["unit"], practitioner=data["practitioner"], start=data["start"],
            end=data["end"], reason=data["reason"])
        obj.pk = created.pk
        obj._state.adding = False

    @admin.action(description=_("Cancel the selected appointments"), permissions=("change",))
    def cancel(self, request, queryset):
        self._each(request, queryset.exclude(status=Appointment.Status.CANCELLED),
                   lambda a: patient_services.appointment_cancel(appointment=a),
                   gettext("%(count)d appointment(s) cancelled."))


def register(site: admin.AdminSite) -> None:
    site.register(Patient, PatientAdmin)
    site.register(Encounter, EncounterAdmin)
    site.register(Appointment, AppointmentAdmin)

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
from django.contrib.admin.views.autocomplete import AutocompleteJsonView
from django.contrib.admin.widgets import AutocompleteSelect
from django.contrib.auth import get_user_model
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.db.models.base import ModelBase
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from access import gate
from access import services as access_services
from access.policy import CLINICAL_ROLES, Action, Category, allowed_by_matrix
from access.unit_history import (
    annotate_medical_access,
    limit_unit_history,
    may_read_appointment_reason,
    may_read_unit_history,
)
from dpi.converters import parse_id
from dpi.web.permissions import ADMIN_SITE_ROLES, is_verified, record_refusal
from dpi.web.selectors import SHOWN_NAME, patient_filter
from patients import places
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
        allowed, basis = self._permission(request)
        if not allowed and not getattr(request, "_dpi_admin_refusal_recorded", False):
            # Every refused admin page is recorded (anonymous, wrong role, second factor owed), once.
            request._dpi_admin_refusal_recorded = True
            if request.path not in {reverse("admin:login"), reverse("admin:logout"), reverse("admin:jsi18n")}:
                from access.decorators import refusal_record

                refusal_record(request, basis=basis, reason="the reception site is for admission staff",
                               resource_type="admin", resource_id=request.path[:64])
        return allowed

    def _permission(self, request) -> tuple[bool, str]:
        user = request.user
        if not (user.is_active and user.is_authenticated):
            return False, "deny:anonymous"
        role = gate.role_of(user)
        if role not in ADMIN_SITE_ROLES:
            return False, "deny:role"
        if is_verified(user) or not gate.user_requires_second_factor(user):
            return True, ""
        return False, "deny:second_factor"

    def login(self, request, extra_context=None):
        """Sign-in happens on the project's login (password and one-time code), never on the admin's."""
        if request.user.is_authenticated:
            record_refusal(request, gate.role_of(request.user), "the reception site is for admission staff",
                           {"next": request.GET.get("next", "")[:64]})
            raise PermissionDenied("the reception site is for admission staff")
        from access.decorators import refusal_record

        refusal_record(request, basis="deny:anonymous", reason="not signed in", resource_type="admin",
                       resource_id=request.GET.get("next", "")[:64])
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

    def password_change(self, request, extra_context=None):
        """One password-change page (/accounts/password/change/): its wrong current passwords count towards the
        account's lock and are recorded; Django's admin form would let a borrowed session guess it freely."""
        return redirect(reverse("password_change"))

    def password_change_done(self, request, extra_context=None):
        return redirect(reverse("password_change"))

    def get_urls(self):
        # Django's "view on site" (/admin/r/<content type>/<id>/) loads any object of any model by id, outside
        # the gate; no model here has a page of its own, so it answers "not found", recorded.
        urls = super().get_urls()
        return [path("r/<path:content_type_id>/<path:object_id>/", self.admin_view(self.view_on_site),
                     name="view_on_site") if getattr(u, "name", None) == "view_on_site" else u for u in urls]

    def view_on_site(self, request, content_type_id, object_id):
        from django.contrib.contenttypes.models import ContentType

        pk = _int_id(content_type_id)
        content_type = ContentType.objects.filter(pk=pk).first() if pk else None
        model = content_type.model_class() if content_type is not None else None
        model_admin = self._registry.get(model) if model is not None else None
        if isinstance(model_admin, GatedAdmin):
            oid = _int_id(object_id)
            owner = None
            if oid is not None:
                column = "pk" if model is Patient else "patient_id"
                owner = model.objects.filter(pk=oid).values_list(column, flat=True).first()
            model_admin.record_masked(request, owner, model._meta.model_name, object_id)
        else:
            from access.decorators import refusal_record

            refusal_record(request, basis="deny:not_found", reason="no page for this object",
                           resource_type=model._meta.model_name if model is not None else "admin",
                           resource_id=object_id)
        raise Http404("no page for this object")

    def autocomplete_view(self, request):
        return IdentityAutocompleteView.as_view(admin_site=self)(request)

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

    def delete_view(self, request, object_id, extra_context=None):
        from access.decorators import refusal_record

        refusal_record(request, basis="deny:delete", reason="records leave through retention, never by hand",
                       resource_type=self.model._meta.model_name, resource_id=object_id, action="delete")
        raise PermissionDenied("records leave through retention, never by hand")

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

    def record_masked(self, request, patient_id: int | None, resource_type: str, resource_id: Any,
                      action: Action = Action.VIEW) -> None:
        """An object opened by id that the list masks (restricted patient) or that does not exist: the
        same answer as Django's "does not exist", and a recorded refusal naming what was asked for."""
        # One denied event: the gate's refusal when there is one (a masked patient), else "not found" (nothing
        # was shown, so no allowed view is recorded even when the patient itself is visible).
        decision = None
        if patient_id is not None:
            decision = gate.decide(request.user, patient_id=patient_id, category=A, action=Action.VIEW)
            if decision.allowed and action != Action.VIEW:
                decision = gate.decide(request.user, patient_id=patient_id, category=A, action=action)
        refused = decision is not None and not decision.allowed
        from audit.services import event_record

        event_record(actor=request.user, actor_role=str(gate.role_of(request.user) or ""),
                     actor_unit=gate.unit_of(request.user), patient_id=patient_id, category=A,
                     action=action, outcome="denied", basis=decision.basis if refused else "deny:not_found",
                     reason=decision.reason if refused else "no such object", resource_type=resource_type,
                     resource_id=str(resource_id)[:64],
                     details={"flags": list(decision.flags)} if refused and decision.flags else {})

    def gate_object(self, request, patient_id: int, resource_type: str, resource_id: Any) -> None:
        action = Action.VIEW if request.method in {"GET", "HEAD"} else Action.AMEND
        gate.require(request.user, patient_id=patient_id, category=A, action=action, resource_type=resource_type,
                     resource_id=resource_id)


# --- patients ---------------------------------------------------------------------------------------------
def identity_label(patient: Patient) -> str:
    """How a patient is named wherever one is picked: name, birth date, sex, identity status and IPP, so that
    homonyms can be told apart (identity vigilance)."""
    born = patient.birth_date.strftime("%d/%m/%Y") if patient.birth_date else "?"
    merged = " — " + gettext("merged") if patient.is_merged else ""
    return (f"{patient.display_name} · {gettext('born')} {born} · {patient.get_sex_display()} · "
            f"{patient.get_identity_status_display()} · {patient.ipp}{merged}")


def may_manage_identities(request) -> bool:
    return gate.may_manage_identities(request.user)


IDENTIFIER_WIDGET = forms.TextInput(attrs={"size": 17, "maxlength": 21, "autocomplete": "off",
                                           "spellcheck": "false", "inputmode": "text"})


class ToReviewFilter(admin.SimpleListFilter):
    """The identity-vigilance worklist: files with something flagged and not resolved."""

    title = _("to review")
    parameter_name = "to_review"

    def lookups(self, request, model_admin):
        return (("1", _("yes")),)

    def queryset(self, request, queryset):
        if self.value() == "1":
            return queryset.filter(identity_flags__resolved_at__isnull=True,
                                   identity_flags__isnull=False).distinct()
        return queryset


class PatientForm(forms.ModelForm):
    """Strict traits first (as the INS referential writes them), then what the status rests on."""

    class Meta:
        model = Patient
        fields = ["birth_name", "first_names", "first_name", "sex", "birth_date", "birthplace_insee", "used_name",
                  "identity_attribute", "validation_mode", "validation_date", "ins", "social_security_number",
                  "address", "postal_code", "city", "phone", "email", "marital_status", "occupation",
                  "confidentiality", "restriction_reason", "date_of_death"]
        widgets = {"birth_date": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
                   "validation_date": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
                   "date_of_death": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
                   "ins": IDENTIFIER_WIDGET, "social_security_number": IDENTIFIER_WIDGET,
                   "birthplace_insee": forms.TextInput(attrs={"size": 6, "maxlength": 5, "autocomplete": "off"})}
        help_texts = {
            "first_names": _("All birth given names, in the order of the identity document, separated by spaces."),
            "birthplace_insee": _("INSEE code of the commune of birth, or 99 and the country code for a birth "
                                  "abroad (e.g. 75112, 2A004, 99352)."),
            "validation_mode": _("High-trust document checked in person: it makes the identity validated."),
            "ins": _("Filled by the INSi teleservice; 15 characters, spaces allowed."),
        }

    current_user = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The status follows the evidence: computed, never typed.
        self.instance._status_follows_evidence = True

    def _post_clean(self):
        super()._post_clean()
        # The same INS on another file: said on the form, like every other rule (the service refuses it too).
        if not self.errors.get("ins"):
            try:
                patient_services.check_ins_unique(self.instance)
            except ValidationError as exc:
                self._update_errors(exc)

    def clean(self):
        data = super().clean()
        if self.instance.pk and data.get("identity_attribute") in {Patient.Attribute.DOUBTFUL,
                                                                    Patient.Attribute.FICTITIOUS}:
            # Doubtful or fictitious: provisional, no INS, no evidence (patient_update drops them; the INS of
            # a recovered identity is read-only here, so it is dropped on the instance too).
            data["validation_mode"], data["validation_date"], data["ins"] = "", None, ""
            self.instance.ins, self.instance.insi_date = "", None
            self.instance.validated_by, self.instance.validated_by_name = None, ""
        elif data.get("validation_mode") and not (self.instance.validated_by_id or self.instance.validated_by_name):
            self.instance.validated_by = self.current_user
        return data


class PatientAdmin(GatedAdmin):
    form = PatientForm
    list_display = ("ipp", "display_name", "birth_date", "sex", "identity_status", "birthplace", "city")
    list_filter = ("identity_status", "identity_attribute", "is_merged", ToReviewFilter)
    search_fields = ("birth_name",)  # the real search is get_search_results (names, IPP, INS, birth date)
    search_help_text = _("Name, date of birth (dd/mm/yyyy), IPP or INS.")
    ordering = (SHOWN_NAME.asc(), "first_name", "pk")
    readonly_fields = ("ipp", "identity_status", "insi_date", "validated_by_label", "merge_note", "to_review")
    actions = ("insi_check", "merge", "unmerge")
    fieldsets = (
        (_("Strict traits (INS referential)"), {"fields": ("ipp", "birth_name", "first_names", "first_name", "sex",
                                                            "birth_date", "birthplace_insee")}),
        (_("Used traits"), {"fields": ("used_name",)}),
        (_("Identity vigilance"), {"fields": ("to_review", "identity_status", "identity_attribute", "validation_mode",
                                              "validation_date", "validated_by_label", "insi_date", "ins",
                                              "social_security_number", "merge_note")}),
        (_("Contact"), {"fields": ("address", "postal_code", "city", "phone", "email", "marital_status",
                                   "occupation")}),
        (_("Confidentiality"), {"fields": ("confidentiality", "restriction_reason", "date_of_death")}),
    )

    @admin.display(description=_("name"), ordering=SHOWN_NAME)
    def display_name(self, obj: Patient) -> str:
        return obj.display_name

    @admin.display(description=_("birth place"))
    def birthplace(self, obj: Patient) -> str:
        return places.label(obj.birthplace_insee) or obj.birthplace_insee

    @admin.display(description=_("identity document checked by"))
    def validated_by_label(self, obj: Patient) -> str:
        if obj.validated_by_id:
            return obj.validated_by.get_full_name() or obj.validated_by.get_username()
        return obj.validated_by_name or "—"

    @admin.display(description=_("to review"))
    def to_review(self, obj: Patient) -> str:
        """What identity vigilance flagged on this file and has not resolved (e.g. on identities recorded before
        the rules): saving the identity through the rules resolves it."""
        open_flags = [flag.get_kind_display() for flag in obj.identity_flags.filter(resolved_at__isnull=True)]
        return " ; ".join(str(f) for f in open_flags) or "—"

    @admin.display(description=_("merge"))
    def merge_note(self, obj: Patient) -> str:
        kept = patient_services.merged_into(obj) if obj.is_merged else None
        return gettext("Merged into file %(ipp)s") % {"ipp": kept.ipp} if kept else "—"

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        return type("PatientFormFor", (form,), {"current_user": request.user})

    def get_queryset(self, request):
        return self.visible(request)

    def get_search_results(self, request, queryset, search_term):
        self.record_search(request, search_term)
        if search_term.strip():
            queryset = patient_filter(queryset, search_term)
        if request.path.endswith("/autocomplete/"):
            queryset = queryset.filter(is_merged=False)  # a merged file is an alias: pick the kept one
        return queryset, False

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            self.gate_object(request, obj.pk, "patient", obj.pk)
        else:
            pk = _int_id(object_id)
            exists = pk is not None and Patient.objects.filter(pk=pk).exists()
            self.record_masked(request, pk if exists else None, "patient", object_id)
        return obj

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and (obj.frozen or obj.is_merged):  # GDPR art. 18; a merged file is an alias
            return (*self.readonly_fields, *PatientForm.Meta.fields)
        readonly = tuple(self.readonly_fields)
        if obj is not None and obj.identity_status in {Patient.IdentityStatus.RECOVERED,
                                                       Patient.IdentityStatus.QUALIFIED}:
            readonly = (*readonly, "ins")  # an INS from INSi is not retyped by hand
        if obj is not None and obj.is_restricted:
            # Lowering confidentiality is a separate act of the DPO (access.services), not an edit here.
            readonly = (*readonly, "confidentiality", "restriction_reason")
        if readonly != tuple(self.readonly_fields):
            return readonly
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            changes = {name: form.cleaned_data[name] for name in form.changed_data}
            diff = patient_services.patient_update(patient=Patient.objects.get(pk=obj.pk), actor=request.user,
                                                   **changes)
            if "identity_status" in diff:
                old, new = diff["identity_status"]
                self.message_user(request, gettext("Identity status changed from %(old)s to %(new)s: a strict trait "
                                                   "or the evidence changed.") % {
                    "old": Patient.IdentityStatus(old).label, "new": Patient.IdentityStatus(new).label},
                    messages.WARNING)
            return
        fields = {name: form.cleaned_data[name] for name in PatientForm.Meta.fields}
        created = patient_services.patient_create(actor=request.user, **fields)
        gate.require(request.user, patient_id=created.pk, category=A, action=Action.CREATE,
                     resource_type="patient", resource_id=created.pk)
        obj.pk, obj.ipp = created.pk, created.ipp
        obj._state.adding = False
        # A probable duplicate in a file the user may not know (restricted) is not named (recorded refusal):
        # the user is told one exists, for identity vigilance, which has the suspicion (DuplicateSuspicion).
        shown, hidden = gate.split_visible(request.user, [other.pk for other, _why in created.probable_duplicates],
                                           details={"duplicate_of": created.pk})
        if hidden:
            self.message_user(request, gettext("A possible duplicate exists in a file you may not see: ask identity "
                                               "vigilance to check it."), messages.WARNING)
        for other, why in created.probable_duplicates:
            if other.pk not in shown:
                continue
            self.message_user(request, gettext("Possible duplicate (%(why)s): %(who)s. If it is the same person, "
                                               "ask identity vigilance to merge the files.") % {
                "why": gettext("same strict traits") if why == "strict_traits"
                else gettext("similar names, same birth date"), "who": identity_label(other)}, messages.WARNING)

    @admin.action(description=_("Query the INSi teleservice for the selected identities"), permissions=("change",))
    def insi_check(self, request, queryset):
        for patient in queryset[:20]:
            try:
                with transaction.atomic():
                    gate.require(request.user, patient_id=patient.pk, category=A, action=Action.AMEND,
                                 resource_type="patient", resource_id=patient.pk)
                    updated, query = patient_services.patient_insi_check(actor=request.user, patient=patient)
            except ValidationError as exc:
                self.message_user(request, f"{patient.ipp}: {' '.join(str(m) for m in exc.messages)}", messages.ERROR)
                continue
            level = messages.SUCCESS if query.outcome == "found" else messages.WARNING
            self.message_user(request, gettext("%(ipp)s: INSi %(outcome)s; status %(status)s.") % {
                "ipp": patient.ipp, "outcome": query.get_outcome_display(),
                "status": updated.get_identity_status_display()}, level)

    @admin.action(description=_("Merge two files of the same person (identity vigilance)"), permissions=("change",))
    def merge(self, request, queryset):
        if not may_manage_identities(request):
            record_refusal(request, gate.role_of(request.user), "merge needs the identity-vigilance group", {})
            self.message_user(request, gettext("Only the identity-vigilance cell may merge files."), messages.ERROR)
            return None
        chosen = list(queryset.order_by("pk")[:3])
        if len(chosen) != 2:
            self.message_user(request, gettext("Select exactly two files to merge."), messages.ERROR)
            return None
        form = MergeForm(request.POST if "apply" in request.POST else None, files=chosen)
        if form.is_bound and form.is_valid():
            kept = next(p for p in chosen if str(p.pk) == form.cleaned_data["kept"])
            merged = next(p for p in chosen if p.pk != kept.pk)
            try:
                with transaction.atomic():
                    for p in chosen:
                        gate.require(request.user, patient_id=p.pk, category=A, action=Action.AMEND,
                                     resource_type="patient", resource_id=p.pk)
                    access_services.merge_check(actor=request.user, kept_id=kept.pk, merged_id=merged.pk)
                    patient_services.patient_merge(actor=request.user, kept=kept, merged=merged,
                                                   reason=form.cleaned_data["reason"])
            except ValidationError as exc:
                self.message_user(request, " ".join(str(m) for m in exc.messages), messages.ERROR)
                return None
            except PermissionDenied as exc:
                if isinstance(exc, gate.AccessDenied):
                    raise
                # merge_check (recorded already): the page again with the reason, still a refusal (403).
                form.add_error(None, str(exc))
                return self._merge_page(request, chosen, form, status=403)
            self.message_user(request, gettext("File %(merged)s merged into %(kept)s.") % {
                "merged": merged.ipp, "kept": kept.ipp}, messages.SUCCESS)
            return None
        return self._merge_page(request, chosen, form)

    def _merge_page(self, request, chosen, form, status: int = 200):
        return render(request, "admin/patients/patient/merge.html", {
            **self.admin_site.each_context(request), "title": gettext("Merge two files of the same person"),
            "files": [(p, identity_label(p)) for p in chosen], "form": form, "opts": self.model._meta,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }, status=status)

    @admin.action(description=_("Undo the merge of the selected (merged) file (identity vigilance)"),
                  permissions=("change",))
    def unmerge(self, request, queryset):
        if not may_manage_identities(request):
            record_refusal(request, gate.role_of(request.user), "unmerge needs the identity-vigilance group", {})
            self.message_user(request, gettext("Only the identity-vigilance cell may undo a merge."), messages.ERROR)
            return None
        chosen = list(queryset.order_by("pk")[:2])
        record = patient_services.merge_of(chosen[0]) if len(chosen) == 1 else None
        if record is None:
            self.message_user(request, gettext("Select one merged file."), messages.ERROR)
            return None
        form = UnmergeForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            try:
                with transaction.atomic():
                    for pid in (record.merged_id, record.kept_patient_id):
                        gate.require(request.user, patient_id=pid, category=A, action=Action.AMEND,
                                     resource_type="patient", resource_id=pid)
                    patient_services.patient_unmerge(actor=request.user, merge=record,
                                                     reason=form.cleaned_data["reason"])
            except ValidationError as exc:
                self.message_user(request, " ".join(str(m) for m in exc.messages), messages.ERROR)
                return None
            self.message_user(request, gettext("Merge undone: file %(ipp)s is separate again.") % {
                "ipp": chosen[0].ipp}, messages.SUCCESS)
            return None
        return render(request, "admin/patients/patient/unmerge.html", {
            **self.admin_site.each_context(request), "title": gettext("Undo a merge"),
            "patient": chosen[0], "label": identity_label(chosen[0]), "form": form, "opts": self.model._meta,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        })


class UnmergeForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=300)


class MergeForm(forms.Form):
    kept = forms.ChoiceField(label=_("File to keep"), widget=forms.RadioSelect)
    reason = forms.CharField(label=_("Reason"), max_length=300)

    def __init__(self, *args, files=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kept"].choices = [(str(p.pk), identity_label(p)) for p in files]


class IdentityAutocompleteView(AutocompleteJsonView):
    """Patient pickers show birth date, sex and identity status, not only the name and IPP."""

    def serialize_result(self, obj, to_field_name):
        result = super().serialize_result(obj, to_field_name)
        if isinstance(obj, Patient):
            result["text"] = identity_label(obj)
        return result


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
        else:
            pk = _int_id(object_id)
            owner = self.model.objects.filter(pk=pk).values_list("patient_id", flat=True).first() if pk else None
            self.record_masked(request, owner, self.resource_type, object_id)
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
        return identity_label(obj.patient)

    def record_unlisted(self, request, queryset) -> None:
        """Ids an action was posted that its list does not hold (a patient the user may not know, or no such
        row): nothing is done with them, as with a free id, and each is a refusal naming the object asked for
        and its real patient."""
        listed = {str(pk) for pk in queryset.values_list("pk", flat=True)}
        for object_id in request.POST.getlist(ACTION_CHECKBOX_NAME)[:self.list_per_page]:
            if object_id in listed:
                continue
            pk = _int_id(object_id)
            owner = self.model.objects.filter(pk=pk).values_list("patient_id", flat=True).first() if pk else None
            self.record_masked(request, owner, self.resource_type, object_id, action=Action.AMEND)

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


class EncounterForm(forms.ModelForm):
    class Meta:
        model = Encounter
        fields = ["patient", "unit", "kind", "start", "end", "transferred_from"]

    def clean(self):
        data = super().clean()
        if self.instance.pk is None and data.get("patient") and data.get("start"):
            try:  # the same rules as the service, said on the form (no stay before birth, one open stay)
                patient_services.check_admission(patient=data["patient"], start=data["start"])
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    self.add_error(field if field in self.fields else None, errors)
        return data


class EncounterAdmin(PatientScopedAdmin):
    form = EncounterForm
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
                                                   start=data["start"], kind=data["kind"], actor=request.user,
                                                   source="staff")
        obj.pk = created.pk
        obj._state.adding = False

    @admin.action(description=_("Discharge the selected patients (close the encounter now)"),
                  permissions=("change",))
    def discharge(self, request, queryset):
        self.record_unlisted(request, queryset)
        self._each(request, queryset.filter(end__isnull=True),
                   lambda e: patient_services.encounter_discharge(encounter=e),
                   gettext("%(count)d encounter(s) closed."))

    @admin.action(description=_("Transfer the selected patients to another unit"), permissions=("change",))
    def transfer(self, request, queryset):
        self.record_unlisted(request, queryset)
        queryset = queryset.filter(end__isnull=True)
        form = TransferForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            unit = form.cleaned_data["unit"]
            self._each(request, queryset, lambda e: patient_services.encounter_transfer(
                encounter=e, unit=unit, actor=request.user, source="staff"),
                       gettext("%(count)d patient(s) transferred."))
            return None
        return render(request, "admin/patients/encounter/transfer.html", {
            **self.admin_site.each_context(request), "title": gettext("Transfer to another unit"),
            "encounters": queryset, "form": form, "opts": self.model._meta,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        })


# --- appointments -----------------------------------------------------------------------------------------
class AppointmentForm(forms.ModelForm):
    regularisation = forms.BooleanField(
        label=_("Regularisation"), required=False,
        help_text=_("Record an appointment that already took place (otherwise no date in the past)."))

    class Meta:
        model = Appointment
        fields = ["patient", "unit", "practitioner", "start", "end", "reason"]

    def clean(self):
        data = super().clean()
        if self.instance.pk is None and data.get("patient") and data.get("start"):
            try:
                patient_services.check_appointment(patient=data["patient"], start=data["start"],
                                                   regularisation=data.get("regularisation", False))
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    self.add_error(field if field in self.fields else None, errors)
        return data

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "practitioner" in self.fields:
            self.fields["practitioner"].queryset = (
                # Only clinicians give consultations (access.policy.CLINICAL_ROLES); the service checks it too.
                get_user_model().objects.filter(is_active=True, staff__role__in=[r.value for r in CLINICAL_ROLES])
                .order_by("last_name", "first_name"))
            self.fields["practitioner"].label_from_instance = lambda u: u.get_full_name() or u.get_username()


class AppointmentAdmin(PatientScopedAdmin):
    resource_type = "appointment"
    form = AppointmentForm
    list_display = ("patient_name", "unit", "practitioner", "start", "end", "status", "reason_shown")
    list_filter = ("status", "unit")
    ordering = ("start",)
    actions = ("cancel",)

    def get_queryset(self, request):
        return annotate_medical_access(super().get_queryset(request).select_related("practitioner"),
                                       user=request.user)

    # Why the patient comes is health data: shown to roles that read medical data, on the patients whose record
    # the gate opens to them (access.unit_history). Reception may still write it when booking (what the patient
    # says at the desk), never read it back.
    def get_list_display(self, request):
        shown = super().get_list_display(request)
        return shown if may_read_unit_history(request.user) else [f for f in shown if f != "reason_shown"]

    @admin.display(description=_("reason"))
    def reason_shown(self, obj) -> str:
        return obj.reason if getattr(obj, "medical_access", False) else "—"

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        if obj is not None and not may_read_appointment_reason(request.user, obj):
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
            end=data["end"], reason=data["reason"], regularisation=data.get("regularisation", False),
            actor=request.user, source="staff")
        obj.pk = created.pk
        obj._state.adding = False

    @admin.action(description=_("Cancel the selected appointments"), permissions=("change",))
    def cancel(self, request, queryset):
        self._each(request, queryset.exclude(status=Appointment.Status.CANCELLED),
                   lambda a: patient_services.appointment_cancel(appointment=a),
                   gettext("%(count)d appointment(s) cancelled."))


def _int_id(object_id: Any) -> int | None:
    try:
        pk = int(str(object_id))
    except ValueError:
        return None
    return pk if 1 <= pk <= gate.MAX_ID else None


def register(site: admin.AdminSite) -> None:
    site.register(Patient, PatientAdmin)
    site.register(Encounter, EncounterAdmin)
    site.register(Appointment, AppointmentAdmin)

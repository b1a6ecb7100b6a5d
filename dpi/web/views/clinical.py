"""Clinicians' pages: patient search, the chart, notes (write, amend, history), documents, break-the-glass.

Each view passes the gate (access.gate) for the category it shows before reading it; the gate records the
access. A denial the user may lift with break-the-glass shows the emergency-access form; a patient the user
may not even know about (missing, or restricted and outside their care team) is a plain 404.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from access import gate
from access import services as access_services
from access.models import EmergencyAccess
from access.policy import Action, Category, allowed_by_matrix
from dpi import services as dpi_services
from dpi.models import ClinicalNote, Document
from dpi.printing import PageMarks, page_css, printed_at_text
from dpi.web import chart_selectors, selectors
from dpi.web.form_html import fields_html
from dpi.web.forms import BreakGlassForm, NoteAmendForm, NoteForm, PatientSearchForm
from dpi.web.permissions import check_owner, clinician_required, may_view_restricted
from dpi.web.views.printing import identity_line
from patients.ages import age_label
from patients.models import Patient
from patients.selectors import patient_reader

M, R, A = Category.MEDICAL, Category.RESTRICTED, Category.ADMINISTRATIVE

# Documents shown in the browser; anything else is downloaded as an opaque file (no stored HTML runs here).
INLINE_MEDIA_TYPES = frozenset({"application/pdf", "image/png", "image/jpeg", "text/plain"})


def age_of(patient: Patient) -> str:
    """The age as a clinician writes it ("47 ans", "3 mois", "12 jours"), at death for a deceased patient."""
    return age_label(patient.birth_date, patient.date_of_death or timezone.localdate())


def _visible_patient(user, patient_id: int) -> Patient:
    """The patient, if the user may know it exists (restricted patients are masked outside the care team)."""
    patient = gate.visible_patients(user, Patient.objects.filter(pk=patient_id), record=False).first()
    if patient is None:
        raise Http404("no such patient")
    return patient


def _emergency_access(decision: gate.Decision) -> EmergencyAccess | None:
    if decision.emergency_access_id is None:
        return None
    return EmergencyAccess.objects.filter(pk=decision.emergency_access_id).first()


def _denied(request, patient_id: int, decision: gate.Decision):
    """A refused chart: break-the-glass when the gate allows it, else 404 (unknown) or 403."""
    if gate.is_hidden(decision):
        raise Http404("no such patient")
    patient = _visible_patient(request.user, patient_id)
    if not decision.can_break_glass:
        raise gate.AccessDenied(decision)
    return _break_glass_page(request, patient, decision, BreakGlassForm())


def _break_glass_page(request, patient: Patient, decision: gate.Decision, form: BreakGlassForm):
    # The clinician confirms the identity before opening: an administrative read, recorded.
    identity = gate.authorize(request.user, patient_id=patient.pk, category=A, action=Action.VIEW,
                              resource_type="patient", resource_id=patient.pk, details={"page": "break_glass"})
    return render(request, "web/break_glass.html", {
        "patient": patient, "age": age_of(patient), "hours": settings.DPI_BREAK_GLASS_HOURS,
        "identity_visible": identity.allowed, "decision": decision, "form": form,
        "objection": decision.basis == "deny:objection",
    }, status=403)


@clinician_required
def patient_search(request):
    # The page's form posts its query (names, birth dates, IPP, INS stay out of URLs, browser history and
    # logs); a GET query string is still read for links and scripts, and dropped from the access log.
    form = PatientSearchForm((request.POST if request.method == "POST" else request.GET) or None)
    results, query = None, ""
    if form.is_bound and form.is_valid():
        query = form.cleaned_data["q"]
    if not form.is_bound or form.is_valid():
        results = selectors.patient_search(request.user, query)
    return render(request, "web/patient_search.html", {"form": form, "results": results, "query": query})


def _chart_response(request, patient_id: int, *, note_form: NoteForm | None = None, status: int = 200):
    # The page's access events commit while its sections are read, and before the page leaves (issue #18).
    with gate.read_trace() as trace:
        return _chart_page(request, patient_id, trace, note_form=note_form, status=status)


def _chart_page(request, patient_id: int, trace, *, note_form: NoteForm | None, status: int):
    user, role = request.user, request.dpi_role
    # The medical record, then the identity in its banner (with the patient row): two decisions and their
    # events in one statement; the identity is decided only once the record is allowed.
    decisions, patient = gate.authorize_steps(user, patient_id=patient_id, reader=patient_reader, steps=(
        gate.Step(M, Action.VIEW, "chart", patient_id), gate.Step(A, Action.VIEW, "patient", patient_id)))
    decision = decisions[0]
    if not decision.allowed:
        return _denied(request, patient_id, decision)
    gate.raise_if_refused(decisions[-1])
    if patient is None:  # removed since the gate's decision
        raise Http404("no such patient")
    # Sensitive notes: asked of the gate only when the role may read them and there are some, so that a
    # nurse opening a chart leaves no pointless denial (and learns nothing of their existence).
    include_sensitive = False
    if may_view_restricted(role) and selectors.has_sensitive_notes(patient_id):
        include_sensitive = gate.authorize(user, patient_id=patient_id, category=R, action=Action.VIEW,
                                           resource_type="clinicalnote", details={"sensitive_notes": True}).allowed
    if trace is not None:
        trace.release()  # the events' COMMIT goes out; the sections are read meanwhile
    data = selectors.chart_data(patient, include_sensitive=include_sensitive)
    note_fields = None
    if note_form is None and allowed_by_matrix(role, M, Action.CREATE):
        allow_sensitive = allowed_by_matrix(role, R, Action.CREATE)
        note_form = NoteForm(allow_sensitive=allow_sensitive, role=role)
        note_fields = fields_html(note_form, key=("note", str(role), allow_sensitive))
    elif note_form is not None:
        note_fields = fields_html(note_form)
    emergency = _emergency_access(decision)
    remaining = max(0, int((emergency.expires_at - timezone.now()).total_seconds())) if emergency else 0
    return render(request, "web/chart.html", {
        "patient": patient, "age": age_of(patient), "data": data,
        "banner": chart_selectors.banner_from_chart(data), "decision": decision, "emergency": emergency,
        "emergency_remaining": remaining,
        "emergency_remaining_text": f"{remaining // 3600}:{remaining % 3600 // 60:02d}:{remaining % 60:02d}",
        "note_form": note_form, "note_fields": note_fields, "include_sensitive": include_sensitive,
        "print_css": page_css(PageMarks(title=_("Patient record"), identity=identity_line(patient),
                                        printed=printed_at_text(by=user.get_full_name() or user.get_username()))),
    }, status=status)


@clinician_required
def chart(request, patient_id: int):
    return _chart_response(request, patient_id)


def _privilege_changed(request) -> None:
    """Break-the-glass widens what the session may reach: the authentication area gives it a new key."""
    try:
        from access.authn.services import session_privilege_changed
    except ImportError:
        return
    session_privilege_changed(request)


@clinician_required
@require_POST
def break_glass(request, patient_id: int):
    user = request.user
    decision = gate.decide(user, patient_id=patient_id, category=M, action=Action.VIEW)
    if decision.allowed:
        # Nothing to open: the access is already allowed. The request is still a decision on this file, recorded
        # (whatever the form held) before the chart is shown.
        gate.authorize(user, patient_id=patient_id, category=M, action=Action.VIEW, resource_type="chart",
                       resource_id=patient_id, details={"break_glass": "not_needed"})
        return redirect("web:chart", patient_id=patient_id)
    if gate.is_hidden(decision) or not decision.can_break_glass:
        # Refused by role or unknown patient: recorded like any refusal, then 404 or 403.
        access_services.break_glass_refusal_record(
            user=user, patient_id=patient_id, basis=decision.basis if gate.is_hidden(decision) else "deny:role",
            reason=decision.reason or "this role cannot use emergency access")
        if gate.is_hidden(decision):
            raise Http404("no such patient")
        raise gate.AccessDenied(decision)
    patient = _visible_patient(user, patient_id)
    form = BreakGlassForm(request.POST)
    if not form.is_valid():
        access_services.break_glass_refusal_record(
            user=user, patient_id=patient_id, basis="deny:invalid_request", reason=", ".join(sorted(form.errors)))
    else:
        try:
            access_services.break_glass_open(user=user, patient=patient, request=request, **form.cleaned_data)
        except ValidationError as exc:
            _add_service_errors(form, exc)
        else:
            _privilege_changed(request)
            messages.warning(request, _("Emergency access opened. The DPO has been notified and will review it."))
            return redirect("web:chart", patient_id=patient_id)
    return _break_glass_page(request, patient, decision, form)


@clinician_required
@require_POST
def note_create(request, patient_id: int):
    user, role = request.user, request.dpi_role
    form = NoteForm(request.POST, allow_sensitive=allowed_by_matrix(role, R, Action.CREATE), role=role)
    if form.is_valid():
        sensitive = form.cleaned_data.get("sensitive", False)
        with transaction.atomic():
            gate.require(user, patient_id=patient_id, category=R if sensitive else M, action=Action.CREATE,
                         resource_type="clinicalnote")
            patient = Patient.objects.get(pk=patient_id)
            encounter = patient.encounters.filter(end__isnull=True).order_by("-start").first()
            try:
                dpi_services.note_create(patient=patient, author=user, encounter=encounter,
                                         body=form.cleaned_data["body"], title=form.cleaned_data["title"],
                                         kind=form.cleaned_data["kind"], sensitive=sensitive)
            except ValidationError as exc:
                transaction.set_rollback(True)
                _add_service_errors(form, exc)
        if not form.errors:
            messages.success(request, _("Note saved."))
            return redirect(reverse("web:chart", args=[patient_id]) + "#notes")
    return _chart_response(request, patient_id, note_form=form, status=400)


def _add_service_errors(form, exc: ValidationError) -> None:
    """A service's ValidationError names the field; show it next to that field (or on top of the form)."""
    errors = exc.message_dict if hasattr(exc, "error_dict") else {None: exc.messages}
    for name, messages_ in errors.items():
        form.add_error(name if name in form.fields else None, [_(m) for m in messages_])


def _note_for(request, patient_id: int, note_id: int, action: Action) -> ClinicalNote:
    """The note must belong to the patient of the URL, then the gate (a missing note and a forbidden one look
    the same to outsiders: 404 in both cases, each recorded)."""
    check_owner(request, patient_id, M, action, "clinicalnote", note_id,
                 ClinicalNote.objects.filter(pk=note_id).values_list("patient_id", flat=True).first())
    gate.require(request.user, patient_id=patient_id, category=M, action=action, resource_type="clinicalnote",
                 resource_id=note_id)
    note = (ClinicalNote.objects.filter(pk=note_id, patient_id=patient_id)
            .select_related("author", "patient", "encounter__unit").first())
    if note.sensitive:
        gate.require(request.user, patient_id=patient_id, category=R, action=action,
                     resource_type="clinicalnote", resource_id=note_id)
    return note


@clinician_required
def note_detail(request, patient_id: int, note_id: int):
    note = _note_for(request, patient_id, note_id, Action.VIEW)
    return render(request, "web/note_detail.html", {
        "note": note, "patient": note.patient, "history": selectors.note_history(note),
        "can_amend": note.author_id == request.user.pk,
    })


@clinician_required
@require_http_methods(["GET", "POST"])
def note_amend(request, patient_id: int, note_id: int):
    with transaction.atomic():
        note = _note_for(request, patient_id, note_id, Action.AMEND)
        # A note is corrected by its author; others add a note of their own.
        if note.author_id != request.user.pk:
            from access.decorators import refusal_record

            refusal_record(request, basis="deny:not_author", reason="only the author of a note amends it",
                           patient_id=patient_id, resource_type="clinicalnote", resource_id=note_id, action="amend")
            raise PermissionDenied("only the author of a note amends it")
        form = NoteAmendForm(request.POST or None, initial={"title": note.title, "body": note.body})
        if request.method == "POST" and form.is_valid():
            try:
                dpi_services.item_amend(item=note, author=request.user, reason=form.cleaned_data["reason"],
                                        title=form.cleaned_data["title"], body=form.cleaned_data["body"])
            except ValidationError as exc:
                transaction.set_rollback(True)
                _add_service_errors(form, exc)
            else:
                messages.success(request, _("Note amended; the previous version is kept in its history."))
                return redirect("web:note_detail", patient_id=patient_id, note_id=note_id)
    return render(request, "web/note_amend.html", {"note": note, "patient": note.patient, "form": form})


@clinician_required
def document_view(request, patient_id: int, document_id: int):
    check_owner(request, patient_id, M, Action.VIEW, "document", document_id,
                 Document.objects.filter(pk=document_id).values_list("patient_id", flat=True).first())
    gate.require(request.user, patient_id=patient_id, category=M, action=Action.VIEW, resource_type="document",
                 resource_id=document_id)
    doc = Document.objects.get(pk=document_id)
    inline = doc.media_type in INLINE_MEDIA_TYPES
    response = HttpResponse(bytes(doc.content), content_type=doc.media_type if inline else "application/octet-stream")
    filename = "".join(c for c in doc.title if c.isalnum() or c in " -_.")[:80] or f"document-{doc.pk}"
    response["Content-Disposition"] = f'{"inline" if inline else "attachment"}; filename="{filename}"'
    response["Content-Security-Policy"] = "sandbox; default-src 'none'; img-src 'self'; object-src 'self'"
    response["Cache-Control"] = "no-store"
    return response

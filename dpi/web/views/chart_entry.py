"""Structured entry in the chart (allergies, problems, vital signs, prescriptions and their administration,
documents), results over time, the ordonnance, and the unit census.

Same shape as every clinical page: the gate first, for the category and action the page does (its decision is
recorded), then the service, in one transaction; a refused or invalid entry writes nothing. An invalid form
comes back with its fields named (status 400); a refusal is a 403 recorded like any other.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from access import gate
from access.policy import Action, Category, may_record
from dpi import services as dpi_services
from dpi.clinical_reference import cim10_search
from dpi.models import Prescription
from dpi.web import chart_selectors
from dpi.web.forms import (
    AdministrationForm,
    AllergyForm,
    DocumentUploadForm,
    PrescriptionForm,
    PrescriptionStopForm,
    ProblemForm,
    VitalsForm,
)
from dpi.web.permissions import check_owner, clinician_required, record_refusal
from patients.models import Patient

M, A = Category.MEDICAL, Category.ADMINISTRATIVE


def _add_errors(form, exc: ValidationError) -> None:
    errors = exc.message_dict if hasattr(exc, "error_dict") else {None: exc.messages}
    for name, msgs in errors.items():
        form.add_error(name if name in form.fields else None, [_(m) for m in msgs])


def _require_recorder(request, entry: str, patient_id: int) -> None:
    if not may_record(request.dpi_role, entry):
        record_refusal(request, request.dpi_role, f"this role does not record {entry}", {"patient_id": patient_id})
        raise PermissionDenied(f"this role does not record {entry}")


def _open_encounter(patient: Patient):
    return patient.encounters.filter(end__isnull=True).order_by("-start").first()


def _entry_page(request, patient_id: int, form, *, title: str, action_url: str, status: int = 400,
                multipart: bool = False):
    """An entry form shown again with its errors (the patient's identity comes with the chart's banner)."""
    patient = Patient.objects.get(pk=patient_id)
    return render(request, "web/entry_form.html", {
        "patient": patient, "form": form, "title": title, "action_url": action_url, "multipart": multipart,
    }, status=status)


def _back(patient_id: int, anchor: str):
    return redirect(reverse("web:chart", args=[patient_id]) + f"#{anchor}")


def _run(request, patient_id: int, form, *, action: Action, resource_type: str, service, title: str,
         anchor: str, done: str, multipart: bool = False, resource_id=""):
    """Validate, pass the gate, call the service, in one transaction; errors come back on the form."""
    url = request.path
    valid = form.is_valid()
    with transaction.atomic():
        decision = gate.authorize(request.user, patient_id=patient_id, category=M, action=action,
                                  resource_type=resource_type, resource_id=resource_id,
                                  details=None if valid else {"form_invalid": sorted(form.errors)})
        if not decision.allowed:
            raise gate.AccessDenied(decision)
        if valid:
            patient = Patient.objects.get(pk=patient_id)
            try:
                service(patient, form.cleaned_data)
            except ValidationError as exc:
                transaction.set_rollback(True)
                _add_errors(form, exc)
    if valid and form.errors:
        # The service refused the input: its rollback took the decision's event with it; record the refusal.
        gate.authorize(request.user, patient_id=patient_id, category=M, action=action, resource_type=resource_type,
                       resource_id=resource_id, details={"input_refused": sorted(form.errors)})
    if form.errors:
        return _entry_page(request, patient_id, form, title=title, action_url=url, multipart=multipart)
    messages.success(request, done)
    return _back(patient_id, anchor)


@clinician_required
@require_POST
def allergy_create(request, patient_id: int):
    _require_recorder(request, "allergy", patient_id)

    def service(patient, data):
        dpi_services.allergy_record(patient=patient, author=request.user, encounter=_open_encounter(patient), **data)

    return _run(request, patient_id, AllergyForm(request.POST), action=Action.CREATE, resource_type="allergy",
                service=service, title=_("Record an allergy"), anchor="problems", done=_("Allergy recorded."))


@clinician_required
@require_POST
def allergy_none(request, patient_id: int):
    _require_recorder(request, "allergy", patient_id)
    with transaction.atomic():
        gate.require(request.user, patient_id=patient_id, category=M, action=Action.CREATE,
                     resource_type="allergy", details={"no_known_allergy": True})
        patient = Patient.objects.get(pk=patient_id)
        try:
            dpi_services.allergy_none_known(patient=patient, author=request.user, encounter=_open_encounter(patient))
        except ValidationError as exc:
            transaction.set_rollback(True)
            messages.error(request, " ".join(_(m) for m in exc.messages))
            return _back(patient_id, "problems")
    messages.success(request, _("No known allergy recorded."))
    return _back(patient_id, "problems")


@clinician_required
@require_POST
def problem_create(request, patient_id: int):
    _require_recorder(request, "problem", patient_id)

    def service(patient, data):
        dpi_services.problem_record(patient=patient, author=request.user, encounter=_open_encounter(patient), **data)

    return _run(request, patient_id, ProblemForm(request.POST), action=Action.CREATE, resource_type="problem",
                service=service, title=_("Record a problem"), anchor="problems", done=_("Problem recorded."))


@clinician_required
def cim10_lookup(request):
    """Codes and labels of the bundled CIM-10 list (no patient data)."""
    q = request.GET.get("q", "")[:60]
    return JsonResponse({"results": [{"code": c, "label": label} for c, label in cim10_search(q)]})


@clinician_required
@require_POST
def vitals_create(request, patient_id: int):
    _require_recorder(request, "vitals", patient_id)

    def service(patient, data):
        values = {k: data[k] for k in VitalsForm.VALUE_FIELDS if data.get(k)}
        dpi_services.vitals_record(patient=patient, author=request.user, effective_at=data["effective_at"],
                                   values=values, encounter=_open_encounter(patient))

    return _run(request, patient_id, VitalsForm(request.POST), action=Action.CREATE, resource_type="observation",
                service=service, title=_("Record vital signs"), anchor="vitals", done=_("Vital signs recorded."))


@clinician_required
@require_POST
def prescription_create(request, patient_id: int):
    def service(patient, data):
        dpi_services.prescription_create(patient=patient, author=request.user, encounter=_open_encounter(patient),
                                         **data)

    return _run(request, patient_id, PrescriptionForm(request.POST), action=Action.PRESCRIBE,
                resource_type="prescription", service=service, title=_("Prescribe"), anchor="prescriptions",
                done=_("Prescription recorded."))


def _prescription(patient_id: int, rx_id: int) -> Prescription:
    rx = Prescription.objects.filter(pk=rx_id, patient_id=patient_id).first()
    if rx is None:
        raise Http404("no such prescription")
    return rx


def _prescription_owner_check(request, patient_id: int, rx_id: int, action: Action) -> None:
    """A prescription asked under another patient (or missing): a recorded refusal naming it, then 404."""
    owner = Prescription.objects.filter(pk=rx_id).values_list("patient_id", flat=True).first()
    check_owner(request, patient_id, M, action, "prescription", rx_id, owner)


@clinician_required
@require_POST
def prescription_stop(request, patient_id: int, rx_id: int):
    _prescription_owner_check(request, patient_id, rx_id, Action.PRESCRIBE)

    def service(patient, data):
        dpi_services.prescription_stop(prescription=_prescription(patient_id, rx_id), author=request.user,
                                       reason=data["reason"])

    return _run(request, patient_id, PrescriptionStopForm(request.POST), action=Action.PRESCRIBE,
                resource_type="prescription", resource_id=rx_id, service=service, title=_("Stop a prescription"),
                anchor="prescriptions", done=_("Prescription stopped."))


@clinician_required
@require_POST
def prescription_validate(request, patient_id: int, rx_id: int):
    _prescription_owner_check(request, patient_id, rx_id, Action.VALIDATE)
    with transaction.atomic():
        gate.require(request.user, patient_id=patient_id, category=M, action=Action.VALIDATE,
                     resource_type="prescription", resource_id=rx_id)
        try:
            dpi_services.prescription_validate(prescription=_prescription(patient_id, rx_id),
                                               pharmacist=request.user)
        except ValidationError as exc:
            transaction.set_rollback(True)
            messages.error(request, " ".join(_(m) for m in exc.messages))
            return _back(patient_id, "prescriptions")
    messages.success(request, _("Prescription validated."))
    return _back(patient_id, "prescriptions")


@clinician_required
@require_POST
def administration_create(request, patient_id: int, rx_id: int):
    _prescription_owner_check(request, patient_id, rx_id, Action.ADMINISTER)

    def service(patient, data):
        dpi_services.administration_record(prescription=_prescription(patient_id, rx_id), author=request.user,
                                           **data)

    return _run(request, patient_id, AdministrationForm(request.POST), action=Action.ADMINISTER,
                resource_type="medicationadministration", resource_id=rx_id, service=service,
                title=_("Record an administration"), anchor="prescriptions", done=_("Administration recorded."))


@clinician_required
def prescription_print(request, patient_id: int, rx_id: int):
    """The ordonnance as a PDF: prescriber's identifiers, patient's identity, page and date on every page."""
    from dpi.web.ordonnance import ordonnance_pdf

    _prescription_owner_check(request, patient_id, rx_id, Action.PRINT)
    gate.require(request.user, patient_id=patient_id, category=M, action=Action.PRINT,
                 resource_type="prescription", resource_id=rx_id)
    rx = _prescription(patient_id, rx_id)
    gate.require(request.user, patient_id=patient_id, category=A, action=Action.PRINT, resource_type="patient",
                 resource_id=patient_id)
    data = ordonnance_pdf(rx, printed_by=request.user)
    response = HttpResponse(data, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="ordonnance-{rx.pk}.pdf"'
    response["Cache-Control"] = "no-store"
    return response


@clinician_required
@require_POST
def document_upload(request, patient_id: int):
    _require_recorder(request, "document", patient_id)
    form = DocumentUploadForm(request.POST, request.FILES)

    def service(patient, data):
        upload = data["file"]
        max_bytes = settings.DPI_API_DOCUMENT_MAX_BYTES
        content = upload.read(max_bytes + 1)
        media_type = dpi_services.document_sniff(content, max_bytes=max_bytes)
        dpi_services.document_add(patient=patient, author=request.user, title=data["title"], content=content,
                                  media_type=media_type, type_code=data["type_code"],
                                  document_date=data["document_date"], encounter=_open_encounter(patient))

    return _run(request, patient_id, form, action=Action.CREATE, resource_type="document", service=service,
                title=_("Add a document"), anchor="documents", done=_("Document added."), multipart=True)


# --- results over time ------------------------------------------------------------------------------------
@clinician_required
def results(request, patient_id: int):
    decision = gate.authorize(request.user, patient_id=patient_id, category=M, action=Action.VIEW,
                              resource_type="observation", details={"page": "results"})
    if not decision.allowed:
        raise gate.AccessDenied(decision)
    patient = Patient.objects.get(pk=patient_id)
    paginator = Paginator(chart_selectors.results_queryset(patient_id), chart_selectors.RESULTS_PAGE)
    page = paginator.get_page(request.GET.get("page"))
    return render(request, "web/results.html", {"patient": patient, "page": page,
                                                "analytes": chart_selectors.analytes(patient_id)})


@clinician_required
def results_trend(request, patient_id: int):
    code = request.GET.get("code", "")[:40]
    decision = gate.authorize(request.user, patient_id=patient_id, category=M, action=Action.VIEW,
                              resource_type="observation", details={"page": "trend", "code": code})
    if not decision.allowed:
        raise gate.AccessDenied(decision)
    patient = Patient.objects.get(pk=patient_id)
    trend = chart_selectors.trend(patient_id, code)
    if trend is None:
        raise Http404("no such analyte")
    return render(request, "web/results_trend.html", {"patient": patient, "trend": trend})


# --- unit census ------------------------------------------------------------------------------------------
@clinician_required
def census(request):
    """"My unit now": current inpatients of one of the user's units (the care team of each by the stay)."""
    units = chart_selectors.units_of(request.user)
    if not units:
        return render(request, "web/census.html", {"units": [], "unit": None, "rows": []})
    unit = next((u for u in units if u.code == request.GET.get("unit")), units[0])
    rows = chart_selectors.census(request.user, unit, now=timezone.now(), new_since=timedelta(hours=24))
    return render(request, "web/census.html", {"units": units, "unit": unit, "rows": rows})

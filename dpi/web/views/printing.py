"""Printing the chart and the prescriptions: PDF documents whose every page names the patient.

Printing patient data is its own action in the authorization matrix ("print"): each printout passes the gate
for it, and the gate records it, so the patient's access report shows who printed what and when. Every page
carries the patient's identity (name, birth date, IPP), "page x / y" and the print date (dpi.printing).
"""

from __future__ import annotations

from django.http import HttpResponse
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from access import gate
from access.policy import Action, Category
from dpi.models import Prescription
from dpi.printing import PageMarks, build_pdf, escape, printed_at_text
from dpi.web import selectors
from dpi.web.chart_selectors import born_on, encounter_title
from dpi.web.permissions import clinician_required, may_view_restricted
from patients.ages import age_label
from patients.models import Patient

M, R, A = Category.MEDICAL, Category.RESTRICTED, Category.ADMINISTRATIVE


def identity_line(patient: Patient) -> str:
    """"DUPONT Jean · né le 03/09/1950 (76 ans) · IPP P000000001", as on a label."""
    parts = [patient.display_name, born_on(patient)]
    age = age_label(patient.birth_date, patient.date_of_death or timezone.localdate())
    if age:
        parts[-1] += f" ({age})"
    parts.append(_("IPP %(ipp)s") % {"ipp": patient.ipp})
    return " · ".join(parts)


def _require_print(request, patient_id: int, resource_type: str) -> None:
    """Printing medical data and the identity on it: both pass the gate with the action "print"."""
    for category, resource in ((M, resource_type), (A, "patient")):
        decision = gate.authorize(request.user, patient_id=patient_id, category=category, action=Action.PRINT,
                                  resource_type=resource, resource_id=patient_id, details={"printout": resource_type})
        gate.raise_if_refused(decision)  # a patient the user may not know: 404, as a missing one


def _printed_by(user) -> str:
    return user.get_full_name() or user.get_username()


def _pdf_response(body: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def _author(user) -> str:
    return user.get_full_name() or user.get_username()


def _when(value) -> str:
    return formats.date_format(timezone.localtime(value), "SHORT_DATETIME_FORMAT")


def _day(value) -> str:
    return formats.date_format(value, "SHORT_DATE_FORMAT")


@clinician_required
def chart_print(request, patient_id: int):
    _require_print(request, patient_id, "chart")
    patient = Patient.objects.get(pk=patient_id)
    include_sensitive = False
    if may_view_restricted(request.dpi_role) and selectors.has_sensitive_notes(patient_id):
        include_sensitive = gate.authorize(request.user, patient_id=patient_id, category=R, action=Action.PRINT,
                                           resource_type="clinicalnote", details={"sensitive_notes": True}).allowed
    data = selectors.chart_data(patient, include_sensitive=include_sensitive)
    marks = PageMarks(title=_("Patient record"), identity=identity_line(patient),
                      printed=printed_at_text(by=_printed_by(request.user)))

    def story(styles):
        from reportlab.platypus import Paragraph

        def p(text, style="body"):
            return Paragraph(escape(text), styles[style])

        def more(section, message):
            if section.more:
                yield p(message, "muted")

        yield p(_("Patient record"), "title")
        yield p(identity_line(patient), "h3")
        if patient.date_of_death:
            yield p(_("Deceased on %(date)s") % {"date": _day(patient.date_of_death)})

        yield p(_("Problems and allergies"), "h2")
        yield p(_("Allergies"), "h3")
        for a in data.allergies:
            yield p(f"{a.substance} — {a.get_severity_display()}" + (f": {a.reaction}" if a.reaction else ""))
        if not data.allergies:
            yield p(_("No allergy recorded."), "muted")
        yield p(_("Problems"), "h3")
        for pb in data.problems:
            status = "" if pb.status == "active" else f", {pb.get_status_display()}"
            yield p(f"{pb.label} ({pb.icd10}{status})" + (f" — {pb.comment}" if pb.comment else ""))
        if not data.problems:
            yield p(_("No problem recorded."), "muted")

        yield p(_("Encounters"), "h2")
        for e in data.encounters:
            period = (_("from %(start)s to %(end)s") % {"start": _when(e.start), "end": _when(e.end)} if e.end
                      else _("since %(start)s (in progress)") % {"start": _when(e.start)})
            yield p(f"{encounter_title(e)}, {period}")
        if not data.encounters:
            yield p(_("No encounter recorded."), "muted")
        yield from more(data.encounters, _("Older encounters are not shown."))

        yield p(_("Prescriptions"), "h2")
        for rx in data.prescriptions:
            yield from _prescription_lines(rx, styles)
        if not data.prescriptions:
            yield p(_("No prescription recorded."), "muted")
        yield from more(data.prescriptions, _("Only the most recent prescriptions are shown."))

        yield p(_("Notes"), "h2")
        for n in data.notes:
            heading = n.title or n.get_kind_display().capitalize()
            yield p(heading, "h3")
            meta = [n.get_kind_display(), _author(n.author), _when(n.created_at)]
            if n.encounter:
                meta.append(n.encounter.unit.name)
            if n.sensitive:
                meta.append(_("sensitive"))
            if n.version > 1:
                meta.append(_("amended (version %(v)s)") % {"v": n.version})
            yield p(" · ".join(meta), "muted")
            yield p(n.body)
        if not data.notes:
            yield p(_("No note yet."), "muted")
        yield from more(data.notes, _("Only the most recent notes are shown."))

        yield p(_("Observations and laboratory results"), "h2")
        for o in data.observations:
            value = f"{o.value.normalize():f}" if o.value is not None else o.value_text
            line = f"{_when(o.effective_at)} — {o.label}: {value} {o.unit}".rstrip()
            if o.reference_low is not None or o.reference_high is not None:
                low = "…" if o.reference_low is None else f"{o.reference_low.normalize():f}"
                high = "…" if o.reference_high is None else f"{o.reference_high.normalize():f}"
                line += f" ({_('reference range')} {low} – {high})"
            flag = {"H": _("above the reference range"), "L": _("below the reference range")}.get(o.abnormal)
            if flag:
                line += f" — {o.abnormal}: {flag}"
            yield p(line)
        if not data.observations:
            yield p(_("No result recorded."), "muted")
        yield from more(data.observations, _("Only the most recent results are shown."))

        yield p(_("Documents"), "h2")
        for d in data.documents:
            yield p(f"{d.title} ({d.media_type}, {_day(timezone.localdate(d.created_at))}, {_author(d.author)})")
        if not data.documents:
            yield p(_("No document recorded."), "muted")

    return _pdf_response(build_pdf(story, marks=marks), f"record-{patient.ipp}.pdf")


def _prescription_lines(rx: Prescription, styles) -> list:
    from reportlab.platypus import Paragraph

    period = _("from %(start)s") % {"start": _day(rx.start)}
    if rx.end:
        period += " " + _("to %(end)s") % {"end": _day(rx.end)}
    return [Paragraph(f"<b>{escape(rx.medication)}</b> — {escape(rx.instructions)}", styles["body"]),
            Paragraph(escape(f"{rx.get_status_display()} · {period} · {_author(rx.author)}"), styles["muted"])]


@clinician_required
def prescriptions_print(request, patient_id: int):
    """The patient's current prescriptions (active ones), to hand over or file, signed by the prescribers."""
    _require_print(request, patient_id, "prescription")
    patient = Patient.objects.get(pk=patient_id)
    rows = list(Prescription.objects.filter(patient_id=patient_id, status=Prescription.Status.ACTIVE)
                .select_related("author").order_by("author_id", "-start", "-pk"))
    marks = PageMarks(title=_("Current prescriptions"), identity=identity_line(patient),
                      printed=printed_at_text(by=_printed_by(request.user)))

    def story(styles):
        from reportlab.lib.units import mm
        from reportlab.platypus import KeepTogether, Paragraph, Spacer

        def p(text, style="body"):
            return Paragraph(escape(text), styles[style])

        yield p(_("Current prescriptions"), "title")
        yield p(identity_line(patient), "h3")
        if not rows:
            yield p(_("No prescription in progress."), "muted")
        prescriber = None
        for rx in rows:
            if rx.author_id != prescriber:
                if prescriber is not None:
                    yield Spacer(1, 4 * mm)
                prescriber = rx.author_id
                yield p(_("Prescriber: %(name)s") % {"name": _author(rx.author)}, "h2")
            yield KeepTogether(_prescription_lines(rx, styles))
        if rows:
            yield Spacer(1, 12 * mm)
            yield p(_("Date and signature of the prescriber:"), "body")

    return _pdf_response(build_pdf(story, marks=marks), f"prescriptions-{patient.ipp}.pdf")

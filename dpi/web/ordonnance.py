"""The ordonnance (prescription sheet) as a PDF: the prescriber's identity and identifiers (RPPS when known),
the patient's identity, the lines, the date; the patient's identity, page number and print date on every page."""

from __future__ import annotations

from django.utils import formats
from django.utils.translation import gettext as _

from dpi.printing import PageMarks, build_pdf, escape, printed_at_text
from dpi.web.chart_selectors import born_on


def ordonnance_pdf(rx, *, printed_by) -> bytes:
    from reportlab.platypus import Paragraph, Spacer

    patient = rx.patient
    prescriber = rx.author
    profile = getattr(prescriber, "staff", None)
    rpps = getattr(profile, "rpps", "") if profile is not None else ""
    units = ", ".join(u.name for u in profile.units.all()) if profile is not None else ""
    identity = f"{patient.display_name} — {born_on(patient)} — IPP {patient.ipp}"
    marks = PageMarks(title=_("Ordonnance"), identity=identity,
                      printed=printed_at_text(by=printed_by.get_full_name() or printed_by.username))

    def story(st):
        lines = [
            Paragraph(escape(_("Ordonnance")), st["title"]),
            Paragraph(escape(f"{prescriber.get_full_name() or prescriber.username}"), st["h2"]),
            Paragraph(escape(" — ".join(x for x in (units, f"RPPS {rpps}" if rpps else _("RPPS not recorded")) if x)),
                      st["body"]),
            Spacer(1, 8),
            Paragraph(escape(_("Patient: %(name)s, %(born_on)s, IPP %(ipp)s")
                             % {"name": patient.display_name, "born_on": born_on(patient), "ipp": patient.ipp}),
                      st["body"]),
            Paragraph(escape(_("Date: %(date)s") % {"date": formats.date_format(rx.start, "SHORT_DATE_FORMAT")}),
                      st["body"]),
            Spacer(1, 10),
            Paragraph(f"<b>{escape(rx.medication)}</b>", st["body"]),
        ]
        detail = ", ".join(x for x in (rx.dose, rx.get_route_display() if rx.route else "", rx.frequency) if x)
        if detail:
            lines.append(Paragraph(escape(detail), st["body"]))
        if rx.duration_days:
            lines.append(Paragraph(escape(_("for %(n)d days") % {"n": rx.duration_days}), st["body"]))
        if rx.instructions:
            lines.append(Paragraph(escape(rx.instructions), st["body"]))
        lines += [Spacer(1, 24), Paragraph(escape(_("Signature")), st["muted"])]
        return lines

    return build_pdf(story, marks=marks, author=prescriber.get_full_name() or "dpi")


__all__ = ["ordonnance_pdf"]

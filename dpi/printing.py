"""Printed pages (PDF, reportlab): whose record it is, the page number and the print date on every page.

A printed sheet gets separated from its neighbours, filed in the wrong folder, photocopied: each page carries
the patient's identity (name, birth date, IPP), "page x / y" and when it was printed, in the header and the
footer. The total number of pages is known only at the end, so the canvas keeps each page and draws the
decoration when the document is saved (reportlab's two-pass numbered-canvas pattern). Imports no app.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils import formats, timezone
from django.utils.translation import gettext as _


@dataclass(frozen=True)
class PageMarks:
    """What every page shows: ``title`` and ``identity`` at the top, ``printed`` and the page number below."""

    title: str
    identity: str
    printed: str


def printed_at_text(when: datetime | None = None, by: str = "") -> str:
    when = timezone.localtime(when or timezone.now())
    stamp = formats.date_format(when, "SHORT_DATETIME_FORMAT")
    if by:
        return _("Printed on %(when)s by %(who)s") % {"when": stamp, "who": by}
    return _("Printed on %(when)s") % {"when": stamp}


def page_number_text(page: int, pages: int) -> str:
    return _("Page %(page)d / %(pages)d") % {"page": page, "pages": pages}


def _canvas_class(marks: PageMarks):
    from reportlab.lib import colors
    from reportlab.lib.units import mm
    from reportlab.pdfgen import canvas

    class MarkedCanvas(canvas.Canvas):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._pages: list[dict] = []

        def showPage(self):  # noqa: N802 (reportlab's name)
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self):
            total = len(self._pages)
            for number, state in enumerate(self._pages, start=1):
                self.__dict__.update(state)
                self._decorate(number, total)
                super().showPage()
            super().save()

        def _decorate(self, number: int, total: int) -> None:
            width, height = self._pagesize
            left, right = 12 * mm, width - 12 * mm
            self.saveState()
            self.setStrokeColor(colors.grey)
            self.setLineWidth(0.4)
            self.setFont("Helvetica-Bold", 8.5)
            self.drawString(left, height - 9 * mm, marks.identity)
            self.setFont("Helvetica", 8)
            self.drawRightString(right, height - 9 * mm, marks.title)
            self.line(left, height - 10.5 * mm, right, height - 10.5 * mm)
            self.line(left, 10.5 * mm, right, 10.5 * mm)
            self.drawString(left, 7 * mm, marks.printed)
            self.drawRightString(right, 7 * mm, page_number_text(number, total))
            self.restoreState()

    return MarkedCanvas


def build_pdf(story_for: Callable[[dict], Sequence], *, marks: PageMarks, landscape_page: bool = False,
              author: str = "dpi") -> bytes:
    """An A4 PDF of the flowables ``story_for(styles)`` returns, every page marked with ``marks``."""
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import SimpleDocTemplate

    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=landscape(A4) if landscape_page else A4, leftMargin=12 * mm,
                            rightMargin=12 * mm, topMargin=16 * mm, bottomMargin=16 * mm,
                            title=marks.title, author=author)
    sheet = getSampleStyleSheet()
    styles = {
        "title": sheet["Title"].clone("dpi-title", fontSize=15, leading=18, spaceAfter=4),
        "h2": sheet["Heading2"].clone("dpi-h2", fontSize=11.5, leading=14, spaceBefore=8, spaceAfter=3),
        "h3": sheet["Heading3"].clone("dpi-h3", fontSize=9.5, leading=12, spaceBefore=5, spaceAfter=1),
        "body": sheet["BodyText"].clone("dpi-body", fontSize=9, leading=11.5),
        "small": sheet["BodyText"].clone("dpi-small", fontSize=7.5, leading=9),
        "muted": sheet["BodyText"].clone("dpi-muted", fontSize=7.5, leading=9, textColor="#555555"),
    }
    doc.build(list(story_for(styles)), canvasmaker=_canvas_class(marks))
    return buf.getvalue()


def escape(value: object) -> str:
    """Text for a reportlab Paragraph (its markup is XML-like), line breaks kept."""
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\n", "<br/>")


def css_string(value: object) -> str:
    """A CSS string literal's content: anything but letters, digits and plain punctuation as a CSS escape, so
    a name can never close the string or the ``<style>`` element."""
    out = []
    for ch in str(value):
        out.append(ch if ch.isalnum() or ch in " .,:;-_()/·'" else f"\\{ord(ch):x} ")
    return "".join(out)


def page_css(marks: PageMarks) -> str:
    """@page margin boxes for a browser's own printing of an HTML page (Chromium 131 and later, Firefox):
    identity and title on top, print date and "page x / y" below, on every printed page."""
    page = css_string(_("Page %(page)s / %(pages)s") % {"page": "PAGENO", "pages": "PAGECOUNT"})
    page = page.replace("PAGENO", '" counter(page) "').replace("PAGECOUNT", '" counter(pages) "')
    return (
        "@page { size: A4; margin: 16mm 12mm;"
        f' @top-left {{ content: "{css_string(marks.identity)}"; font: bold 8.5pt sans-serif; }}'
        f' @top-right {{ content: "{css_string(marks.title)}"; font: 8pt sans-serif; }}'
        f' @bottom-left {{ content: "{css_string(marks.printed)}"; font: 8pt sans-serif; }}'
        f' @bottom-right {{ content: "{page}"; font: 8pt sans-serif; }} }}'
    )

"""The chart page printed by the browser itself (Ctrl+P) in Chromium: every page carries the patient's identity,
the print date and "Page x / y" (@page margin boxes), and the menus and forms are left out."""

from __future__ import annotations

import io
import unicodedata
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.utils import timezone
from pypdf import PdfReader

from dpi import services as dpi_services
from tests.ui_support import CHROMIUM_ARGS, require_browser, verified_client

pytestmark = [pytest.mark.django_db, pytest.mark.browser]


def test_the_printed_chart_page_names_the_patient_on_every_page(cast, monkeypatch):
    executable = require_browser()
    for i in range(20):
        dpi_services.note_create(patient=cast.patient, author=cast.physician, encounter=cast.encounter,
                                 title=f"Transmission infirmière {i + 1}",
                                 body="Patient calme, constantes stables, douleur 2/10 sous antalgique. " * 8)
    html = verified_client(cast.physician).get(f"/patients/{cast.patient.pk}/").content.decode()
    # The page is handed to the browser as it is, with the project's style sheet inlined (no server here).
    style = Path(finders.find("dpi.css")).read_text(encoding="utf-8")
    html = html.replace("</head>", f"<style>{style}</style></head>")

    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.set_content(html, wait_until="domcontentloaded")
            pdf = page.pdf(prefer_css_page_size=True)
        finally:
            browser.close()

    # NFKC: the browser's fonts set "fi" as one ligature glyph.
    pages = [" ".join(unicodedata.normalize("NFKC", p.extract_text()).split())
             for p in PdfReader(io.BytesIO(pdf)).pages]
    assert len(pages) >= 2
    today = timezone.localdate().strftime("%d/%m/%Y")
    for number, text in enumerate(pages, start=1):
        assert cast.patient.display_name in text and f"IPP {cast.patient.ipp}" in text, number
        assert cast.patient.birth_date.strftime("%d/%m/%Y") in text, number
        assert f"Page {number} / {len(pages)}" in text and f"Imprimé le {today}" in text, number
    everything = " ".join(pages)
    assert "Transmission infirmière 20" in everything
    assert "Enregistrer la note" not in everything and "Se déconnecter" not in everything  # no forms, no menus

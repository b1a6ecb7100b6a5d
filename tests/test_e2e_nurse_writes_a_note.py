"""In a real browser: a nurse of the care team signs in (password and one-time code), opens a chart,
writes a note, amends it, and sees its history."""

from __future__ import annotations

import pytest

from dpi import services as dpi_services
from dpi.models import ClinicalNote
from tests import ui_support
from tests.personas import PASSWORD
from tests.ui_support import screenshot, sign_in

# pytest fixtures shared by the end-to-end modules
browser, fresh_ids, new_page = ui_support.browser, ui_support.fresh_ids, ui_support.new_page

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_a_nurse_opens_a_chart_and_writes_a_note(fresh_ids, live_server, cast, new_page):
    dpi_services.note_create(patient=cast.patient, author=cast.physician, encounter=cast.encounter,
                             title="Observation d'entrée", body="Douleur thoracique depuis 2 h.")
    dpi_services.observation_record(patient=cast.patient, author=cast.physician, label="Troponine", value=52,
                                    unit="ng/L", reference_high=14, effective_at=cast.encounter.start)
    page = new_page()
    sign_in(page, live_server.url, cast.nurse, PASSWORD)

    # The nurse lands on her care team's patients.
    page.wait_for_url(f"{live_server.url}/patients/")
    screenshot(page, "patient-list")
    page.click(f"a[href='/patients/{cast.patient.pk}/']")
    page.wait_for_selector("#h-notes")
    assert page.locator(".identity h1").inner_text() == cast.patient.display_name
    assert page.locator("tr.abnormal .flag-H").count() == 1
    screenshot(page, "chart")

    page.select_option("#id_kind", "nursing")
    page.fill("#id_title", "Transmission 14 h")
    page.fill("#id_body", "Douleur 3/10 après antalgique. Scope sans trouble du rythme.")
    page.click("#new-note button[type=submit]")
    page.wait_for_selector(".message.success")
    assert "Note enregistrée." in page.locator(".messages").inner_text()
    note = ClinicalNote.objects.get(author=cast.nurse)
    assert note.encounter_id == cast.encounter.pk

    page.click(f"a[href='/patients/{cast.patient.pk}/notes/{note.pk}/amend/']")
    page.fill("#id_body", "Douleur 2/10 après antalgique. Scope sans trouble du rythme.")
    page.fill("#id_reason", "score de douleur corrigé")
    page.click("form.card button[type=submit]")
    page.wait_for_selector("#h-history")
    history = page.locator("section").last.inner_text()
    assert "Douleur 3/10" in history and "score de douleur corrigé" in history
    screenshot(page, "note-history")


def test_the_keyboard_reaches_the_skip_link_first(fresh_ids, live_server, cast, new_page):
    page = new_page()
    sign_in(page, live_server.url, cast.nurse, PASSWORD, next_path=f"/patients/{cast.patient.pk}/")
    page.wait_for_selector("#h-notes")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"

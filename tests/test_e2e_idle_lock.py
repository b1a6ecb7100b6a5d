"""In a real browser: after a warning, an idle session locks, the page is cleared and the server session
is over; "stay signed in" keeps it."""

from __future__ import annotations

import pytest

from dpi import services as dpi_services
from tests import ui_support
from tests.personas import PASSWORD
from tests.ui_support import screenshot, sign_in

# pytest fixtures shared by the end-to-end modules
browser, fresh_ids, new_page = ui_support.browser, ui_support.fresh_ids, ui_support.new_page

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

IDLE = 9  # seconds (the warning comes a third of it before the lock)


def test_an_idle_session_warns_then_locks(fresh_ids, live_server, cast, new_page, settings):
    settings.DPI_SESSION_IDLE_SECONDS = IDLE
    dpi_services.note_create(patient=cast.patient, author=cast.physician, body="Texte confidentiel")
    page = new_page()
    sign_in(page, live_server.url, cast.nurse, PASSWORD, next_path=f"/patients/{cast.patient.pk}/")
    page.wait_for_selector("#h-notes")

    page.wait_for_selector("#idle-warning", state="visible", timeout=IDLE * 1000)
    assert page.evaluate("document.activeElement.id") == "idle-stay"  # keyboard users can answer at once
    screenshot(page, "idle-warning")
    page.click("#idle-stay")
    page.wait_for_selector("#idle-warning", state="hidden")
    assert "Texte confidentiel" in page.content()

    page.wait_for_url(f"{live_server.url}/session/locked/**", timeout=(IDLE + 5) * 1000)
    assert page.locator("h1").inner_text() == "Session verrouillée"
    assert "Texte confidentiel" not in page.content()
    screenshot(page, "idle-locked")

    # The server ended the session too: going back to the chart asks to sign in.
    page.goto(f"{live_server.url}/patients/{cast.patient.pk}/")
    assert "/accounts/login/" in page.url

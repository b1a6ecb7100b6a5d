"""In a real browser: reception signs in, works on the admin-only site, and reaches no clinical page."""

from __future__ import annotations

import pytest

from dpi import services as dpi_services
from tests import ui_support
from tests.personas import PASSWORD
from tests.ui_support import screenshot, sign_in

# pytest fixtures shared by the end-to-end modules
browser, fresh_ids, new_page = ui_support.browser, ui_support.fresh_ids, ui_support.new_page

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_reception_works_on_the_admin_site_and_reaches_no_clinical_page(fresh_ids, live_server, cast, new_page):
    note = dpi_services.note_create(patient=cast.patient, author=cast.physician, body="Secret médical")
    document = dpi_services.document_add(patient=cast.patient, author=cast.physician, title="ECG", content=b"%PDF")
    page = new_page()
    sign_in(page, live_server.url, cast.reception, PASSWORD)

    # Reception lands on its own site: identities, encounters, appointments, and nothing else.
    page.wait_for_url(f"{live_server.url}/admin/")
    modules = page.locator("#content-main").inner_text()
    assert "Patients" in modules
    for clinical in ("Clinical", "Dossier clinique", "Clinicalnote", "Note", "Observation", "Prescription"):
        assert clinical not in modules
    screenshot(page, "reception-admin")
    page.goto(f"{live_server.url}/admin/patients/patient/?q={cast.patient.birth_name}")
    assert cast.patient.ipp in page.locator("#result_list").inner_text()
    screenshot(page, "reception-patients")

    pid = cast.patient.pk
    for path in (f"/patients/{pid}/", "/patients/", f"/patients/{pid}/notes/{note.pk}/",
                 f"/patients/{pid}/documents/{document.pk}/", "/dpo/", "/admin/dpi/clinicalnote/",
                 "/admin/dpi/observation/"):
        response = page.goto(live_server.url + path)
        assert response.status in {403, 404}, path
        assert "Secret médical" not in page.content()
    page.goto(f"{live_server.url}/patients/{pid}/")
    assert page.locator("h1").inner_text() == "Accès refusé"
    screenshot(page, "reception-refused")

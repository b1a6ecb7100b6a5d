"""The browser journeys on what users get (issue #22, item 2): `make run`'s launcher (gunicorn, Celery worker and
beat, static files through WhiteNoise) on a scratch database with the demo seed, started once for the session
(tests/ui_support.live_dpi), driven by headless Chromium with the demo accounts generated for that install.

Every journey fails if any page loads a sub-resource (stylesheet, script, image, XHR) answering 4xx/5xx.
Screenshots: test-artifacts/, and docs/img/ with DPI_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import re
import time

import pytest

from tests import ui_support
from tests.ui_support import doc_screenshot, live_sign_in

live_dpi, session_browser, person = ui_support.live_dpi, ui_support.session_browser, ui_support.person

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _styled(page) -> None:
    """The stylesheet and the page script really apply (not raw HTML, not a frozen page)."""
    assert page.evaluate("getComputedStyle(document.body).fontFamily") != "Times New Roman"
    assert page.evaluate("[...document.styleSheets].some(s => (s.href || '').includes('/static/dpi.'))")
    assert page.evaluate("[...document.scripts].some(s => (s.src || '').includes('/static/dpi.'))")


def test_anonymous_root_opens_the_sign_in_page(live_dpi, person):
    visitor = person()
    visitor.page.goto(live_dpi.base_url + "/")
    assert visitor.page.url.startswith(live_dpi.base_url + "/accounts/login/")
    _styled(visitor.page)
    doc_screenshot(visitor.page, "sign-in")


def test_reception_registers_and_admits_a_patient_through_the_admin(live_dpi, person):
    desk = person()
    page = desk.page
    live_sign_in(page, live_dpi, "demo.reception")
    page.wait_for_url(f"{live_dpi.base_url}/admin/")
    page.goto(f"{live_dpi.base_url}/admin/patients/patient/add/")
    page.fill("#id_birth_name", "Nouvelarrivée")
    page.fill("#id_first_name", "Camille")
    page.fill("#id_first_names", "Camille Rose")
    page.select_option("#id_sex", "F")
    page.fill("#id_birth_date", "1987-07-14")  # an <input type=date>: ISO for the browser
    doc_screenshot(page, "reception-register")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success, ul.messagelist li.success")
    assert live_dpi.sql("SELECT count(*) FROM patients_patient WHERE birth_name ILIKE 'nouvelarriv%%'")[0][0] == 1

    # Admission: the patient is picked with the admin's autocomplete (select2 over /admin/autocomplete/).
    page.goto(f"{live_dpi.base_url}/admin/patients/encounter/add/")
    page.click("#id_patient + .select2 .select2-selection, .field-patient .select2-selection")
    page.fill(".select2-search__field", "Nouvelarr")
    option = page.locator(".select2-results__option", has_text=re.compile("Nouvelarr", re.I)).first
    option.wait_for()
    option.click()
    page.select_option("#id_unit", label="Cardiologie")
    page.select_option("#id_kind", "stay")
    doc_screenshot(page, "reception-admit")
    page.click("input[name=_save]")
    page.wait_for_selector("ul.messagelist li.success")
    [(patient_id,)] = live_dpi.sql(
        "SELECT p.id FROM patients_encounter e JOIN patients_patient p ON p.id = e.patient_id "
        "WHERE p.birth_name ILIKE 'nouvelarriv%%' AND e.end IS NULL"
    )
    # Reception reaches no clinical page (the refusal page itself loads its styles and script).
    for path in (f"/patients/{patient_id}/", "/patients/", "/dpo/", "/admin/dpi/clinicalnote/"):
        response = page.goto(live_dpi.base_url + path)
        assert response.status in {403, 404}, path
    page.goto(f"{live_dpi.base_url}/patients/{patient_id}/")
    assert page.locator("h1").inner_text() == "Accès refusé"
    _styled(page)


def test_a_clinician_opens_a_chart_and_writes_a_note(live_dpi, person):
    nurse = person()
    page = nurse.page
    live_sign_in(page, live_dpi, "demo.nurse")
    page.wait_for_url(f"{live_dpi.base_url}/patients/")
    _styled(page)
    rows = page.locator("table a[href^='/patients/']")
    assert rows.count() >= 2, "the nurse of cardiology sees her unit's inpatients"
    doc_screenshot(page, "patient-list")
    rows.first.click()
    page.wait_for_selector("#h-notes")
    doc_screenshot(page, "chart")
    page.keyboard.press("Tab")  # the keyboard reaches the skip link first
    assert page.evaluate("document.activeElement.className") == "skip"
    page.select_option("#id_kind", "nursing")
    page.fill("#id_title", "Transmission 14 h")
    page.fill("#id_body", "Douleur 3/10 après antalgique. Scope sans trouble du rythme.")
    page.click("#new-note button[type=submit]")
    page.wait_for_selector(".message.success")


def test_break_the_glass_countdown_moves_and_the_dpo_reviews_it(live_dpi, person):
    [(patient_id,)] = live_dpi.sql(
        "SELECT p.id FROM patients_patient p JOIN patients_encounter e ON e.patient_id = p.id "
        "JOIN patients_careunit u ON u.id = e.unit_id WHERE u.code = 'oncologie' AND e.end IS NULL "
        "AND p.confidentiality = 'normal' ORDER BY p.id LIMIT 1"
    )
    doctor = person()
    page = doctor.page
    live_sign_in(page, live_dpi, "demo.physician")
    page.wait_for_url(f"{live_dpi.base_url}/patients/")
    page.goto(f"{live_dpi.base_url}/patients/{patient_id}/")
    page.wait_for_selector("#h-bg")
    assert page.locator("#notes").count() == 0
    doc_screenshot(page, "break-glass-form")
    page.check("input[name=reason_category][value=emergency]")
    page.fill("#id_reason_text", "Arrêt cardiaque aux urgences, patient inconscient, dossier nécessaire.")
    page.fill("#id_otp_token", live_dpi.code("demo.physician"))
    page.click("form.card button[type=submit]")
    page.wait_for_selector(".banner-emergency")
    remaining = page.locator(".banner-emergency .remaining")
    first = remaining.inner_text()
    time.sleep(2.5)
    assert remaining.inner_text() != first, "the countdown is frozen (dpi.js not running?)"
    doc_screenshot(page, "break-glass-banner")

    dpo = person()
    page = dpo.page
    live_sign_in(page, live_dpi, "demo.dpo")
    page.wait_for_url(f"{live_dpi.base_url}/dpo/")
    _styled(page)
    assert page.locator("svg.svg-chart").count() >= 2  # a month of accesses and break-the-glass uses
    doc_screenshot(page, "dpo-dashboard")
    [(access_id,)] = live_dpi.sql(
        "SELECT b.id FROM access_emergencyaccess b JOIN auth_user u ON u.id = b.user_id "
        "WHERE u.username = 'demo.physician' AND b.patient_id = %s", (patient_id,)
    )
    page.goto(f"{live_dpi.base_url}/dpo/break-glass/{access_id}/")
    page.wait_for_selector("#h-decide")
    page.check("input[name=status][value=justified]")
    page.fill("#id_comment", "Urgence vitale confirmée par le registre des urgences.")
    doc_screenshot(page, "dpo-review")
    page.click("form.card button[type=submit]")
    page.wait_for_selector(".message.success")
    assert live_dpi.sql("SELECT review_status FROM access_emergencyaccess WHERE id = %s", (access_id,)) == [
        ("justified",)]


def test_the_dpo_finds_alerts_from_a_month_of_history(live_dpi, person):
    dpo = person()
    page = dpo.page
    live_sign_in(page, live_dpi, "demo.dpo", next_path="/dpo/queue/")
    alerts = page.locator("table a[href^='/dpo/queue/']")
    alerts.first.wait_for()
    doc_screenshot(page, "dpo-alerts")
    alerts.first.click()
    page.wait_for_selector("#h-alert-review")
    page.click("button[name=status][value=in_review]")
    page.wait_for_selector(".message.success")
    page.fill("#id_comment", "Vérifié avec le cadre du service : accès lié au codage du séjour.")
    doc_screenshot(page, "dpo-alert-review")
    page.click("button[name=status][value=justified]")
    page.wait_for_selector(".message.success")


def test_an_integrator_opens_the_api_docs_with_a_token(live_dpi, person):
    out = live_dpi.manage("api_client", "create", "e2e-lab", "--scopes", "medical:view,administrative:view")
    token = re.search(r"token \(shown once\): (\S+)", out).group(1)
    integrator = person()
    page = integrator.page
    page.goto(f"{live_dpi.base_url}/api/docs/")
    page.fill("#api-token", token)
    page.click("#api-token-form button[type=submit]")
    page.wait_for_selector(".opblock", timeout=30_000)
    assert page.locator(".opblock").count() >= 5
    doc_screenshot(page, "api-docs")


def test_security_officer_lands_on_locks_keyring_and_audit(live_dpi, person):
    officer = person()
    page = officer.page
    live_sign_in(page, live_dpi, "demo.security_officer")
    page.wait_for_url(f"{live_dpi.base_url}/security/")
    for section in ("#locks", "#keyring", "#audit-chain"):
        assert page.locator(section).count() == 1
    doc_screenshot(page, "security-home")


def _shared_inpatient(live_dpi, *usernames: str) -> int:
    """A current inpatient (normal confidentiality) of a unit every one of these demo accounts belongs to."""
    [(patient_id,)] = live_dpi.sql(
        "SELECT p.id FROM patients_patient p JOIN patients_encounter e ON e.patient_id = p.id "
        "WHERE e.end IS NULL AND p.confidentiality = 'normal' AND p.date_of_death IS NULL AND e.unit_id IN ("
        "  SELECT spu.careunit_id FROM access_staffprofile_units spu JOIN access_staffprofile sp "
        "  ON sp.id = spu.staffprofile_id JOIN auth_user u ON u.id = sp.user_id WHERE u.username = ANY(%s) "
        "  GROUP BY spu.careunit_id HAVING count(DISTINCT u.id) = %s) "
        "ORDER BY p.id LIMIT 1", (list(usernames), len(usernames)))
    return patient_id


def test_a_physician_records_an_allergy_prescribes_and_prints_then_a_nurse_charts_vitals_and_gives_it(
        live_dpi, person):
    patient_id = _shared_inpatient(live_dpi, "demo.physician", "demo.nurse")
    doctor = person()
    page = doctor.page
    live_sign_in(page, live_dpi, "demo.physician")
    page.goto(f"{live_dpi.base_url}/patients/{patient_id}/")
    page.wait_for_selector("[data-banner]")
    _styled(page)
    # The banner shows a new allergy at once.
    page.locator("#problems details.entry summary").first.click()
    page.fill("#id_allergy_substance", "Iode (produits de contraste)")
    page.select_option("#id_allergy_severity", "high")
    page.click("form[action$='/allergies/new/'] button[type=submit]")
    page.wait_for_selector(".message.success")
    assert "Iode" in page.locator("[data-banner] .banner-allergies").inner_text()
    # Prescribe, then print the ordonnance.
    page.click("#prescriptions > details.entry summary")
    page.fill("#id_prescription_medication", "Paracétamol 1 g")
    page.fill("#id_prescription_dose", "1 g")
    page.select_option("#id_prescription_route", "oral")
    page.fill("#id_prescription_frequency", "toutes les 6 heures si douleur")
    page.fill("#id_prescription_duration_days", "5")
    doc_screenshot(page, "prescribe")
    page.click("form[action$='/prescriptions/new/'] button[type=submit]")
    page.wait_for_selector(".message.success")
    [(rx_id,)] = live_dpi.sql("SELECT id FROM dpi_prescription WHERE patient_id = %s ORDER BY id DESC LIMIT 1",
                              (patient_id,))
    link = page.locator(f"a[href$='/prescriptions/{rx_id}/ordonnance.pdf']")
    assert link.count() == 1
    pdf = page.request.get(live_dpi.base_url + link.get_attribute("href"))
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.body().startswith(b"%PDF")

    nurse = person()
    page = nurse.page
    live_sign_in(page, live_dpi, "demo.nurse")
    page.goto(f"{live_dpi.base_url}/patients/{patient_id}/")
    page.wait_for_selector("#vitals form.vitals-form")
    page.fill("#id_vitals_pulse", "88")
    page.fill("#id_vitals_spo2", "96")
    page.fill("#id_vitals_temperature", "37,8")
    doc_screenshot(page, "vitals")
    page.click("#vitals form.vitals-form button[type=submit]")
    page.wait_for_selector(".message.success")
    assert "88 /min" in page.locator("#vitals").inner_text()
    form = page.locator(f"form[action$='/prescriptions/{rx_id}/administrations/new/']")
    form.locator("xpath=ancestor::details[1]/summary").click()
    form.locator("input[name=given][value=yes]").check()
    form.locator("button[type=submit]").click()
    page.wait_for_selector(".message.success")
    assert live_dpi.sql("SELECT status FROM dpi_medicationadministration WHERE prescription_id = %s",
                        (rx_id,)) == [("completed",)]
    page.goto(f"{live_dpi.base_url}/unit/")
    assert page.locator("table a[href^='/patients/']").count() >= 1
    doc_screenshot(page, "census")

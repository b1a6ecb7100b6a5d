"""In a real browser: a physician outside the care team is refused, opens an emergency access (reason and
one-time code), sees its remaining time; the DPO sees it on the dashboard and reviews it."""

from __future__ import annotations

import pytest

from access.models import EmergencyAccess
from tests import ui_support
from tests.personas import PASSWORD
from tests.ui_support import screenshot, sign_in, totp_code, totp_device

# pytest fixtures shared by the end-to-end modules
browser, fresh_ids, new_page = ui_support.browser, ui_support.fresh_ids, ui_support.new_page

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_break_the_glass_then_dpo_review(fresh_ids, live_server, cast, new_page, mailoutbox):
    doctor = new_page()
    sign_in(doctor, live_server.url, cast.other_physician, PASSWORD)
    doctor.wait_for_url(f"{live_server.url}/patients/")
    doctor.fill("#id_q", cast.patient.birth_name)
    doctor.press("#id_q", "Enter")
    doctor.click(f"a[href='/patients/{cast.patient.pk}/']")

    # Refused: the page says so and offers the emergency access, nothing of the record is shown.
    doctor.wait_for_selector("#h-bg")
    assert doctor.locator("#notes").count() == 0
    screenshot(doctor, "break-glass-form")
    doctor.check("input[name=reason_category][value=emergency]")
    doctor.fill("#id_reason_text", "Arrêt cardiaque aux urgences, patient inconscient, dossier nécessaire.")
    # The code of the next time step: the one of this step was used to sign in (no replay).
    doctor.fill("#id_otp_token", totp_code(totp_device(cast.other_physician), steps_ahead=1))
    doctor.click("form.card button[type=submit]")

    doctor.wait_for_selector(".banner-emergency")
    banner = doctor.locator(".banner-emergency").inner_text()
    assert "Accès d’urgence" in banner and "reste" in banner
    remaining = doctor.locator(".banner-emergency .remaining").inner_text()
    assert remaining.startswith(("3:59", "4:00"))  # DPI_BREAK_GLASS_HOURS = 4, counting down
    assert doctor.locator("#h-notes").count() == 1
    screenshot(doctor, "break-glass-banner")
    access = EmergencyAccess.objects.get()
    [mail] = mailoutbox  # the DPO is alerted at once (no patient identity in the message)
    assert cast.other_physician.username in mail.subject and cast.patient.birth_name not in mail.body

    dpo = new_page()
    sign_in(dpo, live_server.url, cast.dpo, PASSWORD)
    dpo.wait_for_url(f"{live_server.url}/dpo/")
    assert dpo.locator("#pending").inner_text().count(cast.other_physician.username) == 1
    assert dpo.locator("svg.svg-chart").count() >= 2  # accesses and denials, break-the-glass uses
    screenshot(dpo, "dpo-dashboard")
    dpo.click(f"a[href='/dpo/break-glass/{access.pk}/']")
    dpo.wait_for_selector("#h-decide")
    assert "Arrêt cardiaque" in dpo.content()
    dpo.check("input[name=status][value=justified]")
    dpo.fill("#id_comment", "Urgence vitale confirmée par le registre des urgences.")
    screenshot(dpo, "dpo-review")
    dpo.click("form.card button[type=submit]")
    dpo.wait_for_selector(".message.success")
    access.refresh_from_db()
    assert (access.review_status, access.reviewed_by_id) == ("justified", cast.dpo.pk)

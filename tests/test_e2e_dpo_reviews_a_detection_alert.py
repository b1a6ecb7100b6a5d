"""In a real browser: the patient objected to a physician, who breaks the glass anyway; the DPO is
e-mailed at once, detection (the beat task, run here by hand) raises an alert, and the DPO reviews it."""

from __future__ import annotations

import pytest

from access import services as access_services
from audit.detection import services as detection
from audit.detection.models import Alert
from tests import ui_support
from tests.personas import PASSWORD
from tests.ui_support import screenshot, sign_in, totp_code, totp_device

# pytest fixtures shared by the end-to-end modules
browser, fresh_ids, new_page = ui_support.browser, ui_support.fresh_ids, ui_support.new_page

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_the_dpo_reviews_the_alert_of_a_break_the_glass_despite_an_objection(fresh_ids, live_server, cast, new_page,
                                                                               mailoutbox):
    access_services.objection_record(actor=cast.reception, patient=cast.patient, professional=cast.other_physician)
    doctor = new_page()
    sign_in(doctor, live_server.url, cast.other_physician, PASSWORD, next_path=f"/patients/{cast.patient.pk}/")
    doctor.wait_for_selector("#h-bg")
    assert "s’est opposé" in doctor.locator(".alert-box").inner_text()
    doctor.check("input[name=reason_category][value=continuity]")
    doctor.fill("#id_reason_text", "Seul médecin de garde, patient en détresse respiratoire.")
    doctor.fill("#id_otp_token", totp_code(totp_device(cast.other_physician), steps_ahead=1))
    doctor.click("form.card button[type=submit]")
    doctor.wait_for_selector(".banner-emergency")
    assert any("Break-the-glass" in m.subject for m in mailoutbox)  # the DPO is alerted at once

    detection.detect_new_events()  # what Celery beat runs every few minutes
    alert = Alert.objects.get(user=cast.other_physician, patient_id=cast.patient.pk)

    dpo = new_page()
    sign_in(dpo, live_server.url, cast.dpo, PASSWORD, next_path="/dpo/queue/")
    dpo.wait_for_selector(f"a[href='/dpo/queue/{alert.pk}/']")
    screenshot(dpo, "dpo-alert-queue")
    dpo.click(f"a[href='/dpo/queue/{alert.pk}/']")
    dpo.wait_for_selector("#h-alert-review")
    assert "opposition" in dpo.locator("dl.card").inner_text()
    dpo.click("button[name=status][value=in_review]")
    dpo.wait_for_selector(".message.success")
    dpo.fill("#id_comment", "Garde confirmée par le planning ; opposition connue, usage justifié.")
    screenshot(dpo, "dpo-alert-review")
    dpo.click("button[name=status][value=justified]")
    dpo.wait_for_selector(".message.success")
    alert.refresh_from_db()
    assert (alert.status, alert.reviewer_id) == ("justified", cast.dpo.pk)

"""A physician outside the care team is refused, opens an emergency access with a reason and a one-time
code, sees the remaining time, and the DPO reviews it."""

from __future__ import annotations

import pytest

from access.models import EmergencyAccess
from tests.helpers import audit_events
from tests.ui_support import totp_code, totp_device, verified_client

pytestmark = pytest.mark.django_db

REASON = {"reason_category": "continuity", "reason_text": "Garde de nuit, patient instable, cardiologue absent."}


def test_a_refused_chart_offers_break_the_glass_and_shows_nothing_clinical(cast):
    response = verified_client(cast.other_physician).get(f"/patients/{cast.patient.pk}/")
    html = response.content.decode()
    assert response.status_code == 403
    assert 'name="otp_token"' in html and 'name="reason_text"' in html
    assert cast.patient.display_name in html  # the clinician confirms who it is
    assert 'id="notes"' not in html


def test_a_wrong_code_opens_nothing(cast):
    client = verified_client(cast.other_physician)
    response = client.post(f"/patients/{cast.patient.pk}/break-glass/", REASON | {"otp_token": "000000"})
    assert response.status_code == 403
    assert 'class="errorlist' in response.content.decode()
    assert not EmergencyAccess.objects.exists()


def test_break_the_glass_opens_a_bounded_reviewed_access(cast):
    client = verified_client(cast.other_physician)
    code = totp_code(totp_device(cast.other_physician), steps_ahead=1)
    response = client.post(f"/patients/{cast.patient.pk}/break-glass/", REASON | {"otp_token": code})
    assert response.status_code == 302
    access = EmergencyAccess.objects.get()
    assert (access.user, access.review_status) == (cast.other_physician, "pending")
    chart = client.get(f"/patients/{cast.patient.pk}/")
    html = chart.content.decode()
    assert chart.status_code == 200
    assert 'class="banner-emergency"' in html and "data-remaining-seconds" in html
    assert audit_events(actor_id=cast.other_physician.pk, resource_type="chart", basis="break_glass")

    dpo = verified_client(cast.dpo)
    assert f"/dpo/break-glass/{access.pk}/" in dpo.get("/dpo/").content.decode()
    review = dpo.get(f"/dpo/break-glass/{access.pk}/").content.decode()
    # What was opened under the access, in words: "consultation (dossier)", not the code "chart".
    assert "Garde de nuit" in review and 'consultation <span class="muted">dossier</span>' in review
    refused = dpo.post(f"/dpo/break-glass/{access.pk}/", {"status": "violation", "comment": ""})
    assert refused.status_code == 400  # a violation needs a comment
    assert dpo.post(f"/dpo/break-glass/{access.pk}/", {"status": "justified", "comment": "garde"}).status_code == 302
    access.refresh_from_db()
    assert (access.review_status, access.reviewed_by) == ("justified", cast.dpo)


def test_roles_that_cannot_break_the_glass_get_a_plain_refusal(cast):
    # DIM reads without a care relationship; the DPO and reception have no clinical page at all.
    for user in (cast.dpo, cast.reception):
        assert verified_client(user).get(f"/patients/{cast.patient.pk}/").status_code == 403
    assert not EmergencyAccess.objects.exists()

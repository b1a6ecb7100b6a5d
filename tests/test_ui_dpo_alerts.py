"""The DPO's alert queue over the detection area: filters, the evidence, and the review workflow."""

from __future__ import annotations

import pytest
from django.utils import timezone

from access import services as access_services
from audit.detection import services as detection
from audit.detection.models import Alert
from tests.helpers import audit_events
from tests.ui_support import totp_code, totp_device, verified_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def alert(cast):
    """A real alert: the patient objected to this physician, who broke the glass anyway; detection runs."""
    access_services.objection_record(actor=cast.reception, patient=cast.patient, professional=cast.other_physician)
    client = verified_client(cast.other_physician)
    code = totp_code(totp_device(cast.other_physician), steps_ahead=1)
    client.post(f"/patients/{cast.patient.pk}/break-glass/", {
        "reason_category": "emergency", "reason_text": "Arrêt cardiaque aux urgences.", "otp_token": code})
    client.get(f"/patients/{cast.patient.pk}/")
    today = timezone.localdate()
    detection.detect_range(day_from=today, day_to=today)
    return Alert.objects.get(user=cast.other_physician, patient_id=cast.patient.pk)


def test_the_queue_lists_open_alerts_and_filters_them(cast, alert):
    client = verified_client(cast.dpo)
    html = client.get("/dpo/queue/").content.decode()
    assert f"/dpo/queue/{alert.pk}/" in html and "dr.other" in html
    assert f"/dpo/queue/{alert.pk}/" in client.get("/dpo/queue/", {"rule": "break_glass"}).content.decode()
    assert f"/dpo/queue/{alert.pk}/" not in client.get("/dpo/queue/", {"status": "violation"}).content.decode()
    assert f"/dpo/queue/{alert.pk}/" not in client.get("/dpo/queue/", {"user": "nurse.joy"}).content.decode()
    assert "<title>Bris de glace : 1</title>" in client.get("/dpo/").content.decode()  # the alerts-by-rule chart


def test_the_alert_shows_its_evidence_and_is_reviewed(cast, alert):
    client = verified_client(cast.dpo)
    page = client.get(f"/dpo/queue/{alert.pk}/").content.decode()
    assert "accès d’urgence" in page or "dossier" in page  # the access events behind it, in words
    assert "emergencyaccess" not in page and "deny:" not in page
    assert f"/audit/patients/{cast.patient.pk}/access-report" in page
    client.post(f"/dpo/queue/{alert.pk}/review/", {"status": "in_review"})
    alert.refresh_from_db()
    assert alert.status == "in_review"
    client.post(f"/dpo/queue/{alert.pk}/review/", {"status": "violation", "comment": ""})
    alert.refresh_from_db()
    assert alert.status == "in_review"  # closing needs a comment
    client.post(f"/dpo/queue/{alert.pk}/review/", {"status": "violation", "comment": "Accès non justifié."})
    alert.refresh_from_db()
    assert (alert.status, alert.reviewer) == ("violation", cast.dpo)
    assert audit_events(actor_id=cast.dpo.pk, action="alert")


def test_only_the_dpo_reviews_alerts(cast, alert):
    for user in (cast.physician, cast.reception, cast.other_physician):
        assert verified_client(user).post(f"/dpo/queue/{alert.pk}/review/", {"status": "in_review"}).status_code \
            == 403
    alert.refresh_from_db()
    assert alert.status == "new"

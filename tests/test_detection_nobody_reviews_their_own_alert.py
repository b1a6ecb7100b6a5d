"""An alert about a DPO's own accesses is not closed by that DPO (who created the fact that closes it?): the
service refuses and records it, on the JSON API (403) and on the DPO's page (the form is not offered; a post is
refused with the reason); another DPO reviews it."""

import pytest
from django.core.exceptions import PermissionDenied

from access.policy import Role
from audit.detection import services
from audit.detection.models import Alert
from dpi.api.testing import post_json, verified_login
from tests.detection_support import day_ago, fast_password_hashing  # noqa: F401
from tests.helpers import audit_events
from tests.personas import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def own_alert(cast):
    return Alert.objects.create(user=cast.dpo, patient_id=cast.patient.pk, day=day_ago(1), score=70,
                                severity="medium", rules=["off_hours"], reason_fr="x", reason_en="x")


def test_the_service_refuses_and_records_it(cast, own_alert):
    with pytest.raises(PermissionDenied):
        services.alert_review(alert_id=own_alert.pk, actor=cast.dpo, status="in_review")
    own_alert.refresh_from_db()
    assert own_alert.status == "new" and own_alert.reviewer is None
    (event,) = audit_events(actor_id=cast.dpo.pk, basis="deny:self_review")
    assert event.outcome == "denied" and event.resource_id == str(own_alert.pk)
    other = make_user("dpo.second", Role.DPO)
    assert services.alert_review(alert_id=own_alert.pk, actor=other, status="in_review").status == "in_review"


def test_the_api_answers_403_and_the_page_offers_no_review(cast, own_alert, client):
    verified_login(client, cast.dpo)
    response = post_json(client, f"/dpo/alerts/{own_alert.pk}/review/", {"status": "in_review"})
    assert response.status_code == 403, response.content[:300]
    page = client.get(f"/dpo/queue/{own_alert.pk}/").content.decode()
    assert "un autre délégué" in page and f"/dpo/queue/{own_alert.pk}/review/" not in page
    response = client.post(f"/dpo/queue/{own_alert.pk}/review/", {"status": "in_review"}, follow=True)
    assert "un autre délégué" in response.content.decode()
    own_alert.refresh_from_db()
    assert own_alert.status == "new"
    assert len(audit_events(actor_id=cast.dpo.pk, basis="deny:self_review")) == 2

"""The DPO's alert API at /dpo/alerts/: only the DPO may list, filter, read and review alerts."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from audit.detection.models import Alert
from audit.detection.rules import RULES
from tests.detection_support import day_ago, fast_password_hashing  # noqa: F401
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


@pytest.fixture
def alerts(cast):
    a = Alert.objects.create(user=cast.nurse, patient_id=cast.patient.pk, day=day_ago(1), score=110,
                             severity="high", rules=["same_name", "same_address"], reason_fr="a", reason_en="a")
    b = Alert.objects.create(user=cast.physician, patient_id=None, day=day_ago(2), score=60, severity="medium",
                             rules=["volume"], reason_fr="b", reason_en="b", status="in_review")
    return a, b


def client_for(user):
    """Signed in with a verified second factor (medical roles need one), so only the role decides."""
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    c = APIClient()
    c.force_login(user, backend="access.authn.backends.ThrottledModelBackend")
    session = c.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return c


@pytest.mark.parametrize("who", ["physician", "nurse", "reception", "dim", "outsider"])
def test_everyone_but_the_dpo_gets_403(cast, alerts, who):
    c = client_for(getattr(cast, who))
    assert c.get("/dpo/alerts/").status_code == 403
    assert c.get(f"/dpo/alerts/{alerts[0].pk}/").status_code == 403
    assert c.post(f"/dpo/alerts/{alerts[0].pk}/review/", {"status": "in_review"}, format="json").status_code == 403
    assert c.get("/dpo/alerts/dashboard/").status_code == 403
    assert Alert.objects.get(pk=alerts[0].pk).status == "new"


def test_anonymous_is_refused(alerts):
    assert APIClient().get("/dpo/alerts/").status_code in (401, 403)


def test_dpo_lists_and_filters(cast, alerts):
    c = client_for(cast.dpo)
    body = c.get("/dpo/alerts/").json()
    assert body["count"] == 2 and [r["id"] for r in body["results"]] == [alerts[0].pk, alerts[1].pk]
    assert body["results"][0]["username"] == "nurse.joy" and body["results"][1]["level"] == "user"
    assert [r["id"] for r in c.get("/dpo/alerts/?rule=volume").json()["results"]] == [alerts[1].pk]
    assert [r["id"] for r in c.get("/dpo/alerts/?status=new").json()["results"]] == [alerts[0].pk]
    assert c.get("/dpo/alerts/?status=new,in_review").json()["count"] == 2
    assert [r["id"] for r in c.get("/dpo/alerts/?severity=high").json()["results"]] == [alerts[0].pk]
    assert c.get(f"/dpo/alerts/?user={cast.physician.pk}").json()["count"] == 1
    assert c.get(f"/dpo/alerts/?day_from={day_ago(1)}").json()["count"] == 1
    assert c.get("/dpo/alerts/?min_score=100").json()["count"] == 1
    assert c.get("/dpo/alerts/?rule=nonsense").status_code == 400


def test_dpo_reads_are_traced(cast, alerts):
    c = client_for(cast.dpo)
    c.get("/dpo/alerts/?severity=high")
    c.get(f"/dpo/alerts/{alerts[0].pk}/")
    reads = audit_events(action="view", resource_type="detection_alert", actor_id=cast.dpo.pk)
    assert [r.details.get("alert_id") for r in reads] == [None, alerts[0].pk]
    assert reads[0].details["filters"] == {"severity": "high"}


def test_list_query_count_does_not_grow_with_alerts(cast, alerts):
    c = client_for(cast.dpo)
    c.get("/dpo/alerts/")
    with CaptureQueriesContext(connection) as few:
        c.get("/dpo/alerts/")
    for i in range(5):
        Alert.objects.create(user=cast.reception, patient_id=1000 + i, day=day_ago(1), score=55, severity="low",
                             rules=["coworker"])
    with CaptureQueriesContext(connection) as many:
        assert c.get("/dpo/alerts/").json()["count"] == 7
    assert len(many) == len(few)


def test_dpo_reviews_through_the_api(cast, alerts):
    c = client_for(cast.dpo)
    url = f"/dpo/alerts/{alerts[0].pk}/review/"
    assert c.post(url, {"status": "in_review"}, format="json").json()["status"] == "in_review"
    bad = c.post(url, {"status": "violation"}, format="json")
    assert bad.status_code == 400 and "comment" in bad.json()
    done = c.post(url, {"status": "violation", "comment": "Accès au dossier d'un proche."}, format="json")
    assert done.status_code == 200 and done.json()["reviewer_username"] == "the.dpo"
    assert len(audit_events(action="alert", actor_id=cast.dpo.pk)) == 2
    assert c.post("/dpo/alerts/999999/review/", {"status": "in_review"}, format="json").status_code == 404


def test_dashboard_figures(cast, alerts):
    body = client_for(cast.dpo).get("/dpo/alerts/dashboard/").json()
    assert body["by_status"] == {"new": 1, "in_review": 1, "justified": 0, "violation": 0}
    by_rule = {r["rule"]: r["alerts"] for r in body["by_rule"]}
    assert by_rule["same_name"] == 1 and by_rule["volume"] == 1 and by_rule["deceased"] == 0
    assert [d["total"] for d in body["per_day"]] == [1, 1]
    assert set(body["explained"]) >= {"explained_share", "patient_events"}


def test_rules_are_described(cast):
    rules = client_for(cast.dpo).get("/dpo/alerts/rules/").json()
    assert len(rules) == len(RULES) + 1 and all(r["rationale"] for r in rules)  # + the learned model's hit
    assert {"denied_clinical", "denied_then_granted", "neighbour", "covering", "repeated", "slow_and_low", "crowd",
            "restricted_day_off", "dpo_justified", "dpo_violation", "model"} <= {r["rule"] for r in rules}

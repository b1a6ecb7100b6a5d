"""The DPO dashboard: charts from the trace, emergency accesses to review, the authorization review,
accounts to disable, and an access-log search that is itself recorded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from access import services as access_services
from access.models import AccessReviewItem
from audit.services import event_record
from tests.helpers import audit_events, page_queries
from tests.test_audit_support import stored_run
from tests.ui_support import verified_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def traffic(cast):
    verified_client(cast.nurse).get(f"/patients/{cast.patient.pk}/")
    # A denial goes to the independent `audit` connection, which a rolled-back test cannot share with the
    # request's: record the same kind of event on the default one.
    event_record(action="view", outcome="denied", actor=cast.other_physician, actor_role="physician",
                 patient_id=cast.patient.pk, category="medical", resource_type="chart",
                 basis="deny:no_care_relationship", independent=False)


def test_the_dashboard_draws_accesses_and_denials_as_inline_svg(cast, traffic):
    response = verified_client(cast.dpo).get("/dpo/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "<svg" in html and "<rect" in html
    assert "<script" not in html.replace('<script src="/static/dpi.js" defer></script>', "")  # no inline script
    # The figures are also given as a table (screen readers, and anyone who prefers numbers).
    assert "<details" in html
    # Panels of the other areas either show their data or say they are not installed; none is broken.
    for panel in ("alerts", "verification", "retention"):
        assert response.context[panel].error == "", panel


def test_the_access_log_filters_by_patient_user_outcome_and_date(cast, traffic):
    client = verified_client(cast.dpo)
    today = timezone.localdate().isoformat()
    html = client.get("/dpo/access-log/", {"patient": cast.patient.ipp, "outcome": "denied",
                                           "date_from": today, "date_to": today}).content.decode()
    assert "dr.other" in html and "nurse.joy" not in html
    # Words, not the trace's codes: basis, function, data and channel.
    assert "refusé : hors de l’équipe de soins du patient" in html and "deny:" not in html
    assert "médecin" in html and "médical" in html and "dossier" in html
    assert f"/audit/patients/{cast.patient.pk}/access-report" in html  # the patient's access report
    html = client.get("/dpo/access-log/", {"user": "nurse.joy"}).content.decode()
    assert "nurse.joy" in html and "dr.other" not in html
    searches = audit_events(actor_id=cast.dpo.pk, resource_type="accesslog")
    assert len(searches) == 2 and searches[0].details["patient_id"] == cast.patient.pk


def test_the_access_log_pages_through_older_events(cast):
    for i in range(105):
        event_record(action="view", outcome="allowed", actor=cast.nurse, patient_id=cast.patient.pk,
                     category="medical", resource_type="chart", resource_id=i)
    client = verified_client(cast.dpo)
    # (Traces outlive the test database's flushes: filter on this test's patient too.)
    first = client.get("/dpo/access-log/", {"user": "nurse.joy", "patient": cast.patient.pk})
    assert first.context["more"] and len(first.context["events"]) == 100
    second = client.get("/dpo/access-log/?" + first.context["next_query"])
    assert len(second.context["events"]) == 5 and not second.context["more"]


def test_a_reversed_date_range_is_explained(cast):
    today = timezone.localdate()
    response = verified_client(cast.dpo).get("/dpo/access-log/", {
        "date_from": today.isoformat(), "date_to": (today - timedelta(days=2)).isoformat()})
    assert 'class="errorlist' in response.content.decode()
    assert not response.context["events"]


def test_authorization_review_progress_and_decisions(cast):
    campaign = access_services.review_campaign_start(actor=cast.dpo, name="Revue 2026",
                                                     due_at=timezone.now() + timedelta(days=30))
    client = verified_client(cast.dpo)
    html = client.get("/dpo/").content.decode()
    assert "Revue 2026" in html and "<progress" in html
    item = AccessReviewItem.objects.get(campaign=campaign, user=cast.nurse)
    client.post(f"/dpo/review-items/{item.pk}/decide/", {"decision": "confirmed"})
    item.refresh_from_db()
    assert item.decision == "confirmed" and item.reviewer == cast.dpo


def test_accounts_past_their_end_date_are_listed(cast):
    profile = cast.nurse.staff
    profile.end_date = timezone.localdate() - timedelta(days=1)
    profile.save()
    html = verified_client(cast.dpo).get("/dpo/").content.decode()
    accounts = html.split('id="accounts"')[1]
    assert "nurse.joy" in accounts and "Nurse.Joy Staff" in accounts and "infirmier·ère" in accounts  # not "nurse"


def test_the_dashboard_costs_the_same_queries_whatever_the_volume(cast):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = verified_client(cast.dpo)
    client.get("/dpo/")
    with CaptureQueriesContext(connection) as few:
        client.get("/dpo/")
    for i in range(30):
        event_record(action="view", outcome="denied" if i % 3 else "allowed", actor=cast.nurse,
                     patient_id=cast.patient.pk, category="medical", resource_type="chart", independent=False)
    with CaptureQueriesContext(connection) as many:
        client.get("/dpo/")
    assert page_queries(few) == page_queries(many) <= 40


def test_the_last_audit_chain_verification_is_shown(cast):

    now = timezone.now()
    client = verified_client(cast.dpo)

    def panel() -> str:
        return client.get("/dpo/").content.decode().split('id="audit-chain"')[1].split("</div>")[0]

    stored_run(started_at=now, finished_at=now, ok=True, events_checked=1234)
    assert "chaîne vérifiée" in panel() and "1234 événements vérifiés" in panel()
    stored_run(started_at=now, finished_at=now + timedelta(seconds=1), ok=False,
                                   events_checked=99, first_broken_id=4242, message="hash mismatch")
    assert "chaîne rompue" in panel() and "n° 4242" in panel() and "hash mismatch" in panel()

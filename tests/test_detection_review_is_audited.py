"""The DPO's review workflow: new -> in_review -> justified | violation with a comment; every change audited."""

import pytest
from django.core.exceptions import ValidationError

from audit.detection import services
from audit.detection.models import Alert
from tests.detection_support import day_ago, fast_password_hashing  # noqa: F401
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


@pytest.fixture
def alert(cast):
    return Alert.objects.create(user=cast.nurse, patient_id=cast.patient.pk, day=day_ago(1), score=70,
                                severity="medium", rules=["coworker"], reason_fr="x", reason_en="x")


def test_full_review_is_audited_step_by_step(cast, alert):
    services.alert_review(alert_id=alert.pk, actor=cast.dpo, status="in_review")
    done = services.alert_review(alert_id=alert.pk, actor=cast.dpo, status="violation",
                                 comment="Consultation sans motif reconnue par l'agent.")
    assert done.status == "violation" and done.reviewer == cast.dpo and done.reviewed_at
    assert done.comment == "Consultation sans motif reconnue par l'agent."
    trail = audit_events(action="alert", resource_id=str(alert.pk))
    assert [(e.details["from"], e.details["to"]) for e in trail] == [("new", "in_review"), ("in_review", "violation")]
    assert {e.actor_id for e in trail} == {cast.dpo.pk} and trail[-1].details["comment"].startswith("Consultation")
    assert trail[0].patient_id is None  # the review is not an access to the patient's record


def test_closing_needs_a_comment(cast, alert):
    services.alert_review(alert_id=alert.pk, actor=cast.dpo, status="in_review")
    with pytest.raises(ValidationError) as exc:
        services.alert_review(alert_id=alert.pk, actor=cast.dpo, status="justified", comment="  ")
    assert "comment" in exc.value.message_dict
    assert Alert.objects.get(pk=alert.pk).status == "in_review"


def test_skipping_the_review_step_is_refused(cast, alert):
    with pytest.raises(ValidationError):
        services.alert_review(alert_id=alert.pk, actor=cast.dpo, status="justified", comment="ok")
    assert not audit_events(action="alert")


def test_a_closed_alert_can_be_reopened(cast, alert):
    services.alert_review(alert_id=alert.pk, actor=cast.dpo, status="in_review")
    services.alert_review(alert_id=alert.pk, actor=cast.dpo, status="justified", comment="remplacement")
    reopened = services.alert_review(alert_id=alert.pk, actor=cast.dpo, status="in_review")
    assert reopened.status == "in_review" and len(audit_events(action="alert")) == 3

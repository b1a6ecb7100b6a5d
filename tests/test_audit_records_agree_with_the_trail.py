"""Records the DPO relies on outside the trail itself must agree with the trail: a database superuser editing a
break-the-glass (its justification, its expiry, its patient, the DPO's review) or a detection alert (its review
status, the DPO's comment, or the alert itself) contradicts the chained event written when it happened, and
``verify_audit`` names the record. Each attack is SQL with the triggers disabled, as in the tamper suite.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from access import services
from access.models import EmergencyAccess
from audit.detection import services as detection
from audit.detection.models import Alert
from audit.verification import chain_verify
from tests.test_access_break_glass import code_for, open_for
from tests.test_audit_support import chain_now, fresh_trail, sql, triggers_off

pytestmark = pytest.mark.django_db


def _records_problems(run) -> list[str]:
    return [p["reason"] for p in run.problems if p["kind"] == "record_altered"]


@pytest.fixture
def glass(cast):
    fresh_trail()
    other = open_for(cast.other_physician, cast.patient, code_for(cast.other_physician))
    services.emergency_access_review(reviewer=cast.dpo, access=other, status="violation", comment="curiosité")
    chain_now()
    assert not _records_problems(chain_verify(alert=False))
    return cast, other


def test_an_intact_break_the_glass_passes(glass):
    assert not _records_problems(chain_verify(alert=False))


@pytest.mark.parametrize("change, says", [
    ("review_status = 'justified', review_comment = 'ok'", "review"),
    ("expires_at = expires_at + interval '30 days'", "expires"),
    ("reason_category = 'continuity'", "reason category"),
    ("user_id = (SELECT id FROM auth_user WHERE id <> user_id ORDER BY id LIMIT 1)", "user"),
], ids=["review", "expiry", "category", "user"])
def test_an_edited_break_the_glass_is_named(glass, change, says):
    _, access = glass
    with triggers_off():
        sql(f"UPDATE access_emergencyaccess SET {change} WHERE id = %s", [access.pk])  # noqa: S608
    problems = _records_problems(chain_verify(alert=False))
    assert any(f"break-the-glass #{access.pk}" in p and says in p for p in problems), problems


def test_a_justification_copied_from_another_break_the_glass_is_named(glass):
    _, access = glass
    other = EmergencyAccess.objects.create(user=access.user, patient=access.patient, reason_category="other",
                                           reason_text="un autre motif, tout à fait différent",
                                           expires_at=access.expires_at)
    with triggers_off():
        sql("UPDATE access_emergencyaccess SET reason_text = (SELECT reason_text FROM access_emergencyaccess "
            "WHERE id = %s) WHERE id = %s", [other.pk, access.pk])
    problems = _records_problems(chain_verify(alert=False))
    assert any(f"break-the-glass #{access.pk}" in p and "justification" in p for p in problems), problems
    # The row created outside the service has no event at all: named too.
    assert any(f"break-the-glass #{other.pk}" in p and "no event" in p for p in problems), problems


def test_a_deleted_break_the_glass_is_named(glass):
    _, access = glass
    with triggers_off():
        sql("DELETE FROM access_emergencyaccess WHERE id = %s", [access.pk])
    problems = _records_problems(chain_verify(alert=False))
    assert any(f"break-the-glass #{access.pk}" in p and "deleted" in p for p in problems), problems


@pytest.fixture
def alert(cast):
    fresh_trail()
    a = Alert.objects.create(user=cast.other_physician, patient_id=cast.patient.pk, day=timezone.localdate(), score=90,
                             severity=Alert.Severity.HIGH, rules=["unexplained_access"])
    detection.alert_review(alert_id=a.pk, actor=cast.dpo, status=Alert.Status.IN_REVIEW)
    detection.alert_review(alert_id=a.pk, actor=cast.dpo, status=Alert.Status.VIOLATION, comment="consultation "
                           "sans lien de soins")
    chain_now()
    assert not _records_problems(chain_verify(alert=False))
    return a


@pytest.mark.parametrize("change, says", [
    ("status = 'justified'", "status"),
    ("comment = 'rien à signaler'", "comment"),
], ids=["status", "comment"])
def test_an_edited_alert_review_is_named(alert, change, says):
    with triggers_off():
        sql(f"UPDATE detection_alert SET {change} WHERE id = %s", [alert.pk])  # noqa: S608
    problems = _records_problems(chain_verify(alert=False))
    assert any(f"detection alert #{alert.pk}" in p and says in p for p in problems), problems


def test_an_alert_closed_without_a_review_is_named(cast):
    fresh_trail()
    yesterday = timezone.localdate() - timedelta(1)
    a = Alert.objects.create(user=cast.other_physician, patient_id=cast.patient.pk, day=yesterday,
                             score=90, severity=Alert.Severity.HIGH, rules=["unexplained_access"])
    with triggers_off():
        sql("UPDATE detection_alert SET status = 'justified', comment = 'vu' WHERE id = %s", [a.pk])
    problems = _records_problems(chain_verify(alert=False))
    assert any(f"detection alert #{a.pk}" in p and "no review" in p for p in problems), problems


def test_a_deleted_reviewed_alert_is_named(alert):
    with triggers_off():
        sql("DELETE FROM detection_alert WHERE id = %s", [alert.pk])
    problems = _records_problems(chain_verify(alert=False))
    assert any(f"detection alert #{alert.pk}" in p and "deleted" in p for p in problems), problems

"""Account rules: a dormant account active again, an account used after its end date."""

from datetime import timedelta

import pytest
from django.utils import timezone

from access.models import StaffProfile
from audit.detection.models import Alert
from tests.detection_support import day_ago, ev, fast_password_hashing, hits, local, run  # noqa: F401
from tests.personas import make_patient

pytestmark = pytest.mark.django_db
D = day_ago(3)


def test_dormant_account_opening_unexplained_files(cast):
    ev(cast.other_physician, None, at=local(D - timedelta(days=40), 9), action="login")
    run(D - timedelta(days=40))
    ev(cast.other_physician, make_patient(), at=local(D, 22))
    found = hits(run(D), "dormant", user=cast.other_physician)
    assert found and found[0]["detail"]["last_active"] == (D - timedelta(days=40)).isoformat()


def test_recently_active_account_is_not_dormant(cast):
    ev(cast.other_physician, None, at=local(D - timedelta(days=5), 9), action="login")
    run(D - timedelta(days=5))
    ev(cast.other_physician, make_patient(), at=local(D, 22))
    assert not hits(run(D), "dormant")


def test_back_from_leave_working_in_own_unit_is_not_flagged(cast):
    ev(cast.physician, None, at=local(D - timedelta(days=40), 9), action="login")
    run(D - timedelta(days=40))
    ev(cast.physician, cast.patient, at=local(D, 10))  # explained by the stay in cardiology
    assert not hits(run(D), "dormant")


def test_never_seen_old_account_counts_once_history_covers_the_dormancy(cast):
    old = timezone.now() - timedelta(days=400)
    type(cast.other_physician).objects.filter(pk=cast.other_physician.pk).update(date_joined=old)
    StaffProfile.objects.filter(user=cast.other_physician).update(start_date=old.date())
    ev(cast.physician, None, at=local(D - timedelta(days=40), 9), action="login")
    run(D - timedelta(days=40))  # the detector's history starts here
    ev(cast.other_physician, make_patient(), at=local(D, 10))
    assert hits(run(D), "dormant", user=cast.other_physician)


def test_account_used_after_its_end_date(cast):
    StaffProfile.objects.filter(user=cast.nurse).update(end_date=D - timedelta(days=5))
    ev(cast.nurse, None, at=local(D, 7), action="login")
    ev(cast.nurse, cast.patient, at=local(D, 7, 5), outcome="denied", basis="deny:contract")
    run(D)
    alert = Alert.objects.get(user=cast.nurse)
    assert alert.patient_id is None and alert.rules == ["after_end_date"]
    assert alert.severity == "high" and alert.n_events == 2
    assert "fin de contrat" in alert.reason_fr and "end date" in alert.reason_en


def test_account_before_its_end_date_is_fine(cast):
    StaffProfile.objects.filter(user=cast.nurse).update(end_date=D + timedelta(days=10))
    ev(cast.nurse, cast.patient, at=local(D, 7))
    assert not hits(run(D), "after_end_date")

"""Scoring: rules add up per (user, patient, day) into one alert with its evidence; running the detector
again (replay or incremental) never duplicates an alert."""

from datetime import timedelta

import pytest

from access.models import StaffProfile
from audit.detection import services
from audit.detection.models import Alert
from tests.detection_support import day_ago, ev, fast_password_hashing, local, run  # noqa: F401
from tests.personas import make_patient

pytestmark = pytest.mark.django_db
D = day_ago(3)


def snoop(cast):
    cast.other_physician.last_name = "Moreau"
    cast.other_physician.save(update_fields=["last_name"])
    StaffProfile.objects.filter(user=cast.other_physician).update(address="3 place du Marché", postal_code="35000")
    sister = make_patient(birth_name="MOREAU", first_name="Julie", sex="F", address="3 Place du marche",
                          postal_code="35000")
    events = [ev(cast.other_physician, sister, at=local(D, 21, m)) for m in (0, 5, 9)]
    return sister, events


def test_rules_combine_into_one_alert_with_evidence(cast):
    sister, events = snoop(cast)
    run(D)
    alert = Alert.objects.get()
    assert (alert.user_id, alert.patient_id, alert.day) == (cast.other_physician.pk, sister.pk, D)
    assert alert.rules == ["same_name", "same_address"] and alert.score == 60 + 50 + 20
    assert alert.severity == "high" and alert.status == "new"
    assert alert.event_ids == [e.id for e in events] and alert.n_events == 3
    assert "même adresse" in alert.reason_fr and "same family name" in alert.reason_en
    assert sister.birth_name not in alert.reason_fr + alert.reason_en + str(alert.hits)


def test_replaying_twice_creates_no_duplicate(cast):
    snoop(cast)
    ev(cast.nurse, None, at=local(D, 8), action="login")
    StaffProfile.objects.filter(user=cast.nurse).update(end_date=D - timedelta(days=1))
    first = run(D)
    assert len(first.created) == 2
    second = run(D)
    assert second.created == [] and second.updated == []
    assert Alert.objects.count() == 2


def test_new_evidence_refreshes_an_open_alert_but_not_a_closed_one(cast, django_user_model):
    sister, _ = snoop(cast)
    run(D)
    alert = Alert.objects.get()
    ev(cast.other_physician, sister, at=local(D, 22))
    assert run(D).updated == [alert.pk]
    assert Alert.objects.get().n_events == 4
    Alert.objects.filter(pk=alert.pk).update(status="justified", comment="famille, autorisé")
    ev(cast.other_physician, sister, at=local(D, 23))
    assert run(D).updated == []
    assert Alert.objects.get().n_events == 4


def test_incremental_pass_twice_creates_no_duplicate(cast):
    snoop(cast)
    today = day_ago(0)
    ev(cast.other_physician, make_patient(birth_name="MOREAU"), at=local(today, 0, 1))
    first = services.detect_new_events()
    second = services.detect_new_events()
    assert len(first.created) == 1 and second.created == []
    assert Alert.objects.count() == 1

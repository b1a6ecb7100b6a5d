"""Issue #20: a former patient of the unit, looked at long after the stay: curiosity alerts, follow-ups do not.

Hand-built cases. The stay in cardiology ended two months ago. Curiosity: a colleague of the unit who did not treat
the patient tries the chart with nothing new on the patient. Follow-ups: the physician who treated the patient
(their notes during the stay are in the audit trail) with a new appointment booked by the secretary; a colleague
after the patient phoned the secretary; the treating physician with no recorded reason (below the threshold).
"""

from datetime import timedelta

import pytest

from access.policy import Role
from audit.detection.models import Alert
from patients.services import appointment_book, encounter_admit, encounter_discharge
from tests.detection_support import day_ago, ev, fast_password_hashing, hits, local, run  # noqa: F401
from tests.personas import make_patient, make_user

pytestmark = pytest.mark.django_db
D = day_ago(3)
STAY_START, STAY_END = D - timedelta(days=70), D - timedelta(days=60)


@pytest.fixture
def former(cast):
    """A former cardiology patient: the stay, and the treating physician's notes during it (audit trail)."""
    patient = make_patient()
    stay = encounter_admit(patient=patient, unit=cast.cardio, start=local(STAY_START, 9))
    encounter_discharge(encounter=stay, end=local(STAY_END, 9))
    ev(cast.physician, patient, at=local(STAY_START, 10), action="create")
    ev(cast.physician, patient, at=local(STAY_END, 8), action="create")
    return patient


@pytest.fixture
def colleague(cast):
    """Another physician of cardiology, who did not treat that patient."""
    return make_user("dr.colleague", Role.PHYSICIAN, [cast.cardio])


@pytest.fixture
def secretary(cast):
    return make_user("secr.cardio", Role.MEDICAL_SECRETARY, [cast.cardio])


def _look(user, patient, hour=14):
    """What the gate lets anyone do on a former patient: the identity page, then a chart read (refused)."""
    ev(user, patient, at=local(D, hour), category="administrative", basis="role")
    ev(user, patient, at=local(D, hour, 1), outcome="denied", basis="deny:no_care_relationship")


def test_curiosity_about_a_former_patient_alerts(cast, former, colleague):
    _look(colleague, former)
    summary = run(D)
    [hit] = hits(summary, "relationship_ended", user=colleague, patient=former)
    assert hit["points"] == 30 + 15 + 25
    assert hit["detail"]["curious"] and not hit["detail"]["reason"] and not hit["detail"]["care_team"]
    assert Alert.objects.get(user_id=colleague.pk, patient_id=former.pk).rules == ["relationship_ended"]


def test_follow_up_by_the_treating_physician_with_an_appointment_booked_does_not_alert(cast, former, secretary):
    appointment_book(patient=former, unit=cast.cardio, practitioner=cast.physician, start=local(D + timedelta(30), 10),
                     end=local(D + timedelta(30), 10, 30), regularisation=True, actor=secretary, source="staff")
    ev(secretary, former, at=local(D, 9), category="administrative", basis="role", action="create",
       resource_type="appointment")
    _look(cast.physician, former)
    summary = run(D)
    assert not hits(summary, "relationship_ended", user=cast.physician, patient=former)  # a reason: not fired
    assert not Alert.objects.filter(patient_id=former.pk).exists()


def test_colleague_after_the_patient_phoned_the_secretary_does_not_alert(cast, former, colleague, secretary):
    ev(secretary, former, at=local(D - timedelta(days=1), 16), category="administrative", basis="role")
    _look(colleague, former)
    summary = run(D)
    assert not hits(summary, "relationship_ended", user=colleague, patient=former)
    assert not Alert.objects.filter(patient_id=former.pk).exists()


def test_treating_physician_with_no_recorded_reason_stays_below(cast, former):
    _look(cast.physician, former)
    [hit] = hits(run(D), "relationship_ended", user=cast.physician, patient=former)
    assert hit["detail"]["care_team"] and hit["points"] == 30 + 15
    assert not Alert.objects.exists()


def test_another_units_event_is_no_reason_for_this_unit(cast, former, colleague):
    """The patient came back to another unit's consultation: nothing that concerns cardiology."""
    other_secretary = make_user("secr.other", Role.MEDICAL_SECRETARY, [cast.other_unit])
    appointment_book(patient=former, unit=cast.other_unit, practitioner=cast.other_physician,
                     start=local(D + timedelta(10), 10), end=local(D + timedelta(10), 10, 30), regularisation=True,
                     actor=other_secretary, source="staff")
    ev(other_secretary, former, at=local(D, 9), category="administrative", basis="role")
    _look(colleague, former)
    summary = run(D)
    [hit] = hits(summary, "relationship_ended", user=colleague, patient=former)
    assert hit["detail"]["curious"]
    assert Alert.objects.filter(user_id=colleague.pk, patient_id=former.pk).exists()


def test_a_readmission_elsewhere_last_week_is_a_reason(cast, former, colleague):
    """Back in the hospital (another unit) last week: the former unit is asked for the history."""
    stay = encounter_admit(patient=former, unit=cast.other_unit, start=local(D - timedelta(days=9), 9))
    encounter_discharge(encounter=stay, end=local(D - timedelta(days=6), 9))
    _look(colleague, former)
    assert not hits(run(D), "relationship_ended", user=colleague, patient=former)
    assert not Alert.objects.exists()


def test_identity_glance_alone_stays_below(cast, former, colleague):
    """One identity page, nothing sought (a misclick in a search list looks the same)."""
    ev(colleague, former, at=local(D, 14), category="administrative", basis="role")
    [hit] = hits(run(D), "relationship_ended", user=colleague, patient=former)
    assert hit["points"] == 30 + 15 and not hit["detail"]["curious"]
    assert not Alert.objects.exists()

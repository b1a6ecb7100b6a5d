"""Issue #20: a former patient of the unit, looked at long after the stay: curiosity alerts, follow-ups do not.

Hand-built cases. The stay in cardiology ended two months ago. Curiosity: a colleague of the unit who did not treat
the patient tries the chart with nothing new on the patient; a nurse of the stay's care team doing the same (nursing
care ends at discharge); the treating physician coming back on another day with nothing new. Follow-ups: the
physician who treated the patient (their notes during the stay are in the audit trail) with a new appointment booked
by the secretary; a colleague, or a nurse of the care team, after the patient phoned the secretary; the treating
physician with no recorded reason, once (below the threshold).
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
def nursed(cast, former):
    """The same former patient, with the cardiology nurse's care note during the stay (the nurse was in the team)."""
    ev(cast.nurse, former, at=local(STAY_START + timedelta(days=2), 15), action="amend")
    return former


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


def test_nurse_of_the_stays_care_team_seeking_the_chart_alerts(cast, nursed):
    """Nursing care ends at discharge: two months later, with nothing recorded, the care team is no excuse."""
    _look(cast.nurse, nursed)
    [hit] = hits(run(D), "relationship_ended", user=cast.nurse, patient=nursed)
    assert hit["detail"]["care_team"] and hit["detail"]["curious"] and hit["detail"]["why"] == "role"
    assert hit["points"] == 30 + 15 + 25
    assert "dont la fonction n'assure pas le suivi" in hit["fr"]
    assert Alert.objects.filter(user_id=cast.nurse.pk, patient_id=nursed.pk).exists()


def test_nurse_of_the_care_team_after_the_patient_phoned_does_not_alert(cast, nursed, secretary):
    ev(secretary, nursed, at=local(D - timedelta(days=2), 11), category="administrative", basis="role")
    _look(cast.nurse, nursed)
    assert not hits(run(D), "relationship_ended", user=cast.nurse, patient=nursed)
    assert not Alert.objects.exists()


def test_nurse_glancing_at_the_identity_only_stays_below(cast, nursed):
    """Nothing medical sought, one day: the role changes nothing (a misclick in a search list looks the same)."""
    ev(cast.nurse, nursed, at=local(D, 14), category="administrative", basis="role")
    [hit] = hits(run(D), "relationship_ended", user=cast.nurse, patient=nursed)
    assert hit["points"] == 30 + 15 and not hit["detail"]["curious"]
    assert not Alert.objects.exists()


def test_treating_physician_coming_back_another_day_with_nothing_new_alerts(cast, former):
    """Once is a follow-up (below the threshold); the same record again six days later, nothing recorded between."""
    first = D - timedelta(days=6)
    ev(cast.physician, former, at=local(first, 14), category="administrative", basis="role")
    ev(cast.physician, former, at=local(first, 14, 1), outcome="denied", basis="deny:no_care_relationship")
    _look(cast.physician, former)
    summary = run(first, D)
    [once] = hits(summary, "relationship_ended", user=cast.physician, patient=former, day=first)
    assert once["points"] == 30 + 15 and not once["detail"]["curious"]
    [again] = hits(summary, "relationship_ended", user=cast.physician, patient=former, day=D)
    assert again["detail"]["care_team"] and again["detail"]["why"] == "came_back" and again["points"] == 70
    assert [a.day for a in Alert.objects.filter(user_id=cast.physician.pk, patient_id=former.pk)] == [D]

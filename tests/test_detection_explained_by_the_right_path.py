"""Issue #20: only the right kind of path explains an access, and the rules that look over weeks.

Small hand-built cases: covering relationships (an appointment or a visit the user made themself), an
administrative touch that does not explain a clinical read, DIM coding and a secretary's call, the same unrelated
record on several days, one unrelated chart a day, several staff on one record, a VIP of the unit opened on a day
off, an abusive break-the-glass on a patient who is nowhere in the hospital.
"""

from datetime import timedelta

import pytest

from access.models import EmergencyAccess
from access.policy import Role
from audit.detection.models import UnexplainedAccess
from patients.models import Encounter
from patients.services import appointment_book, encounter_admit, encounter_discharge
from tests.detection_support import day_ago, ev, fast_password_hashing, hits, local, run  # noqa: F401
from tests.personas import make_patient, make_user

pytestmark = pytest.mark.django_db
D = day_ago(3)


def _explained_by(summary, user, patient):
    """What explained the (user, patient, day): read back from the memory of unexplained accesses."""
    return not UnexplainedAccess.objects.filter(user_id=user.pk, patient_id=patient.pk).exists()


# --- covering relationships -----------------------------------------------------------------------------------

def test_covering_appointment_booked_by_the_physician_themself(cast):
    target = make_patient()
    appointment_book(patient=target, unit=cast.cardio, practitioner=cast.physician, start=local(D, 11),
                     end=local(D, 11, 30), regularisation=True, actor=cast.physician, source="staff")
    ev(cast.physician, target, at=local(D, 11, 40), basis="care:appointment")
    [hit] = hits(run(D), "covering", user=cast.physician, patient=target)
    assert hit["points"] == 60 and "créé" in hit["fr"]


def test_an_appointment_booked_by_the_secretary_explains(cast):
    target = make_patient()
    secretary = make_user("secr", Role.MEDICAL_SECRETARY, [cast.cardio])
    appointment_book(patient=target, unit=cast.cardio, practitioner=cast.physician, start=local(D, 11),
                     end=local(D, 11, 30), regularisation=True, actor=secretary, source="staff")
    ev(cast.physician, target, at=local(D, 11, 40), basis="care:appointment")
    summary = run(D)
    assert not hits(summary, "covering")
    assert summary.passes[0].explained_events == summary.passes[0].patient_events


def test_a_follow_up_booked_for_a_former_patient_of_the_unit_is_explained(cast):
    former = make_patient()
    stay = encounter_admit(patient=former, unit=cast.cardio, start=local(D - timedelta(days=120), 9))
    encounter_discharge(encounter=stay, end=local(D - timedelta(days=110), 9))
    appointment_book(patient=former, unit=cast.cardio, practitioner=cast.physician, start=local(D, 11),
                     end=local(D, 11, 30), regularisation=True, actor=cast.physician, source="staff")
    ev(cast.physician, former, at=local(D, 11, 40), basis="care:appointment")
    summary = run(D)
    assert not hits(summary, "covering") and not hits(summary, "relationship_ended")
    assert summary.passes[0].explained_events == summary.passes[0].patient_events


def test_covering_visit_registered_by_the_nurse_herself(cast):
    """An administrative touch (the visit she registered) then the chart: the visit explains nothing."""
    target = make_patient()
    encounter_admit(patient=target, unit=cast.cardio, start=local(D, 10), kind=Encounter.Kind.CONSULTATION,
                    actor=cast.nurse, source="staff")
    ev(cast.nurse, target, at=local(D, 10, 5))
    assert hits(run(D), "covering", user=cast.nurse, patient=target)


def test_reception_administrative_touch_does_not_explain_a_clinical_read(cast):
    """Any unit's stay explains the front desk's handling of an identity, not a look at the chart."""
    admitted, other = make_patient(), make_patient()
    encounter_admit(patient=admitted, unit=cast.other_unit, start=local(D, 8))
    encounter_admit(patient=other, unit=cast.other_unit, start=local(D, 8))
    ev(cast.reception, admitted, at=local(D, 10), category="administrative", basis="role")
    ev(cast.reception, other, at=local(D, 10), category="medical", outcome="denied", basis="deny:role")
    run(D)
    assert _explained_by(None, cast.reception, admitted)
    assert not _explained_by(None, cast.reception, other)


def test_dim_coding_an_old_stay_and_a_secretary_calling_about_a_distant_appointment(cast):
    coded = make_patient()
    stay = encounter_admit(patient=coded, unit=cast.other_unit, start=local(D - timedelta(days=200), 9))
    encounter_discharge(encounter=stay, end=local(D - timedelta(days=190), 9))
    ev(cast.dim, coded, at=local(D, 10), basis="role")
    called = make_patient()
    secretary = make_user("secr", Role.MEDICAL_SECRETARY, [cast.cardio])
    appointment_book(patient=called, unit=cast.cardio, practitioner=cast.physician, start=local(D + timedelta(60), 9),
                     end=local(D + timedelta(60), 9, 30))
    ev(secretary, called, at=local(D, 11), category="administrative", basis="role")
    ev(secretary, called, at=local(D, 11, 1), category="medical", outcome="denied", basis="deny:no_care")
    run(D)
    assert _explained_by(None, cast.dim, coded)
    # the call is administrative; the chart read the same day is not explained by a visit two months away
    assert not _explained_by(None, secretary, called)


# --- rules over weeks -----------------------------------------------------------------------------------------

def test_the_same_unrelated_record_on_two_days_alerts_on_the_second(cast):
    target = make_patient()
    ev(cast.other_physician, target, at=local(D - timedelta(days=9), 10), category="administrative", basis="role")
    ev(cast.other_physician, target, at=local(D, 10), category="administrative", basis="role")
    summary = run(D - timedelta(days=9), D)
    assert not hits(summary, "repeated", day=D - timedelta(days=9))
    [hit] = hits(summary, "repeated", day=D)
    assert hit["detail"]["days"] == 2 and hit["points"] == 50


def test_a_former_patient_or_an_inpatient_elsewhere_is_not_a_repeated_cold_record(cast):
    inpatient = make_patient()
    encounter_admit(patient=inpatient, unit=cast.other_unit, start=local(D - timedelta(days=12), 8))
    for n in (9, 0):
        ev(cast.physician, inpatient, at=local(D - timedelta(days=n), 10), category="administrative", basis="role")
    assert not hits(run(D - timedelta(days=9), D), "repeated")


def test_one_unrelated_chart_a_day_for_weeks_alerts(cast):
    for n in range(8, 0, -1):
        ev(cast.nurse, make_patient(), at=local(D - timedelta(days=n), 10), category="administrative", basis="role")
    summary = run(D - timedelta(days=8), D - timedelta(days=1))
    found = hits(summary, "slow_and_low", user=cast.nurse)
    assert [h["day"] for h in found] == [D - timedelta(days=2), D - timedelta(days=1)]  # from the 7th record
    assert found[-1]["detail"]["patients"] == 8


def test_several_staff_without_link_on_one_record(cast):
    famous = make_patient()
    for i in range(3):
        ev(make_user(f"curious{i}", Role.NURSE, [cast.other_unit]), famous, at=local(D, 10 + i),
           category="administrative", basis="role")
    found = hits(run(D), "crowd", patient=famous)
    assert len(found) == 3 and found[0]["detail"]["users"] == 3


def test_vip_of_the_unit_opened_on_a_day_off(cast):
    star = make_patient(confidentiality="restricted", restriction_reason="vip")
    encounter_admit(patient=star, unit=cast.cardio, start=local(D - timedelta(days=1), 8))
    ev(cast.nurse, star, at=local(D, 21), flags=["restricted_patient"])  # nothing else that day
    for _ in range(3):  # the physician treating the unit's patients that day
        p = make_patient()
        encounter_admit(patient=p, unit=cast.cardio, start=local(D - timedelta(days=1), 8))
        ev(cast.physician, p, at=local(D, 10))
    ev(cast.physician, star, at=local(D, 11), flags=["restricted_patient"])
    summary = run(D)
    assert [h["actor_id"] for h in hits(summary, "restricted_day_off")] == [cast.nurse.pk]


def test_break_the_glass_on_a_patient_nowhere_in_the_hospital_alerts_despite_a_good_reason(cast):
    reason = "Patient inconscient aux urgences, traitements en cours à connaître"
    absent, admitted = make_patient(), make_patient()
    encounter_admit(patient=admitted, unit=cast.cardio, start=local(D, 8))
    for p in (absent, admitted):
        EmergencyAccess.objects.create(user=cast.other_physician, patient=p, reason_category="emergency",
                                       reason_text=reason, started_at=local(D, 10), expires_at=local(D, 14))
        ev(cast.other_physician, p, at=local(D, 10), action="break_glass", basis="break_glass")
    found = {h["patient_id"]: h for h in hits(run(D), "break_glass")}
    assert found[absent.pk]["points"] == 55 and found[admitted.pk]["points"] == 35

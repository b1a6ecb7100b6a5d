"""break_glass: repeats are a habit only against the hospital's own rate, and the DPO's reviews count.

Where colleagues of the role (or of the unit, an emergency department) break the glass a few times a quarter, a
physician's third use in 90 days is the job; a spree of three in a week still is not. A use the DPO reviewed and
judged justified is no repeat.
"""

from datetime import timedelta

import pytest

from access.models import EmergencyAccess, StaffProfile
from access.policy import Role
from audit.detection.models import Alert, UserDay
from patients.models import CareUnit, Encounter
from patients.services import encounter_admit
from tests.detection_support import day_ago, ev, fast_password_hashing, hits, local, run  # noqa: F401
from tests.personas import make_patient, make_user

pytestmark = pytest.mark.django_db
D = day_ago(3)
REASON = "Patient inconscient aux urgences, traitements en cours"


def _break_glass(user, patient, at, *, review="pending"):
    # the patient is in the hospital then and the reason is specific: only repeats can score here
    if not Encounter.objects.filter(patient=patient).update(start=at - timedelta(days=1)):
        encounter_admit(patient=patient, unit=CareUnit.objects.get(code="cardio-t"), start=at - timedelta(days=1))
    EmergencyAccess.objects.create(
        user=user,
        patient=patient,
        reason_category="emergency",
        reason_text=REASON,
        started_at=at,
        expires_at=at + timedelta(hours=4),
        review_status=review,
    )
    ev(user, patient, at=at, action="break_glass", basis="break_glass")


def _at_work(user, days) -> None:
    """Days at work as the detector recorded them (detection_userday)."""
    profile = StaffProfile.objects.get(user=user)
    for d in days:
        UserDay.objects.update_or_create(
            user_id=user.pk, day=d, defaults={"role": profile.role, "unit": profile.unit_label, "n_events": 20}
        )


def _colleagues(unit, *, n: int, uses: int) -> None:
    """``n`` physicians of ``unit`` at work 40 days of the last 90, each breaking the glass ``uses`` times."""
    for i in range(n):
        user = make_user(f"dr.peer{unit.code}{i}", Role.PHYSICIAN, [unit])
        days = [D - timedelta(days=2 * k + 1) for k in range(40)]
        _at_work(user, days)
        for k in range(uses):
            at = local(days[10 * k + i % 10], 11)
            EmergencyAccess.objects.create(
                user=user,
                patient=make_patient(),
                reason_category="emergency",
                reason_text=REASON,
                started_at=at,
                expires_at=at + timedelta(hours=4),
            )


def _three_over_weeks(user) -> None:
    for weeks in (3, 2, 0):  # one a week or so: never 3 within 7 days
        _break_glass(user, make_patient(), local(D - timedelta(days=7 * weeks + weeks), 10))


def test_three_uses_in_a_quarter_are_the_job_where_colleagues_break_the_glass_as_often(cast):
    _colleagues(CareUnit.objects.get(code="pneumo-t"), n=5, uses=3)  # 15 uses in 200 days at work
    _at_work(cast.other_physician, [D - timedelta(days=2 * k) for k in range(40)])
    _three_over_weeks(cast.other_physician)
    [hit] = hits(run(D), "break_glass", day=D)
    assert hit["detail"]["long_patients"] == 3 and hit["detail"]["expected_long"] == 3.0
    assert hit["points"] == 35
    assert not Alert.objects.exists()


def test_three_uses_in_a_quarter_alert_where_colleagues_rarely_break_the_glass(cast):
    _colleagues(CareUnit.objects.get(code="pneumo-t"), n=5, uses=0)
    _at_work(cast.other_physician, [D - timedelta(days=2 * k) for k in range(40)])
    _three_over_weeks(cast.other_physician)
    [hit] = hits(run(D), "break_glass", day=D)
    assert hit["points"] == 65 and hit["detail"]["expected_long"] == 0
    assert "attendus d'après les collègues" in Alert.objects.get().reason_fr


def test_a_spree_in_a_week_still_alerts_where_colleagues_break_the_glass_often(cast):
    _colleagues(CareUnit.objects.get(code="pneumo-t"), n=5, uses=3)
    _at_work(cast.other_physician, [D - timedelta(days=k) for k in range(3)])
    for k in (2, 1, 0):
        _break_glass(cast.other_physician, make_patient(), local(D - timedelta(days=k), 10))
    [hit] = hits(run(D), "break_glass", day=D)
    assert hit["detail"]["recent_patients"] == 3 and hit["points"] == 65


def test_the_units_own_rate_counts_when_it_breaks_the_glass_more(cast):
    # an emergency department: the role's rate across the hospital is low, the unit's is high
    er = CareUnit.objects.create(code="urg-t", name="Urgences (test)")
    _colleagues(CareUnit.objects.get(code="cardio-t"), n=5, uses=0)
    _colleagues(er, n=3, uses=3)  # 9 uses in 120 days at work
    doctor = make_user("dr.urg", Role.PHYSICIAN, [er])
    _at_work(doctor, [D - timedelta(days=2 * k) for k in range(40)])
    _three_over_weeks(doctor)
    [hit] = hits(run(D), "break_glass", day=D)
    assert hit["points"] == 35 and hit["detail"]["expected_long"] > 2


def test_uses_the_dpo_judged_justified_are_no_repeats(cast):
    for weeks, review in ((3, "justified"), (2, "justified"), (0, "pending")):
        _break_glass(
            cast.other_physician, make_patient(), local(D - timedelta(days=7 * weeks + weeks), 10), review=review
        )
    [hit] = hits(run(D), "break_glass", day=D)
    assert hit["detail"]["long_patients"] == 1 and hit["points"] == 35

"""volume and bulk_export: a day spent on the patients one's unit cares for is the job, however many.

Weekend rounds: the physician on duty opens every inpatient of the unit, and prints their letters and
prescriptions. Opening that many patients beyond one's care relationships, or exporting files one did not
otherwise touch, still alerts (tests/test_detection_rules_baselines.py).
"""

from datetime import timedelta

import pytest

from access.policy import Role
from patients.services import encounter_admit
from tests.detection_support import day_ago, ev, fast_password_hashing, hits, local, run  # noqa: F401
from tests.personas import make_patient, make_user

pytestmark = pytest.mark.django_db
D = day_ago(3)
FAKE = 50_000_000


def _inpatients(cast, n):
    patients = [make_patient() for _ in range(n)]
    for p in patients:
        encounter_admit(patient=p, unit=cast.cardio, start=local(D - timedelta(days=2), 8))
    return patients


def test_rounds_on_the_units_own_inpatients_are_not_a_volume_anomaly(cast):
    nurses = [make_user(f"ward.nurse{i}", Role.NURSE, [cast.cardio]) for i in range(6)]
    for n in range(4, 25):
        for k, nurse in enumerate(nurses):
            for j in range(5):
                ev(nurse, FAKE + k * 100 + j, at=local(day_ago(n), 9, j))
    for k, nurse in enumerate(nurses[1:]):
        for j in range(5):
            ev(nurse, FAKE + (k + 1) * 100 + j, at=local(D, 9, j))
    for j, p in enumerate(_inpatients(cast, 40)):
        ev(nurses[0], p, at=local(D, 10, j))
    summary = run(D - timedelta(days=21), D)
    assert not hits(summary, "volume", day=D)


def test_prints_of_the_patients_one_works_on_are_not_a_bulk_export(cast):
    for j, p in enumerate(_inpatients(cast, 20)):
        ev(cast.physician, p, at=local(D, 10, j))
        ev(cast.physician, p, at=local(D, 16, j), action="print")
    assert not hits(run(D), "bulk_export", user=cast.physician)


def test_files_exported_without_being_worked_on_are_a_bulk_export(cast):
    patients = _inpatients(cast, 20)
    for j, p in enumerate(patients[:5]):
        ev(cast.physician, p, at=local(D, 10, j))
    for j, p in enumerate(patients):
        ev(cast.physician, p, at=local(D, 16, j), action="export")
    [hit] = hits(run(D), "bulk_export", user=cast.physician)
    assert hit["detail"]["patients"] == 20 and hit["detail"]["export_only"] == 15

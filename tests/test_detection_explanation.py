"""Explanation first: an encounter, appointment, membership or order linking the user (or the user's unit) to
the patient near that time explains the access; the share of explained accesses is reported."""

from datetime import timedelta

import pytest

from access.models import CareTeamMembership
from audit.detection import selectors
from audit.detection.models import UserDay
from dpi.models import Prescription
from patients import services as patient_services
from patients.models import Appointment
from tests.detection_support import day_ago, ev, fast_password_hashing, local, run  # noqa: F401
from tests.personas import make_patient

pytestmark = pytest.mark.django_db
D = day_ago(3)


def explained_by(summary_day, user) -> tuple[int, int]:
    ud = UserDay.objects.get(user_id=user.pk, day=summary_day)
    return ud.n_explained_events, ud.n_patient_events


def test_each_kind_of_link_explains_and_nothing_else_does(cast):
    by_appointment, by_membership, by_order, unlinked = (make_patient() for _ in range(4))
    Appointment.objects.create(patient=by_appointment, unit=cast.other_unit, practitioner=cast.other_physician,
                               start=local(D, 9), end=local(D, 9, 30))
    CareTeamMembership.objects.create(patient=by_membership, user=cast.other_physician, start=local(D, 8),
                                      end=local(D, 20), reason="avis")
    Prescription.objects.create(patient=by_order, author=cast.other_physician, medication="amoxicilline",
                                instructions="1 g x 3 / j", start=D)
    Prescription.objects.filter(patient=by_order).update(created_at=local(D, 11))
    for p in (by_appointment, by_membership, by_order, unlinked):
        ev(cast.other_physician, p, at=local(D, 12))
    summary = run(D)
    assert explained_by(D, cast.other_physician) == (3, 4)
    assert summary.explained_share == 0.75


def test_unit_encounter_explains_only_near_its_dates(cast):
    later = make_patient()
    patient_services.encounter_admit(patient=later, unit=cast.cardio, start=local(D + timedelta(days=20), 9))
    ev(cast.physician, later, at=local(D, 12))  # three weeks before the stay: not near
    ev(cast.physician, cast.patient, at=local(D, 12))  # stay opens in 3 days: pre-admission, near
    run(D)
    assert explained_by(D, cast.physician) == (1, 2)


def test_hospital_wide_role_is_weakly_explained_by_any_units_stay(cast):
    ev(cast.reception, cast.patient, at=local(D, 12), category="administrative", basis="role")
    run(D)
    assert explained_by(D, cast.reception) == (1, 1)


def test_explained_share_selector(cast):
    ev(cast.physician, cast.patient, at=local(D, 12))
    ev(cast.other_physician, cast.patient, at=local(D, 12))
    run(D)
    share = selectors.explained_share(day_from=D, day_to=D)
    assert share["patient_events"] == 2 and share["explained_events"] == 1 and share["explained_share"] == 0.5

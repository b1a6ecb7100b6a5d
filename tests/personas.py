"""The cast: a physician and a nurse in the patient's unit, a physician of another unit, reception, the
DPO, a DIM physician, an outsider with no role; and a patient admitted to the cardiology unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from access.models import StaffProfile
from access.policy import Role
from patients import services as patient_services
from patients.ins import with_key
from patients.models import CareUnit, Patient

PASSWORD = "Correct-Horse-Battery-9!"


def make_user(username: str, role: Role | None, units: list[CareUnit] = (), **profile) -> User:
    user = User.objects.create_user(
        username=username, password=PASSWORD, first_name=username.title(), last_name="Staff"
    )
    if role is not None:
        group, _ = Group.objects.get_or_create(name=role.value)
        user.groups.add(group)
        sp = StaffProfile.objects.create(user=user, role=role.value, **profile)
        if units:
            sp.units.add(*units)
    return user


_counter = [0]


def make_patient(**fields) -> Patient:
    _counter[0] += 1
    n = _counter[0]
    defaults = {
        "ins": with_key(f"1850375{n:06d}"),
        "birth_name": f"DUPONT{n}",
        "first_name": "Jean",
        "sex": "M",
        "birth_date": timezone.localdate() - timedelta(days=365 * 40),
        "identity_status": Patient.IdentityStatus.QUALIFIED,
    }
    defaults.update(fields)
    return patient_services.patient_create(**defaults)


@dataclass
class Cast:
    cardio: CareUnit
    other_unit: CareUnit
    physician: User
    nurse: User
    other_physician: User
    reception: User
    dpo: User
    dim: User
    outsider: User
    patient: Patient
    encounter: object


@pytest.fixture
def cast(db) -> Cast:
    cardio = CareUnit.objects.create(code="cardio-t", name="Cardiologie (test)")
    other = CareUnit.objects.create(code="pneumo-t", name="Pneumologie (test)")
    physician = make_user("dr.house", Role.PHYSICIAN, [cardio])
    nurse = make_user("nurse.joy", Role.NURSE, [cardio])
    other_physician = make_user("dr.other", Role.PHYSICIAN, [other])
    reception = make_user("front.desk", Role.RECEPTION)
    dpo = make_user("the.dpo", Role.DPO)
    dim = make_user("dr.dim", Role.DIM)
    outsider = make_user("no.role", None)
    patient = make_patient()
    encounter = patient_services.encounter_admit(patient=patient, unit=cardio)
    return Cast(cardio, other, physician, nurse, other_physician, reception, dpo, dim, outsider, patient, encounter)

"""The cast: a physician and a nurse in the patient's unit, a physician of another unit, reception, the
DPO, a DIM physician, an outsider with no role; and a patient admitted to the cardiology unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cache

import pytest
from django.contrib.auth.hashers import get_hasher, make_password
from django.contrib.auth.models import Group, User
from django.utils import timezone

from access.models import StaffProfile
from access.policy import Role
from patients import services as patient_services
from patients.ins import with_key
from patients.models import CareUnit, Patient

PASSWORD = "Correct-Horse-Battery-9!"


@cache
def _hash_with(algorithm: str) -> str:
    return make_password(PASSWORD, hasher=algorithm)


def password_hash() -> str:
    """A real hash of PASSWORD by the configured hasher (Argon2id unless the test chose another), computed once per
    hasher and shared by every account of the cast: the cast alone would cost seven Argon2id hashes a test (about a
    second on the 2-core CI machine, minutes over the suite). Signing in still verifies it with the real hasher."""
    return _hash_with(get_hasher().algorithm)


def make_user(username: str, role: Role | None, units: list[CareUnit] = (), **profile) -> User:
    user = User.objects.create(
        username=User.normalize_username(username), password=password_hash(), first_name=username.title(),
        last_name="Staff",
    )
    if role is not None:
        group, _ = Group.objects.get_or_create(name=role.value)
        user.groups.add(group)
        sp = StaffProfile.objects.create(user=user, role=role.value, **profile)
        if units:
            sp.units.add(*units)
    return user


_counter = [0]


def _letters(n: int) -> str:
    """1 -> A, 26 -> Z, 27 -> AA...: names hold letters only (Référentiel INS)."""
    out = ""
    while n:
        n, r = divmod(n - 1, 26)
        out = chr(65 + r) + out
    return out


def coherent_ins(*, sex: str, birth_date, n: int, place: str = "75112") -> str:
    """A NIR that agrees with the traits (sex digit, year, month; born in ``place``)."""
    digit = "2" if sex == "F" else "1"
    return with_key(f"{digit}{birth_date.year % 100:02d}{birth_date.month:02d}{place[:2]}{n % 1000000:06d}")


def make_patient(**fields) -> Patient:
    """A patient through the real services. Default: a qualified identity (identity card checked, INS from the
    INSi simulator). ``identity_status`` picks the evidence; an explicit ``ins`` is used as given."""
    from patients.insi import InsiIdentity, InsiTraits, SimulatorBackend

    _counter[0] += 1
    n = _counter[0]
    status = fields.pop("identity_status", Patient.IdentityStatus.QUALIFIED)
    defaults = {
        "birth_name": f"DUPONT{_letters(n)}",
        "first_name": "Jean",
        "sex": "M",
        "birth_date": timezone.localdate() - timedelta(days=365 * 40),
        "birthplace_insee": "75112",
    }
    defaults.update(fields)
    if status in {"VALI", "QUAL"}:
        defaults.setdefault("validation_mode", "CN")
        defaults.setdefault("validation_date", timezone.localdate())
        defaults.setdefault("validated_by_name", "Accueil (jeu de test)")
    if status not in {"RECUP", "QUAL"}:
        return patient_services.patient_create(**defaults)
    ins = defaults.pop("ins", None) or coherent_ins(sex=defaults["sex"], birth_date=defaults["birth_date"], n=n)
    first_names = defaults.get("first_names") or defaults["first_name"]
    from patients.ins import normalise_trait

    SimulatorBackend.register(InsiIdentity(
        ins=ins, oid="1.2.250.1.213.1.4.11", birth_name=normalise_trait(defaults["birth_name"]),
        first_names=normalise_trait(first_names), sex=defaults["sex"], birth_date=defaults["birth_date"],
        birthplace_insee=defaults["birthplace_insee"]))
    answer = patient_services.insi_search(actor=None, traits=InsiTraits(
        birth_name=defaults["birth_name"], first_names=first_names, sex=defaults["sex"],
        birth_date=defaults["birth_date"], birthplace_insee=defaults["birthplace_insee"], ins=ins))
    return patient_services.patient_create(insi=answer, **defaults)


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

import hashlib

import pytest

from dpi.models import ClinicalNote, Observation
from dpi.seeding import seed
from patients.models import Encounter, Patient

pytestmark = pytest.mark.django_db


def fingerprint() -> str:
    h = hashlib.sha256()
    for p in Patient.objects.order_by("ipp"):
        h.update(
            f"{p.ipp}|{p.ins}|{p.birth_name}|{p.first_name}|{p.birth_date}|{p.address}|{p.identity_status}".encode()
        )
    for e in Encounter.objects.select_related("patient", "unit").order_by("patient__ipp", "start"):
        h.update(f"{e.patient.ipp}|{e.unit.code}|{e.start}|{e.end}".encode())
    for n in ClinicalNote.objects.select_related("patient").order_by("patient__ipp", "id"):
        h.update(f"{n.patient.ipp}|{n.body}".encode())
    for o in Observation.objects.select_related("patient").order_by("patient__ipp", "id"):
        h.update(f"{o.patient.ipp}|{o.loinc}|{o.value}".encode())
    return h.hexdigest()


def wipe():
    from django.contrib.auth.models import User

    from access.models import StaffProfile

    for model in (ClinicalNote, Observation):
        model.objects.all().delete()
    Patient.objects.all().delete()
    StaffProfile.objects.all().delete()
    User.objects.all().delete()


def test_same_seed_gives_the_same_data():
    seed(patients=20, seed=42)
    first = fingerprint()
    assert Patient.objects.count() == 20
    wipe()
    seed(patients=20, seed=42)
    assert fingerprint() == first


def test_another_seed_gives_other_data():
    seed(patients=20, seed=42)
    first = fingerprint()
    wipe()
    seed(patients=20, seed=43)
    assert fingerprint() != first


def test_seeded_ins_have_valid_keys():
    from patients.ins import validate_ins

    seed(patients=30, seed=5)
    for p in Patient.objects.all():
        validate_ins(p.ins)

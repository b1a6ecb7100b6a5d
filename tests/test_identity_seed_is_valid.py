"""The demo seed produces identities valid under the identity-vigilance rules (status backed by evidence, INS
coherent with the traits, birth places from the reference list, strict traits as the referential writes them)."""

import pytest

from dpi.seeding import seed
from patients.models import Patient

pytestmark = pytest.mark.django_db


def test_seeded_identities_pass_every_identity_rule():
    seed(patients=120, seed=11, history_days=0)
    bad = {}
    statuses = set()
    for patient in Patient.objects.all():
        statuses.add(patient.identity_status)
        patient.full_clean()  # raises on any broken rule, naming the field
        errors = patient.identity_errors()
        if errors:
            bad[patient.ipp] = errors
    assert bad == {}
    assert statuses == {"PROV", "RECUP", "VALI", "QUAL"}
    assert Patient.objects.filter(birthplace_insee__startswith="99").exists()
    assert Patient.objects.filter(birthplace_insee__startswith="2").exclude(birthplace_insee__regex=r"^2\d").exists()

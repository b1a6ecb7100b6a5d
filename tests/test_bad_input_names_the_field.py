from datetime import date, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from patients import services
from patients.ins import with_key
from patients.models import Encounter, Patient

pytestmark = pytest.mark.django_db

BASE = {"birth_name": "MARTIN", "first_name": "Zoé", "sex": "F", "birth_date": date(1990, 5, 17)}


def test_invalid_ins_key_is_refused_and_nothing_saved():
    good = with_key("2900575123456")
    bad = good[:13] + f"{(int(good[13:]) + 3) % 100:02d}"
    with pytest.raises(ValidationError) as exc:
        services.patient_create(ins=bad, **BASE)
    assert "ins" in exc.value.message_dict
    assert not Patient.objects.filter(birth_name="MARTIN").exists()


def test_impossible_date_is_refused():
    with pytest.raises(ValidationError) as exc:
        services.patient_create(**{**BASE, "birth_date": timezone.localdate() + timedelta(days=3)})
    assert "birth_date" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        services.patient_create(**{**BASE, "birth_date": "1990-02-30"})
    assert "birth_date" in exc.value.message_dict
    assert not Patient.objects.filter(birth_name="MARTIN").exists()


def test_unknown_unit_is_refused_and_nothing_saved(cast):
    with pytest.raises(ValidationError) as exc:
        services.encounter_admit(patient=cast.patient, unit="no-such-unit")
    assert "unit" in exc.value.message_dict
    assert Encounter.objects.filter(patient=cast.patient).count() == 1


def test_discharge_before_admission_is_refused(cast):
    with pytest.raises(ValidationError) as exc:
        services.encounter_discharge(encounter=cast.encounter, end=cast.encounter.start - timedelta(hours=1))
    assert "end" in exc.value.message_dict
    cast.encounter.refresh_from_db()
    assert cast.encounter.end is None

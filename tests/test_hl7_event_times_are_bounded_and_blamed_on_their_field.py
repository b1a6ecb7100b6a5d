"""HL7 times obey the REST API's bounds (years 1900 to 2100), and a refused movement time names the field
that held it (here EVN-2), not PV1-44."""

from __future__ import annotations

import pytest

from dpi.hl7 import testing as t
from dpi.hl7.receiver import receive
from patients.models import CareUnit, Encounter, Patient

pytestmark = pytest.mark.django_db


@pytest.fixture
def unit():
    return CareUnit.objects.create(code="MED", name="Médecine")


def _admission_at_evn2(ipp: str, evn2: str, **identity) -> str:
    """An A01 whose only movement time is EVN-2 (no ZBE, EVN-6 or PV1-44)."""
    return "\r".join([t.msh("A01"), f"EVN|A01|{evn2}", t.pid(ipp, **identity), t.pv1(f"V{ipp}", "MED")]) + "\r"


def test_an_event_time_after_2100_is_refused_on_its_field(unit):
    answer = receive(_admission_at_evn2("8103", "25001203100000"))
    assert t.ack_fields(answer) | {"control_id": ""} == {
        "code": "AE", "control_id": "", "err_location": "EVN^1^2", "err_code": "102"
    }
    assert not Patient.objects.filter(ipp="8103").exists()


@pytest.mark.parametrize("evn2", ["18001203100000", "19500101100000"])
def test_a_bad_movement_time_is_blamed_on_the_field_that_held_it(unit, evn2):
    answer = receive(_admission_at_evn2("8104", evn2))  # 1950: before the birth (1980)
    assert t.ack_fields(answer)["code"] == "AE"
    assert t.ack_fields(answer)["err_location"] == "EVN^1^2"
    assert not Encounter.objects.filter(patient__ipp="8104").exists()

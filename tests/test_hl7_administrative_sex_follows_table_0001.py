"""PID-8 takes the values of HL7 table 0001 (F, M, O, U, A, N); anything else is refused on PID-8."""

from __future__ import annotations

import pytest

from dpi.hl7 import testing as t
from dpi.hl7.receiver import receive
from patients.models import Patient

pytestmark = pytest.mark.django_db


def test_an_administrative_sex_outside_table_0001_is_refused():
    answer = receive(t.adt("A28", "8105", sex="Q"))
    assert t.ack_fields(answer) | {"control_id": ""} == {
        "code": "AE", "control_id": "", "err_location": "PID^1^8", "err_code": "103"
    }
    assert not Patient.objects.filter(ipp="8105").exists()
    for code, stored in (("A", "U"), ("N", "U"), ("O", "U"), ("U", "U"), ("M", "M"), ("f", "F")):
        ipp = f"8105{code}"
        assert t.ack_fields(receive(t.adt("A28", ipp, sex=code)))["code"] == "AA"
        assert Patient.objects.get(ipp=ipp).sex == stored

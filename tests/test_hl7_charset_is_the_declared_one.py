"""Bytes that are not valid in the message's declared character set (MSH-18) get an AR on MSH-18 saying
so, and the acknowledgement is encoded in that character set."""

from __future__ import annotations

import pytest

from dpi.hl7 import mllp
from dpi.hl7 import testing as t
from dpi.hl7.models import InboundMessage
from patients.models import Patient

pytestmark = pytest.mark.django_db


def _err_text(answer: str) -> str:
    return next(s for s in answer.split("\r") if s.startswith("ERR|")).split("|")[8]


def test_bytes_outside_the_declared_charset_are_refused_in_that_charset():
    message = t.adt("A28", "8107", control_id="CS-1").replace("|8859/1", "|UNICODE UTF-8")
    payload = message.encode("utf-8").replace(b"MARTIN", b"MA\xff\xfeRTIN")
    framed = mllp.answer(payload)
    assert framed.startswith(mllp.START) and framed.endswith(mllp.END)
    text = framed[1:-2].decode("utf-8")  # the ACK is in the declared charset
    assert t.ack_fields(text) == {"code": "AR", "control_id": "CS-1", "err_location": "MSH^1^18", "err_code": "102"}
    assert "UNICODE UTF-8" in _err_text(text)
    assert not Patient.objects.filter(ipp="8107").exists()
    assert InboundMessage.objects.get(control_id="CS-1").status == InboundMessage.Status.REJECTED
    accented = t.adt("A28", "8108", family="LÉA").replace("|8859/1", "|UNICODE UTF-8")
    answer = mllp.answer(accented.encode("utf-8"))
    assert t.ack_fields(answer[1:-2].decode("utf-8"))["code"] == "AA"
    assert Patient.objects.get(ipp="8108").birth_name == "LEA"  # read as UTF-8 (then RNIV: no accents)

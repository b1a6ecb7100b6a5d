"""The HL7 acknowledgement's shape, the dead-letter command (list, show with its access recorded, replay,
dismiss), and all-or-nothing results."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from audit.models import AccessEvent
from dpi.hl7 import testing as t
from dpi.hl7.models import InboundMessage
from dpi.hl7.receiver import receive
from dpi.models import Observation
from patients.models import CareUnit, Patient

pytestmark = pytest.mark.django_db


def _segments(answer: str) -> dict[str, list[str]]:
    return {s.split("|")[0]: s.split("|") for s in answer.split("\r") if s}


def test_an_acknowledgement_answers_the_sender_about_its_message():
    message = t.adt("A28", "7001", control_id="CTRL-1")
    seg = _segments(receive(message))
    assert seg["MSH"][2:6] == ["DPI", "DPI", "GAM", "CHU-TEST"]  # sender and receiver swapped
    assert seg["MSH"][8] == "ACK^A28^ACK" and seg["MSH"][11] == "2.5"
    assert seg["MSA"][1:3] == ["AA", "CTRL-1"]
    assert "ERR" not in seg
    bad = _segments(receive(t.adt("A28", "7002", control_id="CTRL-2", birth="1980|13")))
    assert bad["MSA"][1:3] == ["AE", "CTRL-2"]
    assert bad["ERR"][2] == "PID^1^7" and bad["ERR"][3] == "102^Data type error^HL70357" and bad["ERR"][4] == "E"


def test_a_result_message_is_applied_whole_or_not_at_all():
    CareUnit.objects.create(code="MED", name="Médecine")
    receive(t.adt("A01", "7003", visit="V7003", unit="MED"))
    answer = receive(
        t.oru("7003", [("2345-7", "Glucose", "NM", "5.1", "mmol/L", ""), ("718-7", "Hb", "XX", "13", "g/dL", "")])
    )
    assert t.ack_fields(answer) | {"control_id": ""} == {
        "code": "AE",
        "control_id": "",
        "err_location": "OBX^2^2",
        "err_code": "103",
    }
    assert not Observation.objects.filter(patient__ipp="7003").exists()
    receive(
        t.oru(
            "7003",
            [("2345-7", "Glucose", "NM", "5.1", "mmol/L", ""), ("X1", "Aspect", "ST", "clair", "", "")],
            visit="V7003",
        )
    )
    values = sorted(
        (o.loinc, o.label, o.value_text, o.encounter_id is not None)
        for o in Observation.objects.filter(patient__ipp="7003")
    )
    assert values == [("2345-7", "Glucose", "", True), ("X1", "Aspect", "clair", True)]


def test_dead_letters_are_listed_shown_replayed_and_dismissed():
    receive(t.adt("A01", "7004", visit="V7004", unit="NEPHRO", control_id="DL-1"))
    receive(t.adt("A99", "7005", control_id="DL-2"))
    out = StringIO()
    call_command("hl7_deadletters", stdout=out)
    listing = out.getvalue()
    assert "DL-1\tAE\tPV1-3" in listing and "DL-2\tAR\tMSH-9" in listing and "2 dead letter(s)." in listing
    first = InboundMessage.objects.get(control_id="DL-1")
    shown = StringIO()
    call_command("hl7_deadletters", show=first.pk, stdout=shown)
    assert "PID|1||7004" in shown.getvalue()
    assert AccessEvent.objects.filter(
        basis="system:hl7_support", resource_type="hl7message", resource_id=str(first.pk)
    ).exists()
    CareUnit.objects.create(code="NEPHRO", name="Néphrologie")
    call_command("hl7_deadletters", replay=[first.pk], stdout=StringIO())
    assert Patient.objects.filter(ipp="7004").exists()
    second = InboundMessage.objects.get(control_id="DL-2")
    call_command("hl7_deadletters", dismiss=[second.pk], stdout=StringIO())
    out = StringIO()
    call_command("hl7_deadletters", stdout=out)
    assert out.getvalue().strip() == "0 dead letter(s)."
    # The sender retransmits the message that was refused then applied: the stored answer, nothing more.
    again = receive(t.adt("A01", "7004", visit="V7004", unit="NEPHRO", control_id="DL-1"))
    assert t.ack_fields(again)["code"] == "AA"
    assert InboundMessage.objects.get(control_id="DL-1").attempts == 2


def test_a_control_id_is_unique_for_its_sender_only():
    first = receive(t.adt("A28", "7010", control_id="0001"))
    from_lab = t.adt("A28", "7011", control_id="0001").replace("|GAM|", "|LABO|", 1)
    second = receive(from_lab)
    assert t.ack_fields(first)["code"] == t.ack_fields(second)["code"] == "AA"
    assert Patient.objects.filter(ipp__in=["7010", "7011"]).count() == 2
    assert receive(from_lab) == second  # the same sender's retransmission: the stored answer
    assert InboundMessage.objects.filter(control_id="0001").count() == 2


def test_an_upside_down_reference_range_is_refused_on_obx_7():
    """The result's own rules (``Observation.clean``, as on the REST API) answered on the field that held it."""
    CareUnit.objects.create(code="MED", name="Médecine")
    receive(t.adt("A01", "7010", visit="V7010", unit="MED"))
    answer = receive(t.oru("7010", [("2345-7", "Glucose", "NM", "4.1", "mmol/L", "5-3.5")], visit="V7010"))
    fields = t.ack_fields(answer)
    assert (fields["code"], fields["err_location"]) == ("AE", "OBX^1^7"), answer
    assert not Observation.objects.filter(patient__ipp="7010").exists()

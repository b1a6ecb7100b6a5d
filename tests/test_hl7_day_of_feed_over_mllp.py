"""A day of a synthetic hospital's ADT and ORU feed sent over a real TCP socket to the running MLLP listener:
admissions, transfers, discharges, their cancellations, leaves, pre-admissions, class changes, identity updates
(one arriving late), results and a correction, duplicates, a discharge before its admission, and malformed
messages. Checked: every acknowledgement (code, control id, field named), the database, the care teams, the
dead-letter list and its replay; a refused message changes nothing."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from access import gate
from access.models import CareGrant
from access.policy import Action, Category, Role
from audit.models import AccessEvent
from dpi.hl7 import testing as t
from dpi.hl7.mllp import frame, serve
from dpi.hl7.models import InboundMessage, VisitLink
from dpi.models import Observation
from patients.models import CareUnit, Encounter, Patient
from tests.personas import make_user

pytestmark = pytest.mark.django_db(transaction=True)

GLUCOSE = ("2345-7", "Glucose", "NM", "5.4", "mmol/L", "3.9-6.1")
CRP = ("1988-5", "CRP", "NM", "12", "mg/L", "0-5")


@pytest.fixture
def listener():
    server = serve("127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    client = t.MllpClient(*server.server_address)
    yield client
    client.close()
    server.shutdown()
    server.server_close()


@pytest.fixture
def hospital():
    units = {
        code: CareUnit.objects.create(code=code, name=code.title()) for code in ("CARDIO", "PNEUMO", "URG", "CONSULT")
    }
    return {
        "units": units,
        "nurse_cardio": make_user("nurse.cardio", Role.NURSE, [units["CARDIO"]]),
        "doc_pneumo": make_user("dr.pneumo", Role.PHYSICIAN, [units["PNEUMO"]]),
        "doc_urg": make_user("dr.urg", Role.PHYSICIAN, [units["URG"]]),
    }


def _snapshot() -> tuple[int, ...]:
    return (
        Patient.objects.count(),
        Encounter.objects.count(),
        Observation.objects.count(),
        CareGrant.objects.count(),
        VisitLink.objects.count(),
        AccessEvent.objects.exclude(action="search").filter(actor_unit="hl7_feed").count(),
    )


def _in_care(user, patient: Patient) -> bool:
    return gate.decide(user, patient_id=patient.pk, category=Category.MEDICAL, action=Action.VIEW).allowed


def test_a_day_of_adt_and_results(listener, hospital):
    day = (timezone.localdate() - timedelta(days=1)).strftime("%Y%m%d")  # yesterday: care teams still apply
    sent: list[tuple[str, str, str, str]] = []  # (control id, expected code, expected ERR location, answer)

    def send(message: str, code: str = "AA", location: str = "") -> str:
        control_id = message.split("\r")[0].split("|")[9]
        answer = listener.send(message)
        sent.append((control_id, code, location, answer))
        return answer

    def refused(message: str, code: str, location: str) -> None:
        before = _snapshot()
        send(message, code, location)
        assert _snapshot() == before, message.split("\r")[0]

    # 07:00-08:59 arrivals
    send(t.adt("A28", "1001", when=f"{day}070000", family="MARTIN", given="Jeanne"))
    a01 = t.adt("A01", "1001", visit="V101", unit="CARDIO", when=f"{day}080000")
    send(a01)
    send(
        t.adt(
            "A04",
            "1002",
            visit="V102",
            unit="CONSULT",
            patient_class="O",
            when=f"{day}081000",
            family="BERNARD",
            given="Paul",
            sex="M",
            birth="19551103",
        )
    )
    send(
        t.adt(
            "A01",
            "1003",
            visit="V103",
            unit="URG",
            patient_class="E",
            when=f"{day}082000",
            family="PETIT",
            given="Lea",
            birth="20010220",
        )
    )
    send(
        t.adt(
            "A11", "1003", visit="V103", unit="URG", when=f"{day}083000", family="PETIT", given="Lea", birth="20010220"
        )
    )
    send(
        t.adt(
            "A06",
            "1002",
            visit="V102",
            unit="CONSULT",
            when=f"{day}084000",
            family="BERNARD",
            given="Paul",
            sex="M",
            birth="19551103",
        )
    )
    send(
        t.adt(
            "A01",
            "1007",
            visit="V108",
            unit="PNEUMO",
            when=f"{day}080500",
            family="ROUX",
            given="Marc",
            sex="M",
            birth="19700101",
        )
    )
    send(
        t.adt(
            "A01",
            "1008",
            visit="V109",
            unit="CARDIO",
            when=f"{day}081500",
            family="FAURE",
            given="Ines",
            birth="19990909",
        )
    )
    send(
        t.adt(
            "A07",
            "1008",
            visit="V109",
            unit="CARDIO",
            when=f"{day}085000",
            family="FAURE",
            given="Ines",
            birth="19990909",
        )
    )
    # 09:00 results, a transfer cancelled, a duplicate admission message
    oru = t.oru("1001", [GLUCOSE, CRP], visit="V101", when=f"{day}090000")
    send(oru)
    assert send(a01) == sent[1][3]  # the same control id: the same answer, nothing done twice
    send(
        t.adt(
            "A01",
            "1004",
            visit="V104",
            unit="CARDIO",
            when=f"{day}090000",
            family="MOREL",
            given="Anne",
            birth="19620606",
        )
    )
    send(
        t.adt(
            "A02",
            "1004",
            visit="V104",
            unit="PNEUMO",
            when=f"{day}093000",
            family="MOREL",
            given="Anne",
            birth="19620606",
        )
    )
    send(
        t.adt(
            "A12",
            "1004",
            visit="V104",
            unit="PNEUMO",
            when=f"{day}094500",
            family="MOREL",
            given="Anne",
            birth="19620606",
        )
    )
    # 10:00 a discharge that arrives before its admission (recorded at 07:30), then the admission
    early_discharge = t.adt(
        "A03", "1005", visit="V105", when=f"{day}100000", family="GIRARD", given="Luc", sex="M", birth="19880808"
    )
    send(early_discharge, "AE", "PID^1^3")  # unknown patient yet: kept, and retried after the admission
    send(
        t.adt(
            "A01",
            "1005",
            visit="V105",
            unit="CARDIO",
            when=f"{day}073000",
            family="GIRARD",
            given="Luc",
            sex="M",
            birth="19880808",
        )
    )
    send(t.adt("A02", "1001", visit="V101", unit="PNEUMO", when=f"{day}100000"))
    send(oru)  # a resent result message
    # 11:00 pre-admissions, leave of absence, a correction
    send(
        t.adt(
            "A05",
            "1006",
            visit="V106",
            unit="CARDIO",
            when=f"{day}110000",
            family="LEROY",
            given="Eva",
            birth="19450315",
        )
    )
    send(t.adt("A38", "1006", visit="V106", when=f"{day}113000", family="LEROY", given="Eva", birth="19450315"))
    send(
        t.adt(
            "A05",
            "1006",
            visit="V107",
            unit="CARDIO",
            when=f"{day}114000",
            family="LEROY",
            given="Eva",
            birth="19450315",
        )
    )
    send(
        t.adt(
            "A01",
            "1006",
            visit="V107",
            unit="CARDIO",
            when=f"{day}115000",
            family="LEROY",
            given="Eva",
            birth="19450315",
        )
    )
    send(t.oru("1001", [("2345-7", "Glucose", "NM", "6.8", "mmol/L", "3.9-6.1")], when=f"{day}090000", status="C"))
    # 12:00 identity updates: the 12:00 one, then an older (11:00) one arriving late
    send(
        t.adt(
            "A08",
            "1002",
            visit="V102",
            when=f"{day}120000",
            family="BERNARD",
            given="Paul",
            sex="M",
            birth="19551103",
            usual="DURAND",
        )
    )
    send(
        t.adt(
            "A08",
            "1002",
            visit="V102",
            when=f"{day}110000",
            family="BERNARD",
            given="Paul",
            sex="M",
            birth="19551103",
            usual="ANCIEN",
        )
    )
    send(t.adt("A21", "1004", visit="V104", when=f"{day}130000", family="MOREL", given="Anne", birth="19620606"))
    # 14:00-16:00 discharges, one cancelled
    send(
        t.adt("A03", "1007", visit="V108", when=f"{day}140000", family="ROUX", given="Marc", sex="M", birth="19700101")
    )
    send(
        t.adt("A13", "1007", visit="V108", when=f"{day}143000", family="ROUX", given="Marc", sex="M", birth="19700101")
    )
    send(t.adt("A22", "1004", visit="V104", when=f"{day}150000", family="MOREL", given="Anne", birth="19620606"))
    send(t.adt("A03", "1001", visit="V101", when=f"{day}160000"))
    # 17:00 identity vigilance: two files of one person merged (A40); a merge of two different people refused
    send(t.adt("A28", "1009", when=f"{day}170000", family="NOEL", given="Rose", birth="19770707"))
    send(t.adt("A28", "1010", when=f"{day}170100", family="NOEL", given="Rose", birth="19770707"))
    send(t.oru("1010", [CRP], when=f"{day}170200"))
    send(t.merge("1009", "1010", when=f"{day}170300", family="NOEL", given="Rose", birth="19770707"))
    send(t.adt("A01", "1010", visit="V110", unit="CARDIO", when=f"{day}170400", family="NOEL", given="Rose",
               birth="19770707"))

    # Malformed or impossible messages: answered AE/AR naming the field, nothing changed.
    refused(t.adt("A28", "2001", birth="19801340"), "AE", "PID^1^7")
    refused(t.adt("A28", "2010", birth=""), "AE", "PID^1^7")
    refused(t.adt("A01", "2002", visit="", unit="CARDIO"), "AE", "PV1^1^19")
    unknown_unit = t.adt("A01", "2003", visit="V203", unit="NEURO", when=f"{day}170000")
    refused(unknown_unit, "AE", "PV1^1^3")
    refused(t.adt("A99", "2004"), "AR", "MSH^1^9")
    refused(_without_control_id(t.adt("A28", "2005")), "AR", "MSH^1^10")
    refused(t.adt("A01", "2006", visit="V206", unit="CARDIO").replace("\rPV1|", "\rPIX|1\rPV1|"), "AR", "PIX")
    refused(t.oru("1001", [GLUCOSE, ("1988-5", "CRP", "NM", "abc", "mg/L", "")]), "AE", "OBX^2^5")
    refused(t.oru("2009", [GLUCOSE]), "AE", "PID^1^3")
    refused(t.adt("A01", "1001", visit="V101", unit="CARDIO", when=f"{day}170000"), "AE", "PV1^1^19")
    refused(t.merge("1008", "1007", family="FAURE", given="Ines", birth="19990909"), "AE", "MRG^1^1")
    before = _snapshot()
    listener.send_raw(frame("HELLO, this is not HL7"))
    assert t.ack_fields(listener.read_ack())["code"] == "AR"
    assert _snapshot() == before

    # Every message answered, with its own control id, the expected code and the field at fault.
    for control_id, code, location, answer in sent:
        fields = t.ack_fields(answer)
        assert (fields["code"], fields["control_id"]) == (code, control_id), answer
        assert fields["err_location"] == location, answer

    # The database: stays and movements as the feed says.
    def stays(ipp: str) -> list[tuple[str, str, bool]]:
        return [
            (e.unit.code, e.kind, e.end is None)
            for e in Encounter.objects.filter(patient__ipp=ipp).select_related("unit").order_by("start", "pk")
        ]

    assert stays("1001") == [("CARDIO", "stay", False), ("PNEUMO", "stay", False)]
    assert stays("1002") == [("CONSULT", "stay", True)]
    assert stays("1003") == []
    assert stays("1004") == [("CARDIO", "stay", True)]
    assert stays("1005") == [("CARDIO", "stay", False)]  # the early discharge applied once its admission came
    assert stays("1006") == [("CARDIO", "stay", True)]
    assert stays("1007") == [("PNEUMO", "stay", True)]
    assert stays("1008") == [("CARDIO", "consultation", True)]
    assert not VisitLink.objects.filter(visit_number__in=["V103", "V106"]).exists()
    assert VisitLink.objects.get(visit_number="V104").leave_since is None
    assert Patient.objects.get(ipp="1002").used_name == "DURAND"  # the late 11:00 update did not undo 12:00
    assert not Patient.objects.filter(ipp__startswith="20").exists()
    results = {o.loinc: o for o in Observation.objects.filter(patient__ipp="1001")}
    assert set(results) == {"2345-7", "1988-5"} and len(Observation.objects.filter(patient__ipp="1001")) == 2
    assert (results["2345-7"].value, results["2345-7"].version) == (Decimal("6.8"), 2)
    assert results["1988-5"].reference_high == Decimal("5")
    assert InboundMessage.objects.filter(control_id=sent[1][0]).get().attempts == 1

    # The merge: the merged file is an alias, its results moved, a later message with its IPP reached the kept file.
    assert Patient.objects.get(ipp="1010").is_merged
    assert stays("1009") == [("CARDIO", "stay", True)] and stays("1010") == []
    assert Observation.objects.filter(patient__ipp="1009", loinc="1988-5").count() == 1

    # Care teams follow the movements (as for the JSON ADT endpoint).
    p = {ipp: Patient.objects.get(ipp=ipp) for ipp in ("1001", "1003", "1004", "1007")}
    assert _in_care(hospital["nurse_cardio"], p["1001"]) and _in_care(hospital["doc_pneumo"], p["1001"])
    assert not _in_care(hospital["doc_urg"], p["1003"])  # admission cancelled
    assert not _in_care(hospital["doc_pneumo"], p["1004"])  # transfer cancelled
    assert _in_care(hospital["nurse_cardio"], p["1004"])
    assert _in_care(hospital["doc_pneumo"], p["1007"]) and not _in_care(hospital["doc_urg"], p["1007"])

    # Every write went through the gate's system path, recorded.
    events = AccessEvent.objects.filter(actor_unit="hl7_feed", patient_id=p["1001"].pk)
    assert {(e.action, e.outcome, e.basis) for e in events} >= {
        ("create", "allowed", "system:hl7_feed"),
        ("amend", "allowed", "system:hl7_feed"),
    }

    # The dead-letter list, and a replay once the cause is fixed (the unit now exists).
    dead = InboundMessage.objects.filter(status__in=["error", "rejected"])
    assert dead.count() == 12
    CareUnit.objects.create(code="NEURO", name="Neurologie")
    row = dead.get(error_field="PV1-3")
    call_command("hl7_deadletters", replay=[row.pk])
    row.refresh_from_db()
    assert (row.status, row.ack_code) == ("processed", "AA")
    assert stays("2003") == [("NEURO", "stay", True)]


def _without_control_id(message: str) -> str:
    first, rest = message.split("\r", 1)
    fields = first.split("|")
    fields[9] = ""
    return "|".join(fields) + "\r" + rest

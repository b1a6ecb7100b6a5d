"""The ADT feed (HL7 v2 and the REST endpoints) and FHIR honour the identity rules of the reception desk: one
service (``patients.services``), no second path. Each identity case gives the same verdict, on the same field,
through the service, the REST API, an HL7 A28 (AE with ERR at that field) and a FR Core Patient; a strict-trait
edit of a qualified identity by an HL7 A31 downgrades it like any other edit; the stay rules hold for HL7 A01."""

from datetime import date

import pytest
from django.core.exceptions import ValidationError

from dpi.api.testing import bearer, make_api_client, post_json
from dpi.fhir import mapping
from dpi.hl7 import feed
from dpi.hl7 import testing as t
from dpi.hl7.receiver import receive
from patients import services
from patients.ins import with_key
from patients.models import CareUnit, Encounter, Patient
from tests.helpers import audit_events
from tests.personas import make_patient

pytestmark = pytest.mark.django_db

INS = with_key("1850375112001")  # a man born in March 1985 in Paris 12e
# (case, sex, birth date, birth place, birth name, INS, fields refused)
CASES = [
    ("coherent", "M", date(1985, 3, 14), "75112", "MARTIN", INS, set()),
    ("sex_contradicts_ins", "F", date(1985, 3, 14), "75112", "MARTIN", INS, {"sex"}),
    ("year_contradicts_ins", "M", date(1990, 3, 14), "75112", "MARTIN", INS, {"birth_date"}),
    ("wrong_key", "M", date(1985, 3, 14), "75112", "MARTIN", INS[:13] + "00", {"ins"}),
    ("born_abroad_per_ins", "M", date(1985, 3, 14), "75112", "MARTIN", with_key("1850399352001"),
     {"birthplace_insee"}),
    ("unknown_birth_place", "M", date(1985, 3, 14), "75999", "MARTIN", "", {"birthplace_insee"}),
    ("digits_in_name", "M", date(1985, 3, 14), "75112", "MARTIN2", "", {"birth_name"}),
]
IDS = [c[0] for c in CASES]


def _hl7(event: str, ipp: str, *, sex, born, place, name, ins, **extra) -> str:
    """An IHE PAM France message: the INS as a PID-3 repetition of type INS, the birth place as PID-11 type BDL."""
    text = t.adt(event, ipp, family=name, given="Paul", sex=sex, birth=born.strftime("%Y%m%d"), status="PROV",
                 **extra)
    segments = text.split("\r")
    for n, segment in enumerate(segments):
        if segment.startswith("PID|"):
            fields = segment.split("|")
            if ins:
                fields[3] += f"~{ins}^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS"
            fields[11] += f"~^^^^^^BDL^^{place}"
            segments[n] = "|".join(fields)
    return "\r".join(segments)


def _fhir(*, sex, born, place, name, ins) -> dict:
    resource = {"resourceType": "Patient", "extension": [mapping.birth_place(place)],
                "name": [{"use": "official", "family": name, "given": ["Paul"]}],
                "gender": {"M": "male", "F": "female"}[sex], "birthDate": born.isoformat()}
    if ins:
        resource["identifier"] = [{"system": mapping.OID_INS_NIR_TEST, "value": ins}]
    return resource


@pytest.mark.parametrize(("case", "sex", "born", "place", "name", "ins", "refused"), CASES, ids=IDS)
def test_the_same_verdict_on_every_feed(client, case, sex, born, place, name, ins, refused):
    traits = {"sex": sex, "born": born, "place": place, "name": name, "ins": ins}
    fields = {"birth_name": name, "first_name": "Paul", "sex": sex, "birth_date": born, "birthplace_insee": place,
              "ins": ins}
    # The service.
    try:
        services.patient_create(**fields).delete()
        verdict: set[str] = set()
    except ValidationError as exc:
        verdict = set(exc.message_dict)
    assert verdict == refused
    # The REST API (its ADT identity endpoint).
    _, token = make_api_client()
    response = post_json(client, "/api/patients/", {**fields, "birth_date": born.isoformat()}, **bearer(token))
    assert (response.status_code, set(response.json()) & (refused or {"-"})) == \
        ((400, refused) if refused else (201, set())), response.content
    Patient.objects.filter(birth_name=name).delete()
    # HL7 v2: A28 (add person), refused with ERR at that field.
    answer = t.ack_fields(receive(_hl7("A28", f"H{IDS.index(case)}", **traits)))
    if refused:
        assert answer["code"] == "AE"
        location = answer["err_location"].split("^")
        assert f"{location[0]}-{location[2]}" in {feed.FIELD_OF[f] for f in refused}, answer
    else:
        assert answer["code"] == "AA", answer
        patient = Patient.objects.get(ipp=f"H{IDS.index(case)}")
        assert (patient.ins, patient.birthplace_insee, patient.identity_status) == (ins, place, "PROV")
        patient.delete()
    # FHIR (FR Core Patient in): the mapping feeds the same service.
    try:
        services.patient_create(**mapping.patient_fields_from_resource(_fhir(**traits)))
        from_fhir: set[str] = set()
    except ValidationError as exc:
        from_fhir = set(exc.message_dict)
    assert from_fhir == refused


def test_an_hl7_update_of_a_strict_trait_downgrades_a_qualified_identity():
    patient = make_patient(birth_name="LEROY", first_name="Paul", sex="M", birth_date=date(1985, 3, 14),
                           birthplace_insee="75112", ins=INS)
    assert patient.identity_status == "QUAL"
    answer = t.ack_fields(receive(_hl7("A31", patient.ipp, sex="M", born=date(1985, 3, 14), place="75112",
                                       name="LEROI", ins="")))
    assert answer["code"] == "AA", answer
    patient.refresh_from_db()
    assert (patient.birth_name, patient.identity_status, patient.insi_date) == ("LEROI", "PROV", None)
    assert audit_events(patient_id=patient.pk, basis="identity:update")
    # FHIR then publishes it without its INS, like the API.
    assert mapping.ins_identifier(patient) is None


def test_hl7_admissions_follow_the_stay_rules():
    CareUnit.objects.create(code="MED", name="Médecine")
    baby = make_patient(identity_status="PROV", birth_date=date(2026, 3, 10))
    early = t.ack_fields(receive(t.adt("A01", baby.ipp, visit="V-EARLY", unit="MED", when="20260301080000",
                                       family=baby.birth_name, given="Jean", sex="M", birth="20260310")))
    # the refused admission time is named where it was read: ZBE-2, the movement's time (t.adt has no PV1-44)
    assert early["code"] == "AE" and early["err_location"] == "ZBE^1^2", early
    first = t.ack_fields(receive(t.adt("A01", baby.ipp, visit="V-1", unit="MED", when="20260315080000",
                                       family=baby.birth_name, given="Jean", sex="M", birth="20260310")))
    assert first["code"] == "AA", first
    second = t.ack_fields(receive(t.adt("A01", baby.ipp, visit="V-2", unit="MED", when="20260316080000",
                                        family=baby.birth_name, given="Jean", sex="M", birth="20260310")))
    assert second["code"] == "AE", second
    assert Encounter.objects.filter(patient=baby, end__isnull=True).count() == 1


def test_no_channel_writes_identities_or_stays_past_the_service():
    """One service, no second path: the channels (API, FHIR, HL7, web) never create or save these rows
    themselves."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "dpi"
    pattern = re.compile(r"\b(Patient|Encounter|Appointment)\s*\(\s*\*\*|\b(Patient|Encounter|Appointment)"
                         r"\.objects\.(create|bulk_create|update_or_create|get_or_create)\(|"
                         r"\b(Patient|Encounter|Appointment)\.objects\.filter\([^)]*\)\.update\(")
    offenders = []
    for folder in ("api", "fhir", "hl7", "web"):
        for path in (root / folder).rglob("*.py"):
            for n, line in enumerate(path.read_text().splitlines(), start=1):
                if pattern.search(line):
                    offenders.append(f"{path.relative_to(root.parent)}:{n}: {line.strip()}")
    assert offenders == []

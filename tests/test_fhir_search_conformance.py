"""Every search parameter the CapabilityStatement declares, with each of its declared modifiers and prefixes,
run against a fixed record with the expected number of matches; every answer validates as an R4 Bundle."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from fhir.resources.R4B.bundle import Bundle

from access.policy import Role
from dpi.api.testing import bearer, make_api_client, verified_login
from dpi.fhir.mapping import CS_CIM10_ATIH, CS_DOCUMENT_CLASS
from tests.fhir_support import seed
from tests.personas import make_user

pytestmark = pytest.mark.django_db

EXT_MODIFIER = "urn:dpi:fhir:search-modifier"
EXT_PREFIX = "urn:dpi:fhir:search-prefix"


def cases(s) -> list[tuple[str, str, int]]:
    """(resource type, query, expected total). {a} {b} {c} are the patients, {ids[...]} row ids."""
    a, c = s.a.pk, s.c.pk
    ids = s.ids
    today = s.today.isoformat()
    return [
        # Patient
        ("Patient", f"_id={a},{c}", 2),
        ("Patient", f"identifier={s.a.ipp}", 1),
        ("Patient", f"identifier=urn:dpi:ipp|{s.a.ipp},{s.b.ipp}", 2),
        ("Patient", "identifier=urn:other|x", 0),
        ("Patient", "family=alph", 2),
        ("Patient", "family:exact=ALPHA", 1),
        ("Patient", "family:contains=amm", 1),
        ("Patient", "given=an", 1),
        ("Patient", "given:exact=BRUNO", 1),  # strict traits are stored as the INS referential writes them
        ("Patient", "given:contains=LAI", 1),
        ("Patient", "name=gam", 1),
        ("Patient", "name:exact=CLAIRE", 1),
        ("Patient", "name:contains=ph", 2),
        ("Patient", "birthdate=1985", 1),
        ("Patient", "birthdate=eq1985-07", 1),
        ("Patient", "birthdate=ne1985", 2),
        ("Patient", "birthdate=gt1985-07-01", 1),
        ("Patient", "birthdate=ge1985-07-01", 2),
        ("Patient", "birthdate=lt1985", 1),
        ("Patient", "birthdate=le1985-07-01", 2),
        ("Patient", "birthdate=sa1950", 2),
        ("Patient", "birthdate=eb2000-01-01", 2),
        ("Patient", "birthdate=le9999-12-31", 3),
        ("Patient", "birthdate=ge0001-01-01", 3),
        ("Patient", "birthdate=ge1950&birthdate=lt2000", 2),
        ("Patient", "gender=female", 2),
        ("Patient", "gender=http://hl7.org/fhir/administrative-gender|male", 1),
        ("Patient", "gender=female,male", 3),
        # Encounter: E1 2026-01-10 10:00 -> 2026-01-15 12:00, E2 from 2026-02-03 09:00, ongoing
        ("Encounter", f"patient={a}", 2),
        ("Encounter", f"subject=Patient/{a}&_id={ids['Encounter'][0]}", 1),
        ("Encounter", f"patient={a}&status=in-progress", 1),
        ("Encounter", f"patient={a}&status=finished,in-progress", 2),
        ("Encounter", f"patient={a}&class=AMB", 1),
        ("Encounter", f"patient={a}&class=http://terminology.hl7.org/CodeSystem/v3-ActCode|IMP", 1),
        ("Encounter", f"patient={a}&date=eq2026-01", 1),
        ("Encounter", f"patient={a}&date=ne2026-01", 1),
        ("Encounter", f"patient={a}&date=gt2026-01-31", 1),
        ("Encounter", f"patient={a}&date=ge2026-01-15", 2),
        ("Encounter", f"patient={a}&date=lt2026-02", 1),
        ("Encounter", f"patient={a}&date=le2026-02-03", 2),
        ("Encounter", f"patient={a}&date=sa2026-01-31", 1),
        ("Encounter", f"patient={a}&date=eb2026-02-01", 1),
        # Observation: 2026-01-11 08:00 glucose, 2026-01-12 08:00 CRP (lab), 2026-02-03 09:30 pulse (vital)
        ("Observation", f"patient={a}", 3),
        ("Observation", f"subject=Patient/{a}&_id={ids['Observation'][0]}", 1),
        ("Observation", f"patient={a}&code=2345-7", 1),
        ("Observation", f"patient={a}&code=http://loinc.org|2345-7,1988-5", 2),
        ("Observation", f"patient={a}&code=http://snomed.info/sct|2345-7", 0),
        ("Observation", f"patient={a}&category=vital-signs", 1),
        ("Observation", f"patient={a}&category=laboratory", 2),
        ("Observation", f"patient={a}&date=2026-01-11", 1),
        ("Observation", f"patient={a}&date=eq2026-01", 2),
        ("Observation", f"patient={a}&date=ne2026-01", 1),
        ("Observation", f"patient={a}&date=gt2026-01-11", 2),
        ("Observation", f"patient={a}&date=ge2026-01-12T07:00:00Z", 2),
        ("Observation", f"patient={a}&date=lt2026-01-12", 1),
        ("Observation", f"patient={a}&date=le2026-01", 2),
        ("Observation", f"patient={a}&date=sa2026-01", 1),
        ("Observation", f"patient={a}&date=eb2026-02", 2),
        # DocumentReference: 03-01 discharge letter (class 11), 03-05 lab report (class 10), 04-01 untyped
        ("DocumentReference", f"patient={a}", 3),
        ("DocumentReference", f"subject=Patient/{a}&_id={ids['DocumentReference'][2]}", 1),
        ("DocumentReference", f"patient={a}&type=11490-0", 1),
        ("DocumentReference", f"patient={a}&type=http://loinc.org|11490-0,11502-2", 2),
        ("DocumentReference", f"patient={a}&category=11", 1),
        ("DocumentReference", f"patient={a}&category={CS_DOCUMENT_CLASS}|10", 1),
        ("DocumentReference", f"patient={a}&date=eq2026-03", 2),
        ("DocumentReference", f"patient={a}&date=ne2026-03", 1),
        ("DocumentReference", f"patient={a}&date=gt2026-03-01", 2),
        ("DocumentReference", f"patient={a}&date=ge2026-03-05", 2),
        ("DocumentReference", f"patient={a}&date=lt2026-03-05", 1),
        ("DocumentReference", f"patient={a}&date=le2026-03-05", 2),
        ("DocumentReference", f"patient={a}&date=sa2026-03", 1),
        ("DocumentReference", f"patient={a}&date=eb2026-04", 2),
        # AllergyIntolerance: 2026-01-10 high, 2026-05-01 low
        ("AllergyIntolerance", f"patient={a}", 2),
        ("AllergyIntolerance", f"patient={a}&_id={ids['AllergyIntolerance'][1]}", 1),
        ("AllergyIntolerance", f"patient={a}&criticality=high", 1),
        ("AllergyIntolerance", f"patient={a}&criticality=high,low", 2),
        ("AllergyIntolerance", f"patient={a}&date=eq2026-01-10", 1),
        ("AllergyIntolerance", f"patient={a}&date=ne2026-01-10", 1),
        ("AllergyIntolerance", f"patient={a}&date=gt2026-01", 1),
        ("AllergyIntolerance", f"patient={a}&date=ge2026", 2),
        ("AllergyIntolerance", f"patient={a}&date=lt2026-05", 1),
        ("AllergyIntolerance", f"patient={a}&date=le2026-05-01", 2),
        ("AllergyIntolerance", f"patient={a}&date=sa2026-04", 1),
        ("AllergyIntolerance", f"patient={a}&date=eb2026-01-11", 1),
        # Condition: I10 active onset 2019-06-01 (rec. 01-10), E11 resolved onset 2010-03-15 (rec. 01-20),
        # J45 active without onset (rec. 02-01)
        ("Condition", f"patient={a}", 3),
        ("Condition", f"subject=Patient/{a}&_id={ids['Condition'][0]}", 1),
        ("Condition", f"patient={a}&clinical-status=active", 2),
        ("Condition", f"patient={a}&clinical-status=active,resolved", 3),
        ("Condition", f"patient={a}&code=I10", 1),
        ("Condition", f"patient={a}&code={CS_CIM10_ATIH}|I10,E11", 2),
        ("Condition", f"patient={a}&code=http://hl7.org/fhir/sid/icd-10|I10", 0),
        ("Condition", f"patient={a}&onset-date=eq2019", 1),
        ("Condition", f"patient={a}&onset-date=ne2019", 1),
        ("Condition", f"patient={a}&onset-date=gt2010-03-15", 1),
        ("Condition", f"patient={a}&onset-date=ge2010-03-15", 2),
        ("Condition", f"patient={a}&onset-date=lt2019", 1),
        ("Condition", f"patient={a}&onset-date=le2019-06-01", 2),
        ("Condition", f"patient={a}&onset-date=sa2010", 1),
        ("Condition", f"patient={a}&onset-date=eb2019-06-01", 1),
        ("Condition", f"patient={a}&recorded-date=eq2026-01", 2),
        ("Condition", f"patient={a}&recorded-date=ne2026-01", 1),
        ("Condition", f"patient={a}&recorded-date=gt2026-01-10", 2),
        ("Condition", f"patient={a}&recorded-date=ge2026-01-20", 2),
        ("Condition", f"patient={a}&recorded-date=lt2026-01-20", 1),
        ("Condition", f"patient={a}&recorded-date=le2026-01-20", 2),
        ("Condition", f"patient={a}&recorded-date=sa2026-01", 1),
        ("Condition", f"patient={a}&recorded-date=eb2026-02", 2),
        # MedicationRequest: active 01-10, completed 01-20, stopped 03-01
        ("MedicationRequest", f"patient={a}", 3),
        ("MedicationRequest", f"subject=Patient/{a}&_id={ids['MedicationRequest'][0]}", 1),
        ("MedicationRequest", f"patient={a}&status=active", 1),
        ("MedicationRequest", f"patient={a}&status=active,completed", 2),
        ("MedicationRequest", f"patient={a}&status=http://hl7.org/fhir/CodeSystem/medicationrequest-status|stopped", 1),
        ("MedicationRequest", f"patient={a}&authoredon=eq2026-01", 2),
        ("MedicationRequest", f"patient={a}&authoredon=ne2026-01", 1),
        ("MedicationRequest", f"patient={a}&authoredon=gt2026-01-10", 2),
        ("MedicationRequest", f"patient={a}&authoredon=ge2026-01-20", 2),
        ("MedicationRequest", f"patient={a}&authoredon=lt2026-01-20", 1),
        ("MedicationRequest", f"patient={a}&authoredon=le2026-01-20", 2),
        ("MedicationRequest", f"patient={a}&authoredon=sa2026-01", 1),
        ("MedicationRequest", f"patient={a}&authoredon=eb2026-03", 2),
        # MedicationAdministration: given 2026-01-11 08:00, not given 2026-01-12 08:00
        ("MedicationAdministration", f"patient={a}", 2),
        ("MedicationAdministration", f"subject=Patient/{a}&_id={ids['MedicationAdministration'][0]}", 1),
        ("MedicationAdministration", f"patient={a}&status=completed", 1),
        ("MedicationAdministration", f"patient={a}&status=completed,not-done", 2),
        ("MedicationAdministration", f"patient={a}&effective-time=2026-01-11", 1),
        ("MedicationAdministration", f"patient={a}&effective-time=eq2026-01", 2),
        ("MedicationAdministration", f"patient={a}&effective-time=ne2026-01-11", 1),
        ("MedicationAdministration", f"patient={a}&effective-time=gt2026-01-11", 1),
        ("MedicationAdministration", f"patient={a}&effective-time=ge2026-01-11", 2),
        ("MedicationAdministration", f"patient={a}&effective-time=lt2026-01-12", 1),
        ("MedicationAdministration", f"patient={a}&effective-time=le2026-01-12", 2),
        ("MedicationAdministration", f"patient={a}&effective-time=sa2025", 2),
        ("MedicationAdministration", f"patient={a}&effective-time=eb2026-01-12", 1),
        # AuditEvent on patient C: agent.one view + create (allowed), agent.two search (denied). agent-name
        # keeps out the DPO's own reading of the trace, which is itself recorded on patient C.
        ("AuditEvent", f"patient={c}&agent-name=agent.", 3),
        ("AuditEvent", f"_id={ids['AuditEvent'][0]}", 1),
        ("AuditEvent", f"patient={c}&agent-name=agent.o", 2),
        ("AuditEvent", f"patient={c}&agent-name:exact=agent.two", 1),
        ("AuditEvent", f"patient={c}&agent-name:contains=two", 1),
        ("AuditEvent", f"patient={c}&agent-name=agent&outcome=0", 2),
        ("AuditEvent", f"patient={c}&agent-name=agent&outcome=4", 1),
        ("AuditEvent", f"patient={c}&agent-name=agent&outcome=8", 0),
        ("AuditEvent", f"patient={c}&agent-name=agent&outcome=0,4", 3),
        ("AuditEvent", f"patient={c}&agent-name=agent&action=R", 1),
        ("AuditEvent", f"patient={c}&agent-name=agent&action=http://hl7.org/fhir/audit-event-action|C", 1),
        ("AuditEvent", f"patient={c}&agent-name=agent&action=E,R", 2),
        ("AuditEvent", f"patient={c}&agent-name=agent&subtype=read", 1),
        ("AuditEvent", f"patient={c}&agent-name=agent&subtype=http://hl7.org/fhir/restful-interaction|create", 1),
        ("AuditEvent", f"patient={c}&agent-name=agent&date={today}", 3),
        ("AuditEvent", f"patient={c}&agent-name=agent&date=eq{today[:7]}", 3),
        ("AuditEvent", f"patient={c}&agent-name=agent&date=ne{today}", 0),
        ("AuditEvent", f"patient={c}&agent-name=agent&date=gt{today}", 0),
        ("AuditEvent", f"patient={c}&agent-name=agent&date=ge{today}", 3),
        ("AuditEvent", f"patient={c}&agent-name=agent&date=lt{today}", 0),
        ("AuditEvent", f"patient={c}&agent-name=agent&date=le{today}", 3),
        ("AuditEvent", f"patient={c}&agent-name=agent&date=sa{today[:4]}", 0),
        ("AuditEvent", f"patient={c}&agent-name=agent&date=eb9999", 3),
    ]


def _variants(resource: str, query: str, declared: dict) -> set[tuple[str, str, str]]:
    """The (resource, parameter, modifier-or-prefix) combinations a query exercises."""
    out = set()
    for key, value in parse_qsl(query):
        name, _, modifier = key.partition(":")
        param = declared[resource].get(name)
        if param is None:
            continue
        if param["type"] == "date":
            out.add((resource, name, value[:2] if value[:2].isalpha() else "eq"))
        else:
            out.add((resource, name, f":{modifier}" if modifier else ""))
    return out


@pytest.fixture
def conformance(client):
    s = seed()
    _, token = make_api_client()
    dpo_client = type(client)()
    verified_login(dpo_client, make_user("dpo.reader", Role.DPO))
    statement = client.get("/fhir/metadata").json()
    declared = {r["type"]: {p["name"]: p for p in r["searchParam"]} for r in statement["rest"][0]["resource"]}
    return s, token, dpo_client, declared


def test_every_declared_parameter_modifier_and_prefix_is_exercised(conformance):
    s, _, _, declared = conformance
    required = set()
    for resource, params in declared.items():
        for name, param in params.items():
            extensions = param.get("extension", [])
            prefixes = [e["valueCode"] for e in extensions if e["url"] == EXT_PREFIX]
            modifiers = [e["valueCode"] for e in extensions if e["url"] == EXT_MODIFIER]
            if param["type"] == "date":
                assert prefixes, (resource, name)
                required |= {(resource, name, p) for p in prefixes}
            else:
                required |= {(resource, name, "")} | {(resource, name, f":{m}") for m in modifiers}
    exercised = set()
    for resource, query, _ in cases(s):
        exercised |= _variants(resource, query, declared)
    assert sorted(required - exercised) == []


def test_every_case_finds_the_expected_rows(conformance, client):
    s, token, dpo_client, _ = conformance
    wrong = []
    for resource, query, expected in cases(s):
        if resource == "AuditEvent":
            response = dpo_client.get(f"/fhir/{resource}?{query}")
        else:
            response = client.get(f"/fhir/{resource}?{query}", headers=bearer(token))
        if response.status_code != 200:
            wrong.append((resource, query, response.status_code, response.content[:200]))
            continue
        body = response.json()
        Bundle.model_validate(body)
        found = len(body.get("entry", []))
        if (body["total"], found) != (expected, expected):
            wrong.append((resource, query, expected, body["total"], found))
    assert wrong == [], "\n".join(map(str, wrong))

"""FHIR Patient: FR Core identity reliability status always; the INS with its OID only for a qualified
identity; synthetic data under the demonstration (or test) OID, never the real INS-NIR OID outside production."""

from datetime import date

import pytest
from django.test import override_settings

from dpi.api.testing import bearer, make_api_client
from dpi.fhir import mapping
from patients.ins import with_key
from patients.models import Patient
from tests.personas import make_patient

pytestmark = pytest.mark.django_db


def _read(client, token, patient):
    return client.get(f"/fhir/Patient/{patient.pk}", headers=bearer(token)).json()


def _status(resource):
    [ext] = [e for e in resource["extension"] if e["url"] == mapping.EXT_IDENTITY_RELIABILITY]
    return ext["extension"][0]["valueCoding"]["code"]


def _ins(resource):
    return [i for i in resource["identifier"] if i["system"].startswith("urn:oid:1.2.250.1.213.1.4.")]


def test_a_qualified_identity_carries_its_ins_under_the_demo_oid(cast, client):
    _, token = make_api_client()
    resource = _read(client, token, cast.patient)
    assert _status(resource) == "QUAL"
    [ins] = _ins(resource)
    assert ins["system"] == "urn:oid:1.2.250.1.213.1.4.11"
    assert ins["type"]["coding"][0]["code"] == "INS-NIR-DEMO"
    assert ins["value"] == cast.patient.ins
    assert resource["meta"]["profile"] == [mapping.PROFILE_PATIENT_INS]


@pytest.mark.parametrize("status", ["PROV", "RECUP", "VALI"])
def test_other_statuses_never_send_the_ins(cast, client, status):
    _, token = make_api_client()
    patient = make_patient(identity_status=status, ins=with_key("2850375000888"), sex="F", birth_date=date(1985, 3, 14))
    resource = _read(client, token, patient)
    assert _status(resource) == status
    assert _ins(resource) == []
    assert resource["meta"]["profile"] == [mapping.PROFILE_PATIENT]


@override_settings(DPI_FHIR_INS_SYSTEM="urn:oid:1.2.250.1.213.1.4.10")
def test_the_test_oid_can_be_chosen(cast, client):
    _, token = make_api_client()
    [ins] = _ins(_read(client, token, cast.patient))
    assert (ins["system"], ins["type"]["coding"][0]["code"]) == ("urn:oid:1.2.250.1.213.1.4.10", "INS-NIR-TEST")


@override_settings(DPI_FHIR_INS_SYSTEM="urn:oid:1.2.250.1.213.1.4.8")
def test_in_production_an_nia_goes_under_its_own_oid_as_temporary(cast):
    patient = make_patient(ins=with_key("7850375000999"), birth_date=date(1985, 3, 2))
    ins = mapping.ins_identifier(patient)
    assert (ins["system"], ins["use"], ins["type"]["coding"][0]["code"]) == (
        "urn:oid:1.2.250.1.213.1.4.9",
        "temp",
        "INS-NIA",
    )


def test_search_by_ins_identifier_finds_qualified_identities_only(cast, client):
    _, token = make_api_client()
    recovered = make_patient(identity_status=Patient.IdentityStatus.RECOVERED, ins=with_key("2850375000555"), sex="F",
                             birth_date=date(1985, 3, 2))
    system = "urn:oid:1.2.250.1.213.1.4.11"
    found = client.get(f"/fhir/Patient?identifier={system}|{cast.patient.ins}", headers=bearer(token)).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [str(cast.patient.pk)]
    hidden = client.get(f"/fhir/Patient?identifier={system}|{recovered.ins}", headers=bearer(token)).json()
    assert hidden["entry"] == []
    wrong = client.get(
        f"/fhir/Patient?identifier=urn:oid:1.2.250.1.213.1.4.8|{cast.patient.ins}", headers=bearer(token)
    ).json()
    assert wrong["entry"] == []

"""FR Core identity reliability over FHIR: the status with its validation mode and date, the birth place and the
given-names list on output (FR Core 2.1 code system pinned); both identity-status code systems on input, and
what comes in goes through the same service rules as reception and the API."""

from datetime import date

import pytest
from django.core.exceptions import ValidationError

from dpi.api.testing import bearer, make_api_client
from dpi.fhir import mapping
from patients import services
from tests.personas import make_patient

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _cheap_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # the cast signs in nowhere


def _reliability(resource):
    [ext] = [e for e in resource["extension"] if e["url"] == mapping.EXT_IDENTITY_RELIABILITY]
    return {e["url"]: e for e in ext["extension"]}


def test_a_qualified_identity_says_what_it_rests_on(cast, client):
    _, token = make_api_client()
    resource = client.get(f"/fhir/Patient/{cast.patient.pk}", headers=bearer(token)).json()
    parts = _reliability(resource)
    assert parts["identityStatus"]["valueCoding"]["system"] == mapping.CS_IDENTITY_STATUS
    assert parts["identityStatus"]["valueCoding"]["code"] == "QUAL"
    assert parts["validationMode"]["valueCodeableConcept"]["coding"][0] == {
        "system": mapping.CS_VALIDATION_MODE, "code": "CN", "display": "carte nationale d’identité"}
    assert parts["validationDate"]["valueDate"] == cast.patient.validation_date.isoformat()
    assert "dateInterrogationINSi" in parts
    [place] = [e for e in resource["extension"] if e["url"] == mapping.EXT_BIRTH_PLACE]
    assert place["valueAddress"]["extension"][0]["valueCoding"]["code"] == "75112"
    assert place["valueAddress"]["city"] == "Paris 12e arrondissement"
    [official] = [n for n in resource["name"] if n["use"] == "official"]
    assert official["given"] == ["JEAN"]
    assert official["extension"] == [{"url": mapping.EXT_BIRTH_LIST_GIVEN_NAME, "valueString": "JEAN"}]


def test_a_provisional_identity_has_no_validation_and_no_ins(cast, client):
    _, token = make_api_client()
    patient = make_patient(identity_status="PROV", birthplace_insee="99352")
    resource = client.get(f"/fhir/Patient/{patient.pk}", headers=bearer(token)).json()
    assert set(_reliability(resource)) == {"identityStatus"}
    [place] = [e for e in resource["extension"] if e["url"] == mapping.EXT_BIRTH_PLACE]
    assert place["valueAddress"]["country"] == "Algérie"
    assert resource["meta"]["profile"] == [mapping.PROFILE_PATIENT]


def _incoming(system: str, code: str, **extra) -> dict:
    reliability = [{"url": "identityStatus", "valueCoding": {"system": system, "code": code}}]
    if extra.get("mode"):
        reliability += [{"url": "validationMode", "valueCodeableConcept": {"coding": [
            {"system": mapping.CS_VALIDATION_MODE, "code": extra["mode"]}]}},
                        {"url": "validationDate", "valueDate": "2026-02-01"}]
    return {
        "resourceType": "Patient",
        "extension": [{"url": mapping.EXT_IDENTITY_RELIABILITY, "extension": reliability},
                      mapping.birth_place("69123")],
        "name": [{"use": "official", "family": "Dubois", "given": ["Émile"],
                  "extension": [{"url": mapping.EXT_BIRTH_LIST_GIVEN_NAME, "valueString": "Émile Jean"}]}],
        "gender": "male",
        "birthDate": "1960-10-10",
    }


@pytest.mark.parametrize("system", [mapping.CS_IDENTITY_STATUS, mapping.CS_IDENTITY_STATUS_NEW])
def test_both_identity_status_code_systems_are_accepted_on_input(system):
    fields = mapping.patient_fields_from_resource(_incoming(system, "VALI", mode="PA"))
    patient = services.patient_create(validated_by_name="GAM", **fields)
    assert (patient.identity_status, patient.validation_mode, patient.first_names) == ("VALI", "PA", "EMILE JEAN")
    out = mapping.patient_resource(patient)
    assert _reliability(out)["identityStatus"]["valueCoding"]["system"] == mapping.CS_IDENTITY_STATUS


def test_an_unknown_code_system_is_refused():
    with pytest.raises(ValueError):
        mapping.patient_fields_from_resource(_incoming("http://example.org/status", "QUAL"))


@pytest.mark.parametrize("system", [mapping.CS_IDENTITY_STATUS, mapping.CS_IDENTITY_STATUS_NEW])
def test_a_qualified_status_on_input_still_needs_its_evidence(system):
    fields = mapping.patient_fields_from_resource(_incoming(system, "QUAL", mode="PA"))
    with pytest.raises(ValidationError) as exc:
        services.patient_create(validated_by_name="GAM", **fields)
    assert "identity_status" in exc.value.message_dict


def test_api_and_fhir_show_the_same_status(client):
    from dpi.api.testing import post_json

    _, token = make_api_client()
    created = post_json(client, "/api/patients/", {
        "birth_name": "ROCHE", "first_name": "Ana", "sex": "F", "birth_date": "1975-05-05",
        "birthplace_insee": "99139", "validation_mode": "CS", "validation_date": "2026-03-01",
        "validated_by_name": "GAM"}, **bearer(token)).json()
    resource = client.get(f"/fhir/Patient/{created['id']}", headers=bearer(token)).json()
    assert created["identity_status"] == _reliability(resource)["identityStatus"]["valueCoding"]["code"] == "VALI"
    assert date.fromisoformat(_reliability(resource)["validationDate"]["valueDate"]) == date(2026, 3, 1)

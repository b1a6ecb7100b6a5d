"""Every FHIR resource the server returns validates with the fhir.resources R4B models (R4-compatible for
these resources): reads, searchset Bundles, the CapabilityStatement, AuditEvents and OperationOutcomes."""

from datetime import date, timedelta

import pytest
from django.utils import timezone
from fhir.resources.R4B.allergyintolerance import AllergyIntolerance
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.medicationadministration import MedicationAdministration
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient

from dpi import services as clinical_services
from dpi.api.testing import bearer, make_api_client, verified_login
from dpi.models import Allergy, Prescription, Problem
from patients import services as patient_services
from tests.personas import make_patient

pytestmark = pytest.mark.django_db

MODELS = {
    "Patient": Patient,
    "Encounter": Encounter,
    "Observation": Observation,
    "DocumentReference": DocumentReference,
    "AllergyIntolerance": AllergyIntolerance,
    "Condition": Condition,
    "MedicationRequest": MedicationRequest,
    "MedicationAdministration": MedicationAdministration,
    "AuditEvent": AuditEvent,
}


@pytest.fixture
def chart(cast):
    """A patient with one of everything (and a few optional fields filled)."""
    patient = make_patient(
        used_name="MARTIN",
        first_names="Jean Pierre Marie",
        birthplace_insee="75056",
        address="1 rue de la Paix",
        postal_code="75002",
        city="Paris",
        phone="0102030405",
        email="jean@example.org",
    )
    encounter = patient_services.encounter_admit(patient=patient, unit=cast.cardio)
    moved = patient_services.encounter_transfer(encounter=encounter, unit=cast.other_unit)
    author = cast.physician
    now = timezone.now()
    ids = {"Patient": [patient.pk, cast.patient.pk], "Encounter": [encounter.pk, moved.pk]}
    ids["Observation"] = [
        clinical_services.observation_record(
            patient=patient,
            author=author,
            label="Glucose",
            loinc="2345-7",
            value="7.2",
            unit="mmol/L",
            reference_low="3.9",
            reference_high="6.1",
            effective_at=now,
            encounter=moved,
        ).pk,
        clinical_services.observation_record(
            patient=patient, author=author, label="Culture", value_text="négative", effective_at=now - timedelta(days=1)
        ).pk,
    ]
    ids["DocumentReference"] = [
        clinical_services.document_add(
            patient=patient, author=author, title="CR", content=b"%PDF-1.4 x", encounter=moved, type_code="11490-0"
        ).pk,
        clinical_services.document_add(patient=patient, author=author, title="Scan", content=b"%PDF-1.4 y").pk,
    ]
    ids["MedicationRequest"] = [
        Prescription.objects.create(
            patient=patient, author=author, medication="Amoxicilline 1 g", instructions="1 cp x 3/j",
            start=date(2026, 1, 1), end=date(2026, 1, 8), status="completed", encounter=moved,
        ).pk,
        Prescription.objects.create(
            patient=patient, author=author, medication="Paracétamol", instructions="1 g si douleur",
            start=date(2026, 1, 1),
        ).pk,
    ]
    ids["AllergyIntolerance"] = [
        Allergy.objects.create(
            patient=patient, author=author, substance="Pénicilline", reaction="urticaire", severity="high"
        ).pk,
        Allergy.objects.create(patient=patient, author=author, substance="Amoxicilline", substance_code="J01CA04",
                               verification="confirmed").pk,
    ]
    # Vital signs on the cast's patient, so the paging check below still sees this patient's two results.
    ids["Observation"] += [o.pk for o in clinical_services.vitals_record(
        patient=cast.patient, author=author, effective_at=now, values={"pulse": "72", "temperature": "37.2"})]
    rx = clinical_services.prescription_create(
        patient=patient, author=author, medication="Paracétamol 1 g", dose="1 g", route="oral",
        frequency="toutes les 6 h", start=timezone.localdate(), duration_days=3)
    ids["MedicationRequest"].append(rx.pk)
    ids["MedicationAdministration"] = [
        clinical_services.administration_record(prescription=rx, author=cast.nurse, given=True,
                                                administered_at=now).pk,
        clinical_services.administration_record(prescription=rx, author=cast.nurse, given=False,
                                                administered_at=now, reason_not_given="refus du patient").pk,
    ]
    ids["Condition"] = [
        Problem.objects.create(
            patient=patient, author=author, icd10="I10", label="HTA", comment="suivi", onset=date(2020, 1, 1)
        ).pk
    ]
    return patient, ids


def test_every_read_validates(chart, client):
    patient, ids = chart
    _, token = make_api_client()
    for kind, pks in ids.items():
        for pk in pks:
            response = client.get(f"/fhir/{kind}/{pk}", headers=bearer(token))
            assert response.status_code == 200, (kind, response.content)
            assert response["Content-Type"].startswith("application/fhir+json")
            resource = MODELS[kind].model_validate(response.json())
            assert resource.id == str(pk)


def test_every_search_bundle_validates(chart, client, cast):
    patient, ids = chart
    _, token = make_api_client()
    queries = [
        f"Patient?family={patient.birth_name.lower()}",
        f"Patient?identifier={patient.ipp}",
        f"Encounter?patient={patient.pk}",
        f"Observation?subject=Patient/{patient.pk}",
        f"Observation?patient={patient.pk}&code=http://loinc.org|2345-7",
        f"DocumentReference?patient={patient.pk}",
        f"AllergyIntolerance?patient={patient.pk}",
        f"Condition?patient={patient.pk}&clinical-status=active",
        f"MedicationRequest?patient={patient.pk}&status=active,completed",
        f"MedicationAdministration?patient={patient.pk}",
        f"Observation?patient={cast.patient.pk}&category=vital-signs",
    ]
    for query in queries:
        response = client.get(f"/fhir/{query}", headers=bearer(token))
        assert response.status_code == 200, (query, response.content)
        bundle = Bundle.model_validate(response.json())
        assert bundle.type == "searchset" and bundle.entry, query
    paged = client.get(f"/fhir/Observation?patient={patient.pk}&_count=1", headers=bearer(token)).json()
    links = {link["relation"]: link["url"] for link in paged["link"]}
    assert set(links) == {"self", "first", "next"}
    following = client.get(links["next"], headers=bearer(token)).json()
    Bundle.model_validate(following)
    seen = {e["resource"]["id"] for e in paged["entry"] + following["entry"]}
    assert seen == {str(i) for i in ids["Observation"][:2]}


def test_the_capability_statement_validates(client):
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    statement = CapabilityStatement.model_validate(response.json())
    assert statement.fhirVersion == "4.0.1"
    assert {r.type for r in statement.rest[0].resource} == set(MODELS)


def test_audit_events_validate(chart, client, cast):
    patient, _ = chart
    _, token = make_api_client()
    client.get(f"/fhir/Patient/{patient.pk}", headers=bearer(token))
    client.get(f"/fhir/Observation?patient={patient.pk}", headers=bearer(token))
    verified_login(client, cast.dpo)
    response = client.get(f"/fhir/AuditEvent?patient={patient.pk}")
    assert response.status_code == 200
    bundle = Bundle.model_validate(response.json())
    assert {e.resource.action for e in bundle.entry} >= {"R"}
    one = bundle.entry[0].resource.id
    AuditEvent.model_validate(client.get(f"/fhir/AuditEvent/{one}").json())


def test_operation_outcomes_validate(cast, client):
    _, token = make_api_client()
    for path in ("/fhir/Patient/999999999", "/fhir/Observation", "/fhir/Nothing/1", "/fhir/Patient/1/x"):
        response = client.get(path, headers=bearer(token))
        assert response.status_code in {400, 404}
        OperationOutcome.model_validate(response.json())

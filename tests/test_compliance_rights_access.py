"""Right of access: the full record as a PDF and a FHIR Bundle, in an AES-256 ZIP whose password is shown once;
read by the "rights" system task through the gate, which records the operator."""

import io
import json

import pytest
import pyzipper
from django.core.exceptions import PermissionDenied, ValidationError

from dpi.compliance.models import RightsRequest
from dpi.compliance.services import rights_access_export, rights_request_register
from dpi.services import document_add, item_amend, note_create, observation_record
from tests.helpers import audit_events

pytestmark = pytest.mark.django_db


@pytest.fixture
def record(cast, now):
    note = note_create(patient=cast.patient, author=cast.physician, body="Douleur thoracique atypique",
                       title="Admission", encounter=cast.encounter)
    item_amend(item=note, author=cast.physician, reason="précision", body="Douleur thoracique atypique, ECG normal")
    note_create(patient=cast.patient, author=cast.physician, body="Suivi psychiatrique", sensitive=True)
    observation_record(patient=cast.patient, author=cast.nurse, label="Potassium", loinc="2823-3", value="5.9",
                       unit="mmol/L", reference_low="3.5", reference_high="5.0", effective_at=now)
    document_add(patient=cast.patient, author=cast.physician, title="Compte rendu", content=b"%PDF-1.4 cr")
    return cast


def open_zip(content: bytes, password: str) -> dict[str, bytes]:
    with pyzipper.AESZipFile(io.BytesIO(content)) as zf:
        zf.setpassword(password.encode())
        return {name: zf.read(name) for name in zf.namelist()}


def test_the_export_holds_the_whole_record_and_opens_only_with_its_password(record):
    cast = record
    r = rights_request_register(patient=cast.patient, kind="access", identity_proof="CNI", by=cast.dpo)
    export = rights_access_export(request=r, by=cast.dpo)
    assert len(export.password.replace("-", "")) == 25
    with pytest.raises(RuntimeError):
        open_zip(export.content, "wrong-password")
    files = open_zip(export.content, export.password)
    assert set(files) == {"dossier.pdf", "dossier-fhir.json", "LISEZMOI.txt"}
    assert files["dossier.pdf"].startswith(b"%PDF")
    assert b"Douleur thoracique" not in export.content  # encrypted, not just zipped

    bundle = json.loads(files["dossier-fhir.json"])
    from fhir.resources.R4B.bundle import Bundle

    Bundle.model_validate(bundle)
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds.count("Patient") == 1 and "Encounter" in kinds and "Observation" in kinds
    assert kinds.count("DocumentReference") == 3  # two notes (one sensitive: the patient gets it too) + document
    text = json.dumps(bundle, ensure_ascii=False)
    assert cast.patient.birth_name in text
    import base64

    attachments = [base64.b64decode(e["resource"]["content"][0]["attachment"]["data"])
                   for e in bundle["entry"] if e["resource"]["resourceType"] == "DocumentReference"]
    assert b"Douleur thoracique atypique, ECG normal" in attachments
    assert b"%PDF-1.4 cr" in attachments


def test_the_request_is_answered_and_the_password_is_kept_nowhere(record):
    cast = record
    r = rights_request_register(patient=cast.patient, kind="access", identity_proof="CNI", by=cast.dpo)
    export = rights_access_export(request=r, by=cast.dpo)
    r = RightsRequest.objects.get(pk=r.pk)
    assert r.status == RightsRequest.Status.COMPLETED and r.handled_by == cast.dpo and r.answered_at
    assert r.export_sha256 == export.sha256
    events = audit_events(patient_id=cast.patient.pk, resource_type="rights_request")
    assert export.password not in json.dumps([e.details for e in events]) + r.answer


def test_the_export_goes_through_the_gate_as_the_rights_task(record):
    cast = record
    r = rights_request_register(patient=cast.patient, kind="access", identity_proof="CNI", by=cast.dpo)
    rights_access_export(request=r, by=cast.dpo)
    events = audit_events(patient_id=cast.patient.pk, basis="system:rights")
    assert {e.category for e in events} == {"administrative", "medical", "restricted"}
    assert all(e.action == "export" and e.details["operator"] == "the.dpo" and e.resource_id == str(r.pk)
               for e in events)


def test_refusal_paths(record):
    cast = record
    r = rights_request_register(patient=cast.patient, kind="access", identity_proof="CNI", by=cast.dpo)
    with pytest.raises(PermissionDenied):
        rights_access_export(request=r, by=cast.physician)
    assert audit_events(actor_id=cast.physician.pk, outcome="denied", resource_type="rights_request")
    wrong = rights_request_register(patient=cast.patient, kind="erasure", identity_proof="CNI", by=cast.dpo)
    with pytest.raises(ValidationError):
        rights_access_export(request=wrong, by=cast.dpo)
    rights_access_export(request=r, by=cast.dpo)
    with pytest.raises(ValidationError, match="already completed"):
        rights_access_export(request=r, by=cast.dpo)

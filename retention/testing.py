"""Builders and checks shared by the retention tests and benchmark (synthetic data only).

``where_is`` is the invariant the archive keeps: a patient's record is live, or archived and readable —
never both, never neither.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection
from django.utils import timezone

from retention import archiving
from retention import record as rec
from retention.models import ArchivedPatient, ArchiveKey


def full_record(*, patient, author, unit, other_user=None) -> dict[str, Any]:
    """Give a patient one of everything: stay, appointment, notes (one sensitive), observation, prescription,
    document, allergy, problem, an amended note, an objection, a break-the-glass episode, a membership."""
    from access.models import CareTeamMembership, EmergencyAccess, PatientObjection
    from dpi import services as dpi_services
    from dpi.models import Allergy, Prescription, Problem
    from patients import services as patient_services

    start = timezone.now() - timedelta(days=20)
    enc = patient_services.encounter_admit(patient=patient, unit=unit, start=start)
    patient_services.encounter_discharge(encounter=enc, end=start + timedelta(days=3))
    patient_services.appointment_book(patient=patient, unit=unit, practitioner=author, start=start + timedelta(days=10),
                                      end=start + timedelta(days=10, minutes=30), reason="Contrôle",
                                      regularisation=True)
    note = dpi_services.note_create(patient=patient, author=author, encounter=enc, title="Admission",
                                    body=f"Douleur thoracique chez {patient.first_name} {patient.birth_name}.")
    dpi_services.note_create(patient=patient, author=author, body="Antécédent psychiatrique confidentiel.",
                             sensitive=True)
    dpi_services.item_amend(item=note, author=author, reason="faute de frappe",
                            body=f"Douleur thoracique atypique chez {patient.first_name}.")
    dpi_services.observation_record(patient=patient, author=author, label="Glucose", loinc="2345-7",
                                    value=Decimal("5.4"), unit="mmol/L", effective_at=start + timedelta(hours=2),
                                    value_text="à jeun", encounter=enc)
    dpi_services.document_add(patient=patient, author=author, title="Compte rendu",
                              content=b"%PDF-1.4 compte rendu " + patient.birth_name.encode(), encounter=enc)
    Prescription.objects.create(patient=patient, author=author, encounter=enc, medication="Bisoprolol 2,5 mg",
                                instructions="1 comprimé le matin", start=start.date())
    Allergy.objects.create(patient=patient, author=author, substance="Pénicilline", reaction="Urticaire géante")
    Problem.objects.create(patient=patient, author=author, icd10="I10", label="Hypertension essentielle",
                           comment="Suivi cardiologique")
    if other_user is not None:
        PatientObjection.objects.create(patient=patient, professional=other_user, reason="voisin")
        EmergencyAccess.objects.create(user=other_user, patient=patient, reason_category="emergency",
                                       reason_text="arrêt cardiaque", started_at=start,
                                       expires_at=start + timedelta(hours=4))
        CareTeamMembership.objects.create(patient=patient, user=other_user, start=start,
                                          end=start + timedelta(days=5))
    return {"encounter": enc, "note": note}


def age(patient_ids: list[int], *, last_activity: datetime) -> None:
    """Move the last activity of these patients back in time (the clock the policies read)."""
    with connection.cursor() as cur:
        cur.execute("UPDATE patients_patient SET last_activity_at = %s WHERE id = ANY(%s)",
                    [last_activity, patient_ids])


def snapshot(patient_id: int) -> dict[str, Any]:
    """The record as the archive holds it (decrypted rows, comparable after a round trip)."""
    import json

    data = rec.records_read([patient_id])[patient_id]
    return json.loads(json.dumps(data, cls=rec.RecordJSONEncoder))


def archived_payload(patient_id: int) -> dict[str, Any] | None:
    """The decrypted archive of an archived patient, or None when there is no readable archive."""
    stub = ArchivedPatient.objects.filter(patient_id=patient_id, state=ArchivedPatient.State.ARCHIVED).first()
    if stub is None:
        return None
    key = ArchiveKey.objects.filter(archive=stub).first()
    if key is None:
        return None
    try:
        return archiving.archive_read(relative=stub.relative_path, token=str(stub.token),
                                      wrapped_key=bytes(key.wrapped_key), checksum=stub.checksum)
    except archiving.ArchiveError:
        return None


def where_is(patient_id: int) -> set[str]:
    """{"live"}, {"archived"} (stub + key + readable file), both, or neither."""
    from patients.models import Patient

    out = set()
    if Patient.objects.filter(pk=patient_id).exists():
        out.add("live")
    if archived_payload(patient_id) is not None:
        out.add("archived")
    return out

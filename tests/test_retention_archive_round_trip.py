"""A due record moves whole into an encrypted archive on separate storage, disappears from the live database
and from searches, and comes back identical after a restore."""

from datetime import timedelta

import pytest
from django.utils import timezone

from access import gate
from access.models import StaffProfile
from access.policy import Action, Category
from dpi import crypto
from patients.models import Patient
from retention import services
from retention.models import ArchivedPatient, ArchiveJob, ArchiveKey
from retention.testing import age, archived_payload, full_record, snapshot, where_is
from tests.personas import make_patient

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def archive_dir(settings, tmp_path):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # the cast signs in nowhere
    settings.DPI_ARCHIVE_DIR = tmp_path / "archive"
    return settings.DPI_ARCHIVE_DIR


@pytest.fixture
def old_patient(cast):
    patient = make_patient(birth_name="ZORGLUBIEN", first_name="Hortense", sex="F", address="12 rue des Lilas",
                           city="Quimper", phone="0298765432")
    full_record(patient=patient, author=cast.physician, unit=cast.cardio, other_user=cast.other_physician)
    StaffProfile.objects.filter(user=cast.nurse).update(patient=patient)
    age([patient.pk], last_activity=timezone.now() - timedelta(days=365 * 6))
    return patient


def test_due_record_is_archived_encrypted_and_invisible(cast, archive_dir, old_patient):
    before = snapshot(old_patient.pk)
    run = services.retention_run()

    assert run.due == 1 and run.archived == 1 and run.errors == 0
    assert where_is(old_patient.pk) == {"archived"}
    assert not Patient.objects.filter(pk=old_patient.pk).exists()
    assert ArchiveJob.objects.get(patient_id=old_patient.pk).state == "archived"
    # The live patient with an open stay stays live.
    assert where_is(cast.patient.pk) == {"live"}

    payload = archived_payload(old_patient.pk)
    assert payload["tables"] == before["tables"]
    assert set(payload["tables"]) >= {"patients.patient", "patients.encounter", "patients.appointment",
                                      "dpi.clinicalnote", "dpi.observation", "dpi.prescription", "dpi.document",
                                      "dpi.allergy", "dpi.problem", "dpi.amendment", "access.patientobjection",
                                      "access.emergencyaccess", "access.careteammembership"}

    # The file on the separate storage holds no clear text; the stub no identity.
    files = list(archive_dir.rglob("*"))
    blobs = [f.read_bytes() for f in files if f.is_file()]
    assert len(blobs) == 1
    for needle in (b"ZORGLUBIEN", b"Hortense", b"Lilas", b"thoracique", "Pénicilline".encode()):
        assert needle not in blobs[0]
    stub = ArchivedPatient.objects.get(patient_id=old_patient.pk)
    assert stub.ipp_bidx == crypto.blind_index(old_patient.ipp, domain="ipp")
    assert old_patient.ipp not in str(stub.__dict__)
    # The data key is wrapped by the archive key, not a live data key.
    key = ArchiveKey.objects.get(archive=stub)
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt_bytes(bytes(key.wrapped_key), aad=f"dpi-archive-key:{stub.token}", purpose="data")

    # Invisible to ordinary searches and to the gate.
    found = gate.visible_patients(cast.reception, Patient.objects.all())
    assert old_patient.pk not in set(found.values_list("pk", flat=True))
    decision = gate.authorize(cast.physician, patient_id=old_patient.pk, category=Category.MEDICAL,
                              action=Action.VIEW)
    assert decision.basis == "deny:not_found"
    # A second run finds nothing more to do and duplicates nothing.
    run2 = services.retention_run()
    assert run2.due == 0 and ArchivedPatient.objects.count() == 1 and ArchiveJob.objects.count() == 1


def test_restore_brings_back_the_identical_record(cast, archive_dir, old_patient, django_capture_on_commit_callbacks):
    before = snapshot(old_patient.pk)
    services.retention_run()
    req = services.restore_request_create(user=cast.dim, patient_id=old_patient.pk,
                                          reason="Demande du patient : accès à son dossier de 2019")
    approver = cast.dpo
    with django_capture_on_commit_callbacks(execute=True):
        req = services.restore_request_approve(user=approver, request_id=req.pk, comment="vu")

    assert req.state == "restored"
    assert where_is(old_patient.pk) == {"live"}
    assert snapshot(old_patient.pk) == before
    assert not ArchivedPatient.objects.filter(patient_id=old_patient.pk).exists()
    assert not [f for f in archive_dir.rglob("*") if f.is_file()]
    restored = Patient.objects.get(pk=old_patient.pk)
    assert restored.birth_name == "ZORGLUBIEN" and restored.ins == old_patient.ins
    assert StaffProfile.objects.get(user=cast.nurse).patient_id == old_patient.pk
    # Not archived again the next day: a restore is not a stay, but the record stays live for a while.
    run = services.retention_run(today=timezone.localdate() + timedelta(days=1))
    assert run.due == 0 and where_is(old_patient.pk) == {"live"}


def test_restore_keeps_times_to_the_microsecond(cast, archive_dir, old_patient, django_capture_on_commit_callbacks):
    """PostgreSQL keeps microseconds; the archive did not (Django's JSON encoder stops at the millisecond), so a
    restored record came back with its times rounded down (and the round-trip test above failed whenever a
    time's milliseconds were 000)."""
    from dpi.models import ClinicalNote

    stamps = {
        "created_at": timezone.now().replace(microsecond=456),  # milliseconds 000: the flaky case
        "updated_at": timezone.now().replace(microsecond=123456),
    }
    Patient.objects.filter(pk=old_patient.pk).update(**stamps)
    note = ClinicalNote.objects.filter(patient=old_patient).order_by("pk").first()
    ClinicalNote.objects.filter(pk=note.pk).update(created_at=timezone.now().replace(microsecond=999999))
    note_stamp = ClinicalNote.objects.get(pk=note.pk).created_at
    before = snapshot(old_patient.pk)

    services.retention_run()
    assert where_is(old_patient.pk) == {"archived"}
    req = services.restore_request_create(user=cast.dim, patient_id=old_patient.pk,
                                          reason="Demande du patient : accès à son dossier de 2019")
    with django_capture_on_commit_callbacks(execute=True):
        services.restore_request_approve(user=cast.dpo, request_id=req.pk, comment="vu")

    restored = Patient.objects.get(pk=old_patient.pk)
    assert (restored.created_at, restored.updated_at) == (stamps["created_at"], stamps["updated_at"])
    assert ClinicalNote.objects.get(pk=note.pk).created_at == note_stamp
    assert snapshot(old_patient.pk) == before

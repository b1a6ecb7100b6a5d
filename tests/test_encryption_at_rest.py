"""Clinical free text, documents and national identifiers are ciphertext in PostgreSQL."""

import pytest
from django.core.management import call_command
from django.db import connection

from dpi import crypto
from dpi.models import ClinicalNote, Document
from dpi.services import document_add, note_create
from patients.models import Patient
from patients.services import patient_find_by_ins
from tests.personas import make_patient

pytestmark = pytest.mark.django_db


def raw_rows(table: str) -> str:
    with connection.cursor() as cur:
        cur.execute(f"SELECT * FROM {table}")  # noqa: S608
        return repr(cur.fetchall())


def test_raw_rows_hold_no_plaintext(cast):
    secret_note = "Patient avoue consommation de cannabis quotidienne"
    note_create(patient=cast.patient, author=cast.physician, body=secret_note, title="Addictologie")
    document_add(patient=cast.patient, author=cast.physician, title="CR", content=b"%PDF compte rendu secret")
    patient = Patient.objects.get(pk=cast.patient.pk)
    dump = raw_rows("dpi_clinicalnote") + raw_rows("dpi_document") + raw_rows("patients_patient")
    assert "cannabis" not in dump and "Addictologie" not in dump
    assert "compte rendu secret" not in dump and "636f6d707465" not in dump
    assert patient.ins not in dump
    # ...and the application still reads them back.
    note = ClinicalNote.objects.get(patient=cast.patient)
    assert note.body == secret_note
    assert Document.objects.get(patient=cast.patient).content == b"%PDF compte rendu secret"


def test_seeded_data_has_no_plaintext_at_rest(db):
    from dpi.seeding import seed

    seed(patients=5, seed=7)
    note = ClinicalNote.objects.order_by("id").first()
    patient = Patient.objects.order_by("id").first()
    dump = raw_rows("dpi_clinicalnote") + raw_rows("patients_patient")
    assert note.body[:30] not in dump
    assert patient.ins not in dump
    assert patient.social_security_number not in dump


def test_ciphertext_is_bound_to_its_column():
    token = crypto.encrypt_text("secret", aad="dpi_clinicalnote.body")
    assert crypto.decrypt_text(token, aad="dpi_clinicalnote.body") == "secret"
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt_text(token, aad="dpi_clinicalnote.title")
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt_text(tampered, aad="dpi_clinicalnote.body")


def test_ins_exact_search_uses_the_blind_index(cast):
    found = patient_find_by_ins(cast.patient.ins)
    assert list(found) == [cast.patient]
    assert cast.patient.ins not in raw_rows("patients_patient")


def test_key_rotation_reencrypts_every_row(cast, tmp_path, settings):
    # Work on a copy of the keyring so the rotation does not touch the developer's keys.
    ring = crypto.keyring()
    settings.DPI_KEYRING_FILE = tmp_path / "keyring.json"
    ring_copy = crypto.Keyring(ring.sets, settings.DPI_KEYRING_FILE)
    ring_copy.save()
    crypto.reload_keyring()
    try:
        old_version = crypto.keyring()["data"].current
        note = note_create(patient=cast.patient, author=cast.physician, body="avant rotation")
        make_patient(ins="", social_security_number="")
        call_command("rotate_keys", batch=2, stdout=open("/dev/null", "w"))
        new_version = crypto.keyring()["data"].current
        assert new_version == old_version + 1
        with connection.cursor() as cur:
            cur.execute("SELECT body FROM dpi_clinicalnote WHERE id = %s", [note.pk])
            assert cur.fetchone()[0].startswith(f"v{new_version}:")
            cur.execute("SELECT ins FROM patients_patient WHERE id = %s", [cast.patient.pk])
            assert cur.fetchone()[0].startswith(f"v{new_version}:")
        assert ClinicalNote.objects.get(pk=note.pk).body == "avant rotation"
        assert Patient.objects.get(pk=cast.patient.pk).ins == cast.patient.ins
    finally:
        settings.DPI_KEYRING_FILE = ring.path
        crypto.reload_keyring()

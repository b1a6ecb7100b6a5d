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


def _dump_all_tables() -> str:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
        tables = [r[0] for r in cur.fetchall()]
    return "".join(raw_rows(f'"{t}"') for t in tables)


def test_clinical_labels_and_reasons_are_ciphertext(cast, now):
    """Issue #13 finding 9: problem labels, medication and substance names, observation labels, document titles,
    amendment reasons, break-the-glass reasons and appointment reasons never reach the database in clear."""
    from datetime import timedelta

    from access.models import EmergencyAccess
    from dpi.models import Allergy, Amendment, Observation, Prescription, Problem
    from dpi.services import item_amend, observation_record
    from patients.models import Appointment
    from patients.services import appointment_book

    markers = {
        "problem": "ZZPROBLEM schizophrénie paranoïde",
        "medication": "ZZMEDICATION olanzapine",
        "substance": "ZZSUBSTANCE pénicilline",
        "observation": "ZZOBSERVATION charge virale VIH",
        "title": "ZZTITLE compte rendu IVG",
        "amendment": "ZZAMENDMENT erreur de patient",
        "emergency": "ZZEMERGENCY arrêt cardiaque en salle",
        "appointment": "ZZAPPOINTMENT suivi addictologie",
    }
    common = {"patient": cast.patient, "author": cast.physician}
    problem = Problem.objects.create(icd10="F20", label=markers["problem"], **common)
    Prescription.objects.create(medication=markers["medication"], instructions="x", start=now.date(), **common)
    Allergy.objects.create(substance=markers["substance"], **common)
    observation_record(label=markers["observation"], effective_at=now, value=3, **common)
    document_add(title=markers["title"], content=b"%PDF x", **common)
    item_amend(item=problem, author=cast.physician, reason=markers["amendment"], label="ZZPROBLEM hypertension")
    EmergencyAccess.objects.create(user=cast.other_physician, patient=cast.patient, reason_category="other",
                                   reason_text=markers["emergency"], expires_at=now + timedelta(hours=1))
    appointment_book(patient=cast.patient, unit=cast.cardio, practitioner=cast.physician, start=now + timedelta(days=1),
                     end=now + timedelta(days=1, hours=1), reason=markers["appointment"])
    dump = _dump_all_tables()
    leaked = [name for name, text in markers.items() if text.split()[0] in dump or text.split()[1] in dump]
    assert not leaked, f"plaintext at rest: {leaked}"
    # ...and the application reads them back.
    assert Problem.objects.get(pk=problem.pk).label == "ZZPROBLEM hypertension"
    assert Amendment.objects.get(resource_id=problem.pk).reason == markers["amendment"]
    assert Observation.objects.get(patient=cast.patient).label == markers["observation"]
    assert Appointment.objects.get(patient=cast.patient).reason == markers["appointment"]
    assert EmergencyAccess.objects.get(patient=cast.patient).reason_text == markers["emergency"]


def test_the_migration_encrypts_rows_written_in_clear(cast, now):
    from types import SimpleNamespace

    from dpi.fields import encrypt_existing_rows
    from dpi.models import Problem

    problem = Problem.objects.create(icd10="I10", label="placeholder", patient=cast.patient, author=cast.physician)
    with connection.cursor() as cur:  # a row as the previous schema stored it
        cur.execute("UPDATE dpi_problem SET label = %s WHERE id = %s", ["ZZLEGACY insuffisance rénale", problem.pk])
    operation = encrypt_existing_rows(("dpi_problem", "label"))
    editor = SimpleNamespace(connection=connection)
    operation.code(None, editor)
    operation.code(None, editor)  # twice: already encrypted rows are left alone
    assert "ZZLEGACY" not in raw_rows("dpi_problem")
    assert Problem.objects.get(pk=problem.pk).label == "ZZLEGACY insuffisance rénale"
    operation.reverse_code(None, editor)
    assert "ZZLEGACY insuffisance rénale" in raw_rows("dpi_problem")

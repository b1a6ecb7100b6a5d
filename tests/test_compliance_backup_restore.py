"""A seeded database, backed up by `manage.py backup`, restores into a fresh database with identical rows, and
its clinical text still decrypts with the application's keyring."""

import json

import pytest
from django.core.management import CommandError, call_command

from dpi import crypto
from dpi.compliance import backups
from tests import test_compliance_support as support
from tests.helpers import audit_events
from tests.test_compliance_support import manage, raw_column, table_fingerprints, url_of

pytestmark = pytest.mark.django_db

# Fixtures shared with the other backup tests (bound in this module's namespace for pytest).
scratch, seeded_source = support.scratch, support.seeded_source


@pytest.fixture(scope="module")
def source_backup(seeded_source, tmp_path_factory):
    out = tmp_path_factory.mktemp("backups")
    manage(seeded_source, "backup", f"--output-dir={out}", "--verify")
    (path,) = backups.backups_list(out)
    return path


def test_backup_file_is_encrypted_and_described_by_its_manifest(source_backup, seeded_source):
    manifest = json.loads(backups.manifest_path(source_backup).read_text())
    assert manifest["key_purpose"] == "backup"
    assert manifest["key_version"] == crypto.keyring()["backup"].current
    assert manifest["database"] == seeded_source.name
    assert manifest["pg_server_version"] // 10000 == manifest["pg_dump_major"]
    assert manifest["ciphertext_size"] == source_backup.stat().st_size
    assert {"created_at", "ciphertext_sha256", "plaintext_sha256", "plaintext_size", "mac"} <= set(manifest)
    raw = source_backup.read_bytes()
    assert b"PGDMP" not in raw  # the custom-format dump's magic: nothing of the dump in clear
    assert b"dpi_clinicalnote" not in raw and b"patients_patient" not in raw
    assert oct(source_backup.stat().st_mode & 0o777) == "0o600"


def test_restore_gives_identical_rows_and_clinical_text_decrypts(source_backup, seeded_source, scratch):
    target = scratch.create("dst")
    call_command("restore", str(source_backup), database_url=url_of(target), stdout=open("/dev/null", "w"))

    assert table_fingerprints(target) == table_fingerprints(seeded_source)
    src_notes = raw_column(seeded_source, "dpi_clinicalnote", "body")
    dst_notes = raw_column(target, "dpi_clinicalnote", "body")
    assert dst_notes == src_notes and len(dst_notes) >= 20
    for token in dst_notes.values():
        text = crypto.decrypt_text(token, aad="dpi_clinicalnote.body")
        assert text and text not in token
    ins = raw_column(target, "patients_patient", "ins")
    assert all(len(crypto.decrypt_text(v, aad="patients_patient.ins")) == 15 for v in ins.values() if v)
    restore_events = audit_events(resource_type="backup", details__step="restore")
    assert restore_events and restore_events[-1].details["target_database"] == target.name


def test_restore_refuses_a_database_that_is_not_empty(source_backup, seeded_source):
    before = table_fingerprints(seeded_source)
    with pytest.raises(CommandError, match="not empty"):
        call_command("restore", str(source_backup), database_url=url_of(seeded_source))
    assert table_fingerprints(seeded_source) == before


def test_restore_needs_a_target(source_backup):
    with pytest.raises(CommandError, match="--database-url"):
        call_command("restore", str(source_backup))


def test_verify_only_checks_every_chunk_without_a_database(source_backup):
    out = open("/dev/null", "w")
    call_command("restore", str(source_backup), verify_only=True, stdout=out)


def test_the_backup_itself_is_recorded_as_a_system_export(seeded_source, tmp_path):
    path = backups.backup_create(directory=tmp_path, database=seeded_source)
    events = audit_events(resource_type="backup", resource_id=path.name)
    assert {e.category for e in events} == {"administrative", "medical", "restricted"}
    assert all(e.action == "export" and e.basis == "system:backup" and e.actor_role == "system" for e in events)

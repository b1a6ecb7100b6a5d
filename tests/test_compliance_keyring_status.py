"""`manage.py keyring_status` shows every purpose's versions and what they protect, how many values still use an
old data key, and which key versions the kept backups need; never any key material."""

import base64
import io
import json

import pytest
from django.core.management import call_command

from dpi import crypto
from dpi.compliance import backups
from dpi.compliance.keys import PURPOSE_USES
from dpi.services import note_create
from tests.test_compliance_backup_key_rotation import keyring_copy  # noqa: F401

pytestmark = pytest.mark.django_db


def status(**kw) -> str:
    out = io.StringIO()
    call_command("keyring_status", stdout=out, **kw)
    return out.getvalue()


def test_versions_uses_and_stale_rows(cast, keyring_copy, settings, tmp_path):  # noqa: F811
    settings.DPI_BACKUP_DIR = tmp_path
    note_create(patient=cast.patient, author=cast.physician, body="sous l'ancienne clé")
    ring = crypto.keyring()
    old = ring["data"].current
    ring.add_version("data")  # a new version, rows not yet re-encrypted
    ring.save()
    crypto.reload_keyring()
    backups.backup_create(directory=tmp_path)

    text = status()
    for purpose, use in PURPOSE_USES.items():
        assert f"{purpose}: " in text and use in text
    assert f"v{old + 1} (current)" in text
    assert "dpi_clinicalnote.body: 1" in text and "patients_patient.ins: 1" in text
    assert f"v{crypto.keyring()['backup'].current}: 1 backup(s)" in text
    for keyset in crypto.keyring().sets.values():
        for key in keyset.keys.values():
            assert base64.b64encode(key).decode() not in text and key.hex() not in text

    rows = {s["purpose"]: s for s in json.loads(status(as_json=True))}
    assert rows["data"]["stale_rows"]["dpi_clinicalnote.body"] == 1 and rows["data"]["stale_total"] >= 2
    assert rows["data"]["backups_by_version"] == {str(old + 1): 1}

    call_command("rotate_keys", no_new_key=True, stdout=io.StringIO())
    assert "every encrypted column" in status()

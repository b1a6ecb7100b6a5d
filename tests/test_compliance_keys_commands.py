"""`keys_init` creates a keyring and never overwrites one; `keys_rotate` adds versions to the backup, archive
and audit-signing keys while keeping the old ones, and sends the data and blind-index keys elsewhere."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from dpi import crypto
from tests.test_compliance_backup_key_rotation import keyring_copy  # noqa: F401


def test_keys_init_creates_a_private_keyring_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "keys" / "keyring.json"
    call_command("keys_init", path=path, stdout=io.StringIO())
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    ring = crypto.Keyring.load(path)
    assert set(ring.sets) == set(crypto.PURPOSES) and all(s.current == 1 for s in ring.sets.values())
    before = path.read_text()
    with pytest.raises(CommandError, match="never regenerated"):
        call_command("keys_init", path=path)
    assert path.read_text() == before


def test_keys_rotate_keeps_old_versions(keyring_copy):  # noqa: F811
    old = crypto.keyring()["backup"]
    old_version, old_key = old.current, old.key()
    call_command("keys_rotate", "backup", stdout=io.StringIO())
    saved = json.loads(keyring_copy.read_text())["backup"]
    assert saved["current"] == old_version + 1 and str(old_version) in saved["keys"]
    assert crypto.keyring()["backup"].key(old_version) == old_key
    for purpose in ("data", "blind_index"):
        with pytest.raises(CommandError):
            call_command("keys_rotate", purpose)

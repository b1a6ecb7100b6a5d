"""A backup made before a key rotation still restores, and its clinical text still decrypts: rotation adds key
versions and keeps the old ones. Without the old backup key, the restore is refused (escrow matters)."""

import json

import pytest

from dpi import crypto
from dpi.compliance import backups
from tests import test_compliance_support as support
from tests.test_compliance_support import manage, raw_column

pytestmark = pytest.mark.django_db

# Fixtures shared with the other backup tests (bound in this module's namespace for pytest).
scratch, seeded_source = support.scratch, support.seeded_source


@pytest.fixture
def keyring_copy(tmp_path, settings):
    """A private copy of the keyring, so rotations here never touch the developer's keys."""
    ring = crypto.keyring()
    path = tmp_path / "keyring.json"
    crypto.Keyring({p: crypto.KeySet(s.current, dict(s.keys)) for p, s in ring.sets.items()}, path).save()
    settings.DPI_KEYRING_FILE = path
    crypto.reload_keyring()
    yield path
    settings.DPI_KEYRING_FILE = ring.path
    crypto.reload_keyring()


def test_backup_made_before_rotate_keys_restores_and_decrypts(seeded_source, scratch, tmp_path, keyring_copy):
    # A live database to rotate: a copy of the seeded one.
    seed_backup = backups.backup_create(directory=tmp_path / "seed", database=seeded_source)
    live = scratch.create("live")
    backups.backup_restore(seed_backup, target=live)
    before = {pk: crypto.decrypt_text(v, aad="dpi_clinicalnote.body")
              for pk, v in raw_column(live, "dpi_clinicalnote", "body").items()}
    old_data, old_backup = crypto.keyring()["data"].current, crypto.keyring()["backup"].current

    old = backups.backup_create(directory=tmp_path / "old", database=live)

    # Rotate the data key (re-encrypting every row of the live database) and the backup key.
    manage(live, "rotate_keys", "--batch=50", env={"DPI_KEYRING_FILE": str(keyring_copy)})
    ring = crypto.reload_keyring()
    ring.add_version("backup")
    ring.save()
    ring = crypto.reload_keyring()
    assert ring["data"].current == old_data + 1 and ring["backup"].current == old_backup + 1
    assert all(v.startswith(f"v{old_data + 1}:") for v in raw_column(live, "dpi_clinicalnote", "body").values())
    new = backups.backup_create(directory=tmp_path / "new", database=live)
    assert json.loads(backups.manifest_path(new).read_text())["key_version"] == old_backup + 1

    restored = scratch.create("restored")
    manifest = backups.backup_restore(old, target=restored)
    assert manifest["key_version"] == old_backup
    assert manifest["keyring_current"]["data"] == old_data
    tokens = raw_column(restored, "dpi_clinicalnote", "body")
    assert all(v.startswith(f"v{old_data}:") for v in tokens.values())
    assert {pk: crypto.decrypt_text(v, aad="dpi_clinicalnote.body") for pk, v in tokens.items()} == before


def test_without_the_old_backup_key_the_restore_is_refused(seeded_source, scratch, tmp_path, keyring_copy):
    old = backups.backup_create(directory=tmp_path, database=seeded_source)
    ring = crypto.keyring()
    version = ring["backup"].current
    ring.add_version("backup")
    del ring["backup"].keys[version]  # what a careless "clean-up" of the keyring would do
    ring.save()
    crypto.reload_keyring()
    target = scratch.create("nokey")
    with pytest.raises(backups.BackupRejected, match=f"backup key v{version} is not in the keyring"):
        backups.backup_restore(old, target=target)
    assert target.is_empty()

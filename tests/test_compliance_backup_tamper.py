"""A tampered backup is refused: a flipped byte, a truncated file, swapped, dropped or duplicated chunks, bytes
after the end, an edited manifest. The target database stays empty."""

import hashlib
import io
import json
import secrets
import shutil

import pytest

from dpi.compliance import backups
from dpi.compliance.backups import HEADER, LENGTH, BackupRejected, decrypt_stream, encrypt_stream
from tests import test_compliance_support as support

pytestmark = pytest.mark.django_db

# Fixtures shared with the other backup tests (bound in this module's namespace for pytest).
scratch, seeded_source = support.scratch, support.seeded_source

CHUNK = 4096


def _chunks(blob: bytes) -> tuple[bytes, list[bytes]]:
    """Split a backup file into its header and its length-prefixed chunk records."""
    header, pos, records = blob[:HEADER.size], HEADER.size, []
    while pos < len(blob):
        (n,) = LENGTH.unpack(blob[pos:pos + LENGTH.size])
        records.append(blob[pos:pos + LENGTH.size + n])
        pos += LENGTH.size + n
    return header, records


def _decrypt_all(blob: bytes) -> bytes:
    return b"".join(decrypt_stream(io.BytesIO(blob)))


@pytest.fixture(scope="module")
def sealed():
    plain = secrets.token_bytes(5 * CHUNK + 123)
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(plain), out, chunk_size=CHUNK)
    return plain, out.getvalue()


def test_an_untouched_stream_decrypts(sealed):
    plain, blob = sealed
    assert _decrypt_all(blob) == plain
    assert len(_chunks(blob)[1]) == 6


def test_an_exact_multiple_of_the_chunk_size_round_trips():
    for size in (0, CHUNK, 3 * CHUNK):
        plain, out = secrets.token_bytes(size), io.BytesIO()
        encrypt_stream(io.BytesIO(plain), out, chunk_size=CHUNK)
        assert _decrypt_all(out.getvalue()) == plain


@pytest.mark.parametrize("where", ["header_version", "header_salt", "first_chunk", "middle_chunk", "last_byte"])
def test_a_flipped_byte_is_refused(sealed, where):
    _, blob = sealed
    pos = {"header_version": 9, "header_salt": 30, "first_chunk": HEADER.size + 10,
           "middle_chunk": len(blob) // 2, "last_byte": len(blob) - 1}[where]
    bad = bytearray(blob)
    bad[pos] ^= 0x01
    with pytest.raises((BackupRejected, ValueError)):
        _decrypt_all(bytes(bad))


def test_truncation_is_refused(sealed):
    _, blob = sealed
    header, records = _chunks(blob)
    with pytest.raises(BackupRejected, match="no final chunk"):
        _decrypt_all(header + b"".join(records[:-1]))  # cut at a chunk boundary
    with pytest.raises(BackupRejected, match="truncated"):
        _decrypt_all(blob[:-7])  # cut inside the last chunk


def test_reordered_dropped_or_duplicated_chunks_are_refused(sealed):
    _, blob = sealed
    header, r = _chunks(blob)
    for records in ([r[1], r[0], *r[2:]], [r[0], *r[2:]], [r[0], r[0], *r[1:]], [*r[:-1], r[1]]):
        with pytest.raises(BackupRejected, match="failed authentication"):
            _decrypt_all(header + b"".join(records))


def test_bytes_after_the_final_chunk_are_refused(sealed):
    _, blob = sealed
    with pytest.raises(BackupRejected, match="after the final chunk"):
        _decrypt_all(blob + b"\0")


def test_a_chunk_from_another_backup_is_refused(sealed):
    plain, blob = sealed
    other = io.BytesIO()
    encrypt_stream(io.BytesIO(plain), other, chunk_size=CHUNK)
    header, mine = _chunks(blob)
    _, theirs = _chunks(other.getvalue())
    with pytest.raises(BackupRejected):
        _decrypt_all(header + theirs[0] + b"".join(mine[1:]))


# --- the same through restore: refused before the target is touched --------------------------------------
@pytest.fixture(scope="module")
def small_chunk_backup(seeded_source, tmp_path_factory, django_db_blocker):
    with django_db_blocker.unblock():
        path = backups.backup_create(directory=tmp_path_factory.mktemp("tamper"), database=seeded_source,
                                     chunk_size=32 * 1024)
    assert json.loads(backups.manifest_path(path).read_text())["chunks"] >= 3
    return path


@pytest.fixture(scope="module")
def empty_target(scratch):
    """One empty database for every refusal below: each test checks it is still empty afterwards."""
    return scratch.create("tampered")


def _copy(path, tmp_path):
    dest = tmp_path / path.name
    shutil.copy(path, dest)
    shutil.copy(backups.manifest_path(path), backups.manifest_path(dest))
    return dest


def _tamper(kind: str, path) -> None:
    blob = path.read_bytes()
    header, records = _chunks(blob)
    if kind == "flip":
        bad = bytearray(blob)
        bad[len(blob) // 2] ^= 0x80
        path.write_bytes(bytes(bad))
    elif kind == "truncate":
        path.write_bytes(header + b"".join(records[:-1]))
    elif kind == "swap":
        path.write_bytes(header + records[1] + records[0] + b"".join(records[2:]))
    elif kind == "manifest":
        manifest = json.loads(backups.manifest_path(path).read_text())
        manifest["ciphertext_sha256"] = "0" * 64
        backups.manifest_path(path).write_text(json.dumps(manifest))


@pytest.mark.parametrize("kind", ["flip", "truncate", "swap", "manifest"])
def test_restore_refuses_a_tampered_backup_and_leaves_the_target_empty(small_chunk_backup, empty_target, tmp_path,
                                                                       kind):
    path = _copy(small_chunk_backup, tmp_path)
    _tamper(kind, path)
    target = empty_target
    with pytest.raises(BackupRejected):
        backups.backup_restore(path, target=target)
    assert target.is_empty()


def test_chunk_checks_hold_even_when_the_manifest_is_rewritten_to_match(small_chunk_backup, empty_target,
                                                                        tmp_path):
    """Someone who swaps chunks and recomputes the checksums cannot recompute the manifest's MAC; and with the
    manifest check passed, the chunk tags still stop the restore before pg_restore sees the end of its input."""
    path = _copy(small_chunk_backup, tmp_path)
    header, records = _chunks(path.read_bytes())
    # Swap the last two chunks: everything before them has already gone down the pipe to pg_restore.
    path.write_bytes(header + b"".join(records[:-2]) + records[-1] + records[-2])
    manifest = json.loads(backups.manifest_path(path).read_text())
    manifest["ciphertext_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    backups.manifest_path(path).write_text(json.dumps(manifest))
    with pytest.raises(BackupRejected, match="failed authentication"):
        backups.manifest_read(path)
    manifest["mac"] = backups._manifest_mac(manifest["key_version"], manifest)  # an insider with the key
    backups.manifest_path(path).write_text(json.dumps(manifest))
    target = empty_target
    with pytest.raises(BackupRejected, match=f"chunk {len(records) - 2} failed authentication"):
        backups.backup_restore(path, target=target)
    assert target.is_empty()

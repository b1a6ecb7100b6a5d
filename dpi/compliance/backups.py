"""Encrypted database backups: ``pg_dump`` streamed through chunked AES-256-GCM, and the way back.

File format (``*.dpibak``), never held whole in memory::

    header  = b"DPIBKUP1" | backup key version (u32) | chunk size (u32) | salt (32 bytes)      48 bytes
    chunk_i = ciphertext length (u32) | AES-256-GCM(plaintext_i)                               repeated

The file key is HKDF-SHA256(backup key of that version, salt), so every file has its own key and the
96-bit nonce can be a plain counter (4 zero bytes | chunk index u64). Each chunk's associated data is
``header | index (u64) | final flag (1 byte)``: a flipped byte, a reordered, dropped or duplicated chunk, a
truncated file or one with bytes after the final chunk fails authentication.

Beside the file, a manifest (``*.dpibak.json``) records the time, the backup key version, the SHA-256 and
size of the ciphertext and plaintext, the PostgreSQL versions and the keyring versions current at backup
time. It is MAC'd with a key derived from the same backup key, so it cannot be edited to match a tampered file.

The backup key is not the live data key (keyring purpose ``backup``). Clinical columns stay encrypted with
the data key inside the dump: restoring needs the keyring's backup key *and* the data key versions that were
current then, which is why rotation keeps old versions (see docs/keys.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from dpi import crypto
from dpi.compliance.pgtools import Database, default_database, find_tool, major_of

MAGIC = b"DPIBKUP1"
HEADER = struct.Struct(">8sII32s")  # magic, key version, chunk size, salt
LENGTH = struct.Struct(">I")
TAG_SIZE = 16
DEFAULT_CHUNK = 1024 * 1024
MAX_CHUNK = 64 * 1024 * 1024
SUFFIX = ".dpibak"
MANIFEST_SUFFIX = ".json"
FORMAT = "dpi-backup/1"


class BackupError(Exception):
    """The backup could not be made."""


class BackupRejected(Exception):
    """A backup file failed a check (manifest, checksum, authentication tag, target not empty)."""


# --- keys -------------------------------------------------------------------------------------------------
def _backup_key(version: int) -> bytes:
    try:
        return crypto.keyring()["backup"].key(version)
    except crypto.KeyringError as exc:
        raise BackupRejected(f"backup key v{version} is not in the keyring: restore the escrowed keyring "
                             f"(docs/keys.md)") from exc


def _derive(key: bytes, *, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(key)


def _file_key(version: int, salt: bytes) -> bytes:
    return _derive(_backup_key(version), salt=salt, info=b"dpi-backup-file-v1")


def _manifest_mac(version: int, body: dict[str, Any]) -> str:
    key = _derive(_backup_key(version), salt=b"", info=b"dpi-backup-manifest-v1")
    payload = json.dumps({k: v for k, v in body.items() if k != "mac"}, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def _nonce(index: int) -> bytes:
    return b"\0\0\0\0" + index.to_bytes(8, "big")


def _aad(header: bytes, index: int, final: bool) -> bytes:
    return header + index.to_bytes(8, "big") + (b"\1" if final else b"\0")


# --- the stream format ------------------------------------------------------------------------------------
@dataclass
class StreamStats:
    chunks: int = 0
    plaintext_size: int = 0
    ciphertext_size: int = 0
    plaintext_sha256: str = ""
    ciphertext_sha256: str = ""


def encrypt_stream(source: IO[bytes], sink: IO[bytes], *, key_version: int | None = None,
                   chunk_size: int = DEFAULT_CHUNK) -> tuple[int, StreamStats]:
    """Encrypt ``source`` to ``sink`` chunk by chunk; returns (backup key version, stats)."""
    if not 0 < chunk_size <= MAX_CHUNK:
        raise ValueError("chunk size out of range")
    version = key_version or crypto.keyring()["backup"].current
    salt = secrets.token_bytes(32)
    header = HEADER.pack(MAGIC, version, chunk_size, salt)
    aead = AESGCM(_file_key(version, salt))
    plain_hash, cipher_hash = hashlib.sha256(), hashlib.sha256()
    stats = StreamStats()

    def write(data: bytes) -> None:
        sink.write(data)
        cipher_hash.update(data)
        stats.ciphertext_size += len(data)

    write(header)
    current = _read_full(source, chunk_size)
    index = 0
    while True:
        following = _read_full(source, chunk_size) if len(current) == chunk_size else b""
        final = not following
        plain_hash.update(current)
        stats.plaintext_size += len(current)
        ct = aead.encrypt(_nonce(index), current, _aad(header, index, final))
        write(LENGTH.pack(len(ct)) + ct)
        index += 1
        if final:
            break
        current = following
    stats.chunks = index
    stats.plaintext_sha256, stats.ciphertext_sha256 = plain_hash.hexdigest(), cipher_hash.hexdigest()
    return version, stats


def _read_full(stream: IO[bytes], n: int) -> bytes:
    """Read exactly ``n`` bytes unless the stream ends first (pipes return short reads)."""
    parts, got = [], 0
    while got < n:
        data = stream.read(n - got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def decrypt_stream(source: IO[bytes], *, expected_version: int | None = None) -> Iterator[bytes]:
    """Yield plaintext chunks, each authenticated before it is yielded; raises BackupRejected on any change."""
    header = _read_full(source, HEADER.size)
    if len(header) != HEADER.size:
        raise BackupRejected("not a dpi backup (file too short)")
    magic, version, chunk_size, salt = HEADER.unpack(header)
    if magic != MAGIC:
        raise BackupRejected("not a dpi backup (bad magic)")
    if expected_version is not None and version != expected_version:
        raise BackupRejected(f"file says backup key v{version}, manifest says v{expected_version}")
    if not 0 < chunk_size <= MAX_CHUNK:
        raise BackupRejected("corrupt header (chunk size)")
    aead = AESGCM(_file_key(version, salt))
    index = 0
    while True:
        raw_len = _read_full(source, LENGTH.size)
        if len(raw_len) != LENGTH.size:
            raise BackupRejected(f"truncated backup: no final chunk after chunk {index}")
        (length,) = LENGTH.unpack(raw_len)
        if not TAG_SIZE <= length <= chunk_size + TAG_SIZE:
            raise BackupRejected(f"corrupt chunk {index} (length {length})")
        ct = _read_full(source, length)
        if len(ct) != length:
            raise BackupRejected(f"truncated backup inside chunk {index}")
        for final in (False, True):
            try:
                plain = aead.decrypt(_nonce(index), ct, _aad(header, index, final))
                break
            except InvalidTag:
                continue
        else:
            raise BackupRejected(f"chunk {index} failed authentication (altered, reordered or wrong key)")
        yield plain
        index += 1
        if final:
            if source.read(1):
                raise BackupRejected("data after the final chunk")
            return


# --- manifests --------------------------------------------------------------------------------------------
def manifest_path(backup: Path) -> Path:
    return backup.with_name(backup.name + MANIFEST_SUFFIX)


def manifest_read(backup: Path, manifest: Path | None = None) -> dict[str, Any]:
    """Load and authenticate the manifest of ``backup``."""
    path = manifest or manifest_path(backup)
    try:
        body = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BackupRejected(f"manifest {path} unreadable: {exc}") from exc
    if body.get("format") != FORMAT:
        raise BackupRejected(f"manifest {path}: unknown format {body.get('format')!r}")
    try:
        version = int(body["key_version"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BackupRejected(f"manifest {path}: no key version") from exc
    if not hmac.compare_digest(str(body.get("mac", "")), _manifest_mac(version, body)):
        raise BackupRejected(f"manifest {path} failed authentication (edited, or another keyring)")
    return body


def _file_sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while data := fh.read(DEFAULT_CHUNK):
            digest.update(data)
            size += len(data)
    return digest.hexdigest(), size


def backup_verify(backup: Path, manifest: Path | None = None, *, decrypt: bool = True) -> dict[str, Any]:
    """Check manifest, ciphertext checksum and (``decrypt``) every authentication tag and the plaintext checksum."""
    body = manifest_read(backup, manifest)
    sha, size = _file_sha256(backup)
    if size != body["ciphertext_size"] or not hmac.compare_digest(sha, body["ciphertext_sha256"]):
        raise BackupRejected(f"{backup.name}: checksum differs from its manifest (file altered or truncated)")
    if decrypt:
        digest, n = hashlib.sha256(), 0
        with backup.open("rb") as fh:
            for chunk in decrypt_stream(fh, expected_version=body["key_version"]):
                digest.update(chunk)
                n += len(chunk)
        if n != body["plaintext_size"] or digest.hexdigest() != body["plaintext_sha256"]:
            raise BackupRejected(f"{backup.name}: decrypted dump differs from its manifest")
    return body


# --- backup -----------------------------------------------------------------------------------------------
def _system_audit(action: str, *, resource_id: str, details: dict[str, Any]) -> None:
    """A backup reads every category of patient data: the gate records it as a declared system task."""
    from access import gate
    from access.policy import Category
    from audit.context import access_context

    with access_context(channel="worker"):
        for category in Category:
            gate.authorize_system("backup", patient_id=None, category=category, action=action,
                                  resource_type="backup", resource_id=resource_id, details=details)


def backup_create(*, directory: Path | None = None, database: Database | None = None,
                  chunk_size: int = DEFAULT_CHUNK, compress: int | None = None) -> Path:
    """Dump ``database`` (default: the application's) into ``directory`` as an encrypted file + manifest."""
    database = database or default_database()
    directory = Path(directory or settings.DPI_BACKUP_DIR)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    server_num = database.server_version_num()
    pg_dump, tool_major = find_tool("pg_dump", server_major=major_of(server_num))
    created = datetime.now(UTC)
    name = f"dpi-{database.name}-{created:%Y%m%dT%H%M%S%fZ}{SUFFIX}"
    final_path = directory / name
    partial = directory / (name + ".partial")
    ring = crypto.keyring()
    _system_audit("export", resource_id=name, details={"database": database.name})
    cmd = [str(pg_dump), "--format=custom", "--no-password"]
    if compress is not None:
        cmd.append(f"--compress={compress}")
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors,  # noqa: S603
                                env=database.libpq_env())
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as sink:
                assert proc.stdout is not None
                version, stats = encrypt_stream(proc.stdout, sink, chunk_size=chunk_size)
                sink.flush()
                os.fsync(sink.fileno())
        except BaseException:
            proc.kill()
            proc.wait()
            partial.unlink(missing_ok=True)
            raise
        proc.stdout.close()
        code = proc.wait()
        if code != 0:
            partial.unlink(missing_ok=True)
            errors.seek(0)
            raise BackupError(f"pg_dump failed ({code}): {errors.read().decode(errors='replace')[-2000:]}")
    manifest = {
        "format": FORMAT,
        "file": name,
        "created_at": created.isoformat(),
        "database": database.name,
        "key_purpose": "backup",
        "key_version": version,
        "chunk_size": chunk_size,
        "chunks": stats.chunks,
        "ciphertext_size": stats.ciphertext_size,
        "ciphertext_sha256": stats.ciphertext_sha256,
        "plaintext_size": stats.plaintext_size,
        "plaintext_sha256": stats.plaintext_sha256,
        "pg_server_version": server_num,
        "pg_dump_major": tool_major,
        "dump_format": "custom",
        # Data-key versions inside the dump: they must stay in the keyring as long as this backup is kept.
        "keyring_current": {purpose: ring[purpose].current for purpose in crypto.PURPOSES},
    }
    manifest["mac"] = _manifest_mac(version, manifest)
    mpath = manifest_path(final_path)
    tmp = mpath.with_name(mpath.name + ".partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(manifest, fh, indent=2)
    os.replace(tmp, mpath)
    os.replace(partial, final_path)
    return final_path


def backups_list(directory: Path | None = None) -> list[Path]:
    """Complete backups in ``directory`` (those with a manifest), newest first."""
    directory = Path(directory or settings.DPI_BACKUP_DIR)
    if not directory.exists():
        return []
    files = [p for p in directory.glob(f"dpi-*{SUFFIX}") if manifest_path(p).exists()]
    return sorted(files, key=lambda p: p.name.rsplit("-", 1)[-1], reverse=True)


def backup_prune(*, keep: int, directory: Path | None = None) -> list[Path]:
    """Delete all but the ``keep`` most recent backups; returns what was deleted."""
    if keep < 1:
        raise ValueError("keep at least one backup")
    removed = []
    for path in backups_list(directory)[keep:]:
        manifest_path(path).unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


# --- restore ----------------------------------------------------------------------------------------------
def backup_restore(backup: Path, *, target: Database, manifest: Path | None = None) -> dict[str, Any]:
    """Restore ``backup`` into the EMPTY database ``target``; refuses anything that fails a check.

    Order: manifest MAC, ciphertext checksum (before touching the target), target empty, then
    decrypt -> pg_restore through a pipe in a single transaction. Every chunk is authenticated before it is
    written to the pipe; on any failure pg_restore is killed before end of input, so its transaction
    rolls back and the target stays empty.
    """
    body = backup_verify(backup, manifest, decrypt=False)
    if not target.is_empty():
        raise BackupRejected(f"database {target.name} is not empty: restore only into a new, empty database")
    target_num = target.server_version_num()
    if major_of(target_num) < major_of(body["pg_server_version"]):
        raise BackupRejected(f"dump from PostgreSQL {major_of(body['pg_server_version'])} cannot go into an "
                             f"older server ({major_of(target_num)})")
    pg_restore, _ = find_tool("pg_restore", server_major=major_of(target_num), at_least=body["pg_dump_major"])
    cmd = [str(pg_restore), "--no-owner", "--no-acl", "--single-transaction", "--exit-on-error", "--no-password",
           f"--dbname={target.name}"]
    digest, size = hashlib.sha256(), 0
    with tempfile.TemporaryFile() as errors, backup.open("rb") as fh:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors,  # noqa: S603
                                env=target.libpq_env())
        assert proc.stdin is not None
        try:
            for chunk in decrypt_stream(fh, expected_version=body["key_version"]):
                digest.update(chunk)
                size += len(chunk)
                proc.stdin.write(chunk)
            if size != body["plaintext_size"] or digest.hexdigest() != body["plaintext_sha256"]:
                raise BackupRejected("decrypted dump differs from its manifest")
        except BrokenPipeError:
            proc.wait()
            errors.seek(0)
            raise BackupError("pg_restore stopped: " + errors.read().decode(errors="replace")[-2000:]) from None
        except BaseException:
            # Kill before end-of-input: the single transaction never commits.
            proc.kill()
            proc.wait()
            raise
        proc.stdin.close()
        code = proc.wait()
        if code != 0:
            errors.seek(0)
            raise BackupError(f"pg_restore failed ({code}): {errors.read().decode(errors='replace')[-2000:]}")
    return body

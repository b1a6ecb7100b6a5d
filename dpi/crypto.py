"""Field-level encryption and keyed blind indexes, with keys kept outside the database.

The keyring is a JSON file (``DPI_KEYRING_FILE``) holding versioned keys per purpose:

- ``data``: AES-256-GCM keys for clinical free text, documents and national identifiers (live data);
- ``blind_index``: an HMAC-SHA256 key for exact-match search on identifiers (INS) without decrypting;
- ``archive``: keys that wrap per-archive data keys (retention), distinct from live keys;
- ``backup``: keys for encrypted database backups, distinct from live keys;
- ``audit_signing``: Ed25519 private keys signing audit-chain checkpoints.

Ciphertext names its key version (``v<N>:`` prefix for text, a 8-byte header for binary), so keys can be
rotated: new writes use the current version, ``manage.py rotate_keys`` re-encrypts old rows in batches.
The associated data binds a ciphertext to its table and column: a value copied into another column fails.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

PURPOSES = ("data", "blind_index", "archive", "backup", "audit_signing")
BINARY_MAGIC = b"DPE1"


class KeyringError(Exception):
    pass


class DecryptionError(Exception):
    pass


@dataclass
class KeySet:
    current: int
    keys: dict[int, bytes]
    created: dict[int, str] = field(default_factory=dict)  # version -> ISO time it was generated (key ages)

    def key(self, version: int | None = None) -> bytes:
        v = self.current if version is None else version
        try:
            return self.keys[v]
        except KeyError as exc:
            raise KeyringError(f"key version {v} is not in the keyring") from exc


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _new_key(purpose: str) -> bytes:
    if purpose == "audit_signing":
        from cryptography.hazmat.primitives import serialization

        return Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
    return secrets.token_bytes(32)


class Keyring:
    def __init__(self, sets: dict[str, KeySet], path: Path | None = None):
        self.sets = sets
        self.path = path

    @classmethod
    def load(cls, path: Path) -> Keyring:
        raw = json.loads(path.read_text())
        sets = {}
        for purpose in PURPOSES:
            entry = raw.get(purpose)
            if entry is None:
                raise KeyringError(f"keyring {path} has no '{purpose}' keys")
            keys = {int(v): base64.b64decode(k) for v, k in entry["keys"].items()}
            for v, k in keys.items():
                if len(k) != 32:
                    raise KeyringError(f"keyring {path}: {purpose} key v{v} must be 32 bytes")
            created = {int(v): str(t) for v, t in entry.get("created", {}).items()}
            sets[purpose] = KeySet(current=int(entry["current"]), keys=keys, created=created)
        return cls(sets, path)

    @classmethod
    def generate(cls, path: Path) -> Keyring:
        now = _now_iso()
        ring = cls({p: KeySet(current=1, keys={1: _new_key(p)}, created={1: now}) for p in PURPOSES}, path)
        ring.save()
        return ring

    def save(self) -> None:
        assert self.path is not None
        data = {
            p: {
                "current": s.current,
                "keys": {str(v): base64.b64encode(k).decode() for v, k in s.keys.items()},
                "created": {str(v): t for v, t in s.created.items()},
            }
            for p, s in self.sets.items()
        }
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
        os.replace(tmp, self.path)

    def add_version(self, purpose: str) -> int:
        s = self.sets[purpose]
        new = max(s.keys) + 1
        s.keys[new] = _new_key(purpose)
        s.created[new] = _now_iso()
        s.current = new
        return new

    def __getitem__(self, purpose: str) -> KeySet:
        return self.sets[purpose]


_lock = threading.Lock()
_keyring: Keyring | None = None


def keyring() -> Keyring:
    """The process keyring, loaded once (generated on first use outside production)."""
    global _keyring
    if _keyring is None:
        with _lock:
            if _keyring is None:
                path = Path(settings.DPI_KEYRING_FILE)
                if not path.exists():
                    if settings.PRODUCTION:
                        raise KeyringError(f"keyring {path} missing")
                    _keyring = Keyring.generate(path)
                else:
                    _keyring = Keyring.load(path)
    return _keyring


def reload_keyring() -> Keyring:
    global _keyring
    with _lock:
        _keyring = None
    return keyring()


# --- text values ------------------------------------------------------------------------------------------
def encrypt_text(plaintext: str, *, aad: str, purpose: str = "data") -> str:
    ks = keyring()[purpose]
    nonce = secrets.token_bytes(12)
    ct = AESGCM(ks.key()).encrypt(nonce, plaintext.encode("utf-8"), aad.encode())
    return f"v{ks.current}:" + base64.b64encode(nonce + ct).decode("ascii")


def text_version(token: str) -> int:
    head, _, _ = token.partition(":")
    if not head.startswith("v") or not head[1:].isdigit():
        raise DecryptionError("not a dpi ciphertext")
    return int(head[1:])


def decrypt_text(token: str, *, aad: str, purpose: str = "data") -> str:
    version = text_version(token)
    blob = base64.b64decode(token.partition(":")[2])
    try:
        plain = AESGCM(keyring()[purpose].key(version)).decrypt(blob[:12], blob[12:], aad.encode())
    except Exception as exc:  # InvalidTag: wrong key, tampered value or wrong column
        raise DecryptionError(f"cannot decrypt value for {aad} (key v{version})") from exc
    return plain.decode("utf-8")


# --- binary values (documents) ----------------------------------------------------------------------------
def encrypt_bytes(
    plaintext: bytes, *, aad: str, purpose: str = "data", key: bytes | None = None, version: int | None = None
) -> bytes:
    if key is None:
        ks = keyring()[purpose]
        key, version = ks.key(), ks.current
    nonce = secrets.token_bytes(12)
    return (
        BINARY_MAGIC
        + int(version or 0).to_bytes(4, "big")
        + nonce
        + AESGCM(key).encrypt(nonce, plaintext, aad.encode())
    )


def bytes_version(blob: bytes) -> int:
    if blob[:4] != BINARY_MAGIC:
        raise DecryptionError("not a dpi binary ciphertext")
    return int.from_bytes(blob[4:8], "big")


def decrypt_bytes(blob: bytes, *, aad: str, purpose: str = "data", key: bytes | None = None) -> bytes:
    version = bytes_version(bytes(blob[:8]))
    if key is None:
        key = keyring()[purpose].key(version)
    try:
        return AESGCM(key).decrypt(bytes(blob[8:20]), bytes(blob[20:]), aad.encode())
    except Exception as exc:
        raise DecryptionError(f"cannot decrypt binary value for {aad}") from exc


# --- blind index ------------------------------------------------------------------------------------------
def blind_index(value: str, *, domain: str) -> str:
    """Keyed HMAC of a normalised identifier: equal inputs give equal indexes, nothing else leaks."""
    normalised = "".join(value.split()).upper()
    key = keyring()["blind_index"].key()
    return hmac.new(key, f"{domain}:{normalised}".encode(), hashlib.sha256).hexdigest()


def signing_key(version: int | None = None) -> tuple[int, Ed25519PrivateKey]:
    ks = keyring()["audit_signing"]
    v = ks.current if version is None else version
    return v, Ed25519PrivateKey.from_private_bytes(ks.key(v))


def key_created_at(purpose: str, version: int) -> datetime | None:
    """When a key version was generated (None for keyrings written before dates were kept)."""
    raw = keyring()[purpose].created.get(version)
    try:
        return datetime.fromisoformat(raw) if raw else None
    except ValueError:
        return None

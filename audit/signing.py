"""What a checkpoint signature covers, and checking it (Ed25519 keys from the keyring, dpi.crypto)."""

from __future__ import annotations

from datetime import UTC
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from dpi.crypto import KeyringError, signing_key

GENESIS = bytes(32)  # the "previous hash" of the first link


def checkpoint_message(cp) -> bytes:
    """The exact bytes signed: a versioned, line-separated statement of what the checkpoint asserts."""
    cutoff = cp.retention_cutoff.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if cp.retention_cutoff else "-"
    return "\n".join([
        "dpi-audit-checkpoint/1",
        str(int(cp.seq)),
        bytes(cp.head_hash).hex(),
        cp.signed_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        str(cp.kind),
        cutoff,
        str(int(cp.key_version)),
    ]).encode()


@lru_cache(maxsize=16)
def public_key(version: int) -> Ed25519PublicKey:
    return signing_key(version)[1].public_key()


def checkpoint_signature_valid(cp) -> bool:
    try:
        public_key(int(cp.key_version)).verify(bytes(cp.signature), checkpoint_message(cp))
    except (InvalidSignature, KeyringError, ValueError):
        return False
    return True

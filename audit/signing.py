"""What a checkpoint signature covers, the digest that chains checkpoints, and checking both (Ed25519 keys
from the keyring, dpi.crypto)."""

from __future__ import annotations

import hashlib
from datetime import UTC
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from dpi.crypto import KeyringError, signing_key

GENESIS = bytes(32)  # the "previous hash" of the first link, and the "previous digest" of checkpoint #1


def _time(value) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def checkpoint_message(cp) -> bytes:
    """The exact bytes signed: a versioned, line-separated statement of what the checkpoint asserts.

    Format 2 (migration 0005 on) also covers the checkpoint's number, the digest of the previous checkpoint
    and, for a retention checkpoint, the range of links it removes. Format 1 is kept to check checkpoints
    signed before.
    """
    cutoff = _time(cp.retention_cutoff) if cp.retention_cutoff else "-"
    lines = [
        "dpi-audit-checkpoint/1",
        str(int(cp.seq)),
        bytes(cp.head_hash).hex(),
        _time(cp.signed_at),
        str(cp.kind),
        cutoff,
        str(int(cp.key_version)),
    ]
    if int(getattr(cp, "format", 2) or 2) >= 2:
        removed = (f"{int(cp.removed_first_seq)}-{int(cp.removed_last_seq)}"
                   if cp.removed_first_seq is not None and cp.removed_last_seq is not None else "-")
        lines[0] = "dpi-audit-checkpoint/2"
        lines += [str(int(cp.number)), bytes(cp.prev_digest).hex(), removed]
    return "\n".join(lines).encode()


def checkpoint_digest(cp) -> bytes:
    """What the next checkpoint signs as ``prev_digest``: SHA-256 of the statement, the previous digest and
    the signature (format-1 checkpoints are chained by this digest too, unsigned, up to the first format-2
    one, which signs it)."""
    return hashlib.sha256(checkpoint_message(cp) + b"\n" + bytes(cp.prev_digest) + bytes(cp.signature)).digest()


@lru_cache(maxsize=16)
def public_key(version: int) -> Ed25519PublicKey:
    return signing_key(version)[1].public_key()


def checkpoint_signature_valid(cp) -> bool:
    try:
        public_key(int(cp.key_version)).verify(bytes(cp.signature), checkpoint_message(cp))
    except (InvalidSignature, KeyringError, ValueError, TypeError):
        return False
    return True


# --- verification runs -----------------------------------------------------------------------------------------
def _opt(value) -> str:
    if value is None:
        return "-"
    return _time(value) if hasattr(value, "astimezone") else str(value)


def run_message(run) -> bytes:
    """The exact bytes signed for a verification run: its number, the previous run's digest, and everything
    the DPO is shown of it (the message and the problems by their SHA-256)."""
    import json

    problems = json.dumps(run.problems or [], sort_keys=True, separators=(",", ":")).encode()
    lines = [
        "dpi-audit-verification/1", str(int(run.number)), bytes(run.prev_digest or b"").hex(),
        _time(run.started_at), _time(run.finished_at), "ok" if run.ok else "broken",
        "completed" if run.completed else "incomplete",
        *(_opt(getattr(run, name)) for name in (
            "events_checked", "checkpoints_checked", "witness_checked", "first_seq", "last_seq", "first_broken_id",
            "first_broken_seq", "first_broken_occurred_at", "last_checkpoint_number", "last_checkpoint_at")),
        hashlib.sha256((run.message or "").encode()).hexdigest(), hashlib.sha256(problems).hexdigest(),
        str(int(run.key_version)),
    ]
    return "\n".join(lines).encode()


def run_digest(run) -> bytes:
    """What the next run signs as ``prev_digest`` (and what the witness line records)."""
    return hashlib.sha256(run_message(run) + bytes(run.signature)).digest()


def run_signature_valid(run) -> bool:
    if run.number is None or run.signature is None or run.key_version is None:
        return False
    try:
        public_key(int(run.key_version)).verify(bytes(run.signature), run_message(run))
    except (InvalidSignature, KeyringError, ValueError, TypeError):
        return False
    return True

"""Witnesses of the signed checkpoints outside the database (docs/audit.md, "Threat model").

Every checkpoint, once committed, is also written where the database's superuser cannot rewrite it:

- an **append-only file** on the archive storage (``DPI_AUDIT_WITNESS_FILE``): one JSON line per checkpoint,
  written with ``O_APPEND`` under an exclusive lock and flushed to disk (``fsync``);
- **syslog** (RFC 5424) to a collector (``DPI_AUDIT_SYSLOG``: ``udp://host:514`` or ``tcp://host:601``, TCP
  framed by octet counting, RFC 6587): the same JSON line as the message, so a copy of the collector's log
  can be reconciled too (``verify_audit --witness FILE``);
- optionally an **RFC 3161 time-stamp** (``DPI_AUDIT_TSA_URL``): see ``audit.timestamp``.

A witness line carries everything the checkpoint signed and its signature, so the verifier checks it on its
own (an edited line no longer verifies) and reconciles the database against it: a checkpoint deleted or
edited in the database is named from the witness, and the witness's checkpoints count as signed heads even
when the database lost them.
"""

from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlparse

from django.conf import settings

from audit.signing import checkpoint_digest

log = logging.getLogger(__name__)

SYSLOG_FACILITY_AUDIT = 13  # "log audit" (RFC 5424 table 1)
SYSLOG_SEVERITY_NOTICE = 5
SD_ID = "dpiCheckpoint@32473"  # 32473: the enterprise number reserved for documentation (RFC 5612)


def witness_path() -> Path | None:
    value = getattr(settings, "DPI_AUDIT_WITNESS_FILE", None)
    return Path(value) if value else None


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_of(cp) -> dict[str, Any]:
    """The witness line of a checkpoint: what it signed, its signature and its digest."""
    return {
        "type": "checkpoint",
        "number": int(cp.number),
        "format": int(cp.format),
        "kind": str(cp.kind),
        "seq": int(cp.seq),
        "head": bytes(cp.head_hash).hex(),
        "prev": bytes(cp.prev_digest).hex(),
        "signed_at": _time(cp.signed_at),
        "cutoff": _time(cp.retention_cutoff) if cp.retention_cutoff else None,
        "removed": ([int(cp.removed_first_seq), int(cp.removed_last_seq)]
                    if cp.removed_last_seq is not None and cp.removed_first_seq is not None else None),
        "key": int(cp.key_version),
        "sig": base64.b64encode(bytes(cp.signature)).decode(),
        "digest": checkpoint_digest(cp).hex(),
    }


def line_of(entry: dict[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"))


def checkpoint_of(entry: dict[str, Any]) -> SimpleNamespace:
    """A checkpoint-like object rebuilt from a witness line (what ``checkpoint_signature_valid`` checks)."""
    removed = entry.get("removed")
    return SimpleNamespace(
        pk=None, number=int(entry["number"]), format=int(entry.get("format", 2)), kind=str(entry["kind"]),
        seq=int(entry["seq"]), head_hash=bytes.fromhex(entry["head"]), prev_digest=bytes.fromhex(entry["prev"]),
        signed_at=datetime.strptime(entry["signed_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC),
        retention_cutoff=(datetime.strptime(entry["cutoff"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
                          if entry.get("cutoff") else None),
        removed_first_seq=int(removed[0]) if removed else None,
        removed_last_seq=int(removed[1]) if removed else None,
        key_version=int(entry["key"]), signature=base64.b64decode(entry["sig"]), witnessed=True,
    )


@dataclass
class WitnessLog:
    """What a witness file holds: checkpoint lines by number, other lines (time-stamps), unreadable lines."""

    path: Path | None
    exists: bool = False
    checkpoints: dict[int, list[tuple[int, dict]]] = field(default_factory=dict)  # number -> [(line, entry)]
    timestamps: dict[int, list[dict]] = field(default_factory=dict)
    verifications: dict[int, list[tuple[int, dict]]] = field(default_factory=dict)  # run number -> [(line, entry)]
    unreadable: list[int] = field(default_factory=list)  # line numbers

    @property
    def last_number(self) -> int:
        return max(self.checkpoints, default=0)


def read(path: Path | None = None) -> WitnessLog:
    """Parse a witness file, or a copy of the syslog collector's log (the JSON object in each line)."""
    path = path if path is not None else witness_path()
    wl = WitnessLog(path)
    if path is None or not path.exists():
        return wl
    wl.exists = True
    with path.open("rb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH)  # never half a line being appended by a signer
        for lineno, raw in enumerate(fh, start=1):
            text = raw.decode("utf-8", "replace").strip()
            if not text:
                continue
            start = text.find("{")
            try:
                entry = json.loads(text[start:]) if start >= 0 else None
            except ValueError:
                entry = None
            if not isinstance(entry, dict):
                wl.unreadable.append(lineno)
                continue
            kind = entry.get("type")
            try:
                if kind == "checkpoint":
                    wl.checkpoints.setdefault(int(entry["number"]), []).append((lineno, entry))
                elif kind == "timestamp":
                    wl.timestamps.setdefault(int(entry["number"]), []).append(entry)
                elif kind == "verification":
                    wl.verifications.setdefault(int(entry["number"]), []).append((lineno, entry))
                else:
                    wl.unreadable.append(lineno)
            except (KeyError, TypeError, ValueError):
                wl.unreadable.append(lineno)
    return wl


_TAIL_BYTES = 65536


def _tail_entries(path: Path, kind: str) -> tuple[list[dict[str, Any]], bool]:
    """The entries of one type in the file's last ``_TAIL_BYTES`` (cheap), and whether the file is longer than
    that (then a caller that found nothing there reads it whole). Raises FileNotFoundError."""
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - _TAIL_BYTES))
        tail = fh.read().decode("utf-8", "replace").splitlines()
    entries = []
    for text in tail:
        start = text.find("{")
        try:
            entry = json.loads(text[start:]) if start >= 0 else None
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("type") == kind:
            entries.append(entry)
    return entries, size > _TAIL_BYTES


def _last_number(path: Path) -> int:
    """The highest checkpoint number in the file's last lines (cheap: reads its tail only)."""
    try:
        entries, longer = _tail_entries(path, "checkpoint")
    except FileNotFoundError:
        return 0
    best = 0
    for entry in entries:
        try:
            best = max(best, int(entry["number"]))
        except (KeyError, TypeError, ValueError):
            continue
    if best == 0 and longer:  # an unusual file (long lines): read it whole
        best = read(path).last_number
    return best


def file_append(lines: list[str], path: Path | None = None) -> None:
    """Append lines to the witness file: O_APPEND, an exclusive lock against concurrent signers, fsync."""
    path = path if path is not None else witness_path()
    if path is None or not lines:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, "".join(line + "\n" for line in lines).encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def run_entry(run) -> dict[str, Any]:
    """The witness line of a verification run: its number, result and digest (audit.signing.run_digest)."""
    from audit.selectors import NOT_GENUINE_KINDS
    from audit.signing import run_digest

    # The rows it named as not genuine (id, date, kind: no patient data), so that the patient's access report
    # still marks them if the run's record is edited in the database.
    named = [[p["event_id"], p["occurred_at"], p["kind"]] for p in (run.problems or [])
             if p.get("kind") in NOT_GENUINE_KINDS and p.get("event_id") is not None and p.get("occurred_at")]
    return {"type": "verification", "number": int(run.number), "finished_at": _time(run.finished_at),
            "ok": bool(run.ok), "completed": bool(run.completed), "digest": run_digest(run).hex(), "named": named}


def run_witness(run) -> None:
    """Append a stored verification run to the witness file; a failure is logged (the run is kept)."""
    try:
        file_append([line_of(run_entry(run))])
    except OSError as exc:
        log.error("audit verification #%s: witness file not written: %s", run.number, exc)


def last_run_entry(path: Path | None = None) -> dict[str, Any] | None:
    """The newest verification run in the witness file (reads its tail only; the whole file if need be)."""
    path = path if path is not None else witness_path()
    if path is None or not path.exists():
        return None
    entries, longer = _tail_entries(path, "verification")
    best: dict[str, Any] | None = None
    for entry in entries:
        if isinstance(entry.get("number"), int) and (best is None or entry["number"] > best["number"]):
            best = entry
    if best is None and longer:
        runs = read(path).verifications
        if runs:
            best = runs[max(runs)][-1][1]
    return best


# --- syslog (RFC 5424) ---------------------------------------------------------------------------------------
def syslog_message(entry: dict[str, Any], *, hostname: str | None = None, now: datetime | None = None) -> bytes:
    """One RFC 5424 message: PRI VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG (MSG = the line)."""
    pri = SYSLOG_FACILITY_AUDIT * 8 + SYSLOG_SEVERITY_NOTICE
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    host = (hostname or socket.gethostname() or "-")[:255].replace(" ", "_")
    sd = f'[{SD_ID} number="{entry["number"]}" seq="{entry["seq"]}" head="{entry["head"]}"]'
    return f"<{pri}>1 {stamp} {host} dpi {os.getpid()} checkpoint {sd} {line_of(entry)}".encode()


def syslog_send(entries: list[dict[str, Any]], target: str | None = None, *, timeout: float = 3.0) -> int:
    """Send each entry to the collector; returns how many were sent. Raises OSError when it cannot."""
    target = target if target is not None else getattr(settings, "DPI_AUDIT_SYSLOG", "")
    if not target or not entries:
        return 0
    url = urlparse(target)
    if url.scheme not in {"udp", "tcp"} or not url.hostname:
        raise ValueError(f"DPI_AUDIT_SYSLOG must be udp://host:port or tcp://host:port, got {target!r}")
    port = url.port or (514 if url.scheme == "udp" else 601)
    messages = [syslog_message(e) for e in entries]
    if url.scheme == "udp":
        family = socket.getaddrinfo(url.hostname, port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family[0], socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            for message in messages:
                sock.sendto(message, family[4])
    else:
        with socket.create_connection((url.hostname, port), timeout=timeout) as sock:
            sock.sendall(b"".join(str(len(m)).encode() + b" " + m for m in messages))  # RFC 6587 octet counting
    return len(messages)


# --- the whole witness step of a checkpoint ----------------------------------------------------------------------
def checkpoint_witness(cp) -> dict[str, Any]:
    """Write a committed checkpoint to every configured witness (and any earlier one the file lacks, e.g.
    after a crash between the commit and the write). The file must succeed (raises otherwise: retention
    then stops before dropping anything); syslog and time-stamp failures are logged and reported."""
    from audit.models import AuditCheckpoint
    from audit.signing import checkpoint_signature_valid

    status: dict[str, Any] = {"file": None, "syslog": None, "timestamp": None}
    path = witness_path()
    entries = [entry_of(cp)]
    if path is not None:
        last = _last_number(path)
        if last < cp.number - 1:  # catch up: only genuine (validly signed) checkpoints
            missing = [c for c in AuditCheckpoint.objects.filter(number__gt=last, number__lt=cp.number)
                       .order_by("number") if checkpoint_signature_valid(c)]
            entries = [entry_of(c) for c in missing] + entries
        file_append([line_of(e) for e in entries], path)
        status["file"] = len(entries)
    try:
        status["syslog"] = syslog_send(entries)
    except (OSError, ValueError) as exc:
        log.error("audit checkpoint #%s: syslog witness failed: %s", cp.number, exc)
        status["syslog"] = f"failed: {exc}"
    if getattr(settings, "DPI_AUDIT_TSA_URL", ""):
        from audit import timestamp

        try:
            token = timestamp.request(checkpoint_digest(cp))
            file_append([line_of({"type": "timestamp", "number": int(cp.number),
                                  "digest": checkpoint_digest(cp).hex(),
                                  "token": base64.b64encode(token).decode()})], path)
            status["timestamp"] = len(token)
        except (OSError, ValueError) as exc:
            log.error("audit checkpoint #%s: RFC 3161 time-stamp failed: %s", cp.number, exc)
            status["timestamp"] = f"failed: {exc}"
    return status

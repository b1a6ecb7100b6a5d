"""Moving records to the archive: the archive file format and the per-patient state machine.

Archive file (``DPI_ARCHIVE_DIR/<2 hex>/<token>.dpa``): the record as JSON, zlib-compressed, encrypted with
AES-256-GCM under a fresh 256-bit data key (``dpi.crypto.encrypt_bytes``, associated data naming the archive).
The data key is wrapped (AES-256-GCM) by the keyring's ``archive`` key — never a live ``data`` key — and kept
in ``ArchiveKey`` in the database: the file alone is unreadable, and deleting the key row destroys every copy.
Written to ``.tmp``, fsynced, renamed, directory fsynced.

Each step below takes a batch of jobs in one state, commits the next state, and is safe to repeat:

1. ``export``   selected -> exported: read and decrypt the live rows, write the file, store checksum (SHA-256 of
   the file), wrapped key and the live-row digest. A crash before the commit leaves ``selected``: the next run
   writes the same file name again.
2. ``verify``   exported -> verified: read the file back, check its checksum, unwrap the key, decrypt, check the
   content (patient, digest). A bad file goes back to ``selected``.
3. ``remove``   verified -> live_removed, in ONE transaction: lock the patient rows, check the live rows did not
   change since the export (else back to ``selected``: exported again), create the stub and its key row, delete
   every live row. Before the commit the record is live only; after it, archived only.
4. ``finish``   live_removed -> archived.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from access import gate
from dpi import crypto
from retention import record as rec
from retention.models import ArchivedPatient, ArchiveJob, ArchiveKey

logger = logging.getLogger(__name__)

FORMAT = "dpi-archive/1"
State = ArchiveJob.State

# Named points between (and inside) steps. Tests inject faults here: an exception, or killing the process.
fault_hook: Callable[[str], None] | None = None


def checkpoint(point: str) -> None:
    if fault_hook is not None:
        fault_hook(point)


class ArchiveError(Exception):
    pass


# --- files ------------------------------------------------------------------------------------------------
def archive_dir() -> Path:
    return Path(settings.DPI_ARCHIVE_DIR)


def archive_path(relative: str) -> Path:
    return archive_dir() / relative


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_write(relative: str, blob: bytes, *, sync_dir: bool = True) -> None:
    """Write atomically: ``.tmp`` + fsync + rename (+ fsync of the directory, or the caller does it)."""
    path = archive_path(relative)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(blob)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if sync_dir:
        _fsync_dir(path.parent)


def file_delete(relative: str) -> None:
    if not relative:
        return
    path = archive_path(relative)
    for p in (path, path.with_name(path.name + ".tmp")):
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def _aad(token: str) -> str:
    return f"dpi-archive:{token}"


def _key_aad(token: str) -> str:
    return f"dpi-archive-key:{token}"


def archive_encode(payload: dict[str, Any], token: str) -> tuple[bytes, int, bytes]:
    """(file bytes, archive key version, wrapped data key)."""
    data_key = secrets.token_bytes(32)
    ring = crypto.keyring()["archive"]
    plain = zlib.compress(json.dumps(payload, cls=rec.RecordJSONEncoder, separators=(",", ":")).encode(), 6)
    blob = crypto.encrypt_bytes(plain, aad=_aad(token), key=data_key, version=ring.current)
    wrapped = crypto.encrypt_bytes(data_key, aad=_key_aad(token), purpose="archive")
    return blob, ring.current, wrapped


def archive_decode(blob: bytes, *, token: str, wrapped_key: bytes) -> dict[str, Any]:
    data_key = crypto.decrypt_bytes(bytes(wrapped_key), aad=_key_aad(token), purpose="archive")
    plain = crypto.decrypt_bytes(blob, aad=_aad(token), key=data_key)
    return json.loads(zlib.decompress(plain))


def archive_read(*, relative: str, token: str, wrapped_key: bytes, checksum: str) -> dict[str, Any]:
    """Read, checksum and decrypt an archive file; raises ArchiveError when anything is wrong."""
    try:
        blob = archive_path(relative).read_bytes()
    except OSError as exc:
        raise ArchiveError(f"archive file unreadable: {exc.__class__.__name__}") from exc
    if hashlib.sha256(blob).hexdigest() != checksum:
        raise ArchiveError("archive file checksum mismatch")
    try:
        payload = archive_decode(blob, token=token, wrapped_key=wrapped_key)
    except (crypto.DecryptionError, crypto.KeyringError, zlib.error, ValueError) as exc:
        raise ArchiveError(f"archive cannot be decrypted: {exc.__class__.__name__}") from exc
    if payload.get("format") != FORMAT or payload.get("token") != token:
        raise ArchiveError("archive content does not match its stub")
    return payload


SENSITIVITY = ("administrative", "medical", "restricted")


def audit_step(step: str, action: str, patient_id: int, categories: list[str], **details: Any) -> None:
    """One trace per patient and step, under the most sensitive category the record holds (all listed)."""
    top = max(categories or ["administrative"], key=SENSITIVITY.index)
    gate.authorize_system("retention", patient_id=patient_id, category=top, action=action,
                          resource_type="patient", resource_id=patient_id,
                          details={"step": step, "categories": categories, **details})


def _audit(step: str, action: str, job: ArchiveJob, categories: list[str]) -> None:
    audit_step(step, action, job.patient_id, categories, archive_job=job.pk)


def _categories(job: ArchiveJob) -> list[str]:
    return [c for c in job.categories.split(",") if c] or ["administrative"]


def _fail(job: ArchiveJob, message: str, *, state: str | None = None) -> None:
    job.attempts += 1
    job.last_error = message[:500]
    fields = ["attempts", "last_error", "updated_at"]
    if state:
        job.state = state
        fields.append("state")
    job.save(update_fields=fields)


def _claim(ids: list[int], state: str) -> list[ArchiveJob]:
    return list(ArchiveJob.objects.select_for_update(skip_locked=True).filter(pk__in=ids, state=state).order_by("pk"))


# --- steps ------------------------------------------------------------------------------------------------
def step_export(ids: list[int]) -> int:
    exported: list[ArchiveJob] = []
    dirs: set[Path] = set()
    with transaction.atomic():
        jobs = _claim(ids, State.SELECTED)
        if not jobs:
            return 0
        pids = [j.patient_id for j in jobs]
        records = rec.records_read(pids)
        digests = rec.live_digests(pids)
        blocked = rec.blocked(pids)
        for job in jobs:
            record = records[job.patient_id]
            if "patients.patient" not in record["tables"]:
                _fail(job, "patient no longer live", state=State.ABANDONED)
                continue
            if job.patient_id in blocked:
                _fail(job, f"kept live: referenced by {blocked[job.patient_id]}", state=State.ABANDONED)
                continue
            categories = rec.categories_of(record)
            token = str(job.token)
            payload = {"format": FORMAT, "token": token, "patient_id": job.patient_id,
                       "exported_at": timezone.now(), "policy": settings.DPI_RETENTION_PROFILE,
                       "kept_through": job.kept_through, "live_digest": digests[job.patient_id], **record}
            blob, version, wrapped = archive_encode(payload, token)
            file_write(job.relative_path, blob, sync_dir=False)
            dirs.add(archive_path(job.relative_path).parent)
            checkpoint("export:file_written")
            job.categories = ",".join(categories)
            job.key_version, job.wrapped_key = version, wrapped
            job.checksum = hashlib.sha256(blob).hexdigest()
            job.live_digest = digests[job.patient_id]
            job.size = len(blob)
            job.state = State.EXPORTED
            job.updated_at = timezone.now()
            exported.append(job)
            _audit("export", "export", job, categories)
        # The renames are durable before the state says so (a lost rename would otherwise be found only later).
        for directory in dirs:
            _fsync_dir(directory)
        ArchiveJob.objects.bulk_update(exported, ["categories", "key_version", "wrapped_key", "checksum",
                                                  "live_digest", "size", "state", "updated_at"])
    checkpoint("exported")
    return len(exported)


def step_verify(ids: list[int]) -> int:
    verified: list[ArchiveJob] = []
    with transaction.atomic():
        for job in _claim(ids, State.EXPORTED):
            try:
                payload = archive_read(relative=job.relative_path, token=str(job.token),
                                       wrapped_key=bytes(job.wrapped_key or b""), checksum=job.checksum)
                if payload["patient_id"] != job.patient_id or payload["live_digest"] != job.live_digest:
                    raise ArchiveError("archive content does not match the job")
            except ArchiveError as exc:
                _fail(job, f"verification failed, exporting again: {exc}", state=State.SELECTED)
                continue
            verified.append(job)
            _audit("verify", "view", job, _categories(job))
        ArchiveJob.objects.filter(pk__in=[j.pk for j in verified]).update(state=State.VERIFIED,
                                                                          updated_at=timezone.now())
    checkpoint("verified")
    return len(verified)


def step_remove(ids: list[int]) -> int:
    from patients.models import Patient

    removed: list[ArchiveJob] = []
    with transaction.atomic():
        jobs = _claim(ids, State.VERIFIED)
        if not jobs:
            return 0
        pids = [j.patient_id for j in jobs]
        # Lock the patients: inserts of new rows for them (FK checks take KEY SHARE locks) wait until we commit.
        live = {row["pk"]: row for row in Patient.objects.select_for_update().filter(pk__in=pids).order_by("pk")
                .values("pk", "ipp", "ins_bidx")}
        digests = rec.live_digests(list(live))
        for job in jobs:
            if job.patient_id not in live:
                _fail(job, "patient no longer live", state=State.ABANDONED)
                transaction.on_commit(lambda rel=job.relative_path: file_delete(rel))
                continue
            if digests[job.patient_id] != job.live_digest:
                _fail(job, "record changed after export, exporting again", state=State.SELECTED)
                continue
            removed.append(job)
        if removed:
            for job in removed:
                _audit("remove", "delete", job, _categories(job))
            stubs = ArchivedPatient.objects.bulk_create([
                ArchivedPatient(patient_id=j.patient_id, token=j.token, checksum=j.checksum, size=j.size,
                                policy=settings.DPI_RETENTION_PROFILE, kept_through=j.kept_through,
                                categories=j.categories,
                                ipp_bidx=crypto.blind_index(live[j.patient_id]["ipp"], domain="ipp"),
                                ins_bidx=live[j.patient_id]["ins_bidx"])
                for j in removed
            ])
            ArchiveKey.objects.bulk_create([
                ArchiveKey(archive=stub, key_version=j.key_version, wrapped_key=bytes(j.wrapped_key))
                for stub, j in zip(stubs, removed, strict=True)
            ])
            rec.live_rows_delete([j.patient_id for j in removed])
            checkpoint("remove:rows_deleted")
            ArchiveJob.objects.filter(pk__in=[j.pk for j in removed]).update(
                state=State.LIVE_REMOVED, wrapped_key=None, updated_at=timezone.now())
    checkpoint("live_removed")
    return len(removed)


def step_finish(ids: list[int]) -> int:
    with transaction.atomic():
        jobs = _claim(ids, State.LIVE_REMOVED)
        if not jobs:
            return 0
        stubs = set(ArchivedPatient.objects.filter(patient_id__in=[j.patient_id for j in jobs],
                                                   state=ArchivedPatient.State.ARCHIVED)
                    .values_list("token", flat=True))
        done = [j.pk for j in jobs if j.token in stubs]
        ArchiveJob.objects.filter(pk__in=done).update(state=State.ARCHIVED, last_error="", updated_at=timezone.now())
    checkpoint("archived")
    return len(done)


STEPS = ((State.SELECTED, step_export), (State.EXPORTED, step_verify), (State.VERIFIED, step_remove),
         (State.LIVE_REMOVED, step_finish))
OPEN_STATES = [s for s, _ in STEPS]


def jobs_advance(ids: list[int]) -> tuple[int, int]:
    """Take these jobs as far as they go. Returns (archived, errors).

    A step that fails for the batch is retried job by job, so one bad record does not hold back the others;
    the failing job keeps its last committed state and its error, and the next run resumes it.
    """
    archived, errors = 0, 0
    failed: set[int] = set()
    for _state, step in STEPS:
        todo = [i for i in ids if i not in failed]
        if not todo:
            break
        try:
            n = step(todo)
        except Exception:
            logger.warning("retention step %s failed for a batch; retrying job by job", step.__name__, exc_info=True)
            n = 0
            for job_id in todo:
                try:
                    n += step([job_id])
                except Exception as exc:  # recorded on the job; the run goes on with the others
                    failed.add(job_id)
                    errors += 1
                    ArchiveJob.objects.filter(pk=job_id).update(
                        attempts=F("attempts") + 1, last_error=f"{exc.__class__.__name__}: {exc}"[:500],
                        updated_at=timezone.now())
        if step is step_finish:
            archived = n
    return archived, errors

"""Retention writes: the daily run, restore requests (four eyes), legal holds, disposal decisions and disposal.

Workers reach patient data through ``access.gate.authorize_system("retention", ...)``; people through role
checks below, each recorded with ``audit.services.event_record`` (patient id only, never identity).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from access import gate
from access.care_team import care_grants_recompute
from access.policy import Category, Role
from audit.labels import role_label
from audit.services import event_record
from dpi import crypto
from retention import archiving, policies, statistics
from retention import record as rec
from retention.models import (
    ArchivedPatient,
    ArchiveJob,
    ArchiveKey,
    DisposalDecision,
    LegalHold,
    RestoreRequest,
    RetentionRun,
)

logger = logging.getLogger(__name__)

ADVISORY_LOCK = 0x44504952  # "DPIR": one retention run at a time, released if the process dies
BATCH = 100
RESTORE_REQUESTER_ROLES = frozenset({Role.DIM})
RESTORE_APPROVER_ROLES = frozenset({Role.DIM, Role.DPO})
HOLD_ROLES = frozenset({Role.DIM, Role.DPO})
DISPOSED = "[disposed]"

Progress = Callable[[str, int, int], None]


# --- who may do what --------------------------------------------------------------------------------------
def _staff_check(user: Any, roles: frozenset[Role], *, what: str, patient_id: int | None = None) -> Role:
    """The user is an active, verified account with one of ``roles``; else a denied event and PermissionDenied."""
    role = gate.role_of(user)
    problem = gate._account_problem(user, role, timezone.now())  # the gate's own account rules (contract, 2FA)
    shown = ""
    if problem is None and role not in roles:
        problem = ("deny:role", f"role {role.value if role else 'none'} may not {what}")
        shown = gettext("role %(role)s may not %(what)s") % {
            "role": role_label(role.value if role else ""), "what": gettext(what)}
    if problem is None:
        return role  # type: ignore[return-value]
    event_record(actor=user if getattr(user, "is_authenticated", False) else None,
                 actor_role=role.value if role else "", actor_unit=gate.unit_of(user), patient_id=patient_id,
                 category=Category.MEDICAL, action="other", outcome="denied", basis=problem[0], reason=problem[1],
                 resource_type="archive", details={"step": what})
    # The trace keeps the English; the caller reads its own language.
    raise PermissionDenied(shown or gettext(problem[1]))


def _staff_event(user: Any, role: Role, *, step: str, patient_id: int | None, action: str = "other",
                 **details: Any) -> None:
    event_record(actor=user, actor_role=role.value, actor_unit=gate.unit_of(user), patient_id=patient_id,
                 category=Category.MEDICAL, action=action, outcome="allowed", basis=f"role:{role.value}",
                 resource_type="archive", resource_id=patient_id or "", details={"step": step, **details})


# --- selection --------------------------------------------------------------------------------------------
def jobs_select(*, today: date, run: RetentionRun | None = None, limit: int | None = None) -> int:
    """Create a ``selected`` job for every live patient whose live period has ended: one INSERT ... SELECT.
    A patient with an open job keeps it (unique open job per patient): never selected twice."""
    policy = policies.current_policy()
    sql = policies.due_patients_sql(policy) + rec.blockers_sql() + " ORDER BY p.id"
    if limit:
        sql += f" LIMIT {int(limit)}"
    now = timezone.now()
    with connection.cursor() as cur:
        cur.execute(
            f"""INSERT INTO retention_archivejob (token, patient_id, state, kept_through, checksum, live_digest, size,
                    categories, attempts, last_error, run_id, created_at, updated_at)
                SELECT gen_random_uuid(), d.id, 'selected', d.kept_through, '', '', 0, '', 0, '', %(run)s,
                       %(now)s, %(now)s
                FROM ({sql}) d
                ON CONFLICT DO NOTHING""",  # noqa: S608 - policy SQL is built from constants
            {"today": today, "tz": settings.TIME_ZONE, "run": run.pk if run else None, "now": now},
        )
        return cur.rowcount


def due_patient_ids(*, today: date) -> list[int]:
    """The live patients whose live period has ended (the selection, without creating jobs)."""
    policy = policies.current_policy()
    with connection.cursor() as cur:
        cur.execute(policies.due_patients_sql(policy) + rec.blockers_sql() + " ORDER BY p.id",
                    {"today": today, "tz": settings.TIME_ZONE})
        return [row[0] for row in cur.fetchall()]


# --- the run ----------------------------------------------------------------------------------------------
def _bump(run: RetentionRun, **counts: int) -> None:
    counts = {k: v for k, v in counts.items() if v}
    if counts:
        RetentionRun.objects.filter(pk=run.pk).update(**{k: F(k) + v for k, v in counts.items()})


def retention_run(*, today: date | None = None, limit: int | None = None, progress: Progress | None = None,
                  batch: int = BATCH) -> RetentionRun:
    """The daily run: archive due records, finish approved restores, dispose of decided archives, purge care
    sheet copies, drop expired trace partitions, delete orphan files. Resumes whatever a crashed run left."""
    today = today or timezone.localdate()
    lock = _run_lock()
    if lock is None:
        return RetentionRun.objects.create(status=RetentionRun.Status.SKIPPED, finished_at=timezone.now(),
                                           profile=settings.DPI_RETENTION_PROFILE)
    try:
        # We hold the lock: any run still marked running was interrupted.
        RetentionRun.objects.filter(status=RetentionRun.Status.RUNNING).update(
            status=RetentionRun.Status.FAILED, message="interrupted (worker stopped)", finished_at=timezone.now())
        run = RetentionRun.objects.create(profile=settings.DPI_RETENTION_PROFILE)
        _run_steps(run, today=today, limit=limit, progress=progress, batch=batch)
        RetentionRun.objects.filter(pk=run.pk).update(status=RetentionRun.Status.FINISHED, finished_at=timezone.now())
        run.refresh_from_db()
        return run
    finally:
        _run_unlock(lock)


def _run_unlock(lock_conn) -> None:
    try:
        lock_conn.execute("ROLLBACK")  # ends the lock's transaction now (closing alone ends it when the server notices)
    finally:
        lock_conn.close()


def _run_lock():
    """One retention run at a time across every worker: a transaction-scoped advisory lock held by an open
    transaction on a connection of its own for the whole run (the run's work commits batch by batch on the
    usual connection). Transaction-scoped so that it also holds behind PgBouncer in transaction mode, where a
    session-level lock would stay on whichever server connection took it; it is released when the run ends,
    or when the worker dies and its connection closes. Returns the open connection, or None if taken."""
    lock_conn = connection.get_new_connection(connection.get_connection_params())
    try:
        lock_conn.autocommit = True
        lock_conn.execute("BEGIN")
        got = lock_conn.execute("SELECT pg_try_advisory_xact_lock(%s)", [ADVISORY_LOCK]).fetchone()[0]
    except BaseException:
        lock_conn.close()
        raise
    if not got:
        lock_conn.close()
        return None
    return lock_conn


def _run_steps(run: RetentionRun, *, today: date, limit: int | None, progress: Progress | None, batch: int) -> None:
    jobs_select(today=today, run=run, limit=limit)
    open_ids = list(ArchiveJob.objects.filter(state__in=archiving.OPEN_STATES).order_by("pk")
                    .values_list("pk", flat=True))
    RetentionRun.objects.filter(pk=run.pk).update(due=len(open_ids))
    done = 0
    if progress:
        progress("archive", 0, len(open_ids))
    for i in range(0, len(open_ids), batch):
        chunk = open_ids[i:i + batch]
        archived, errors = archiving.jobs_advance(chunk)
        _bump(run, archived=archived, errors=errors)
        done += len(chunk)
        if progress:
            progress("archive", done, len(open_ids))

    approved = list(RestoreRequest.objects.filter(state=RestoreRequest.State.APPROVED).values_list("pk", flat=True))
    for request_id in approved:
        try:
            restore_execute(request_id=request_id, today=today)
            _bump(run, restored=1)
        except Exception as exc:  # recorded on the request; retried by the next run
            logger.warning("restore of request %s failed: %s", request_id, exc)
            _bump(run, errors=1)

    decided = list(ArchivedPatient.objects.filter(state=ArchivedPatient.State.ARCHIVED,
                                                  disposal_decision__isnull=False)
                   .values_list("pk", flat=True))
    if progress and decided:
        progress("dispose", 0, len(decided))
    for n, stub_id in enumerate(decided, 1):
        try:
            outcome = archive_dispose(stub_id=stub_id)
        except Exception as exc:
            logger.warning("disposal of archive %s failed: %s", stub_id, exc)
            _bump(run, errors=1)
            continue
        if outcome == ArchivedPatient.State.DESTROYED:
            _bump(run, destroyed=1)
        elif outcome == ArchivedPatient.State.ANONYMISED:
            _bump(run, anonymised=1)
        if progress:
            progress("dispose", n, len(decided))

    for name, task in (("care_sheets_purged", lambda: care_sheet_copies_purge(today=today)),
                       ("trace_partitions_dropped", trace_partitions_drop), ("", orphan_files_delete)):
        try:
            count = task()
        except Exception as exc:  # e.g. audit refuses to drop traces while its chain is broken: reported
            logger.warning("retention run %s: %s failed: %s", run.pk, name or "orphan clean-up", exc)
            _bump(run, errors=1)
            RetentionRun.objects.filter(pk=run.pk).update(message=f"{name or 'orphans'}: {exc}"[:500])
            continue
        if name:
            _bump(run, **{name: count})


# --- care sheets, traces, orphans -------------------------------------------------------------------------
def care_sheet_copies_purge(*, today: date) -> int:
    """R161-47 CSS: duplicates of electronic care sheets are kept 3 months."""
    from dpi.models import Document

    cutoff = timezone.make_aware(timezone.datetime.combine(today - timedelta(days=policies.CARE_SHEET_COPY_DAYS),
                                                          timezone.datetime.min.time()))
    old = list(Document.objects.filter(media_type=policies.CARE_SHEET_MEDIA_TYPE, created_at__lt=cutoff)
               .values_list("pk", "patient_id"))
    if not old:
        return 0
    with transaction.atomic():
        for doc_id, patient_id in old:
            gate.authorize_system("retention", patient_id=patient_id, category=Category.MEDICAL, action="delete",
                                  resource_type="document", resource_id=doc_id, details={"step": "care_sheet_copy"})
        Document.objects.filter(pk__in=[d for d, _ in old]).delete()
    return len(old)


def trace_partitions_drop() -> int:
    """Access traces have their own period (DPI_AUDIT_RETENTION_MONTHS), dropped by whole monthly partitions."""
    from audit import services as audit_services

    drop = getattr(audit_services, "partitions_drop_older_than", None)
    if drop is None:
        return 0
    result = drop(settings.DPI_AUDIT_RETENTION_MONTHS)
    if isinstance(result, list | tuple | set):
        return len(result)
    return int(result or 0)


def orphan_files_delete() -> int:
    """Delete archive files that no stub and no open job refers to (left by a crash after a disposal or a
    restore committed). Files of open jobs are kept: the job rewrites or verifies them."""
    root = archiving.archive_dir()
    if not root.exists():
        return 0
    found: dict[str, list] = {}
    for path in root.glob("*/*.dpa*"):
        token = path.name.split(".", 1)[0]
        found.setdefault(token, []).append(path)
    if not found:
        return 0
    tokens = []
    for t in found:
        try:
            tokens.append(uuid.UUID(t))
        except ValueError:
            continue
    keep = set(ArchivedPatient.objects.filter(token__in=tokens).values_list("token", flat=True))
    keep |= set(ArchiveJob.objects.filter(token__in=tokens, state__in=archiving.OPEN_STATES)
                .values_list("token", flat=True))
    deleted = 0
    for token in tokens:
        if token in keep:
            continue
        for path in found[token.hex]:
            path.unlink(missing_ok=True)
            deleted += 1
    return deleted


# --- archive lookup ---------------------------------------------------------------------------------------
def archive_find(*, user: Any, ipp: str = "", ins: str = "") -> list[ArchivedPatient]:
    """DIM only: find an archived patient by exact IPP or INS (blind index), audited as a search."""
    role = _staff_check(user, RESTORE_REQUESTER_ROLES, what=gettext_noop("search the archive"))
    qs = ArchivedPatient.objects.filter(state=ArchivedPatient.State.ARCHIVED)
    if ipp.strip():
        qs = qs.filter(ipp_bidx=crypto.blind_index(ipp.strip(), domain="ipp"))
    elif ins.strip():
        from patients.services import ins_blind_index

        qs = qs.filter(ins_bidx=ins_blind_index("".join(ins.split())))
    else:
        raise ValidationError({"ipp": [gettext("Give an IPP or an INS.")]})
    found = list(qs[:10])
    event_record(actor=user, actor_role=role.value, actor_unit=gate.unit_of(user), category=Category.ADMINISTRATIVE,
                 action="search", outcome="allowed", basis=f"role:{role.value}", resource_type="archive",
                 details={"found": [a.patient_id for a in found]})
    return found


# --- restore (four eyes) ----------------------------------------------------------------------------------
@transaction.atomic
def restore_request_create(*, user: Any, patient_id: int, reason: str) -> RestoreRequest:
    role = _staff_check(user, RESTORE_REQUESTER_ROLES, what=gettext_noop("request a restore"),
                        patient_id=patient_id)
    if len(reason.strip()) < 10:
        raise ValidationError({"reason": [gettext("State the reason for the restore (at least 10 characters).")]})
    if not ArchivedPatient.objects.filter(patient_id=patient_id, state=ArchivedPatient.State.ARCHIVED).exists():
        raise ValidationError({"patient_id": [gettext("No archived record with this id.")]})
    if RestoreRequest.objects.filter(patient_id=patient_id, state__in=["pending", "approved"]).exists():
        raise ValidationError({"patient_id": [gettext("A restore of this record is already requested.")]})
    req = RestoreRequest(patient_id=patient_id, reason=reason.strip(), requested_by=user)
    req.full_clean()
    req.save(force_insert=True)
    _staff_event(user, role, step="restore_request", patient_id=patient_id, restore_request=req.pk)
    return req


def restore_request_approve(*, user: Any, request_id: int, comment: str = "", today: date | None = None
                            ) -> RestoreRequest:
    """A second authorised person approves; the restore runs at once (and by the daily run if it fails)."""
    with transaction.atomic():
        req = RestoreRequest.objects.select_for_update().get(pk=request_id)
        role = _staff_check(user, RESTORE_APPROVER_ROLES, what=gettext_noop("approve a restore"),
                            patient_id=req.patient_id)
        if req.requested_by_id == user.pk:
            event_record(actor=user, actor_role=role.value, actor_unit=gate.unit_of(user), patient_id=req.patient_id,
                         category=Category.MEDICAL, action="other", outcome="denied", basis="deny:four_eyes",
                         reason="the requester cannot approve their own request", resource_type="archive",
                         details={"step": "restore_approve", "restore_request": req.pk})
            raise PermissionDenied(gettext("A second person must approve the restore."))
        if req.state != RestoreRequest.State.PENDING:
            raise ValidationError({"__all__": [gettext("This request is %(state)s.")
                                               % {"state": req.get_state_display()}]})
        req.state = RestoreRequest.State.APPROVED
        req.decided_by, req.decided_at, req.decision_comment = user, timezone.now(), comment.strip()[:500]
        req.save(update_fields=["state", "decided_by", "decided_at", "decision_comment"])
        _staff_event(user, role, step="restore_approve", patient_id=req.patient_id, restore_request=req.pk)
    try:
        restore_execute(request_id=req.pk, today=today)
    except Exception as exc:  # the request stays approved with its error; the daily run retries it
        logger.warning("restore of request %s failed: %s", req.pk, exc)
    req.refresh_from_db()
    return req


@transaction.atomic
def restore_request_reject(*, user: Any, request_id: int, comment: str = "") -> RestoreRequest:
    req = RestoreRequest.objects.select_for_update().get(pk=request_id)
    role = _staff_check(user, RESTORE_APPROVER_ROLES, what=gettext_noop("reject a restore"),
                        patient_id=req.patient_id)
    if req.state != RestoreRequest.State.PENDING:
        raise ValidationError({"__all__": [gettext("This request is %(state)s.") % {"state": req.get_state_display()}]})
    if req.requested_by_id == user.pk:
        raise PermissionDenied(gettext("A second person must decide on the restore."))
    req.state = RestoreRequest.State.REJECTED
    req.decided_by, req.decided_at, req.decision_comment = user, timezone.now(), comment.strip()[:500]
    req.save(update_fields=["state", "decided_by", "decided_at", "decision_comment"])
    _staff_event(user, role, step="restore_reject", patient_id=req.patient_id, restore_request=req.pk)
    return req


def restore_execute(*, request_id: int, today: date | None = None) -> None:
    """Re-insert an approved request's record into the live database, in one transaction; then delete its file."""
    today = today or timezone.localdate()
    try:
        with transaction.atomic():
            req = RestoreRequest.objects.select_for_update().get(pk=request_id)
            if req.state != RestoreRequest.State.APPROVED:
                return
            stub = (ArchivedPatient.objects.select_for_update()
                    .get(patient_id=req.patient_id, state=ArchivedPatient.State.ARCHIVED))
            key = ArchiveKey.objects.get(archive=stub)
            payload = archiving.archive_read(relative=stub.relative_path, token=str(stub.token),
                                             wrapped_key=bytes(key.wrapped_key), checksum=stub.checksum)
            archiving.audit_step("restore", "create", stub.patient_id, rec.categories_of(payload),
                                 restore_request=req.pk)
            rec.record_insert(payload)
            care_grants_recompute(patient_ids=[stub.patient_id])
            relative = stub.relative_path
            stub.delete()  # its ArchiveKey row goes with it
            req.state = RestoreRequest.State.RESTORED
            req.restored_at = timezone.now()
            req.keep_live_until = today + timedelta(days=policies.RESTORE_KEEP_LIVE_DAYS)
            req.last_error = ""
            req.save(update_fields=["state", "restored_at", "keep_live_until", "last_error"])
            transaction.on_commit(lambda: archiving.file_delete(relative))
    except Exception as exc:
        RestoreRequest.objects.filter(pk=request_id).update(last_error=f"{exc.__class__.__name__}: {exc}"[:500])
        raise


# --- legal hold -------------------------------------------------------------------------------------------
@transaction.atomic
def legal_hold_place(*, user: Any, patient_id: int, reason: str) -> LegalHold:
    """A claim suspends the retention periods (R1112-7 CSP): no destruction nor anonymisation while held."""
    role = _staff_check(user, HOLD_ROLES, what=gettext_noop("place a legal hold"), patient_id=patient_id)
    if not reason.strip():
        raise ValidationError({"reason": [gettext("Give the reference of the claim.")]})
    # Lock the stub, if archived, so that a disposal running now sees the hold or finishes first.
    list(ArchivedPatient.objects.select_for_update().filter(patient_id=patient_id))
    if LegalHold.objects.filter(patient_id=patient_id, lifted_at__isnull=True).exists():
        raise ValidationError({"patient_id": [gettext("This record is already on hold.")]})
    hold = LegalHold(patient_id=patient_id, reason=reason.strip()[:300], placed_by=user)
    hold.full_clean()
    hold.save(force_insert=True)
    _staff_event(user, role, step="legal_hold_place", patient_id=patient_id, legal_hold=hold.pk)
    return hold


@transaction.atomic
def legal_hold_lift(*, user: Any, hold_id: int) -> LegalHold:
    hold = LegalHold.objects.select_for_update().get(pk=hold_id, lifted_at__isnull=True)
    role = _staff_check(user, HOLD_ROLES, what=gettext_noop("lift a legal hold"), patient_id=hold.patient_id)
    hold.lifted_by, hold.lifted_at = user, timezone.now()
    hold.save(update_fields=["lifted_by", "lifted_at"])
    _staff_event(user, role, step="legal_hold_lift", patient_id=hold.patient_id, legal_hold=hold.pk)
    return hold


# --- end of the archive period ----------------------------------------------------------------------------
_ELIGIBLE = """
UPDATE retention_archivedpatient a SET disposal_decision_id = %(decision)s
WHERE a.state = 'archived' AND a.disposal_decision_id IS NULL AND a.kept_through < %(as_of)s
  AND NOT EXISTS (SELECT 1 FROM retention_legalhold h WHERE h.patient_id = a.patient_id AND h.lifted_at IS NULL)
"""


@transaction.atomic
def disposal_decision_record(*, user: Any, action: str, reference: str, as_of: date | None = None
                             ) -> DisposalDecision:
    """Record the director's decision (R1112-7 CSP: after the DIM physician's advice) to dispose of every
    archive whose legal period ended before ``as_of``; the daily run carries it out."""
    role = _staff_check(user, frozenset({Role.DIM}), what=gettext_noop("record a disposal decision"))
    as_of = as_of or timezone.localdate()
    if as_of > timezone.localdate():
        raise ValidationError({"as_of": [gettext("A disposal decision cannot cover the future.")]})
    decision = DisposalDecision(action=action, reference=reference.strip(), recorded_by=user, as_of=as_of)
    decision.full_clean()
    decision.save(force_insert=True)
    with connection.cursor() as cur:
        cur.execute(_ELIGIBLE, {"decision": decision.pk, "as_of": as_of})
        decision.archives_count = cur.rowcount
    decision.save(update_fields=["archives_count"])
    event_record(actor=user, actor_role=role.value, actor_unit=gate.unit_of(user), category=Category.MEDICAL,
                 action="delete", outcome="allowed", basis=f"role:{role.value}", resource_type="disposal_decision",
                 resource_id=decision.pk, details={"step": "disposal_decision", "action": action,
                                                   "reference": decision.reference,
                                                   "archives": decision.archives_count})
    return decision


def archive_dispose(*, stub_id: int) -> str:
    """Destroy (crypto-shredding: the wrapped key row is deleted, then the file) or anonymise (aggregates only,
    then destroy) one archive. A legal hold blocks both. Returns the new state, or "" when held."""
    with transaction.atomic():
        stub = ArchivedPatient.objects.select_for_update(of=("self",)).select_related("disposal_decision").get(
            pk=stub_id)
        if stub.state != ArchivedPatient.State.ARCHIVED or stub.disposal_decision is None:
            return ""
        if LegalHold.objects.filter(patient_id=stub.patient_id, lifted_at__isnull=True).exists():
            return ""
        action = stub.disposal_decision.action
        key = ArchiveKey.objects.get(archive=stub)
        if action == DisposalDecision.Action.ANONYMISE:
            payload = archiving.archive_read(relative=stub.relative_path, token=str(stub.token),
                                             wrapped_key=bytes(key.wrapped_key), checksum=stub.checksum)
            statistics.aggregates_add(payload)
        archiving.audit_step(f"disposal:{action}", "delete", stub.patient_id,
                             [c for c in stub.categories.split(",") if c], decision=stub.disposal_decision_id)
        relative = stub.relative_path
        key.delete()
        stub.state = (ArchivedPatient.State.ANONYMISED if action == DisposalDecision.Action.ANONYMISE
                      else ArchivedPatient.State.DESTROYED)
        stub.token, stub.checksum, stub.size, stub.ipp_bidx, stub.ins_bidx = None, "", 0, "", ""
        stub.disposed_at = timezone.now()
        stub.save(update_fields=["state", "token", "checksum", "size", "ipp_bidx", "ins_bidx", "disposed_at"])
        # Free text typed about this patient may name them: keep the facts (who, when), drop the words.
        RestoreRequest.objects.filter(patient_id=stub.patient_id).update(reason=DISPOSED, decision_comment="",
                                                                         last_error="")
        LegalHold.objects.filter(patient_id=stub.patient_id).update(reason=DISPOSED)
        ArchiveJob.objects.filter(patient_id=stub.patient_id).update(wrapped_key=None, last_error="")
        transaction.on_commit(lambda: archiving.file_delete(relative))
    return stub.state

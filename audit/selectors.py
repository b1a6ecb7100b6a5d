"""Reads of the audit trail. Policy-free: the caller (a view for the DPO) decides who may read them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.db.models import Max, Q, QuerySet
from django.utils import timezone

from audit.models import AccessEvent, AuditCheckpoint, ChainQuarantine, VerificationRun

# Problems of the latest verification that name one row (id and date) as not genuine.
NOT_GENUINE_KINDS = frozenset({"duplicate_id", "quarantined", "event_inserted", "link_inserted", "event_altered"})

# The files whose traces belong in one patient's report besides its own, as (patient id, from, until) windows:
# identity vigilance merges two files of one person (``patients.selectors.person_files``). Filled by the app that
# knows merges when it starts, so that audit stays below it.
person_files: list[Callable[[int], list[tuple[int, datetime | None, datetime | None]]]] = []


def last_verification() -> VerificationRun | None:
    """The most recent ``verify_audit`` run (DPO dashboard, retention gate, signed report), checked first.

    A run that says the trail is intact must prove it: its signature (``audit.signing.run_message``) and the
    witness file's newest run. Otherwise, what is returned is an unsaved run that says the trail is broken
    and why (a run edited, deleted or inserted by whoever holds the database). A run that says the trail is
    broken is believed as it is.
    """
    from audit import witness
    from audit.signing import run_digest, run_signature_valid

    run = VerificationRun.objects.order_by("-finished_at", "-id").first()
    try:
        entry = witness.last_run_entry()
    except OSError:
        entry = None
    if run is None and entry is None:
        return None
    problem = None
    if run is not None and run.ok and run.number is None:
        problem = (f"the record of the latest verification (finished {run.finished_at:%Y-%m-%d %H:%M:%S}) says "
                   f"intact but is not signed: inserted or altered in the database")
    elif run is not None and run.number is not None and not run_signature_valid(run):
        problem = (f"the record of verification #{run.number} (finished {run.finished_at:%Y-%m-%d %H:%M:%S}) has "
                   f"an invalid signature: altered in the database")
    elif entry is not None:
        top = VerificationRun.objects.aggregate(top=Max("number"))["top"]
        if top is None or entry["number"] > top:
            problem = (f"verification #{entry['number']} (finished {entry.get('finished_at')}, "
                       f"{'intact' if entry.get('ok') else 'BROKEN'}) is in the witness but missing from the "
                       f"database: deleted")
        elif run is not None and run.number == entry["number"] and entry.get("digest") != run_digest(run).hex():
            problem = f"the record of verification #{run.number} differs from its witness: altered in the database"
    if problem is None:
        return run
    finished = run.finished_at if run is not None else timezone.now()
    return VerificationRun(
        started_at=finished, finished_at=finished, ok=False, completed=True,
        message=f"{problem}; run verify_audit again", problems=[{"kind": "verification_forged", "seq": None,
                                                                 "event_id": None, "reason": problem,
                                                                 "occurred_at": None}])


def last_checkpoint() -> AuditCheckpoint | None:
    return AuditCheckpoint.objects.order_by("-signed_at", "-id").first()


def patient_events(patient_id: int) -> QuerySet[AccessEvent]:
    """Every event recorded about this patient: under its own id and under the files merged with it (each event
    keeps the id it was written with; see ``person_files``)."""
    condition = Q(patient_id=patient_id)
    for provider in person_files:
        for pid, start, end in provider(patient_id):
            window = Q(patient_id=pid)
            if start is not None:
                window &= Q(occurred_at__gte=start)
            if end is not None:
                window &= Q(occurred_at__lt=end)
            condition |= window
    return AccessEvent.objects.filter(condition)


def patient_access_report(
    *, patient_id: int, since: datetime | None = None, until: datetime | None = None,
) -> list[AccessEvent]:
    """Every recorded access to one patient's file, oldest first: who, when, role, unit, basis, action, outcome.

    Includes refused attempts and automated tasks (archiving, backups) so the patient sees the whole picture,
    and the traces of the files merged with this one (identity vigilance), before and after the merge.
    """
    qs = patient_events(patient_id)
    if since is not None:
        qs = qs.filter(occurred_at__gte=since)
    if until is not None:
        qs = qs.filter(occurred_at__lt=until)
    return list(qs.order_by("occurred_at", "id"))


def integrity_flags(events: list[AccessEvent]) -> dict[tuple[int, datetime], str]:
    """Rows of ``events`` that are not genuine, by (id, date): what the latest ``verify_audit`` named (an
    insertion reusing an id, a row outside the chain, an altered row...) and what the chain quarantined at commit
    (known before any verification); the value is the problem's kind. The access report flags them instead of
    showing them as genuine."""
    ids = {e.id for e in events}
    flags: dict[tuple[int, datetime], str] = {}
    if not ids:
        return flags
    for event_id, at in ChainQuarantine.objects.filter(event_id__in=ids).values_list("event_id", "event_occurred_at"):
        flags[(event_id, at)] = "quarantined"
    for event_id, at, kind in _named_rows():
        if kind in NOT_GENUINE_KINDS and event_id in ids and at:
            flags.setdefault((event_id, datetime.fromisoformat(at)), kind)
    return {(e.id, e.occurred_at): flags[(e.id, e.occurred_at)] for e in events if (e.id, e.occurred_at) in flags}


def _named_rows() -> list[tuple[int, str, str]]:
    """(event id, date, kind) of the rows the latest verification named: from its record when its signature
    holds (or an unsigned record from before migration 0006 that says broken), and from its witness line,
    which an edit of the record in the database does not reach."""
    from audit import witness
    from audit.signing import run_signature_valid

    rows: list[tuple[int, str, str]] = []
    run = VerificationRun.objects.order_by("-finished_at", "-id").first()
    if run is not None and (run_signature_valid(run) or (run.number is None and not run.ok)):
        rows += [(p.get("event_id"), p.get("occurred_at"), p.get("kind", "")) for p in run.problems or []]
    try:
        entry = witness.last_run_entry()
    except OSError:
        entry = None
    for item in (entry or {}).get("named", []):
        if isinstance(item, list) and len(item) == 3:
            rows.append((item[0], item[1], item[2]))
    return rows


def last_witness() -> datetime | None:
    """When the newest checkpoint copied to the witness file was signed (None: no file, or nothing in it).

    Reads only the end of the file (one line per checkpoint, appended)."""
    import json

    from audit import witness

    path = witness.witness_path()
    if path is None or not path.exists():
        return None
    with path.open("rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - 65536))
        lines = fh.read().decode("utf-8", "replace").splitlines()
    for line in reversed(lines):
        start = line.find("{")
        try:
            entry = json.loads(line[start:]) if start >= 0 else None
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("type") == "checkpoint" and entry.get("signed_at"):
            try:
                return datetime.fromisoformat(entry["signed_at"].replace("Z", "+00:00"))
            except ValueError:
                continue
    return None

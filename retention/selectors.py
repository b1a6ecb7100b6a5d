"""Retention reads: run reports and the archive overview for the DPO dashboard (counts only, no identity)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from django.db.models import Count

from retention import archiving, policies
from retention.models import ArchivedPatient, ArchiveJob, DisposalDecision, LegalHold, RestoreRequest, RetentionRun

RUN_FIELDS = ("id", "started_at", "finished_at", "status", "profile", "due", "archived", "restored", "destroyed",
              "anonymised", "care_sheets_purged", "trace_partitions_dropped", "errors", "message")


def runs_recent(*, limit: int = 10) -> list[dict[str, Any]]:
    return list(RetentionRun.objects.order_by("-started_at").values(*RUN_FIELDS)[:limit])


def run_progress(run: RetentionRun) -> dict[str, Any]:
    """Where a run stands, for a progress bar: jobs done out of those due."""
    done = run.archived + run.errors
    return {"id": run.pk, "status": run.status, "due": run.due, "done": min(done, run.due),
            "percent": 100 if not run.due else round(100 * min(done, run.due) / run.due)}


def retention_overview() -> dict[str, Any]:
    """Everything the DPO dashboard shows about retention."""
    policy = policies.current_policy()
    jobs = dict(ArchiveJob.objects.filter(state__in=archiving.OPEN_STATES).values_list("state")
                .annotate(n=Count("id")).values_list("state", "n"))
    stubs = dict(ArchivedPatient.objects.values_list("state").annotate(n=Count("id")).values_list("state", "n"))
    last = RetentionRun.objects.exclude(status=RetentionRun.Status.SKIPPED).order_by("-started_at").first()
    return {
        "policy": {"name": policy.name, "label": policy.label, "source": policy.source,
                   "active_years": policy.active_years, "total_years": policy.total_years},
        "last_run": run_progress(last) if last else None,
        "runs": runs_recent(limit=10),
        "jobs_open": jobs,
        "jobs_with_errors": ArchiveJob.objects.filter(state__in=archiving.OPEN_STATES).exclude(last_error="").count(),
        "archives": stubs,
        "awaiting_disposal": ArchivedPatient.objects.filter(state="archived", disposal_decision__isnull=False).count(),
        "legal_holds": LegalHold.objects.filter(lifted_at__isnull=True).count(),
        "restore_requests_pending": RestoreRequest.objects.filter(state="pending").count(),
    }


def restore_requests_open() -> list[dict[str, Any]]:
    return list(RestoreRequest.objects.filter(state__in=["pending", "approved"]).order_by("requested_at").values(
        "id", "patient_id", "reason", "state", "requested_by__username", "requested_at", "last_error"))


def archive_disposal_due_count(*, today) -> int:
    """Archives whose legal period has ended and that no decision covers yet (the DIM's to-do list)."""
    return ArchivedPatient.objects.filter(state="archived", disposal_decision__isnull=True,
                                          kept_through__lt=today).count()


def retention_dates(patient_ids: list[int]) -> dict[int, dict[str, Any]]:
    """For live patients: the last day in the live database and the last day the record must be kept."""
    from django.conf import settings
    from django.db import connection

    policy = policies.current_policy()
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT p.id, {policy.sql_live_through(policy.active_years)}, {policy.sql_kept_through()} "  # noqa: S608 - names are constants
            "FROM patients_patient p WHERE p.id = ANY(%(ids)s)",
            {"ids": list(patient_ids), "tz": settings.TIME_ZONE},
        )
        return {pid: {"live_through": live, "kept_through": kept} for pid, live, kept in cur.fetchall()}


# Where a record is, by the last retention step the trail recorded for its patient (archiving.audit_step).
STATE_AFTER_STEP = {"remove": ArchivedPatient.State.ARCHIVED, "disposal:destroy": ArchivedPatient.State.DESTROYED,
                    "disposal:anonymise": ArchivedPatient.State.ANONYMISED, "restore": None}


def archives_against_trail() -> Iterator[str]:
    """The archive stubs (the proof, in the live database, that a record was archived, destroyed or anonymised)
    and the disposal decisions against the trail's chained retention events: a stub deleted, created, or whose
    state was changed in the database, and a decision deleted or altered, are named. Registered in
    ``audit.verification.record_checks``."""
    from django.db import connection

    last_step: dict[int, tuple[str, Any]] = {}
    decisions: dict[int, dict[str, Any]] = {}
    with connection.cursor() as cur:
        cur.execute("SELECT patient_id, details->>'step', occurred_at FROM audit_accessevent WHERE actor_role = "
                    "'system' AND actor_unit = 'retention' AND resource_type = 'patient' AND outcome = 'allowed' "
                    "AND details->>'step' = ANY(%s) AND patient_id IS NOT NULL ORDER BY occurred_at, id",
                    [list(STATE_AFTER_STEP)])
        for patient_id, step, at in cur.fetchall():
            last_step[patient_id] = (step, at)
        cur.execute("SELECT resource_id, details FROM audit_accessevent WHERE resource_type = 'disposal_decision' "
                    "AND outcome = 'allowed' AND resource_id ~ '^[0-9]+$'")
        for resource_id, details in cur.fetchall():
            decisions[int(resource_id)] = json.loads(details) if isinstance(details, str) else details
    stubs = dict(ArchivedPatient.objects.values_list("patient_id", "state"))
    for patient_id, (step, at) in sorted(last_step.items()):
        expected = STATE_AFTER_STEP[step]
        state = stubs.get(patient_id)
        if expected is None:
            continue  # restored: the stub was removed with it (a later removal is a later step)
        if state is None:
            yield (f"the archive stub of patient {patient_id} ({step} on {at:%Y-%m-%d}) was deleted: nothing in the "
                   f"database says any more where the record went")
        elif state != expected:
            yield (f"the archive stub of patient {patient_id} says {state} but the trail's last retention step is "
                   f"{step} ({at:%Y-%m-%d}): altered")
    for patient_id, state in sorted(stubs.items()):
        if patient_id not in last_step or STATE_AFTER_STEP[last_step[patient_id][0]] is None:
            yield (f"the archive stub of patient {patient_id} ({state}) has no retention step in the trail: created "
                   f"in the database")
    rows = {pk: (action, reference) for pk, action, reference in
            DisposalDecision.objects.values_list("pk", "action", "reference")}
    for pk, details in sorted(decisions.items()):
        if pk not in rows:
            yield f"disposal decision #{pk}, recorded in the trail ({details.get('action')}), was deleted"
            continue
        action, reference = rows[pk]
        if details.get("action") not in (None, action):
            yield f"disposal decision #{pk}: action {action} but the trail recorded {details['action']}: altered"
        if details.get("reference") not in (None, reference):
            yield f"disposal decision #{pk}: its reference differs from the one the trail recorded: altered"
    for pk in sorted(set(rows) - set(decisions)):
        yield f"disposal decision #{pk} has no event in the trail: created in the database"

"""Retention reads: run reports and the archive overview for the DPO dashboard (counts only, no identity)."""

from __future__ import annotations

from typing import Any

from django.db.models import Count

from retention import archiving, policies
from retention.models import ArchivedPatient, ArchiveJob, LegalHold, RestoreRequest, RetentionRun

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

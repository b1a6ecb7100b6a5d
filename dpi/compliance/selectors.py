"""Reads of the compliance area for the DPO (dashboard, JSON views). No patient data beyond record ids."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.utils import timezone

from dpi.compliance.models import Breach, MaintenanceLogEntry, MaintenanceWindow, RightsRequest


@dataclass(frozen=True)
class BreachClock:
    """The art. 33(1) clock: notify the CNIL within 72 hours of becoming aware of the breach."""

    deadline: datetime
    remaining: timedelta  # negative once overdue; frozen at notification time once notified
    overdue: bool  # deadline passed and not notified
    notified: bool
    notified_late: bool
    must_notify: bool  # False when the risk is documented as unlikely (art. 33(1), 33(5))


def breach_clock(breach: Breach, now: datetime | None = None) -> BreachClock:
    now = now or timezone.now()
    deadline = breach.notification_deadline
    must = breach.risk != Breach.Risk.UNLIKELY
    if breach.notified_cnil_at is not None:
        return BreachClock(deadline, deadline - breach.notified_cnil_at, False, True,
                           breach.notified_cnil_at > deadline, must)
    return BreachClock(deadline, deadline - now, must and now > deadline, False, False, must)


def breaches_dashboard(now: datetime | None = None) -> list[dict[str, Any]]:
    """Breaches, the ones still waiting for a notification first (closest deadline first)."""
    now = now or timezone.now()
    rows = []
    for b in Breach.objects.all():
        clock = breach_clock(b, now)
        rows.append({
            "id": b.pk, "detected_at": b.detected_at, "description": b.description, "categories": b.categories,
            "approx_people": b.approx_people, "risk": b.risk, "measures": b.measures,
            "notified_cnil_at": b.notified_cnil_at, "notified_people_at": b.notified_people_at,
            "people_to_notify": b.risk == Breach.Risk.HIGH and b.notified_people_at is None,
            **{k: v for k, v in asdict(clock).items()},
            "remaining_hours": round(clock.remaining.total_seconds() / 3600, 1),
        })
    rows.sort(key=lambda r: (r["notified"] or not r["must_notify"], r["deadline"]))
    return rows


def rights_register(today: date | None = None, *, open_only: bool = False) -> list[dict[str, Any]]:
    """The register of requests with their due date (art. 12(3)) and whether they are late."""
    today = today or timezone.localdate()
    qs = RightsRequest.objects.all()
    if open_only:
        qs = qs.filter(status__in=[RightsRequest.Status.RECEIVED, RightsRequest.Status.IN_PROGRESS])
    return [
        {"id": r.pk, "patient_id": r.patient_id, "kind": r.kind, "received_at": r.received_at, "due_at": r.due_at,
         "extended": r.extended, "status": r.status, "answered_at": r.answered_at,
         "handled_by": r.handled_by.get_username() if r.handled_by else "",
         "days_left": (r.due_at - today).days if r.is_open else None,
         "overdue": r.is_open and today > r.due_at,
         "answered_late": r.answered_at is not None and timezone.localdate(r.answered_at) > r.due_at}
        for r in qs.select_related("handled_by").order_by("due_at", "id")
    ]


def maintenance_logbook(*, since: datetime | None = None, limit: int = 500) -> list[dict[str, Any]]:
    qs = MaintenanceLogEntry.objects.select_related("window")
    if since is not None:
        qs = qs.filter(occurred_at__gte=since)
    return [
        {"id": e.pk, "occurred_at": e.occurred_at, "who": e.actor_username, "what": e.what, "outcome": e.outcome,
         "approved_by": e.approved_by_username, "window_id": e.window_id,
         "window_purpose": e.window.purpose if e.window else "", "details": e.details}
        for e in qs.order_by("-occurred_at", "-id")[:limit]
    ]


def maintenance_windows(now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or timezone.now()
    return [
        {"id": w.pk, "provider": w.provider.get_username(), "starts_at": w.starts_at, "ends_at": w.ends_at,
         "purpose": w.purpose, "approved_by": w.approved_by.get_username(), "revoked_at": w.revoked_at,
         "active": w.revoked_at is None and w.starts_at <= now < w.ends_at}
        for w in MaintenanceWindow.objects.select_related("provider", "approved_by").order_by("-starts_at")[:200]
    ]

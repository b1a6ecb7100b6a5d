"""Reads of the detection area: alert lists and the figures of the DPO dashboard."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

from django.db import connection
from django.db.models import Count, Q, QuerySet, Sum

from audit.detection.models import Alert, DetectionRun, DetectionState, UserDay
from audit.detection.rules import RULES


def alert_list(
    *, status: str | list[str] | None = None, rule: str | None = None, severity: str | None = None,
    user_id: int | None = None, patient_id: int | None = None, day_from: date | None = None,
    day_to: date | None = None, min_score: int | None = None,
) -> QuerySet[Alert]:
    """Alerts, newest day and highest score first, filtered by any of the arguments."""
    qs = Alert.objects.select_related("user", "reviewer", "model")
    if status:
        qs = qs.filter(status__in=[status] if isinstance(status, str) else status)
    if rule:
        qs = qs.filter(rules__contains=[rule])
    if severity:
        qs = qs.filter(severity=severity)
    if user_id is not None:
        qs = qs.filter(user_id=user_id)
    if patient_id is not None:
        qs = qs.filter(patient_id=patient_id)
    if day_from:
        qs = qs.filter(day__gte=day_from)
    if day_to:
        qs = qs.filter(day__lte=day_to)
    if min_score is not None:
        qs = qs.filter(score__gte=min_score)
    return qs.order_by("-day", "-score", "id")


def alert_get(*, alert_id: int) -> Alert:
    return Alert.objects.select_related("user", "reviewer", "model").get(pk=alert_id)


def _range(qs: QuerySet, field: str, day_from: date | None, day_to: date | None) -> QuerySet:
    if day_from:
        qs = qs.filter(**{f"{field}__gte": day_from})
    if day_to:
        qs = qs.filter(**{f"{field}__lte": day_to})
    return qs


def alerts_by_status(*, day_from: date | None = None, day_to: date | None = None) -> dict[str, int]:
    qs = _range(Alert.objects.all(), "day", day_from, day_to)
    counts = dict(qs.values_list("status").annotate(n=Count("id")).order_by())
    return {s: counts.get(s, 0) for s in Alert.Status.values}


def alerts_by_rule(*, day_from: date | None = None, day_to: date | None = None) -> list[dict[str, Any]]:
    """Per rule: alerts it contributed to, and how they ended (justified or violation)."""
    sql = """
        SELECT r.rule, count(*) AS alerts,
               count(*) FILTER (WHERE a.status = 'justified') AS justified,
               count(*) FILTER (WHERE a.status = 'violation') AS violation
        FROM detection_alert a CROSS JOIN LATERAL unnest(a.rules) AS r(rule)
        WHERE (%(f)s::date IS NULL OR a.day >= %(f)s) AND (%(t)s::date IS NULL OR a.day <= %(t)s)
        GROUP BY r.rule
    """
    with connection.cursor() as cur:
        cur.execute(sql, {"f": day_from, "t": day_to})
        found = {row[0]: row[1:] for row in cur.fetchall()}
    out = []
    for rule in RULES:
        alerts, justified, violation = found.get(rule.code, (0, 0, 0))
        out.append({"rule": rule.code, "label_fr": rule.label_fr, "label_en": rule.label_en, "alerts": alerts,
                    "justified": justified, "violation": violation})
    return out


def alerts_per_day(*, day_from: date | None = None, day_to: date | None = None) -> list[dict[str, Any]]:
    qs = _range(Alert.objects.all(), "day", day_from, day_to)
    rows = (
        qs.values("day")
        .annotate(total=Count("id"), high=Count("id", filter=Q(severity=Alert.Severity.HIGH)),
                  open=Count("id", filter=Q(status__in=[Alert.Status.NEW, Alert.Status.IN_REVIEW])))
        .order_by("day")
    )
    return [{"day": r["day"].isoformat(), "total": r["total"], "high": r["high"], "open": r["open"]} for r in rows]


def explained_share(*, day_from: date | None = None, day_to: date | None = None) -> dict[str, Any]:
    """Share of patient accesses explained by a care relationship (from the detector's daily summaries)."""
    agg = _range(UserDay.objects.all(), "day", day_from, day_to).aggregate(
        patient_events=Sum("n_patient_events"), explained=Sum("n_explained_events"), events=Sum("n_events"),
    )
    pe, ex = agg["patient_events"] or 0, agg["explained"] or 0
    return {"events": agg["events"] or 0, "patient_events": pe, "explained_events": ex,
            "explained_share": round(ex / pe, 4) if pe else None}


def detector_status() -> dict[str, Any]:
    state = DetectionState.objects.filter(name="default").first()
    last = DetectionRun.objects.order_by("-started_at").first()
    return {
        "watermark": state.watermark.isoformat() if state and state.watermark else None,
        "history_from": state.history_from.isoformat() if state and state.history_from else None,
        "last_run": None if last is None else {
            "kind": last.kind, "started_at": last.started_at.isoformat(), "events": last.events,
            "alerts_created": last.alerts_created, "alerts_updated": last.alerts_updated,
        },
    }


def dashboard(*, day_from: date | None = None, day_to: date | None = None) -> dict[str, Any]:
    """Everything the DPO dashboard shows, in one call."""
    return {
        "by_status": alerts_by_status(day_from=day_from, day_to=day_to),
        "by_rule": alerts_by_rule(day_from=day_from, day_to=day_to),
        "per_day": alerts_per_day(day_from=day_from, day_to=day_to),
        "explained": explained_share(day_from=day_from, day_to=day_to),
        "detector": detector_status(),
    }


def alerts_against_trail() -> Iterator[str]:
    """Each alert's review status and comment against the trail's review events (``alert_review`` writes one
    per change, chained): a status or comment edited in the database, an alert closed without a review, a
    reviewed alert deleted. Registered in ``audit.verification.record_checks``."""
    reviews: dict[int, tuple[str, str]] = {}  # alert id -> (last status, last non-empty comment)
    with connection.cursor() as cur:
        cur.execute("SELECT resource_id, details->>'to', coalesce(details->>'comment', '') FROM audit_accessevent "
                    "WHERE action = 'alert' AND resource_type = 'detection_alert' AND outcome = 'allowed' "
                    "AND resource_id ~ '^[0-9]+$' ORDER BY occurred_at, id")
        for resource_id, to, comment in cur.fetchall():
            previous = reviews.get(int(resource_id), ("", ""))
            reviews[int(resource_id)] = (to or "", comment or previous[1])
    seen: set[int] = set()
    alerts = Alert.objects.filter(Q(pk__in=list(reviews)) | ~Q(status=Alert.Status.NEW) | ~Q(comment=""))
    for pk, status, comment in alerts.values_list("pk", "status", "comment").iterator():
        seen.add(pk)
        trail = reviews.get(pk)
        if trail is None:
            yield (f"detection alert #{pk} is {status} but the trail holds no review of it: its status was set "
                   f"in the database")
            continue
        if status != trail[0]:
            yield f"detection alert #{pk}: status {status} but the trail's last review says {trail[0]}: altered"
        if comment != trail[1]:
            yield f"detection alert #{pk}: the DPO's comment differs from the one in the trail's review: altered"
    for pk in sorted(set(reviews) - seen):
        yield f"detection alert #{pk}, reviewed in the trail (last: {reviews[pk][0]}), was deleted"

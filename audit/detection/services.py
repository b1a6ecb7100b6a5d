"""Writes of the detection area: run the detector (incrementally or over a replayed range), review alerts,
notify the DPO.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.detection import engine
from audit.detection.config import thresholds
from audit.detection.models import Alert, DetectionRun, DetectionState
from audit.services import event_record

log = logging.getLogger(__name__)

STATE = "default"
REPLAY_CHUNK_DAYS = 14  # days analysed per pass (and per transaction) by a replay


@dataclass
class RunSummary:
    kind: str
    range_start: datetime
    range_end: datetime
    events: int = 0
    patient_events: int = 0
    explained_events: int = 0
    hits: int = 0
    created: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    seconds: float = 0.0
    skipped: bool = False
    passes: list[engine.PassResult] = field(default_factory=list)

    @property
    def explained_share(self) -> float | None:
        return self.explained_events / self.patient_events if self.patient_events else None

    def add(self, p: engine.PassResult) -> None:
        self.passes.append(p)
        self.events += p.events
        self.patient_events += p.patient_events
        self.explained_events += p.explained_events
        self.hits += p.hits
        self.created += p.created
        self.updated += [i for i in p.updated if i not in self.created]
        self.seconds += p.seconds


def _db_now() -> datetime:
    with connection.cursor() as cur:
        cur.execute("SELECT clock_timestamp()")
        return cur.fetchone()[0]


def _state_for_update(*, wait: bool) -> DetectionState | None:
    DetectionState.objects.get_or_create(name=STATE)
    qs = DetectionState.objects.select_for_update(skip_locked=not wait).filter(name=STATE)
    return qs.first()


def _record_run(summary: RunSummary, started_at: datetime) -> DetectionRun:
    run = DetectionRun.objects.create(
        kind=summary.kind, started_at=started_at, finished_at=timezone.now(),
        range_start=summary.range_start, range_end=summary.range_end, events=summary.events,
        patient_events=summary.patient_events, explained_events=summary.explained_events, hits=summary.hits,
        alerts_created=len(summary.created), alerts_updated=len(summary.updated),
    )
    # The detector compares patients' names and addresses with the staff's inside the database: that is
    # an administrative read by the "detection" system task, traced once per run (never per patient).
    event_record(
        action="view", outcome="allowed", actor=None, actor_role="system", actor_unit="detection",
        category="administrative", basis="system:detection", resource_type="detection_run", resource_id=run.pk,
        details={"events": summary.events, "alerts_created": len(summary.created),
                 "range": [summary.range_start.isoformat(), summary.range_end.isoformat()]},
    )
    return run


def _notify_on_commit(alert_ids: list[int]) -> None:
    if alert_ids:
        transaction.on_commit(lambda: alerts_notify(alert_ids=alert_ids))


def detect_range(
    *, day_from: date, day_to: date, chunk_days: int = REPLAY_CHUNK_DAYS, collect_hits: bool = False,
    kind: str = DetectionRun.Kind.REPLAY,
) -> RunSummary:
    """Analyse every event of the local days ``day_from``..``day_to`` (a replay), oldest first.

    Each chunk of ``chunk_days`` is one pass in its own transaction. A pass over several days finds what one
    pass per day would (the engine writes the baselines of all its days before the rules read them, and each
    day's links are taken in that day's window), but loads the links, refusals, traits and baselines once:
    two weeks per pass is several times faster than a day per pass and keeps each transaction bounded.
    Idempotent: alerts are upserted on (user, patient, day).
    """
    if day_to < day_from:
        raise ValidationError({"day_to": "the end of the range is before its start"})
    summary = RunSummary(kind, engine.local_midnight(day_from), engine.local_midnight(day_to + timedelta(days=1)))
    started_at = timezone.now()
    with transaction.atomic():
        state = _state_for_update(wait=True)
        assert state is not None
        if state.history_from is None or day_from < state.history_from:
            state.history_from = day_from
            state.save(update_fields=["history_from"])
    history_from = state.history_from
    day = day_from
    while day <= day_to:
        last = min(day + timedelta(days=chunk_days - 1), day_to)
        with transaction.atomic():
            _state_for_update(wait=True)  # one pass at a time: the incremental task skips meanwhile
            result = engine.analyse_days(day, last, history_from=history_from, now=timezone.now(),
                                         collect_hits=collect_hits)
            summary.add(result)
            _notify_on_commit(result.high)
        day = last + timedelta(days=1)
    with transaction.atomic():
        _record_run(summary, started_at)
    return summary


def detect_new_events(*, collect_hits: bool = False) -> RunSummary:
    """The incremental pass run by Celery beat: the events since the watermark, minus an overlap.

    Events are visible when their transaction commits, which can be after their ``occurred_at``: the pass
    re-scans ``incremental_overlap_minutes`` before the watermark, and re-analyses whole days of the users
    seen in that window, so a late commit is caught and nothing is counted twice (upserts). One pass at a
    time: a second worker finding the state row locked skips.
    """
    conf = thresholds()
    started_at = timezone.now()
    with transaction.atomic():
        state = _state_for_update(wait=False)
        if state is None:
            now = timezone.now()
            return RunSummary(DetectionRun.Kind.INCREMENTAL, now, now, skipped=True)
        db_now = _db_now()
        today = timezone.localdate(db_now)
        if state.watermark is None:
            start = engine.local_midnight(today - timedelta(days=conf["first_run_days"]))
        else:
            start = state.watermark - timedelta(minutes=conf["incremental_overlap_minutes"])
        if state.history_from is None:
            state.history_from = timezone.localdate(start)
        summary = RunSummary(DetectionRun.Kind.INCREMENTAL, start, db_now)
        with connection.cursor() as cur:
            cur.execute(
                "SELECT DISTINCT actor_id FROM audit_accessevent WHERE occurred_at >= %s AND actor_id IS NOT NULL",
                [start],
            )
            actors = [row[0] for row in cur.fetchall()]
        if actors:
            result = engine.analyse_days(timezone.localdate(start), today, actors=actors,
                                         history_from=state.history_from, now=timezone.now(),
                                         collect_hits=collect_hits)
            summary.add(result)
        # High alerts of this pass, and any left unsent by a failed e-mail earlier.
        pending = Alert.objects.filter(severity=Alert.Severity.HIGH, notified_at__isnull=True)
        _notify_on_commit(sorted(set(summary.passes[0].high if summary.passes else [])
                                 | set(pending.values_list("id", flat=True)[:500])))
        state.watermark = db_now
        state.last_run_at = timezone.now()
        state.save(update_fields=["watermark", "history_from", "last_run_at"])
        _record_run(summary, started_at)
    return summary


# --- review workflow -----------------------------------------------------------------------------------
TRANSITIONS: dict[str, frozenset[str]] = {
    Alert.Status.NEW: frozenset({Alert.Status.IN_REVIEW}),
    Alert.Status.IN_REVIEW: frozenset({Alert.Status.JUSTIFIED, Alert.Status.VIOLATION, Alert.Status.NEW}),
    # A closed alert can be reopened (new facts); that is audited like any other change.
    Alert.Status.JUSTIFIED: frozenset({Alert.Status.IN_REVIEW}),
    Alert.Status.VIOLATION: frozenset({Alert.Status.IN_REVIEW}),
}
CLOSED = frozenset({Alert.Status.JUSTIFIED, Alert.Status.VIOLATION})


def alert_is_about(alert: Alert, user: Any) -> bool:
    """The alert's subject is ``user``: nobody reviews an alert about their own accesses (another DPO does)."""
    return alert.user_id is not None and alert.user_id == getattr(user, "pk", None)


@transaction.atomic
def alert_review(*, alert_id: int, actor: Any, status: str, comment: str = "", actor_role: str = "dpo") -> Alert:
    """Move an alert along new -> in_review -> justified | violation (with the DPO's comment), audited."""
    alert = Alert.objects.select_for_update().get(pk=alert_id)
    if alert_is_about(alert, actor):
        # Nobody reviews an alert about their own accesses (who created the fact that closes it?): it waits for
        # another DPO. The refusal is recorded (on the trail's own connection: it outlives this transaction).
        event_record(
            action="alert", outcome="denied", actor=actor, actor_role=actor_role, resource_type="detection_alert",
            resource_id=alert.pk, basis="deny:self_review", reason="nobody reviews an alert about themselves",
            details={"from": alert.status, "to": str(status)[:20], "subject_user_id": alert.user_id},
        )
        raise PermissionDenied(_("This alert is about your own accesses: another data protection officer "
                                 "reviews it."))
    if status not in Alert.Status.values:
        raise ValidationError({"status": _("Unknown status %(status)s.") % {"status": repr(status)}})
    if status not in TRANSITIONS[alert.status]:
        raise ValidationError({"status": _("An alert that is %(old)s cannot become %(new)s.") % {
            "old": Alert.Status(alert.status).label, "new": Alert.Status(status).label}})
    comment = (comment or "").strip()
    if status in CLOSED and not comment:
        raise ValidationError({"comment": _("Closing an alert needs the DPO's comment.")})
    old = alert.status
    alert.status = status
    if comment:
        alert.comment = comment
    alert.reviewer = actor
    alert.reviewed_at = timezone.now()
    alert.full_clean()
    alert.save(update_fields=["status", "comment", "reviewer", "reviewed_at", "updated_at"])
    event_record(
        action="alert", outcome="allowed", actor=actor, actor_role=actor_role, resource_type="detection_alert",
        resource_id=alert.pk, reason=f"{old} -> {status}",
        details={"from": old, "to": status, "comment": comment, "rules": alert.rules, "day": alert.day.isoformat(),
                 "subject_user_id": alert.user_id, "subject_patient_id": alert.patient_id},
    )
    return alert


# --- notification ---------------------------------------------------------------------------------------
def alerts_notify(*, alert_ids: list[int]) -> int:
    """E-mail the DPO the high-severity alerts not yet notified (claimed first, so each is sent once).

    The message names the rules and ids, never the patient: the DPO opens the alert in dpi.
    """
    recipients = list(getattr(settings, "DPI_DPO_EMAILS", []) or [])
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute(
                "UPDATE detection_alert SET notified_at = now() WHERE id = ANY(%s) AND severity = 'high' "
                "AND notified_at IS NULL RETURNING id",
                [list(alert_ids)],
            )
            claimed = sorted(r[0] for r in cur.fetchall())
        if not claimed or not recipients:
            return 0
        alerts = list(Alert.objects.filter(pk__in=claimed).order_by("day", "id"))
        lines = [
            f"#{a.pk} {a.day} user {a.user_id} score {a.score} [{', '.join(a.rules)}]\n"
            f"  FR: {a.reason_fr}\n  EN: {a.reason_en}"
            for a in alerts
        ]
        subject = f"[dpi] {len(alerts)} alerte(s) d'accès de gravité haute / high-severity access alert(s)"
        body = (
            "Alertes de gravité haute à examiner dans dpi (file des alertes : /dpo/queue/).\n"
            "High-severity alerts to review in dpi (alert queue: /dpo/queue/).\n\n" + "\n".join(lines) + "\n"
        )
        # Raises on failure: the claim rolls back and the next pass retries.
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    return len(alerts)

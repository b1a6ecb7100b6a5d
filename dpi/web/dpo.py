"""Reads behind the DPO dashboard: the access trace, emergency accesses, the authorization review, and the
status that the audit, detection and retention areas publish through their selectors.

Those areas are optional here: when one is not installed yet (or publishes nothing), its panel says so;
nothing is ever made up. Every list is bounded and aggregated in SQL.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import formats, timezone, translation
from django.utils.timesince import timesince
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from access.models import AccessReviewCampaign, EmergencyAccess, StaffProfile
from audit import labels
from audit.models import AccessEvent
from dpi.web.charts import BarChart, bar_chart, day_labels, hbar_chart

log = logging.getLogger(__name__)

CHART_DAYS = 30
LIST_LIMIT = 50
LOG_PAGE = 100
PATIENT_DATA_ACTIONS = ("view", "search", "create", "amend", "delete", "export", "print")


def optional(module: str, name: str) -> Any:
    """``module.name`` if that area is installed and publishes it, else None (the panel shows "not available")."""
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


# --- labels of the trace ---------------------------------------------------------------------------------
def describe(events: list[AccessEvent]) -> list[AccessEvent]:
    """Attach readable (translated) labels to trace rows for the templates (audit.labels)."""
    for e in events:
        labels.describe(e)
    return events


# --- charts -----------------------------------------------------------------------------------------------
def _days(days: int) -> tuple[date, datetime]:
    today = timezone.localdate()
    first = today - timedelta(days=days - 1)
    since = timezone.make_aware(datetime.combine(first, datetime.min.time()))
    return first, since


def _label(d: date) -> str:
    return formats.date_format(d, "d/m")


def access_chart(days: int = CHART_DAYS) -> BarChart:
    """Patient-data accesses allowed and denied per day (one GROUP BY over the trace)."""
    first, since = _days(days)
    rows = (AccessEvent.objects.filter(occurred_at__gte=since, action__in=PATIENT_DATA_ACTIONS)
            .annotate(day=TruncDate("occurred_at", tzinfo=timezone.get_current_timezone()))
            .values_list("day", "outcome").annotate(n=Count("id")).order_by())
    counts = {(d, o): n for d, o, n in rows}
    labels = day_labels(first, days)
    return bar_chart(_("Accesses and denials per day"), [_label(d) for d in labels], {
        _("allowed"): [counts.get((d, "allowed"), 0) for d in labels],
        _("denied"): [counts.get((d, "denied"), 0) for d in labels],
    }, axis_label=_("day"), label_every=5)


def break_glass_chart(days: int = CHART_DAYS) -> BarChart:
    first, since = _days(days)
    rows = (EmergencyAccess.objects.filter(started_at__gte=since)
            .annotate(day=TruncDate("started_at", tzinfo=timezone.get_current_timezone()))
            .values_list("day").annotate(n=Count("id")).order_by())
    counts = dict(rows)
    labels = day_labels(first, days)
    return bar_chart(_("Break-the-glass uses per day"), [_label(d) for d in labels],
                     {_("emergency accesses"): [counts.get(d, 0) for d in labels]}, axis_label=_("day"),
                     label_every=5)


def alerts_by_rule_chart(days: int = CHART_DAYS) -> BarChart | None:
    """Alerts per detection rule over the period (detection area's selector; None when not installed)."""
    by_rule = optional("audit.detection.selectors", "alerts_by_rule")
    if by_rule is None:
        return None
    first, _since = _days(days)
    rows = [r for r in by_rule(day_from=first) if r.get("alerts")]
    rows.sort(key=lambda r: (-r["alerts"], r["rule"]))
    label = "label_fr" if translation.get_language() == "fr" else "label_en"
    return hbar_chart(_("Alerts by rule (last 30 days)"), [r.get(label) or r["rule"] for r in rows],
                      {_("alerts"): [r["alerts"] for r in rows]}, axis_label=_("rule"))


# --- emergency accesses -----------------------------------------------------------------------------------
def pending_emergency_accesses() -> QuerySet:
    return (EmergencyAccess.objects.filter(review_status=EmergencyAccess.Review.PENDING)
            .select_related("user").order_by("started_at"))


def emergency_access_events(access: EmergencyAccess) -> list[AccessEvent]:
    """What the user did under this emergency access (bounded)."""
    return describe(list(AccessEvent.objects.filter(
        actor_id=access.user_id, patient_id=access.patient_id, occurred_at__gte=access.started_at,
        occurred_at__lte=access.expires_at).order_by("occurred_at", "id")[:200]))


# --- authorization review and accounts --------------------------------------------------------------------
@dataclass
class ReviewStatus:
    campaign: AccessReviewCampaign | None
    progress: dict[str, int]
    unreviewed: list[Any]

    @property
    def done(self) -> int:
        return self.progress.get("total", 0) - self.progress.get("pending", 0)

    @property
    def percent(self) -> int:
        total = self.progress.get("total", 0)
        return round(100 * self.done / total) if total else 0


def review_status() -> ReviewStatus:
    from access import services

    campaign = AccessReviewCampaign.objects.filter(closed_at__isnull=True).order_by("-started_at").first()
    if campaign is None:
        return ReviewStatus(None, {}, [])
    return ReviewStatus(campaign, services.review_progress(campaign),
                        list(services.review_unreviewed(campaign).order_by("user__username")[:LIST_LIMIT]))


def accounts_to_disable() -> dict[str, list[Any]]:
    """Active accounts past their contract end date or unused for DPI_ACCOUNT_INACTIVITY_DAYS (the beat task
    of the authentication area disables them), and accounts locked after failed sign-ins."""
    due = optional("access.authn.selectors", "accounts_due_for_disabling")
    if due is not None:
        rows = due()
        past_end, dormant = rows["past_end_date"], rows["inactive"]
    else:
        user_model = get_user_model()
        cutoff = timezone.now() - timedelta(days=settings.DPI_ACCOUNT_INACTIVITY_DAYS)
        active = user_model.objects.filter(is_active=True)
        past_end = active.filter(staff__end_date__lt=timezone.localdate())
        dormant = active.filter(Q(last_login__lt=cutoff) | Q(last_login__isnull=True, date_joined__lt=cutoff))
    locked = optional("access.authn.selectors", "locked_accounts")
    return {
        "past_end": list(past_end.select_related("staff").order_by("staff__end_date", "username")[:LIST_LIMIT]),
        "dormant": list(dormant.select_related("staff").order_by("last_login", "username")[:LIST_LIMIT]),
        "locked": list(locked()[:LIST_LIMIT]) if locked is not None else None,
    }


def staff_count() -> int:
    return StaffProfile.objects.filter(user__is_active=True).count()


# --- other areas' status ----------------------------------------------------------------------------------
def _field(obj: Any, *names: str) -> Any:
    for name in names:
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        if value is not None:
            return value
    return None


@dataclass
class AreaStatus:
    available: bool
    data: Any = None
    error: str = ""


def _call(module: str, name: str, *args: Any, **kwargs: Any) -> AreaStatus:
    func = optional(module, name)
    if func is None:
        return AreaStatus(False)
    try:
        return AreaStatus(True, func(*args, **kwargs))
    except Exception as exc:  # a broken panel must not take the whole dashboard down
        log.exception("DPO dashboard: %s.%s failed", module, name)
        return AreaStatus(True, None, str(exc) or exc.__class__.__name__)


def audit_verification() -> AreaStatus:
    """The last audit-chain verification (audit.selectors.last_verification)."""
    status = _call("audit.selectors", "last_verification")
    if status.data is not None:
        v = status.data
        status.data = {
            "ok": _field(v, "ok", "valid", "success"),
            "at": _field(v, "finished_at", "verified_at", "checked_at", "created_at", "at"),
            "events": _field(v, "events_checked", "checked", "events", "count"),
            "first_bad": _field(v, "first_bad_event_id", "first_broken_id", "broken_event_id", "first_bad"),
            "message": _field(v, "message", "detail", "error") or "",
            "completed": _field(v, "completed") is not False,
        }
        if status.data["ok"] and status.data["completed"] and hasattr(v, "checkpoints_checked"):
            # The stored message is English (logs, verify_audit, the signed report): the page says it in words.
            status.data["message"] = verification_summary(v)
        at = status.data["at"]
        if at is not None:  # the real age of the latest run: a nightly run missed shows here
            status.data["age"] = timesince(at, timezone.now())
            status.data["stale"] = timezone.now() - at > timedelta(hours=36)
        status.data["report"] = bool(optional("audit.verification_report", "signed_json"))
    return status


def verification_summary(run: Any) -> str:
    """What an intact verification checked, in the page's language (``Result.message`` is the English one)."""
    text = _("%(events)s and %(checkpoints)s verified") % {
        "events": ngettext("%(n)s event", "%(n)s events", run.events_checked) % {"n": run.events_checked},
        "checkpoints": ngettext("%(n)s checkpoint", "%(n)s checkpoints", run.checkpoints_checked)
        % {"n": run.checkpoints_checked},
    }
    if run.first_seq:
        text += " " + _("(links %(first)s to %(last)s)") % {"first": run.first_seq, "last": run.last_seq}
    if run.witness_checked:
        text += ", " + ngettext("%(n)s witness entry reconciled", "%(n)s witness entries reconciled",
                                run.witness_checked) % {"n": run.witness_checked}
    return text


def retention_status() -> AreaStatus:
    """Policy, last run's progress, recent runs and open work (retention.selectors.retention_overview)."""
    return _call("retention.selectors", "retention_overview")


def alerts_summary() -> AreaStatus:
    """Alerts per status, with their labels (detection area)."""
    status = _call("audit.detection.selectors", "alerts_by_status")
    if status.data is not None:
        labels = dict(alert_statuses())
        status.data = [(code, labels.get(code, code), count) for code, count in status.data.items()]
    return status


def alert_statuses() -> list[tuple[str, str]]:
    alert = optional("audit.detection.models", "Alert")
    return list(alert.Status.choices) if alert is not None else []


def alert_severities() -> list[tuple[str, str]]:
    alert = optional("audit.detection.models", "Alert")
    return list(alert.Severity.choices) if alert is not None else []


def alert_rules() -> list[tuple[str, str]]:
    rules = optional("audit.detection.rules", "RULES") or ()
    fr = translation.get_language() == "fr"
    return [(r.code, getattr(r, "label_fr" if fr else "label_en", r.code)) for r in rules]


def alert_transitions(status: str) -> list[str]:
    transitions = optional("audit.detection.services", "TRANSITIONS") or {}
    return sorted(str(s) for s in transitions.get(status, ()))


def alert_events(alert: Any) -> list[AccessEvent]:
    """The evidence: the access events the alert was built from (bounded)."""
    ids = list(getattr(alert, "event_ids", None) or [])[:200]
    return describe(list(AccessEvent.objects.filter(id__in=ids).order_by("occurred_at", "id"))) if ids else []

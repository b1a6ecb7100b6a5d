"""The DPO dashboard: charts, emergency accesses to review, access-log search, the authorization review,
alerts from detection, the audit-chain and retention status. DPO role only, with a verified second factor.

The DPO reads the trace, not the record: patients appear by their internal id, with links to the patient
access report. Each search of the trace is itself recorded.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone, translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from access import gate
from access import services as access_services
from access.models import AccessReviewItem, EmergencyAccess
from audit import selectors as audit_selectors
from audit.models import AccessEvent
from audit.services import event_record
from dpi.web import dpo
from dpi.web.forms import AccessLogFilterForm, EmergencyReviewForm
from dpi.web.permissions import dpo_required
from patients.models import Patient


def access_report_links(patient_id: int | None) -> list[tuple[str, str]]:
    """Links to the patient access report (audit area) in each format it serves."""
    if not patient_id:
        return []
    links = []
    for fmt in ("pdf", "csv", "json"):
        try:
            url = reverse("audit:patient_access_report", kwargs={"patient_id": patient_id, "fmt": fmt})
        except NoReverseMatch:
            url = f"/audit/patients/{patient_id}/access-report.{fmt}"
        links.append((fmt.upper(), url))
    return links


def _record_dpo_read(request, what: str, details: dict) -> None:
    event_record(actor=request.user, actor_role="dpo", actor_unit=gate.unit_of(request.user), action="view",
                 outcome="allowed", resource_type=what, basis="role", details=details)


@dpo_required
def dashboard(request):
    return render(request, "dpo/dashboard.html", {
        "access_chart": dpo.access_chart(),
        "break_glass_chart": dpo.break_glass_chart(),
        "alerts_chart": dpo.alerts_by_rule_chart(),
        "alerts": dpo.alerts_summary(),
        "pending": list(dpo.pending_emergency_accesses()[: dpo.LIST_LIMIT]),
        "review": dpo.review_status(),
        "accounts": dpo.accounts_to_disable(),
        "verification": dpo.audit_verification(),
        "retention": dpo.retention_status(),
    })


# --- access log -------------------------------------------------------------------------------------------
def _patient_id_from(value: str) -> int | None:
    value = value.strip()
    if value.isdigit():
        return int(value)
    return Patient.objects.filter(ipp=value.upper()).values_list("pk", flat=True).first() if value else None


@dpo_required
def access_log(request):
    form = AccessLogFilterForm(request.GET or None)
    events, more, patient_id, searched = [], False, None, False
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        searched = True
        qs = AccessEvent.objects.all()
        if data["patient"]:
            patient_id = _patient_id_from(data["patient"])
            # With the traces of the files merged with this one (identity vigilance).
            qs = audit_selectors.patient_events(patient_id) if patient_id else qs.none()
        if data["user"]:
            qs = qs.filter(actor_username=data["user"].strip())
        tz = timezone.get_current_timezone()
        if data["date_from"]:
            qs = qs.filter(occurred_at__gte=datetime.combine(data["date_from"], time.min, tzinfo=tz))
        if data["date_to"]:
            qs = qs.filter(occurred_at__lt=datetime.combine(data["date_to"] + timedelta(days=1), time.min, tzinfo=tz))
        if data["outcome"]:
            qs = qs.filter(outcome=data["outcome"])
        before = request.GET.get("before", "")
        if before.isdigit():
            qs = qs.filter(id__lt=int(before))
        rows = list(qs.order_by("-id")[: dpo.LOG_PAGE + 1])
        events, more = dpo.describe(rows[: dpo.LOG_PAGE]), len(rows) > dpo.LOG_PAGE
        _record_dpo_read(request, "accesslog", {
            "patient_id": patient_id, "user": data["user"], "outcome": data["outcome"],
            "from": data["date_from"].isoformat() if data["date_from"] else "",
            "to": data["date_to"].isoformat() if data["date_to"] else "",
        })
    next_query = ""
    if more and events:
        params = request.GET.copy()
        params["before"] = str(events[-1].id)
        next_query = params.urlencode()
    return render(request, "dpo/access_log.html", {
        "form": form, "events": events, "more": more, "next_query": next_query, "searched": searched,
        "patient_id": patient_id, "report_links": access_report_links(patient_id),
    })


# --- emergency accesses -----------------------------------------------------------------------------------
@dpo_required
def emergency_list(request):
    status = request.GET.get("status", EmergencyAccess.Review.PENDING)
    if status not in EmergencyAccess.Review.values:
        status = EmergencyAccess.Review.PENDING
    accesses = list(EmergencyAccess.objects.filter(review_status=status).select_related("user", "reviewed_by")
                    .order_by("-started_at")[: dpo.LIST_LIMIT])
    return render(request, "dpo/emergency_list.html", {
        "accesses": accesses, "status": status, "statuses": EmergencyAccess.Review.choices,
    })


@dpo_required
def emergency_review(request, access_id: int):
    access = get_object_or_404(EmergencyAccess.objects.select_related("user", "reviewed_by"), pk=access_id)
    form = EmergencyReviewForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            access_services.emergency_access_review(reviewer=request.user, access=access, **form.cleaned_data)
        except ValidationError as exc:
            for name, errors in exc.message_dict.items():
                form.add_error(name if name in form.fields else None, [_(e) for e in errors])
        except PermissionDenied as exc:  # her own emergency access (recorded by the service)
            form.add_error(None, str(exc))
        else:
            messages.success(request, _("Review saved."))
            return redirect("web:dpo_emergency_list")
    _record_dpo_read(request, "emergencyaccess", {"emergency_access_id": access.pk, "patient_id": access.patient_id})
    return render(request, "dpo/emergency_review.html", {
        "access": access, "form": form, "events": dpo.emergency_access_events(access),
        "report_links": access_report_links(access.patient_id),
    }, status=400 if form.errors else 200)


# --- authorization review ---------------------------------------------------------------------------------
@dpo_required
@require_POST
def review_item_decide(request, item_id: int):
    item = get_object_or_404(AccessReviewItem.objects.select_related("user"), pk=item_id)
    decision = request.POST.get("decision", "")
    try:
        access_services.review_item_decide(reviewer=request.user, item=item, decision=decision,
                                           comment=request.POST.get("comment", "")[:300])
    except ValidationError as exc:
        messages.error(request, " ".join(_(m) for m in exc.messages))
    except PermissionDenied:
        messages.error(request, _("Nobody decides on their own rights: another reviewer must."))
    else:
        messages.success(request, _("%(user)s: %(decision)s.") % {
            "user": item.user.username, "decision": AccessReviewItem.Decision(decision).label})
    return redirect(reverse("web:dpo_dashboard") + "#review")


# --- detection alerts -------------------------------------------------------------------------------------
def _alert_filters(request) -> tuple[dict, dict]:
    """The queue's filters from the query string: (what the form shows, what the selector receives)."""
    shown = {k: request.GET.get(k, "").strip() for k in ("status", "rule", "severity", "user", "patient")}
    if "status" not in request.GET:
        shown["status"] = "open"
    args: dict = {}
    if shown["status"] == "open":
        args["status"] = ["new", "in_review"]
    elif shown["status"]:
        args["status"] = shown["status"]
    if shown["rule"]:
        args["rule"] = shown["rule"]
    if shown["severity"]:
        args["severity"] = shown["severity"]
    if shown["user"]:
        user = get_user_model().objects.filter(username=shown["user"]).first()
        args["user_id"] = user.pk if user else -1
    if shown["patient"]:
        args["patient_id"] = _patient_id_from(shown["patient"]) or -1
    return shown, args


@dpo_required
def alerts(request):
    """The alert queue, from the detection area (its selectors and services)."""
    alert_list = dpo.optional("audit.detection.selectors", "alert_list")
    if alert_list is None:
        return render(request, "dpo/alerts.html", {"available": False})
    shown, args = _alert_filters(request)
    rows = list(alert_list(**args)[: dpo.LIST_LIMIT + 1])
    _record_dpo_read(request, "detection_alert", {"filters": shown})
    return render(request, "dpo/alerts.html", {
        "available": True, "alerts": rows[: dpo.LIST_LIMIT], "more": len(rows) > dpo.LIST_LIMIT, "filters": shown,
        "statuses": dpo.alert_statuses(), "severities": dpo.alert_severities(), "rules": dpo.alert_rules(),
        "french": translation.get_language() == "fr",
    })


@dpo_required
def alert_detail(request, alert_id: int):
    alert_get = dpo.optional("audit.detection.selectors", "alert_get")
    if alert_get is None:
        raise Http404("detection is not installed")
    try:
        alert = alert_get(alert_id=alert_id)
    except ObjectDoesNotExist as exc:
        raise Http404("no such alert") from exc
    _record_dpo_read(request, "detection_alert", {"alert_id": alert.pk, "patient_id": alert.patient_id})
    labels = dict(dpo.alert_statuses())
    is_about = dpo.optional("audit.detection.services", "alert_is_about")
    own = is_about(alert, request.user)  # about the reviewer's own accesses: another DPO reviews it
    return render(request, "dpo/alert_detail.html", {
        "alert": alert, "events": dpo.alert_events(alert), "report_links": access_report_links(alert.patient_id),
        "transitions": [] if own else [(s, labels.get(s, s)) for s in dpo.alert_transitions(alert.status)],
        "own_alert": own,
        "french": translation.get_language() == "fr", "rules": dict(dpo.alert_rules()),
    })


@dpo_required
@require_POST
def alert_review(request, alert_id: int):
    review = dpo.optional("audit.detection.services", "alert_review")
    if review is None:
        raise Http404("detection is not installed")
    try:
        review(alert_id=alert_id, actor=request.user, status=request.POST.get("status", ""),
               comment=request.POST.get("comment", ""))
    except ObjectDoesNotExist as exc:
        raise Http404("no such alert") from exc
    except ValidationError as exc:
        messages.error(request, " ".join(_(m) for m in exc.messages))
        return redirect("web:dpo_alert_detail", alert_id=alert_id)
    except PermissionDenied as exc:  # an alert about the reviewer herself (recorded by the service)
        messages.error(request, str(exc))
        return redirect("web:dpo_alert_detail", alert_id=alert_id)
    messages.success(request, _("Alert updated."))
    back = request.POST.get("back", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = reverse("web:dpo_alert_detail", args=[alert_id])
    return redirect(back)
